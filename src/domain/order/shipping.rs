//! How an order's deliveries reach TikTok beyond the seller's own Mark Package As
//! Shipped: shipments TikTok arranges with its label, deliveries that must wait
//! for a package of their own, the tracking written back to Katana, and tracking
//! corrections within TikTok's window.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::modes::ArrangeShipmentOn;
use crate::domain::observed::{KatanaFulfillment, ShippingType};

/// TikTok accepts Update Shipping Info for 72 hours after a package shipped.
pub const TRACKING_CORRECTION_WINDOW: Duration = Duration::from_secs(72 * 3600);

/// A carrier collection window TikTok offered for a pickup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PickupSlot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// TikTok arranged the shipment of a TikTok-shipping package: its carrier, its
/// tracking number and a label the warehouse prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShipmentArranged {
    /// The Katana fulfillments whose units the package carries.
    pub fulfillment_ids: Vec<i64>,
    pub package_id: String,
    /// `PICKUP` or `DROP_OFF`, as sent to TikTok.
    pub handover_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_slot: Option<PickupSlot>,
    pub tracking_number: String,
    pub shipping_provider: String,
    /// TikTok's label as issued (the URL expires after 24 h; a fresh one is read on
    /// demand).
    pub label_url: String,
}

/// A delivery cannot go to TikTok on its own yet: its units share a package with
/// units still to come, and TikTok will not split it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShipmentDeferred {
    pub fulfillment_id: i64,
    pub reason: String,
}

/// TikTok's tracking number now stands on the Katana fulfillment, so the warehouse
/// ships with TikTok's label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrackingWrittenToKatana {
    pub fulfillment_id: i64,
    pub tracking_number: String,
}

/// Katana's tracking of a delivery already on TikTok changed: TikTok is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrackingCorrectionRequested {
    pub fulfillment_id: i64,
    pub package_id: String,
    pub tracking_number: String,
    pub carrier: Option<String>,
    /// Several packages: the correction names the package, not the order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub several_packages: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrackingCorrected {
    pub fulfillment_id: i64,
    pub tracking_number: String,
    pub carrier: Option<String>,
}

/// Whether a Katana fulfillment in this status releases its units to TikTok. The
/// seller's own carrier needs Katana's delivery (and its tracking); a
/// TikTok-shipping parcel needs TikTok's label first, so packing may be enough.
pub fn releases_units(
    fulfillment: &KatanaFulfillment,
    shipping: ShippingType,
    arrange_on: ArrangeShipmentOn,
) -> bool {
    matches!(
        (fulfillment.status.as_str(), shipping, arrange_on),
        ("DELIVERED", _, _) | ("PACKED", ShippingType::Tiktok, ArrangeShipmentOn::Packed)
    )
}

/// Katana's tracking differs from what reached TikTok.
pub fn tracking_changed(shipped: &KatanaFulfillment, now: &KatanaFulfillment) -> bool {
    let norm = |s: &Option<String>| s.as_deref().unwrap_or("").trim().to_string();
    let tracking = norm(&now.tracking_number);
    !tracking.is_empty()
        && (tracking != norm(&shipped.tracking_number)
            || norm(&now.tracking_carrier) != norm(&shipped.tracking_carrier))
}

/// Still inside TikTok's correction window.
pub fn correction_allowed(pushed_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now <= crate::domain::add(pushed_at, TRACKING_CORRECTION_WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn f(status: &str, tracking: Option<&str>, carrier: Option<&str>) -> KatanaFulfillment {
        KatanaFulfillment {
            fulfillment_id: 1,
            status: status.into(),
            tracking_number: tracking.map(str::to_string),
            tracking_url: None,
            tracking_carrier: carrier.map(str::to_string),
            rows: vec![],
        }
    }

    #[test]
    fn packing_releases_only_tiktok_shipping_orders_set_to_arrange_on_packing() {
        let packed = f("PACKED", None, None);
        assert!(releases_units(
            &packed,
            ShippingType::Tiktok,
            ArrangeShipmentOn::Packed
        ));
        assert!(!releases_units(
            &packed,
            ShippingType::Tiktok,
            ArrangeShipmentOn::Delivered
        ));
        assert!(!releases_units(
            &packed,
            ShippingType::Seller,
            ArrangeShipmentOn::Packed
        ));
        assert!(releases_units(
            &f("DELIVERED", None, None),
            ShippingType::Seller,
            ArrangeShipmentOn::Packed
        ));
    }

    #[test]
    fn a_new_tracking_number_or_carrier_is_a_change_and_a_removed_one_is_not() {
        let shipped = f("DELIVERED", Some("1Z1"), Some("UPS"));
        assert!(!tracking_changed(
            &shipped,
            &f("DELIVERED", Some(" 1Z1 "), Some("UPS"))
        ));
        assert!(tracking_changed(
            &shipped,
            &f("DELIVERED", Some("1Z2"), Some("UPS"))
        ));
        assert!(tracking_changed(
            &shipped,
            &f("DELIVERED", Some("1Z1"), Some("FedEx"))
        ));
        assert!(!tracking_changed(&shipped, &f("DELIVERED", None, None)));
    }

    #[test]
    fn corrections_close_72_hours_after_the_push() {
        let t = Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap();
        assert!(correction_allowed(t, t + chrono::Duration::hours(72)));
        assert!(!correction_allowed(
            t,
            t + chrono::Duration::hours(72) + chrono::Duration::seconds(1)
        ));
    }
}
