//! The Katana simulator's data: locations, products and variants, stock per
//! location, customers, sales orders with their rows, fulfillments, webhooks, and
//! the records and faults the control surface reads and sets.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::observed::Quantity;

/// Every webhook event Katana's gateway accepts on `POST /webhooks`.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "sales_order.created",
    "sales_order.updated",
    "sales_order.deleted",
    "sales_order.packed",
    "sales_order.delivered",
    "sales_order.availability_updated",
    "sales_order.approved",
    "purchase_order.created",
    "purchase_order.updated",
    "purchase_order.deleted",
    "purchase_order.partially_received",
    "purchase_order.received",
    "purchase_order.approved",
    "purchase_order_row.created",
    "purchase_order_row.updated",
    "purchase_order_row.deleted",
    "purchase_order_row.received",
    "outsourced_purchase_order.created",
    "outsourced_purchase_order.updated",
    "outsourced_purchase_order.deleted",
    "outsourced_purchase_order.received",
    "outsourced_purchase_order.approved",
    "outsourced_purchase_order_row.created",
    "outsourced_purchase_order_row.updated",
    "outsourced_purchase_order_row.deleted",
    "outsourced_purchase_order_row.received",
    "outsourced_purchase_order_recipe_row.created",
    "outsourced_purchase_order_recipe_row.updated",
    "outsourced_purchase_order_recipe_row.deleted",
    "manufacturing_order.created",
    "manufacturing_order.updated",
    "manufacturing_order.deleted",
    "manufacturing_order.in_progress",
    "manufacturing_order.blocked",
    "manufacturing_order.done",
    "manufacturing_order_recipe_row.created",
    "manufacturing_order_recipe_row.updated",
    "manufacturing_order_recipe_row.deleted",
    "manufacturing_order_recipe_row.ingredients_in_stock",
    "manufacturing_order_operation_row.created",
    "manufacturing_order_operation_row.updated",
    "manufacturing_order_operation_row.deleted",
    "manufacturing_order_operation_row.in_progress",
    "manufacturing_order_operation_row.paused",
    "manufacturing_order_operation_row.blocked",
    "manufacturing_order_operation_row.completed",
    "current_inventory.product_updated",
    "current_inventory.material_updated",
    "current_inventory.product_out_of_stock",
    "current_inventory.material_out_of_stock",
    "product.created",
    "product.updated",
    "product.deleted",
    "material.created",
    "material.updated",
    "material.deleted",
    "variant.created",
    "variant.updated",
    "variant.deleted",
    "product_recipe_row.created",
    "product_recipe_row.updated",
    "product_recipe_row.deleted",
];

pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A JSON number from an exact quantity (`7`, `2.5`).
pub fn qnum(q: Quantity) -> Value {
    let t = q.to_string();
    let t = t.trim_end_matches('0').trim_end_matches('.');
    serde_json::from_str(t).unwrap_or(Value::Null)
}

#[derive(Clone, Debug)]
pub struct Location {
    pub id: i64,
    pub name: String,
    pub sales_allowed: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Variant {
    pub id: i64,
    pub product_id: i64,
    pub sku: String,
    pub sales_price: Quantity,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stock {
    pub in_stock: Quantity,
    pub committed: Quantity,
}

#[derive(Clone, Debug)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct SoRow {
    pub id: i64,
    pub variant_id: i64,
    pub quantity: Quantity,
    pub price_per_unit: Quantity,
    pub location_id: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct SalesOrder {
    pub id: i64,
    pub customer_id: i64,
    pub order_no: String,
    pub location_id: i64,
    /// The status the order was created or last PATCHed with (NOT_SHIPPED or PENDING);
    /// the visible status is computed from fulfillments on top of it.
    pub base_status: String,
    pub currency: String,
    pub order_created_date: Option<String>,
    pub additional_info: Option<String>,
    pub customer_ref: Option<String>,
    pub ecommerce_order_type: Option<String>,
    pub ecommerce_store_name: Option<String>,
    pub ecommerce_order_id: Option<String>,
    pub rows: Vec<SoRow>,
    pub addresses: Vec<Map<String, Value>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct Fulfillment {
    pub id: i64,
    pub sales_order_id: i64,
    pub status: String,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub tracking_carrier: Option<String>,
    pub tracking_method: Option<String>,
    pub picked_date: DateTime<Utc>,
    /// (fulfillment row id, sales order row id, quantity)
    pub rows: Vec<(i64, i64, Quantity)>,
    pub conversion_rate: Option<Value>,
    pub conversion_date: Option<String>,
    pub packer_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// Moved by every change of the fulfillment (its `updated_at_min` filter).
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub token: String,
    pub enabled: bool,
    pub description: Option<String>,
    pub subscribed_events: Vec<String>,
}

/// Tracking details of a delivery made through the control surface.
#[derive(Clone, Debug, Default, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tracking {
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub tracking_url: Option<String>,
    #[serde(default)]
    pub tracking_carrier: Option<String>,
}

/// A webhook event to send once the state lock is released.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub webhook_id: i64,
    pub url: String,
    pub token: String,
    pub event: String,
    pub body: Vec<u8>,
}

/// One recorded API request (control calls are not recorded).
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    /// The query as (key, value) pairs in the order sent, repeated keys repeated.
    pub query: Vec<(String, String)>,
    pub status: u16,
    /// The `Retry-After` seconds of a 429.
    pub retry_after: Option<u64>,
}

/// One webhook delivery attempt.
#[derive(Clone, Debug, Serialize)]
pub struct DeliveryRecord {
    pub webhook_id: i64,
    pub event: String,
    pub object_id: String,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The receiver's status, or `None` if it could not be reached / was dropped.
    pub status: Option<u16>,
    pub dropped: bool,
    pub body: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Faults {
    pub fail_next: u32,
    pub delay_next: u32,
    pub delay_ms: u64,
    /// Only requests with this method are delayed (all when `None`).
    pub delay_method: Option<String>,
    /// The next `late_commit_next` requests (`METHOD /path` as in
    /// `late_commit_request`, or all) are
    /// held `late_commit_ms` of real time *before* Katana applies them, and are
    /// applied even if the client gave up meanwhile: a create that outlives its
    /// caller's timeout, or the caller itself.
    pub late_commit_next: u32,
    pub late_commit_ms: u64,
    pub late_commit_request: Option<String>,
    /// Requests taken but not applied yet.
    pub late_commits_in_flight: u32,
    /// Requests held back so far, applied or not.
    pub late_commits_taken: u64,
    pub drop_next_webhooks: u32,
    pub duplicate_next_webhooks: u32,
}
