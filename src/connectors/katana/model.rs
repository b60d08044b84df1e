//! Katana wire DTOs. Request bodies are exactly what Katana's gateway accepts (it
//! rejects unknown fields with 422, so nothing optional is sent as `null` unless the
//! field is nullable); response types tolerate extra fields and accept numbers that
//! arrive either as JSON numbers or as decimal strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::observed::Quantity;

/// `{"data": [...]}`, the shape of every list endpoint used here.
#[derive(Debug, Deserialize)]
pub struct ListBody<T> {
    pub data: Vec<T>,
}

/// The `X-Pagination` header, normalised (Katana sends its values as strings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pagination {
    pub total_records: Option<u64>,
    pub total_pages: Option<u64>,
    pub page: Option<u64>,
    pub last_page: Option<bool>,
}

impl Pagination {
    /// Parses the header; values may be numbers, booleans or strings of either.
    pub fn parse(raw: &str) -> Option<Pagination> {
        let v: serde_json::Value = serde_json::from_str(raw).ok()?;
        let obj = v.as_object()?;
        let num = |k: &str| match obj.get(k)? {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let flag = |k: &str| match obj.get(k)? {
            serde_json::Value::Bool(b) => Some(*b),
            serde_json::Value::String(s) => match s.trim() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            _ => None,
        };
        Some(Pagination {
            total_records: num("total_records"),
            total_pages: num("total_pages"),
            page: num("page"),
            last_page: flag("last_page"),
        })
    }
}

/// Katana ids are int32 on the wire, but a few payloads (webhooks) quote them.
pub fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        N(i64),
        S(String),
    }
    match Id::deserialize(d)? {
        Id::N(n) => Ok(n),
        Id::S(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("not an id: {s:?}"))),
    }
}

pub fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "de_id")] i64);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

/// A quantity sent as `"7.00000"` or as `7` / `7.5`. Numbers go through their decimal
/// text so no binary-float rounding creeps in.
pub fn de_quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Quantity, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    quantity_from_value(&v).map_err(serde::de::Error::custom)
}

pub fn de_opt_quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Quantity>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    quantity_from_value(&v)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

pub fn quantity_from_value(v: &serde_json::Value) -> Result<Quantity, String> {
    match v {
        serde_json::Value::String(s) => s.parse::<Quantity>().map_err(|e| e.to_string()),
        serde_json::Value::Number(n) => n
            .to_string()
            .parse::<Quantity>()
            .map_err(|_| format!("quantity out of range or in exponent form: {n}")),
        other => Err(format!("expected a decimal quantity, got {other}")),
    }
}

/// A decimal money/price value kept as Katana's text (never a float).
pub fn de_opt_decimal_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected a decimal, got {other}"
        ))),
    }
}

/// Declares a Katana status: the values the API documents, and `Other` for one it
/// adds later, kept with its spelling so it goes back out unchanged.
macro_rules! wire_status {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($wire => Self::$variant,)*
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::from(s.as_str()))
            }
        }
    };
}

wire_status! {
    /// A sales order's delivery status (`katana.md` §2). `PARTIALLY_*` are computed
    /// by Katana, never sent.
    SoStatus {
        NotShipped = "NOT_SHIPPED",
        Pending = "PENDING",
        PartiallyPacked = "PARTIALLY_PACKED",
        Packed = "PACKED",
        PartiallyDelivered = "PARTIALLY_DELIVERED",
        Delivered = "DELIVERED",
    }
}

wire_status! {
    /// A sales order fulfillment's status.
    FulfillmentStatus {
        Packed = "PACKED",
        Delivered = "DELIVERED",
    }
}

// ---------------------------------------------------------------- requests

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateSalesOrder {
    pub customer_id: i64,
    pub sales_order_rows: Vec<CreateSalesOrderRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<SoStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_created_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecommerce_order_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecommerce_store_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecommerce_order_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<SalesOrderAddressInput>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateSalesOrderRow {
    pub variant_id: i64,
    /// Sent as a JSON number built from the exact decimal text.
    pub quantity: serde_json::Number,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_unit: Option<serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SalesOrderAddressInput {
    pub entity_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateCustomer {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateFulfillment {
    pub sales_order_id: i64,
    pub status: FulfillmentStatus,
    pub sales_order_fulfillment_rows: Vec<CreateFulfillmentRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_carrier: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateFulfillmentRow {
    pub sales_order_row_id: i64,
    pub quantity: serde_json::Number,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateWebhook {
    pub url: String,
    pub subscribed_events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

// ---------------------------------------------------------------- responses

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SalesOrder {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub customer_id: Option<i64>,
    #[serde(default)]
    pub order_no: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub location_id: Option<i64>,
    pub status: SoStatus,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub ecommerce_order_type: Option<String>,
    #[serde(default)]
    pub ecommerce_store_name: Option<String>,
    #[serde(default)]
    pub ecommerce_order_id: Option<String>,
    #[serde(default)]
    pub sales_order_rows: Vec<SalesOrderRow>,
    #[serde(default)]
    pub addresses: Vec<SalesOrderAddress>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub deleted_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SalesOrderRow {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    #[serde(deserialize_with = "de_id")]
    pub variant_id: i64,
    #[serde(deserialize_with = "de_quantity")]
    pub quantity: Quantity,
    #[serde(default, deserialize_with = "de_opt_decimal_text")]
    pub price_per_unit: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub location_id: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SalesOrderAddress {
    #[serde(default, deserialize_with = "de_opt_id")]
    pub id: Option<i64>,
    pub entity_type: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub line_1: Option<String>,
    #[serde(default)]
    pub line_2: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub zip: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Fulfillment {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    #[serde(deserialize_with = "de_id")]
    pub sales_order_id: i64,
    pub status: FulfillmentStatus,
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub tracking_url: Option<String>,
    #[serde(default)]
    pub tracking_carrier: Option<String>,
    #[serde(default)]
    pub tracking_method: Option<String>,
    #[serde(default)]
    pub picked_date: Option<String>,
    #[serde(default)]
    pub sales_order_fulfillment_rows: Vec<FulfillmentRow>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FulfillmentRow {
    #[serde(default, deserialize_with = "de_opt_id")]
    pub id: Option<i64>,
    #[serde(deserialize_with = "de_id")]
    pub sales_order_row_id: i64,
    #[serde(deserialize_with = "de_quantity")]
    pub quantity: Quantity,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Customer {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Variant {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub product_id: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_decimal_text")]
    pub sales_price: Option<String>,
    #[serde(default)]
    pub deleted_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Location {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub sales_allowed: bool,
    #[serde(default)]
    pub is_primary: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct InventoryRow {
    #[serde(deserialize_with = "de_id")]
    pub variant_id: i64,
    #[serde(deserialize_with = "de_id")]
    pub location_id: i64,
    #[serde(deserialize_with = "de_quantity")]
    pub quantity_in_stock: Quantity,
    #[serde(default, deserialize_with = "de_opt_quantity")]
    pub quantity_committed: Option<Quantity>,
    #[serde(default, deserialize_with = "de_opt_quantity")]
    pub quantity_expected: Option<Quantity>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    #[serde(deserialize_with = "de_id")]
    pub id: i64,
    pub url: String,
    pub token: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub subscribed_events: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Katana's error body, wrapped (`{"error":{...}}`, what the live API sends) or flat
/// (what its OpenAPI examples show).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default, rename = "statusCode")]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub info: BTreeMap<String, serde_json::Value>,
}

impl ErrorBody {
    pub fn parse(raw: &[u8]) -> Option<ErrorBody> {
        let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
        let inner = match v.get("error") {
            Some(e) if e.is_object() => e.clone(),
            _ => v,
        };
        if !inner.is_object() {
            return None;
        }
        serde_json::from_value(inner).ok()
    }

    /// The fields a 422 complains about, as readable paths (`sales_order_rows[0].foo`).
    pub fn offending_fields(&self) -> Vec<String> {
        self.details.iter().filter_map(ErrorDetail::field).collect()
    }
}

impl ErrorDetail {
    /// The field this detail is about: its `path`, extended by the unknown or missing
    /// property Ajv names in `info`.
    pub fn field(&self) -> Option<String> {
        let base = self
            .path
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('.')
            .to_string();
        let extra = self
            .info
            .get("additionalProperty")
            .or_else(|| self.info.get("missingProperty"))
            .and_then(|v| v.as_str())
            .map(|s| s.trim_start_matches('.').to_string());
        match extra {
            Some(e) if base.is_empty() => Some(e),
            Some(e) => Some(format!("{base}.{e}")),
            None if base.is_empty() => None,
            None => Some(base),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn so_statuses_keep_their_spelling_and_unknown_ones_survive() {
        for wire in [
            "NOT_SHIPPED",
            "PENDING",
            "PARTIALLY_PACKED",
            "PACKED",
            "PARTIALLY_DELIVERED",
            "DELIVERED",
            "ON_THE_MOON",
        ] {
            let json = format!("\"{wire}\"");
            let status: SoStatus = serde_json::from_str(&json).unwrap();
            assert_eq!(serde_json::to_string(&status).unwrap(), json);
        }
        let known: SoStatus = serde_json::from_str("\"PARTIALLY_DELIVERED\"").unwrap();
        assert_eq!(known, SoStatus::PartiallyDelivered);
        let unknown: SoStatus = serde_json::from_str("\"ON_THE_MOON\"").unwrap();
        assert_eq!(unknown, SoStatus::Other("ON_THE_MOON".into()));
        let f: FulfillmentStatus = serde_json::from_str("\"PACKED\"").unwrap();
        assert_eq!(f, FulfillmentStatus::Packed);
    }

    use super::*;

    #[test]
    fn pagination_string_values_are_normalised() {
        let p = Pagination::parse(
            r#"{"total_records":"142","total_pages":"3","page":"2","first_page":"false","last_page":"false"}"#,
        )
        .unwrap();
        assert_eq!(p.total_pages, Some(3));
        assert_eq!(p.page, Some(2));
        assert_eq!(p.last_page, Some(false));
        let n = Pagination::parse(r#"{"total_pages":1,"page":1,"last_page":true}"#).unwrap();
        assert_eq!(n.last_page, Some(true));
        assert!(Pagination::parse("nope").is_none());
    }

    #[test]
    fn inventory_quantities_parse_from_strings_and_numbers() {
        let row: InventoryRow = serde_json::from_str(
            r#"{"variant_id":1,"location_id":"2","quantity_in_stock":"7.00000","quantity_committed":2.5,"quantity_expected":null,"average_cost":"1.2"}"#,
        )
        .unwrap();
        assert_eq!(row.location_id, 2);
        assert_eq!(row.quantity_in_stock, Quantity::from_units(7));
        assert_eq!(row.quantity_committed, Some(Quantity(250_000)));
        assert_eq!(row.quantity_expected, None);
        let bad = serde_json::from_str::<InventoryRow>(
            r#"{"variant_id":1,"location_id":2,"quantity_in_stock":"seven"}"#,
        );
        assert!(bad.is_err());
        let big = serde_json::from_str::<InventoryRow>(
            r#"{"variant_id":1,"location_id":2,"quantity_in_stock":1e30}"#,
        );
        assert!(big.is_err(), "exponent numbers are refused, not rounded");
    }

    #[test]
    fn error_body_wrapped_and_flat() {
        let w = ErrorBody::parse(br#"{"error":{"statusCode":422,"name":"UnprocessableEntityError","message":"bad","code":"VALIDATION_FAILED","details":[{"path":"","code":"additionalProperties","message":"should NOT have additional properties","info":{"additionalProperty":"foo"}},{"path":".sales_order_rows[0].quantity","code":"type","message":"should be number","info":{}}]}}"#).unwrap();
        assert_eq!(w.status_code, Some(422));
        assert_eq!(
            w.offending_fields(),
            vec!["foo", "sales_order_rows[0].quantity"]
        );
        let f = ErrorBody::parse(
            br#"{"statusCode":429,"name":"TooManyRequests","message":"Too Many Requests"}"#,
        )
        .unwrap();
        assert_eq!(f.name.as_deref(), Some("TooManyRequests"));
        assert!(ErrorBody::parse(b"<html>").is_none());
    }
}
