//! Ships a delivery through TikTok's packages: TikTok arranges TikTok-shipping
//! parcels and issues their label and tracking; outside the Mark Package As
//! Shipped markets the seller's own tracking goes on with Ship Package. Either way
//! the units first need a package of their own.

use chrono::{DateTime, TimeZone, Utc};

use super::client::{TikTokClient, TikTokError};
use super::mapping::map_line_item;
use super::model::Order;
use super::package_plan::{plan_packages, PackagePlan};
use super::packages::ShipMethod;
use crate::config::HandoverMethod;
use crate::domain::order::{PickupSlot, ShipmentArranged};

/// Splits settle in one round; a second is TikTok re-splitting on its own.
const PLACEMENT_ROUNDS: usize = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shipped {
    /// The seller's tracking reached TikTok on these packages (comma-joined ids).
    Pushed {
        package_id: String,
    },
    Arranged(Box<ShipmentArranged>),
    /// The units cannot get a package of their own now.
    Deferred(String),
}

enum Placement {
    Open(Vec<String>),
    AlreadyShipped(Vec<String>),
    Deferred(String),
}

async fn read_order(tiktok: &TikTokClient, order_id: &str) -> Result<Order, TikTokError> {
    tiktok
        .get_orders(&[order_id.to_string()])
        .await?
        .into_iter()
        .find(|o| o.id == order_id)
        .ok_or_else(|| TikTokError::Decode(format!("TikTok did not return order {order_id}")))
}

/// Finds (or makes, by splitting) the packages that carry exactly these units.
async fn place(
    tiktok: &TikTokClient,
    order_id: &str,
    units: &[String],
) -> Result<Placement, TikTokError> {
    for _ in 0..PLACEMENT_ROUNDS {
        let order = read_order(tiktok, order_id).await?;
        match plan_packages(&order.line_items, units) {
            PackagePlan::Ship(p) => return Ok(Placement::Open(p)),
            PackagePlan::AlreadyShipped(p) => return Ok(Placement::AlreadyShipped(p)),
            PackagePlan::Unplaceable(why) => return Err(TikTokError::InvalidInput(why)),
            PackagePlan::Split {
                package_id,
                ship,
                rest,
            } => {
                let attributes = tiktok.split_attributes(order_id).await?;
                if !attributes.can_split {
                    let why = if attributes.reason.is_empty() {
                        "no reason given".to_string()
                    } else {
                        attributes.reason
                    };
                    return Ok(Placement::Deferred(format!(
                        "TikTok ships package {package_id} of order {order_id} whole and will not split it ({why}): these units wait for the rest of the order and leave with its delivery"
                    )));
                }
                tiktok
                    .split_order(
                        order_id,
                        &[("delivery".to_string(), ship), ("rest".to_string(), rest)],
                    )
                    .await?;
            }
        }
    }
    Err(TikTokError::Decode(format!(
        "the packages of order {order_id} kept changing while they were split"
    )))
}

/// The seller's carrier through Ship Package `self_shipment` (markets without Mark
/// Package As Shipped).
pub async fn self_ship(
    tiktok: &TikTokClient,
    order_id: &str,
    units: &[String],
    tracking_number: &str,
    shipping_provider_id: &str,
) -> Result<Shipped, TikTokError> {
    let packages = match place(tiktok, order_id, units).await? {
        Placement::Deferred(why) => return Ok(Shipped::Deferred(why)),
        Placement::AlreadyShipped(p) => p,
        Placement::Open(p) => {
            let method = ShipMethod::SelfShipment {
                tracking_number: tracking_number.to_string(),
                shipping_provider_id: shipping_provider_id.to_string(),
            };
            for package in &p {
                tiktok.ship_package(package, &method).await?;
            }
            p
        }
    };
    Ok(Shipped::Pushed {
        package_id: packages.join(","),
    })
}

/// The earliest pickup slot TikTok still offers.
fn first_slot(slots: &super::packages::HandoverSlots, now: DateTime<Utc>) -> Option<(i64, i64)> {
    slots
        .pickup_slots
        .iter()
        .filter(|s| s.avaliable && s.end_time > now.timestamp())
        .min_by_key(|s| s.start_time)
        .map(|s| (s.start_time, s.end_time))
}

/// TikTok's carrier: arrange the parcel's handover, then read its label and tracking.
pub async fn arrange(
    tiktok: &TikTokClient,
    order_id: &str,
    fulfillment_ids: Vec<i64>,
    units: &[String],
    handover: HandoverMethod,
    now: DateTime<Utc>,
) -> Result<Shipped, TikTokError> {
    let (packages, method) = match place(tiktok, order_id, units).await? {
        Placement::Deferred(why) => return Ok(Shipped::Deferred(why)),
        // Arranged before a restart: only the label is left to read.
        Placement::AlreadyShipped(p) => (p, None),
        Placement::Open(p) => {
            let mut method = ShipMethod::DropOff;
            for package in &p {
                method = match handover {
                    HandoverMethod::DropOff => ShipMethod::DropOff,
                    HandoverMethod::Pickup => {
                        let slots = tiktok.handover_time_slots(package).await?;
                        let (start_time, end_time) =
                            first_slot(&slots, now).ok_or_else(|| {
                                TikTokError::InvalidInput(format!(
                                    "TikTok offers no pickup slot for package {package}; set tiktok.handover_method = \"drop_off\" or book a pickup in Seller Center"
                                ))
                            })?;
                        ShipMethod::Pickup {
                            start_time,
                            end_time,
                        }
                    }
                };
                tiktok.ship_package(package, &method).await?;
            }
            (p, Some(method))
        }
    };
    let first = packages
        .first()
        .ok_or_else(|| TikTokError::Decode(format!("order {order_id} has no package")))?;
    let label = tiktok.shipping_label(first).await?;
    let order = read_order(tiktok, order_id).await?;
    let unit = order
        .line_items
        .iter()
        .find(|i| i.package_id.as_deref() == Some(first.as_str()) && map_line_item(i).shipped);
    let tracking_number = if label.tracking_number.is_empty() {
        unit.and_then(|i| i.tracking_number.clone())
            .unwrap_or_default()
    } else {
        label.tracking_number.clone()
    };
    if tracking_number.is_empty() {
        return Err(TikTokError::Decode(format!(
            "TikTok gave package {first} no tracking number"
        )));
    }
    let shipping_provider = unit
        .and_then(|i| i.shipping_provider_name.clone())
        .unwrap_or_default();
    let pickup_slot = match &method {
        Some(ShipMethod::Pickup {
            start_time,
            end_time,
        }) => Some(PickupSlot {
            start: Utc.timestamp_opt(*start_time, 0).single().unwrap_or(now),
            end: Utc.timestamp_opt(*end_time, 0).single().unwrap_or(now),
        }),
        _ => None,
    };
    let handover_method = match (&method, handover) {
        (Some(m), _) => m.handover_name(),
        (None, HandoverMethod::Pickup) => "PICKUP",
        (None, HandoverMethod::DropOff) => "DROP_OFF",
    };
    Ok(Shipped::Arranged(Box::new(ShipmentArranged {
        fulfillment_ids,
        package_id: packages.join(","),
        handover_method: handover_method.to_string(),
        pickup_slot,
        tracking_number,
        shipping_provider,
        label_url: label.doc_url,
    })))
}
