//! Pure mapping from TikTok wire DTOs to the domain's observed shapes (`OrderSnapshot`,
//! `LineUnit`, catalogue entries). No I/O, so every rule here is unit-tested.

use chrono::{DateTime, TimeZone, Utc};

use super::model;
use crate::domain::observed::{
    Address, FulfillmentType, LineUnit, OrderSnapshot, ShippingType, TikTokOrderStatus,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("order {order_id}: unknown status {status:?}")]
    UnknownStatus { order_id: String, status: String },
    #[error("order {order_id}: {field} is not a valid unix time ({value})")]
    BadTime {
        order_id: String,
        field: &'static str,
        value: i64,
    },
}

pub fn parse_status(s: &str) -> Option<TikTokOrderStatus> {
    use TikTokOrderStatus::*;
    Some(match s {
        "UNPAID" => Unpaid,
        "ON_HOLD" => OnHold,
        "AWAITING_SHIPMENT" => AwaitingShipment,
        "PARTIALLY_SHIPPING" => PartiallyShipping,
        "AWAITING_COLLECTION" => AwaitingCollection,
        "IN_TRANSIT" => InTransit,
        "DELIVERED" => Delivered,
        "COMPLETED" => Completed,
        "CANCELLED" => Cancelled,
        _ => return None,
    })
}

pub fn parse_fulfillment_type(s: Option<&str>) -> FulfillmentType {
    match s {
        // TikTok documents seller fulfilment as the default when the field is absent.
        None | Some("FULFILLMENT_BY_SELLER") => FulfillmentType::FulfillmentBySeller,
        Some("FULFILLMENT_BY_TIKTOK") => FulfillmentType::FulfillmentByTiktok,
        Some(_) => FulfillmentType::Other,
    }
}

fn unix(order_id: &str, field: &'static str, value: i64) -> Result<DateTime<Utc>, MappingError> {
    Utc.timestamp_opt(value, 0)
        .single()
        .ok_or_else(|| MappingError::BadTime {
            order_id: order_id.to_string(),
            field,
            value,
        })
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|v| !v.trim().is_empty())
}

/// Line-item display statuses that mean the unit has left the seller's hands.
const SHIPPED_DISPLAY: [&str; 4] = [
    "AWAITING_COLLECTION",
    "IN_TRANSIT",
    "DELIVERED",
    "COMPLETED",
];

/// `TIKTOK` means TikTok's label and tracking; anything else (absent included) is the
/// seller's own carrier, which is what the API did before the field existed.
pub fn parse_shipping_type(s: Option<&str>) -> ShippingType {
    match s {
        Some("TIKTOK") => ShippingType::Tiktok,
        _ => ShippingType::Seller,
    }
}

pub fn map_line_item(li: &model::LineItem) -> LineUnit {
    let display = li.display_status.as_deref().unwrap_or("");
    let cancelled = display == "CANCELLED" || li.package_status.as_deref() == Some("CANCELLED");
    // A unit counts as shipped when it sits in a package with tracking, or TikTok already shows
    // it past shipment; both are needed because US/UK local sellers get no package_id until
    // shipped, while TikTok-shipped units may show a status before tracking is visible.
    let has_tracked_package =
        non_empty(&li.package_id).is_some() && non_empty(&li.tracking_number).is_some();
    let shipped = !cancelled && (has_tracked_package || SHIPPED_DISPLAY.contains(&display));
    LineUnit {
        line_item_id: li.id.clone(),
        sku_id: li.sku_id.clone(),
        seller_sku: li.seller_sku.clone().unwrap_or_default(),
        sale_price: li.sale_price.clone().unwrap_or_default(),
        cancelled,
        shipped,
    }
}

pub fn map_address(a: &model::RecipientAddress) -> Address {
    let level = |l: &str| {
        a.district_info
            .iter()
            .find(|d| d.address_level.as_deref() == Some(l))
            .and_then(|d| d.address_name.clone())
            .unwrap_or_default()
    };
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    // L0 country, L1 state, L2 county, L3 city (US layout); UK puts the town in post_town.
    let city = match (level("L3"), a.post_town.clone()) {
        (c, _) if !c.is_empty() => c,
        (_, Some(t)) if !t.is_empty() => t,
        _ => level("L2"),
    };
    let country = match a.region_code.clone() {
        Some(c) if !c.is_empty() => c,
        _ => level("L0"),
    };
    let line_1 = match non_empty(&a.address_line1) {
        Some(l) => l.to_string(),
        None => s(&a.address_detail),
    };
    let line_2 = [&a.address_line2, &a.address_line3, &a.address_line4]
        .into_iter()
        .filter_map(non_empty)
        .collect::<Vec<_>>()
        .join(", ");
    Address {
        name: s(&a.name),
        first_name: s(&a.first_name),
        last_name: s(&a.last_name),
        phone: s(&a.phone_number),
        line_1,
        line_2,
        city,
        state: level("L1"),
        zip: s(&a.postal_code),
        country,
    }
}

pub fn map_order(o: &model::Order) -> Result<OrderSnapshot, MappingError> {
    let status = parse_status(&o.status).ok_or_else(|| MappingError::UnknownStatus {
        order_id: o.id.clone(),
        status: o.status.clone(),
    })?;
    let create_time = unix(&o.id, "create_time", o.create_time)?;
    let update_time = unix(&o.id, "update_time", o.update_time.unwrap_or(o.create_time))?;
    let currency = o
        .payment
        .as_ref()
        .and_then(|p| p.currency.clone())
        .or_else(|| o.line_items.iter().find_map(|l| l.currency.clone()))
        .unwrap_or_default();
    // TikTok does not release the address before the order leaves UNPAID/ON_HOLD; anything it
    // shows earlier would be a placeholder, so it is never passed on.
    let recipient = if status.is_pre_release() {
        None
    } else {
        o.recipient_address.as_ref().map(map_address)
    };
    Ok(OrderSnapshot {
        shop_id: String::new(),
        order_id: o.id.clone(),
        status,
        fulfillment_type: parse_fulfillment_type(o.fulfillment_type.as_deref()),
        shipping_type: parse_shipping_type(o.shipping_type.as_deref()),
        create_time,
        update_time,
        currency,
        warehouse_id: non_empty(&o.warehouse_id).map(str::to_string),
        recipient,
        buyer_email: non_empty(&o.buyer_email).map(str::to_string),
        units: o.line_items.iter().map(map_line_item).collect(),
    })
}

/// The product status of a live listing: the only one whose stock is synced and
/// that TikTok accepts inventory updates for.
pub const LIVE_STATUS: &str = "ACTIVATE";

/// One SKU of the TikTok catalogue with its per-warehouse stock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogueEntry {
    pub product_id: String,
    pub product_title: String,
    pub product_status: String,
    pub sku_id: String,
    pub seller_sku: String,
    pub warehouses: Vec<model::WarehouseQuantity>,
}

impl CatalogueEntry {
    pub fn is_live(&self) -> bool {
        self.product_status == LIVE_STATUS
    }
}

pub fn map_product(p: &model::Product) -> Vec<CatalogueEntry> {
    p.skus
        .iter()
        .map(|s| CatalogueEntry {
            product_id: p.id.clone(),
            product_title: p.title.clone(),
            product_status: p.status.clone(),
            sku_id: s.id.clone(),
            seller_sku: s.seller_sku.clone(),
            warehouses: s.inventory.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order_json(status: &str) -> model::Order {
        let v = serde_json::json!({
            "id": "576461413038785752",
            "status": status,
            "fulfillment_type": "FULFILLMENT_BY_SELLER",
            "create_time": 1767225600,
            "update_time": 1767229200,
            "warehouse_id": "7000001",
            "buyer_email": "v@scs.tiktokw.us",
            "payment": {"currency": "USD", "total_amount": "30.00"},
            "some_new_field": {"nested": [1, 2]},
            "recipient_address": {
                "name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace",
                "phone_number": "(+1)555", "address_line1": "1 Main St", "address_line2": "Apt 2",
                "address_line3": "", "postal_code": "94105", "region_code": "US",
                "district_info": [
                    {"address_level": "L0", "address_name": "United States"},
                    {"address_level": "L1", "address_name": "California"},
                    {"address_level": "L2", "address_name": "San Francisco County"},
                    {"address_level": "L3", "address_name": "San Francisco"}
                ]
            },
            "line_items": [
                {"id": "1", "sku_id": "S1", "seller_sku": "MUG", "sale_price": "10.00", "display_status": "AWAITING_SHIPMENT"},
                {"id": "2", "sku_id": "S1", "seller_sku": "MUG", "sale_price": "10.00", "display_status": "AWAITING_COLLECTION",
                 "package_id": "P1", "tracking_number": "1Z", "shipping_provider_id": "7117"},
                {"id": "3", "sku_id": "S2", "seller_sku": "CAP", "sale_price": "10.00", "display_status": "CANCELLED"}
            ]
        });
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn maps_per_unit_line_items_shipped_and_cancelled() {
        let s = map_order(&order_json("PARTIALLY_SHIPPING")).unwrap();
        assert_eq!(s.status, TikTokOrderStatus::PartiallyShipping);
        assert_eq!(s.fulfillment_type, FulfillmentType::FulfillmentBySeller);
        assert_eq!(s.currency, "USD");
        assert_eq!(s.units.len(), 3);
        assert_eq!(
            s.units
                .iter()
                .map(|u| (u.shipped, u.cancelled))
                .collect::<Vec<_>>(),
            vec![(false, false), (true, false), (false, true)]
        );
        assert_eq!(s.units[0].seller_sku, "MUG");
        assert_eq!(s.create_time.timestamp(), 1767225600);
        assert_eq!(s.update_time.timestamp(), 1767229200);
        assert_eq!(s.warehouse_id.as_deref(), Some("7000001"));
        let a = s.recipient.unwrap();
        assert_eq!(
            (
                a.city.as_str(),
                a.state.as_str(),
                a.zip.as_str(),
                a.country.as_str()
            ),
            ("San Francisco", "California", "94105", "US")
        );
        assert_eq!(a.line_2, "Apt 2");
    }

    #[test]
    fn address_is_withheld_while_unpaid_or_on_hold() {
        for st in ["UNPAID", "ON_HOLD"] {
            assert_eq!(map_order(&order_json(st)).unwrap().recipient, None);
        }
        assert!(map_order(&order_json("AWAITING_SHIPMENT"))
            .unwrap()
            .recipient
            .is_some());
    }

    #[test]
    fn all_nine_statuses_parse_and_unknown_is_an_error() {
        for st in [
            "UNPAID",
            "ON_HOLD",
            "AWAITING_SHIPMENT",
            "PARTIALLY_SHIPPING",
            "AWAITING_COLLECTION",
            "IN_TRANSIT",
            "DELIVERED",
            "COMPLETED",
            "CANCELLED",
        ] {
            assert!(map_order(&order_json(st)).is_ok(), "{st}");
        }
        assert!(matches!(
            map_order(&order_json("SHIPPED")),
            Err(MappingError::UnknownStatus { .. })
        ));
    }

    #[test]
    fn fulfillment_types() {
        assert_eq!(
            parse_fulfillment_type(Some("FULFILLMENT_BY_TIKTOK")),
            FulfillmentType::FulfillmentByTiktok
        );
        assert_eq!(
            parse_fulfillment_type(None),
            FulfillmentType::FulfillmentBySeller
        );
        assert_eq!(
            parse_fulfillment_type(Some("FULFILLMENT_BY_DILAYANI_TOKOPEDIA")),
            FulfillmentType::Other
        );
    }

    #[test]
    fn package_without_tracking_is_not_shipped() {
        let li: model::LineItem = serde_json::from_value(serde_json::json!({
            "id": "9", "sku_id": "S", "display_status": "AWAITING_SHIPMENT", "package_id": "P", "tracking_number": ""
        }))
        .unwrap();
        assert!(!map_line_item(&li).shipped);
    }

    #[test]
    fn product_maps_to_one_entry_per_sku() {
        let p: model::Product = serde_json::from_value(serde_json::json!({
            "id": "P1", "title": "Mug", "status": "ACTIVATE",
            "skus": [
                {"id": "S1", "seller_sku": "MUG-R", "inventory": [{"warehouse_id": "W1", "quantity": 3}, {"warehouse_id": "W2", "quantity": 4}]},
                {"id": "S2", "seller_sku": "MUG-B", "inventory": []}
            ]
        }))
        .unwrap();
        let e = map_product(&p);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].warehouses.len(), 2);
        assert_eq!(e[1].seller_sku, "MUG-B");
    }
}
