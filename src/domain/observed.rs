//! What the outside world told us, in domain terms: the shapes the connectors'
//! mappings produce from wire DTOs and the aggregates record as observations.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An exact decimal quantity in hundred-thousandths (Katana sends five decimals,
/// e.g. `"7.00000"`). Integer arithmetic keeps ATP sums exact.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Quantity(pub i64);

impl Quantity {
    pub const SCALE: i64 = 100_000;

    pub fn from_units(units: i64) -> Self {
        Quantity(units * Self::SCALE)
    }

    /// Whole units, rounding towards negative infinity: a fractional unit cannot
    /// be sold, so it never counts as available.
    pub fn floor_units(self) -> i64 {
        self.0.div_euclid(Self::SCALE)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a decimal quantity: {0:?}")]
pub struct BadQuantity(pub String);

impl FromStr for Quantity {
    type Err = BadQuantity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadQuantity(s.to_string());
        let t = s.trim();
        let (neg, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let int_part: i64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        // Digits past the fifth decimal are below Katana's own precision; refusing
        // them would reject real payloads, so they are truncated.
        let mut frac_digits: String = frac.chars().take(5).collect();
        while frac_digits.len() < 5 {
            frac_digits.push('0');
        }
        let frac_part: i64 = frac_digits.parse().map_err(|_| bad())?;
        let v = int_part
            .checked_mul(Self::SCALE)
            .and_then(|v| v.checked_add(frac_part))
            .ok_or_else(bad)?;
        Ok(Quantity(if neg { -v } else { v }))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:05}",
            a / Self::SCALE as u64,
            a % Self::SCALE as u64
        )
    }
}

/// The nine TikTok order statuses, exactly as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TikTokOrderStatus {
    Unpaid,
    OnHold,
    AwaitingShipment,
    PartiallyShipping,
    AwaitingCollection,
    InTransit,
    Delivered,
    Completed,
    Cancelled,
}

impl TikTokOrderStatus {
    /// TikTok has not released the order to the seller yet (no address, buyer may
    /// still cancel freely): nothing may be pushed or shipped.
    pub fn is_pre_release(self) -> bool {
        matches!(self, Self::Unpaid | Self::OnHold)
    }

    pub fn is_shipped(self) -> bool {
        matches!(
            self,
            Self::AwaitingCollection | Self::InTransit | Self::Delivered | Self::Completed
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FulfillmentType {
    FulfillmentBySeller,
    FulfillmentByTiktok,
    #[serde(other)]
    Other,
}

/// Who ships a seller-fulfilled order: the seller with its own carrier, or TikTok
/// with its label (`shipping_type` on the wire).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShippingType {
    #[default]
    Seller,
    Tiktok,
}

impl ShippingType {
    pub fn is_seller(&self) -> bool {
        *self == ShippingType::Seller
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Address {
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub line_1: String,
    pub line_2: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    pub country: String,
}

/// One TikTok line item: one unit of one SKU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LineUnit {
    pub line_item_id: String,
    pub sku_id: String,
    pub seller_sku: String,
    /// Unit sale price as TikTok's decimal string.
    pub sale_price: String,
    pub cancelled: bool,
    /// Already in a package with tracking (shipped by us or someone else).
    pub shipped: bool,
}

/// An order as TikTok showed it at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderSnapshot {
    pub order_id: String,
    pub status: TikTokOrderStatus,
    pub fulfillment_type: FulfillmentType,
    /// Logs written before TikTok-shipping orders were supported hold seller orders.
    #[serde(default, skip_serializing_if = "ShippingType::is_seller")]
    pub shipping_type: ShippingType,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub currency: String,
    pub warehouse_id: Option<String>,
    /// Absent while UNPAID or ON_HOLD.
    pub recipient: Option<Address>,
    pub buyer_email: Option<String>,
    pub units: Vec<LineUnit>,
    /// The TikTok shop the order was placed in; none in logs written before the
    /// instance served several shops, whose orders are the primary shop's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shop_id: String,
}

/// A Katana sales order fulfillment as read back from the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KatanaFulfillment {
    pub fulfillment_id: i64,
    pub status: String,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub tracking_carrier: Option<String>,
    /// (sales order row id, quantity) pairs.
    pub rows: Vec<(i64, Quantity)>,
}

/// One Katana inventory row: a variant at a location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StockLevel {
    pub variant_id: i64,
    pub location_id: i64,
    pub in_stock: Quantity,
    pub committed: Quantity,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_exactly() {
        assert_eq!(
            "7.00000".parse::<Quantity>().unwrap(),
            Quantity::from_units(7)
        );
        assert_eq!(
            "1250.0000000000".parse::<Quantity>().unwrap().floor_units(),
            1250
        );
        assert_eq!("0.5".parse::<Quantity>().unwrap(), Quantity(50_000));
        assert_eq!("-2.25".parse::<Quantity>().unwrap(), Quantity(-225_000));
        assert_eq!("3".parse::<Quantity>().unwrap().to_string(), "3.00000");
        assert!("abc".parse::<Quantity>().is_err());
        assert!("".parse::<Quantity>().is_err());
        assert!("1.2.3".parse::<Quantity>().is_err());
        assert_eq!(Quantity(-1).floor_units(), -1);
    }
}
