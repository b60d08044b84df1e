//! Katana wire DTOs <-> domain shapes: the SO request built from a TikTok order
//! (F1), and fulfillments and stock rows read back from Katana (F7, F10).

use std::collections::BTreeMap;
use std::str::FromStr;

use super::model::*;
use crate::domain::observed::{Address, KatanaFulfillment, OrderSnapshot, Quantity, StockLevel};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// TikTok SKUs with no Katana variant: the order becomes an exception naming them.
    #[error("no Katana variant for SKU(s): {}", .0.join(", "))]
    UnmatchedSkus(Vec<String>),
    #[error("order {0} has no line items left to push")]
    NoUnits(String),
    #[error("order {order}: unit price {price:?} of SKU {sku} is not a decimal")]
    BadPrice {
        order: String,
        sku: String,
        price: String,
    },
    /// A fulfillment row points at a row the SO does not have.
    #[error("fulfillment {fulfillment} references row {row} that sales order {sales_order} does not have")]
    UnknownRow {
        fulfillment: i64,
        row: i64,
        sales_order: i64,
    },
}

/// What the SO request needs besides the TikTok order itself.
#[derive(Clone, Debug)]
pub struct SalesOrderContext {
    pub store_name: String,
    pub order_no_prefix: String,
    pub location_id: i64,
    pub customer_id: i64,
    /// TikTok `seller_sku` (after alias/case rules) -> Katana variant id.
    pub variant_by_sku: BTreeMap<String, i64>,
    /// `NOT_SHIPPED` normally; FBT "record as done" also starts there and is delivered next.
    pub status: SoStatus,
}

pub const ECOMMERCE_ORDER_TYPE: &str = "tiktok";

/// What an SO names its shop by (`ecommerce_store_name`, and the generic customer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreName {
    pub name: String,
    /// TikTok reported no name: the shop id (or a placeholder) stands in for it.
    pub fallback: bool,
}

/// The shop's name as TikTok reports it for the authorised shop; its id only when the
/// name is empty (or unknown), and a placeholder when neither is known.
pub fn store_name(shop_name: Option<&str>, shop_id: &str) -> StoreName {
    match shop_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => StoreName {
            name: name.to_string(),
            fallback: false,
        },
        None => StoreName {
            name: if shop_id.trim().is_empty() {
                "tiktok-shop".into()
            } else {
                shop_id.trim().to_string()
            },
            fallback: true,
        },
    }
}

/// A `Quantity` as a JSON number without trailing zeros (`7`, `12.5`).
pub fn quantity_number(q: Quantity) -> serde_json::Number {
    let text = q.to_string();
    let trimmed = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    // A decimal with at most 5 fractional digits and an i64 mantissa is always a
    // valid JSON number; the fallback keeps this total without a panic path.
    serde_json::Number::from_str(&trimmed)
        .unwrap_or_else(|_| serde_json::Number::from(q.floor_units()))
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The shipping address block of the SO (`entity_type: shipping`).
pub fn shipping_address(a: &Address) -> SalesOrderAddressInput {
    let (first, last) = if a.first_name.trim().is_empty() && a.last_name.trim().is_empty() {
        match a.name.trim().rsplit_once(' ') {
            Some((f, l)) => (f.to_string(), l.to_string()),
            None => (a.name.clone(), String::new()),
        }
    } else {
        (a.first_name.clone(), a.last_name.clone())
    };
    SalesOrderAddressInput {
        entity_type: "shipping".into(),
        first_name: non_empty(&first),
        last_name: non_empty(&last),
        company: None,
        phone: non_empty(&a.phone),
        line_1: non_empty(&a.line_1),
        line_2: non_empty(&a.line_2),
        city: non_empty(&a.city),
        state: non_empty(&a.state),
        zip: non_empty(&a.zip),
        country: non_empty(&a.country),
    }
}

/// F1: one Katana row per TikTok `sku_id`, quantity = number of live units, price =
/// the unit price (the exact mean if units of one SKU were priced differently).
pub fn sales_order_request(
    o: &OrderSnapshot,
    ctx: &SalesOrderContext,
) -> Result<CreateSalesOrder, MappingError> {
    struct Group {
        seller_sku: String,
        units: i64,
        price_sum: Quantity,
    }
    let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for u in o.units.iter().filter(|u| !u.cancelled) {
        let price: Quantity = u.sale_price.parse().map_err(|_| MappingError::BadPrice {
            order: o.order_id.clone(),
            sku: u.seller_sku.clone(),
            price: u.sale_price.clone(),
        })?;
        let g = groups.entry(u.sku_id.as_str()).or_insert_with(|| {
            order.push(u.sku_id.as_str());
            Group {
                seller_sku: u.seller_sku.clone(),
                units: 0,
                price_sum: Quantity(0),
            }
        });
        g.units += 1;
        g.price_sum = Quantity(g.price_sum.0.saturating_add(price.0));
    }
    if groups.is_empty() {
        return Err(MappingError::NoUnits(o.order_id.clone()));
    }
    let mut missing = Vec::new();
    let mut rows = Vec::new();
    for sku_id in order {
        let g = &groups[sku_id];
        match ctx.variant_by_sku.get(&g.seller_sku) {
            None => missing.push(g.seller_sku.clone()),
            Some(&variant_id) => rows.push(CreateSalesOrderRow {
                variant_id,
                quantity: quantity_number(Quantity::from_units(g.units)),
                price_per_unit: Some(quantity_number(Quantity(g.price_sum.0 / g.units))),
                location_id: None,
            }),
        }
    }
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return Err(MappingError::UnmatchedSkus(missing));
    }
    Ok(CreateSalesOrder {
        customer_id: ctx.customer_id,
        sales_order_rows: rows,
        order_no: Some(format!("{}{}", ctx.order_no_prefix, o.order_id)),
        location_id: Some(ctx.location_id),
        status: Some(ctx.status.clone()),
        currency: non_empty(&o.currency),
        order_created_date: Some(
            o.create_time
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
        additional_info: None,
        ecommerce_order_type: Some(ECOMMERCE_ORDER_TYPE.into()),
        ecommerce_store_name: Some(ctx.store_name.clone()),
        ecommerce_order_id: Some(o.order_id.clone()),
        addresses: o.recipient.iter().map(shipping_address).collect(),
    })
}

pub fn stock_level(r: &InventoryRow) -> StockLevel {
    StockLevel {
        variant_id: r.variant_id,
        location_id: r.location_id,
        in_stock: r.quantity_in_stock,
        committed: r.quantity_committed.unwrap_or_default(),
    }
}

pub fn fulfillment_to_domain(f: &Fulfillment) -> KatanaFulfillment {
    KatanaFulfillment {
        fulfillment_id: f.id,
        status: f.status.to_string(),
        tracking_number: f.tracking_number.clone().filter(|s| !s.trim().is_empty()),
        tracking_url: f.tracking_url.clone().filter(|s| !s.trim().is_empty()),
        tracking_carrier: f.tracking_carrier.clone().filter(|s| !s.trim().is_empty()),
        rows: f
            .sales_order_fulfillment_rows
            .iter()
            .map(|r| (r.sales_order_row_id, r.quantity))
            .collect(),
    }
}

/// Maps a fulfillment's rows back to (variant id, quantity) through the SO's rows.
pub fn fulfillment_variant_quantities(
    f: &KatanaFulfillment,
    so: &SalesOrder,
) -> Result<Vec<(i64, Quantity)>, MappingError> {
    f.rows
        .iter()
        .map(|(row_id, q)| {
            so.sales_order_rows
                .iter()
                .find(|r| r.id == *row_id)
                .map(|r| (r.variant_id, *q))
                .ok_or(MappingError::UnknownRow {
                    fulfillment: f.fulfillment_id,
                    row: *row_id,
                    sales_order: so.id,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::observed::{FulfillmentType, LineUnit, TikTokOrderStatus};
    use chrono::TimeZone;

    fn unit(id: &str, sku_id: &str, sku: &str, price: &str) -> LineUnit {
        LineUnit {
            line_item_id: id.into(),
            sku_id: sku_id.into(),
            seller_sku: sku.into(),
            sale_price: price.into(),
            cancelled: false,
            shipped: false,
        }
    }

    fn order(units: Vec<LineUnit>) -> OrderSnapshot {
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        OrderSnapshot {
            shop_id: String::new(),
            order_id: "576".into(),
            status: TikTokOrderStatus::AwaitingShipment,
            fulfillment_type: FulfillmentType::FulfillmentBySeller,
            shipping_type: Default::default(),
            create_time: t,
            update_time: t,
            currency: "USD".into(),
            warehouse_id: Some("w".into()),
            recipient: Some(Address {
                name: "Ada Lovelace".into(),
                line_1: "1 Main St".into(),
                city: "Austin".into(),
                country: "US".into(),
                ..Address::default()
            }),
            buyer_email: None,
            units,
        }
    }

    fn ctx() -> SalesOrderContext {
        SalesOrderContext {
            store_name: "shop".into(),
            order_no_prefix: "TT-".into(),
            location_id: 3,
            customer_id: 9,
            variant_by_sku: [("A".to_string(), 11), ("B".to_string(), 12)]
                .into_iter()
                .collect(),
            status: SoStatus::NotShipped,
        }
    }

    #[test]
    fn the_store_is_named_by_the_shop_name_and_by_its_id_only_without_one() {
        let named = store_name(Some("Sim Pottery"), "7494");
        assert_eq!(
            (named.name.as_str(), named.fallback),
            ("Sim Pottery", false)
        );
        for missing in [None, Some(""), Some("  ")] {
            let by_id = store_name(missing, "7494");
            assert_eq!((by_id.name.as_str(), by_id.fallback), ("7494", true));
        }
        assert_eq!(store_name(None, "").name, "tiktok-shop");
    }

    #[test]
    fn units_group_by_sku_into_rows() {
        let mut cancelled = unit("4", "s2", "B", "3.00");
        cancelled.cancelled = true;
        let o = order(vec![
            unit("1", "s1", "A", "12.50"),
            unit("2", "s1", "A", "12.50"),
            unit("3", "s2", "B", "3"),
            cancelled,
        ]);
        let req = sales_order_request(&o, &ctx()).unwrap();
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["order_no"], "TT-576");
        assert_eq!(v["ecommerce_order_type"], "tiktok");
        assert_eq!(v["sales_order_rows"][0]["quantity"], 2);
        assert_eq!(v["sales_order_rows"][0]["price_per_unit"], 12.5);
        assert_eq!(v["sales_order_rows"][1]["quantity"], 1);
        assert_eq!(v["addresses"][0]["entity_type"], "shipping");
        assert_eq!(v["addresses"][0]["first_name"], "Ada");
        assert_eq!(v["addresses"][0]["last_name"], "Lovelace");
        assert!(
            v["addresses"][0].get("zip").is_none(),
            "empty fields are not sent"
        );
    }

    #[test]
    fn unmatched_skus_are_named() {
        let o = order(vec![unit("1", "s1", "A", "1"), unit("2", "s9", "ZZ", "1")]);
        assert_eq!(
            sales_order_request(&o, &ctx()).unwrap_err(),
            MappingError::UnmatchedSkus(vec!["ZZ".into()])
        );
        let bad = order(vec![unit("1", "s1", "A", "free")]);
        assert!(matches!(
            sales_order_request(&bad, &ctx()),
            Err(MappingError::BadPrice { .. })
        ));
    }
}
