//! The Katana simulator's data and business rules: locations, variants, stock,
//! customers, sales orders with rows and addresses, fulfillments and webhooks, with
//! Katana's stock effects (commit on NOT_SHIPPED, move out on delivery) and status
//! computation from fulfillments.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::validate::{Ajv, MAX_ID};
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

/// A reply to an API call.
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            headers: Vec::new(),
        }
    }
    /// Katana's wrapped error form.
    pub fn error(status: u16, name: &str, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"error": {"statusCode": status, "name": name, "message": message}}),
        )
    }
    pub fn unprocessable(message: &str) -> Reply {
        Reply::json(
            422,
            json!({"error": {"statusCode": 422, "name": "UnprocessableEntityError", "message": message, "code": "VALIDATION_FAILED", "details": []}}),
        )
    }
    pub fn invalid(ajv: Ajv) -> Reply {
        Reply::json(
            422,
            json!({"error": {"statusCode": 422, "name": "UnprocessableEntityError",
                "message": "The request body is invalid. See error object `details` property for more info.",
                "code": "VALIDATION_FAILED", "details": ajv.details}}),
        )
    }
    pub fn not_found() -> Reply {
        Reply::error(404, "NotFoundError", "Not found")
    }
    pub fn bad_request(message: &str) -> Reply {
        Reply::error(400, "BadRequest", message)
    }
}

pub struct SimState {
    pub api_keys: Vec<String>,
    pub base_url: String,
    next_id: i64,
    pub locations: BTreeMap<i64, Location>,
    pub products: BTreeMap<i64, Product>,
    pub variants: BTreeMap<i64, Variant>,
    pub inventory: BTreeMap<(i64, i64), Stock>,
    pub customers: BTreeMap<i64, Customer>,
    pub sales_orders: BTreeMap<i64, SalesOrder>,
    pub fulfillments: BTreeMap<i64, Fulfillment>,
    pub webhooks: BTreeMap<i64, Webhook>,
    pub deliveries: Vec<DeliveryRecord>,
    pub requests: Vec<RequestRecord>,
    pub rate_limit_enabled: bool,
    pub rate_limit: u32,
    pub rate_window: chrono::Duration,
    /// Admission instants inside the current window, oldest first.
    pub admitted: VecDeque<DateTime<Utc>>,
    pub faults: Faults,
    /// Whether creating a fulfillment moves its SO's `updated_at` and fires the SO's
    /// webhooks. Katana does not say (issue 11); `false` models the case where it
    /// does neither, so only a list of changed fulfillments finds it.
    pub fulfillment_touches_so: bool,
    /// Events produced by the current call, sent after the lock is released.
    pub outbox: Vec<Outgoing>,
}

type Query = Vec<(String, String)>;

fn q_all<'a>(q: &'a Query, key: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn q_one<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Rejects query parameters an endpoint does not know, as Katana's gateway does (a
/// 422 naming the parameter): a misspelt filter must not be silently ignored by the
/// simulator, or a client bug that reads everything would go unnoticed.
fn check_query(q: &Query, allowed: &[&str]) -> Result<(), Reply> {
    let mut ajv = Ajv::default();
    for (k, _) in q {
        if !allowed.contains(&k.as_str()) && k != "limit" && k != "page" {
            ajv.unknown_query_parameter(k);
        }
    }
    if ajv.ok() {
        Ok(())
    } else {
        Err(Reply::invalid(ajv))
    }
}

fn q_ids(q: &Query, key: &str) -> Result<Vec<i64>, Reply> {
    q_all(q, key)
        .into_iter()
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|i| (1..=MAX_ID).contains(i))
                .ok_or_else(|| {
                    Reply::bad_request(&format!("`{key}` must be an integer id, got {v:?}"))
                })
        })
        .collect()
}

fn q_bool(q: &Query, key: &str) -> Result<Option<bool>, Reply> {
    match q_one(q, key) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(Reply::bad_request(&format!(
            "`{key}` must be true or false, got {v:?}"
        ))),
    }
}

fn q_time(q: &Query, key: &str) -> Result<Option<DateTime<Utc>>, Reply> {
    match q_one(q, key) {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                let mut ajv = Ajv::default();
                ajv.date_time_query_parameter(key, v);
                Reply::invalid(ajv)
            }),
    }
}

/// `{"data": page}` plus `X-Pagination` with string values, as Katana sends it.
fn paginate(q: &Query, items: Vec<Value>) -> Result<Reply, Reply> {
    let parse = |key: &str, default: usize| -> Result<usize, Reply> {
        match q_one(q, key) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                Reply::bad_request(&format!("`{key}` must be a positive integer, got {v:?}"))
            }),
        }
    };
    let limit = parse("limit", 50)?.min(250);
    let page = parse("page", 1)?;
    let total = items.len();
    let total_pages = total.div_ceil(limit).max(1);
    let offset = (page - 1).saturating_mul(limit);
    let data: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let header = json!({
        "total_records": total.to_string(),
        "total_pages": total_pages.to_string(),
        "offset": offset.to_string(),
        "page": page.to_string(),
        "first_page": (page == 1).to_string(),
        "last_page": (page >= total_pages).to_string(),
    });
    let mut r = Reply::json(200, json!({ "data": data }));
    r.headers.push(("X-Pagination".into(), header.to_string()));
    Ok(r)
}

fn row_location(so: &SalesOrder, row: &SoRow) -> i64 {
    row.location_id.unwrap_or(so.location_id)
}

impl SimState {
    pub fn new(api_keys: Vec<String>, rate_limit: u32, window: chrono::Duration) -> SimState {
        SimState {
            api_keys,
            base_url: String::new(),
            next_id: 1000,
            locations: BTreeMap::new(),
            products: BTreeMap::new(),
            variants: BTreeMap::new(),
            inventory: BTreeMap::new(),
            customers: BTreeMap::new(),
            sales_orders: BTreeMap::new(),
            fulfillments: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            deliveries: Vec::new(),
            requests: Vec::new(),
            rate_limit_enabled: true,
            rate_limit,
            rate_window: window,
            admitted: VecDeque::new(),
            faults: Faults::default(),
            fulfillment_touches_so: true,
            outbox: Vec::new(),
        }
    }

    pub fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    // ------------------------------------------------------------ rate limiting

    fn prune(&mut self, now: DateTime<Utc>) {
        while self
            .admitted
            .front()
            .is_some_and(|t| *t + self.rate_window <= now)
        {
            self.admitted.pop_front();
        }
    }

    /// Admits one request or says how many seconds to wait.
    pub fn admit(&mut self, now: DateTime<Utc>) -> Result<(), u64> {
        self.prune(now);
        if !self.rate_limit_enabled {
            return Ok(());
        }
        if self.admitted.len() >= self.rate_limit as usize {
            let free_at = self
                .admitted
                .front()
                .map(|t| *t + self.rate_window)
                .unwrap_or(now);
            let ms = (free_at - now).num_milliseconds().max(0) as u64;
            return Err(ms.div_ceil(1000).max(1));
        }
        self.admitted.push_back(now);
        Ok(())
    }

    /// Fills the window as if another application had used the same key.
    pub fn exhaust(&mut self, now: DateTime<Utc>) {
        self.prune(now);
        while self.admitted.len() < self.rate_limit as usize {
            self.admitted.push_back(now);
        }
    }

    pub fn rate_headers(&mut self, now: DateTime<Utc>) -> Vec<(String, String)> {
        self.prune(now);
        let remaining = (self.rate_limit as usize).saturating_sub(self.admitted.len());
        let reset = self
            .admitted
            .front()
            .map(|t| *t + self.rate_window)
            .unwrap_or(now + self.rate_window);
        // Seconds, rounded up so a client pausing until the reset is never early.
        let reset_s = (reset.timestamp_millis() + 999).div_euclid(1000);
        vec![
            ("X-Ratelimit-Limit".into(), self.rate_limit.to_string()),
            ("X-Ratelimit-Remaining".into(), remaining.to_string()),
            ("X-Ratelimit-Reset".into(), reset_s.to_string()),
        ]
    }

    // ------------------------------------------------------------ seeding

    pub fn add_location(&mut self, name: &str, sales_allowed: bool, now: DateTime<Utc>) -> i64 {
        let id = self.next_id();
        self.locations.insert(
            id,
            Location {
                id,
                name: name.into(),
                sales_allowed,
                created_at: now,
            },
        );
        id
    }

    pub fn add_product(
        &mut self,
        name: &str,
        variants: &[(String, Quantity)],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, String> {
        if variants.is_empty() {
            return Err("a product needs at least one variant".into());
        }
        for (sku, _) in variants {
            if sku.trim().is_empty() {
                return Err("SKU must not be empty".into());
            }
            if self.variants.values().any(|v| &v.sku == sku) {
                return Err(format!("SKU {sku} already exists"));
            }
        }
        let pid = self.next_id();
        self.products.insert(
            pid,
            Product {
                id: pid,
                name: name.into(),
                created_at: now,
            },
        );
        let mut ids = Vec::new();
        for (sku, price) in variants {
            let id = self.next_id();
            self.variants.insert(
                id,
                Variant {
                    id,
                    product_id: pid,
                    sku: sku.clone(),
                    sales_price: *price,
                    created_at: now,
                },
            );
            ids.push(id);
        }
        Ok(ids)
    }

    pub fn set_stock(
        &mut self,
        variant_id: i64,
        location_id: i64,
        in_stock: Quantity,
    ) -> Result<(), String> {
        if !self.variants.contains_key(&variant_id) {
            return Err(format!("no variant {variant_id}"));
        }
        if !self.locations.contains_key(&location_id) {
            return Err(format!("no location {location_id}"));
        }
        let s = self.inventory.entry((variant_id, location_id)).or_default();
        let changed = s.in_stock != in_stock;
        s.in_stock = in_stock;
        if changed {
            self.emit_inventory(variant_id);
        }
        Ok(())
    }

    // ------------------------------------------------------------ webhooks out

    fn emit(&mut self, event: &str, object_id: i64, status: Option<&str>, href: Option<String>) {
        let resource_type = event.split('.').next().unwrap_or_default().to_string();
        let targets: Vec<Webhook> = self
            .webhooks
            .values()
            .filter(|w| w.enabled && w.subscribed_events.iter().any(|e| e == event))
            .cloned()
            .collect();
        for w in targets {
            let mut object = json!({ "id": object_id.to_string() });
            if let Some(s) = status {
                object["status"] = json!(s);
            }
            if let Some(h) = &href {
                object["href"] = json!(h);
            }
            let body = json!({"resource_type": resource_type, "action": event, "webhook_id": w.id, "object": object});
            self.outbox.push(Outgoing {
                webhook_id: w.id,
                url: w.url.clone(),
                token: w.token.clone(),
                event: event.to_string(),
                body: body.to_string().into_bytes(),
            });
        }
    }

    fn emit_so(&mut self, event: &str, so_id: i64) {
        let status = self.so_status(so_id);
        let href = format!("{}/sales_orders/{so_id}", self.base_url);
        self.emit(event, so_id, status.as_deref(), Some(href));
    }

    fn emit_inventory(&mut self, variant_id: i64) {
        let href = format!("{}/variants/{variant_id}", self.base_url);
        self.emit(
            "current_inventory.product_updated",
            variant_id,
            None,
            Some(href),
        );
    }

    // ------------------------------------------------------------ status & stock

    /// Quantity of each SO row covered by fulfillments.
    fn fulfilled(&self, so_id: i64) -> BTreeMap<i64, (Quantity, Quantity)> {
        let mut m: BTreeMap<i64, (Quantity, Quantity)> = BTreeMap::new();
        for f in self
            .fulfillments
            .values()
            .filter(|f| f.sales_order_id == so_id)
        {
            for (_, row, q) in &f.rows {
                let e = m.entry(*row).or_default();
                e.0 = Quantity(e.0 .0 + q.0);
                if f.status == "DELIVERED" {
                    e.1 = Quantity(e.1 .0 + q.0);
                }
            }
        }
        m
    }

    /// NOT_SHIPPED / PENDING until something is fulfilled, then PARTIALLY_* or the full
    /// PACKED / DELIVERED, computed like Katana from the fulfillments.
    pub fn so_status(&self, so_id: i64) -> Option<String> {
        let so = self.sales_orders.get(&so_id)?;
        let done = self.fulfilled(so_id);
        if done.is_empty() {
            return Some(so.base_status.clone());
        }
        let all_covered = so
            .rows
            .iter()
            .all(|r| done.get(&r.id).is_some_and(|d| d.0 >= r.quantity));
        let all_delivered = so
            .rows
            .iter()
            .all(|r| done.get(&r.id).is_some_and(|d| d.1 >= r.quantity));
        let any_delivered = done.values().any(|d| d.1 > Quantity(0));
        Some(
            match (all_delivered, all_covered, any_delivered) {
                (true, _, _) => "DELIVERED",
                (false, true, _) => "PACKED",
                (false, false, true) => "PARTIALLY_DELIVERED",
                (false, false, false) => "PARTIALLY_PACKED",
            }
            .to_string(),
        )
    }

    fn commits(so: &SalesOrder) -> bool {
        so.base_status == "NOT_SHIPPED"
    }

    /// Adds (`sign` = 1) or releases (-1) the unfulfilled remainder's commitment.
    fn commit_remainder(&mut self, so_id: i64, sign: i64) {
        let Some(so) = self.sales_orders.get(&so_id).cloned() else {
            return;
        };
        let done = self.fulfilled(so_id);
        for r in &so.rows {
            let left = r.quantity.0 - done.get(&r.id).map_or(0, |d| d.0 .0);
            if left > 0 {
                let s = self
                    .inventory
                    .entry((r.variant_id, row_location(&so, r)))
                    .or_default();
                s.committed = Quantity(s.committed.0 + sign * left);
            }
        }
    }

    /// Creates a fulfillment after checking rows; moves stock out.
    pub fn fulfil(
        &mut self,
        so_id: i64,
        status: &str,
        rows: &[(i64, Quantity)],
        tracking: &Tracking,
        tracking_method: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<i64, String> {
        let so = match self.sales_orders.get(&so_id) {
            Some(s) if s.deleted_at.is_none() => s.clone(),
            _ => return Err(format!("Sales order {so_id} not found")),
        };
        if so.base_status == "PENDING" {
            return Err("A quote (PENDING) cannot be fulfilled".into());
        }
        if rows.is_empty() {
            return Err("A fulfillment needs at least one row".into());
        }
        let done = self.fulfilled(so_id);
        let mut asked: BTreeMap<i64, i64> = BTreeMap::new();
        for (row_id, q) in rows {
            let Some(row) = so.rows.iter().find(|r| r.id == *row_id) else {
                return Err(format!(
                    "Sales order row {row_id} does not belong to sales order {so_id}"
                ));
            };
            if *q <= Quantity(0) {
                return Err(format!(
                    "Fulfillment quantity for row {row_id} must be positive"
                ));
            }
            let a = asked.entry(*row_id).or_default();
            *a += q.0;
            let left = row.quantity.0 - done.get(row_id).map_or(0, |d| d.0 .0);
            if *a > left {
                return Err(format!(
                    "Fulfillment quantity {} exceeds the remaining quantity {} of sales order row {row_id}",
                    Quantity(*a),
                    Quantity(left)
                ));
            }
        }
        let before = self.so_status(so_id);
        let id = self.next_id();
        let mut frows = Vec::new();
        for (row_id, q) in rows {
            let fr = self.next_id();
            frows.push((fr, *row_id, *q));
        }
        for (row_id, q) in rows {
            let row = so.rows.iter().find(|r| r.id == *row_id).cloned();
            if let Some(row) = row {
                let s = self
                    .inventory
                    .entry((row.variant_id, row_location(&so, &row)))
                    .or_default();
                s.in_stock = Quantity(s.in_stock.0 - q.0);
                if Self::commits(&so) {
                    s.committed = Quantity(s.committed.0 - q.0);
                }
            }
        }
        self.fulfillments.insert(
            id,
            Fulfillment {
                id,
                sales_order_id: so_id,
                status: status.to_string(),
                tracking_number: tracking.tracking_number.clone(),
                tracking_url: tracking.tracking_url.clone(),
                tracking_carrier: tracking.tracking_carrier.clone(),
                tracking_method,
                picked_date: now,
                rows: frows,
                conversion_rate: None,
                conversion_date: None,
                packer_id: None,
                created_at: now,
                updated_at: now,
            },
        );
        let touches_so = self.fulfillment_touches_so;
        if touches_so {
            if let Some(so) = self.sales_orders.get_mut(&so_id) {
                so.updated_at = now;
            }
        }
        let after = self.so_status(so_id);
        let variants: std::collections::BTreeSet<i64> = rows
            .iter()
            .filter_map(|(r, _)| so.rows.iter().find(|x| x.id == *r).map(|x| x.variant_id))
            .collect();
        for v in variants {
            self.emit_inventory(v);
        }
        if !touches_so {
            return Ok(id);
        }
        if before != after {
            match after.as_deref() {
                Some("DELIVERED") => self.emit_so("sales_order.delivered", so_id),
                Some("PACKED") => self.emit_so("sales_order.packed", so_id),
                _ => {}
            }
        }
        self.emit_so("sales_order.updated", so_id);
        Ok(id)
    }

    /// Fulfils everything not yet fulfilled (PATCH status, or the control surface).
    pub fn fulfil_remainder(
        &mut self,
        so_id: i64,
        status: &str,
        tracking: &Tracking,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, String> {
        let so = self
            .sales_orders
            .get(&so_id)
            .cloned()
            .ok_or_else(|| format!("Sales order {so_id} not found"))?;
        let done = self.fulfilled(so_id);
        let rows: Vec<(i64, Quantity)> = so
            .rows
            .iter()
            .map(|r| {
                (
                    r.id,
                    Quantity(r.quantity.0 - done.get(&r.id).map_or(0, |d| d.0 .0)),
                )
            })
            .filter(|(_, q)| q.0 > 0)
            .collect();
        if rows.is_empty() {
            return Ok(None);
        }
        self.fulfil(so_id, status, &rows, tracking, None, now)
            .map(Some)
    }

    // ------------------------------------------------------------ JSON views

    pub fn so_json(&self, so: &SalesOrder) -> Value {
        let rows: Vec<Value> = so
            .rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "sales_order_id": so.id, "quantity": qnum(r.quantity), "variant_id": r.variant_id,
                    "tax_rate_id": null, "location_id": r.location_id.unwrap_or(so.location_id),
                    "price_per_unit": format!("{}00000", r.price_per_unit),
                    "total": qnum(Quantity(((r.price_per_unit.0 as i128 * r.quantity.0 as i128) / Quantity::SCALE as i128) as i64)),
                    "total_discount": null, "attributes": [],
                    "created_at": iso(so.created_at), "updated_at": iso(so.updated_at), "deleted_at": null,
                })
            })
            .collect();
        let total: i64 = so
            .rows
            .iter()
            .map(|r| {
                ((r.price_per_unit.0 as i128 * r.quantity.0 as i128) / Quantity::SCALE as i128)
                    as i64
            })
            .sum();
        let addresses: Vec<Value> = so
            .addresses
            .iter()
            .map(|a| Value::Object(a.clone()))
            .collect();
        let shipping_id = so
            .addresses
            .iter()
            .find(|a| a["entity_type"] == "shipping")
            .map(|a| a["id"].clone());
        let billing_id = so
            .addresses
            .iter()
            .find(|a| a["entity_type"] == "billing")
            .map(|a| a["id"].clone());
        let f: Vec<&Fulfillment> = self
            .fulfillments
            .values()
            .filter(|f| f.sales_order_id == so.id)
            .collect();
        json!({
            "id": so.id, "customer_id": so.customer_id, "order_no": so.order_no, "source": "api",
            "order_created_date": so.order_created_date.clone().unwrap_or_else(|| iso(so.created_at)),
            "delivery_date": null,
            "picked_date": f.iter().map(|f| f.picked_date).max().map(iso),
            "location_id": so.location_id,
            "status": self.so_status(so.id),
            "currency": so.currency, "conversion_rate": null, "conversion_date": null,
            "invoicing_status": "notInvoiced",
            "total": qnum(Quantity(total)), "total_in_base_currency": qnum(Quantity(total)),
            "additional_info": so.additional_info, "customer_ref": so.customer_ref,
            "sales_order_rows": rows,
            "ecommerce_order_type": so.ecommerce_order_type, "ecommerce_store_name": so.ecommerce_store_name,
            "ecommerce_order_id": so.ecommerce_order_id,
            "tracking_number": null, "tracking_number_url": null,
            "billing_address_id": billing_id, "shipping_address_id": shipping_id,
            "addresses": addresses,
            "created_at": iso(so.created_at), "updated_at": iso(so.updated_at),
            "deleted_at": so.deleted_at.map(iso),
        })
    }

    fn fulfillment_json(f: &Fulfillment) -> Value {
        let rows: Vec<Value> = f
            .rows
            .iter()
            .map(|(id, row, q)| json!({"id": id, "sales_order_row_id": row, "quantity": qnum(*q), "batch_transactions": [], "serial_numbers": []}))
            .collect();
        json!({
            "id": f.id, "sales_order_id": f.sales_order_id, "picked_date": iso(f.picked_date), "status": f.status,
            "invoice_status": "NOT_INVOICED", "conversion_rate": f.conversion_rate, "conversion_date": f.conversion_date,
            "tracking_number": f.tracking_number, "tracking_url": f.tracking_url,
            "tracking_carrier": f.tracking_carrier, "tracking_method": f.tracking_method, "packer_id": f.packer_id,
            "sales_order_fulfillment_rows": rows, "created_at": iso(f.created_at), "updated_at": iso(f.updated_at),
        })
    }

    fn customer_json(c: &Customer) -> Value {
        json!({
            "id": c.id, "name": c.name, "first_name": c.first_name, "last_name": c.last_name, "company": null,
            "email": c.email, "phone": null, "comment": c.comment, "currency": "USD", "reference_id": null,
            "category": null, "discount_rate": null, "default_billing_id": null, "default_shipping_id": null,
            "addresses": [], "created_at": iso(c.created_at), "updated_at": iso(c.created_at), "deleted_at": null,
        })
    }

    fn variant_json(v: &Variant) -> Value {
        json!({
            "id": v.id, "sku": v.sku, "sales_price": qnum(v.sales_price), "purchase_price": null,
            "product_id": v.product_id, "material_id": null, "type": "product", "internal_barcode": null,
            "registered_barcode": null, "supplier_item_codes": [], "config_attributes": [],
            "created_at": iso(v.created_at), "updated_at": iso(v.created_at), "deleted_at": null,
        })
    }

    fn location_json(l: &Location) -> Value {
        json!({
            "id": l.id, "name": l.name, "legal_name": l.name, "address_id": null, "address": null,
            "is_primary": false, "sales_allowed": l.sales_allowed, "manufacturing_allowed": true,
            "purchase_allowed": true, "created_at": iso(l.created_at), "updated_at": iso(l.created_at), "deleted_at": null,
        })
    }

    fn inventory_json(variant_id: i64, location_id: i64, s: &Stock) -> Value {
        json!({
            "variant_id": variant_id, "location_id": location_id,
            "safety_stock_level": "0.00000", "reorder_point": "0.00000", "average_cost": "0.00000",
            "value_in_stock": "0.00000",
            "quantity_in_stock": s.in_stock.to_string(), "quantity_committed": s.committed.to_string(),
            "quantity_expected": "0.00000",
            "quantity_missing_or_excess": Quantity(s.in_stock.0 - s.committed.0).to_string(),
            "quantity_potential": "0.00000", "archived_at": null, "default_storage_bin": null,
        })
    }

    pub fn webhook_json(w: &Webhook) -> Value {
        json!({
            "id": w.id, "url": w.url, "token": w.token, "enabled": w.enabled, "description": w.description,
            "subscribed_events": w.subscribed_events, "created_at": null, "updated_at": null,
        })
    }

    /// Every SO as the read model shows it, deleted ones included (for tests).
    pub fn all_sales_orders(&self) -> Vec<Value> {
        self.sales_orders
            .values()
            .map(|s| self.so_json(s))
            .collect()
    }

    // ------------------------------------------------------------ the API

    pub fn route(
        &mut self,
        method: &str,
        path: &str,
        q: &Query,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Reply {
        let segs: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let json_body = || -> Result<Value, Reply> {
            serde_json::from_slice(body)
                .map_err(|e| Reply::bad_request(&format!("Invalid JSON body: {e}")))
        };
        let id_of = |s: &str| -> Result<i64, Reply> {
            s.parse::<i64>()
                .ok()
                .filter(|i| (1..=MAX_ID).contains(i))
                .ok_or_else(Reply::not_found)
        };
        let r: Result<Reply, Reply> = (|| match (method, segs.as_slice()) {
            ("GET", ["locations"]) => {
                check_query(q, &["ids", "name", "sales_allowed", "include_deleted"])?;
                let ids = q_ids(q, "ids")?;
                let sales = q_bool(q, "sales_allowed")?;
                let name = q_one(q, "name");
                let items = self
                    .locations
                    .values()
                    .filter(|l| ids.is_empty() || ids.contains(&l.id))
                    .filter(|l| sales.map_or(true, |s| l.sales_allowed == s))
                    .filter(|l| name.map_or(true, |n| l.name == n))
                    .map(Self::location_json)
                    .collect();
                paginate(q, items)
            }
            ("GET", ["locations", id]) => {
                let id = id_of(id)?;
                self.locations
                    .get(&id)
                    .map(|l| Reply::json(200, Self::location_json(l)))
                    .ok_or_else(Reply::not_found)
            }
            ("GET", ["variants"]) => {
                check_query(
                    q,
                    &[
                        "ids",
                        "sku",
                        "product_id",
                        "include_deleted",
                        "include_archived",
                    ],
                )?;
                let ids = q_ids(q, "ids")?;
                let skus = q_all(q, "sku");
                let pids = q_ids(q, "product_id")?;
                let items = self
                    .variants
                    .values()
                    .filter(|v| ids.is_empty() || ids.contains(&v.id))
                    .filter(|v| skus.is_empty() || skus.contains(&v.sku.as_str()))
                    .filter(|v| pids.is_empty() || pids.contains(&v.product_id))
                    .map(Self::variant_json)
                    .collect();
                paginate(q, items)
            }
            ("GET", ["products"]) => {
                check_query(q, &["ids", "name", "include_deleted", "include_archived"])?;
                let ids = q_ids(q, "ids")?;
                let name = q_one(q, "name");
                let items = self
                    .products
                    .values()
                    .filter(|p| ids.is_empty() || ids.contains(&p.id))
                    .filter(|p| name.map_or(true, |n| p.name == n))
                    .map(|p| {
                        let variants: Vec<Value> =
                            self.variants.values().filter(|v| v.product_id == p.id).map(Self::variant_json).collect();
                        json!({"id": p.id, "name": p.name, "uom": "pcs", "is_sellable": true, "variants": variants,
                               "created_at": iso(p.created_at), "updated_at": iso(p.created_at), "deleted_at": null})
                    })
                    .collect();
                paginate(q, items)
            }
            ("GET", ["variants", id]) => {
                let id = id_of(id)?;
                self.variants
                    .get(&id)
                    .map(|v| Reply::json(200, Self::variant_json(v)))
                    .ok_or_else(Reply::not_found)
            }
            ("GET", ["inventory"]) => {
                check_query(q, &["variant_id", "location_id", "include_archived"])?;
                let vids = q_ids(q, "variant_id")?;
                let lids = q_ids(q, "location_id")?;
                let items = self
                    .inventory
                    .iter()
                    .filter(|((v, l), _)| {
                        (vids.is_empty() || vids.contains(v))
                            && (lids.is_empty() || lids.contains(l))
                    })
                    .map(|((v, l), s)| Self::inventory_json(*v, *l, s))
                    .collect();
                paginate(q, items)
            }
            ("GET", ["customers"]) => {
                check_query(
                    q,
                    &[
                        "ids",
                        "name",
                        "email",
                        "first_name",
                        "last_name",
                        "include_deleted",
                    ],
                )?;
                let ids = q_ids(q, "ids")?;
                let name = q_one(q, "name");
                let email = q_one(q, "email");
                let items = self
                    .customers
                    .values()
                    .rev()
                    .filter(|c| ids.is_empty() || ids.contains(&c.id))
                    .filter(|c| name.map_or(true, |n| c.name == n))
                    .filter(|c| email.map_or(true, |e| c.email.as_deref() == Some(e)))
                    .map(Self::customer_json)
                    .collect();
                paginate(q, items)
            }
            ("POST", ["customers"]) => self.create_customer(&json_body()?, now),
            ("GET", ["sales_orders"]) => self.list_sales_orders(q),
            ("POST", ["sales_orders"]) => self.create_sales_order(&json_body()?, now),
            ("GET", ["sales_orders", id]) => {
                let id = id_of(id)?;
                match self.sales_orders.get(&id) {
                    Some(so) if so.deleted_at.is_none() => Ok(Reply::json(200, self.so_json(so))),
                    _ => Err(Reply::not_found()),
                }
            }
            ("PATCH", ["sales_orders", id]) => {
                let id = id_of(id)?;
                self.patch_sales_order(id, &json_body()?, now)
            }
            ("DELETE", ["sales_orders", id]) => {
                let id = id_of(id)?;
                self.delete_sales_order(id, now)
            }
            ("GET", ["sales_order_fulfillments"]) => {
                check_query(
                    q,
                    &[
                        "ids",
                        "sales_order_id",
                        "status",
                        "tracking_number",
                        "include_deleted",
                        "created_at_min",
                        "created_at_max",
                        "updated_at_min",
                        "updated_at_max",
                    ],
                )?;
                let ids = q_ids(q, "ids")?;
                let so = q_ids(q, "sales_order_id")?;
                let status = q_one(q, "status");
                let (cmin, cmax) = (q_time(q, "created_at_min")?, q_time(q, "created_at_max")?);
                let (umin, umax) = (q_time(q, "updated_at_min")?, q_time(q, "updated_at_max")?);
                let items = self
                    .fulfillments
                    .values()
                    .rev()
                    .filter(|f| ids.is_empty() || ids.contains(&f.id))
                    .filter(|f| so.is_empty() || so.contains(&f.sales_order_id))
                    .filter(|f| status.map_or(true, |s| f.status == s))
                    .filter(|f| {
                        cmin.map_or(true, |t| f.created_at >= t)
                            && cmax.map_or(true, |t| f.created_at <= t)
                    })
                    .filter(|f| {
                        umin.map_or(true, |t| f.updated_at >= t)
                            && umax.map_or(true, |t| f.updated_at <= t)
                    })
                    .map(Self::fulfillment_json)
                    .collect();
                paginate(q, items)
            }
            ("POST", ["sales_order_fulfillments"]) => self.create_fulfillment(&json_body()?, now),
            ("GET", ["sales_order_fulfillments", id]) => {
                let id = id_of(id)?;
                self.fulfillments
                    .get(&id)
                    .map(|f| Reply::json(200, Self::fulfillment_json(f)))
                    .ok_or_else(Reply::not_found)
            }
            ("PATCH", ["sales_order_fulfillments", id]) => {
                let id = id_of(id)?;
                self.patch_fulfillment(id, &json_body()?, now)
            }
            ("GET", ["webhooks"]) => {
                check_query(q, &["ids", "url", "enabled"])?;
                let ids = q_ids(q, "ids")?;
                let url = q_one(q, "url");
                let enabled = q_bool(q, "enabled")?;
                let items = self
                    .webhooks
                    .values()
                    .filter(|w| ids.is_empty() || ids.contains(&w.id))
                    .filter(|w| url.map_or(true, |u| w.url == u))
                    .filter(|w| enabled.map_or(true, |e| w.enabled == e))
                    .map(Self::webhook_json)
                    .collect();
                paginate(q, items)
            }
            ("POST", ["webhooks"]) => self.create_webhook(&json_body()?),
            ("GET", ["webhooks", id]) => {
                let id = id_of(id)?;
                self.webhooks
                    .get(&id)
                    .map(|w| Reply::json(200, Self::webhook_json(w)))
                    .ok_or_else(Reply::not_found)
            }
            ("PATCH", ["webhooks", id]) => {
                let id = id_of(id)?;
                self.patch_webhook(id, &json_body()?)
            }
            ("DELETE", ["webhooks", id]) => {
                let id = id_of(id)?;
                self.webhooks
                    .remove(&id)
                    .map(|_| Reply::empty(204))
                    .ok_or_else(Reply::not_found)
            }
            _ => Err(Reply::not_found()),
        })();
        r.unwrap_or_else(|e| e)
    }

    fn create_customer(&mut self, body: &Value, now: DateTime<Utc>) -> Result<Reply, Reply> {
        let mut ajv = Ajv::default();
        let allowed = [
            "name",
            "first_name",
            "last_name",
            "company",
            "email",
            "phone",
            "comment",
            "currency",
            "reference_id",
            "category",
            "discount_rate",
            "addresses",
        ];
        let Some(o) = ajv.object("", body, &allowed, &["name"]) else {
            return Err(Reply::invalid(ajv));
        };
        let name = ajv.string(o, "", "name", false, 1, 255);
        let email = ajv.string(o, "", "email", true, 0, 255);
        let first_name = ajv.string(o, "", "first_name", true, 0, 255);
        let last_name = ajv.string(o, "", "last_name", true, 0, 255);
        let comment = ajv.string(o, "", "comment", true, 0, 10_000);
        for k in ["company", "phone", "currency", "reference_id", "category"] {
            ajv.string(o, "", k, true, 0, 255);
        }
        if !ajv.ok() {
            return Err(Reply::invalid(ajv));
        }
        let id = self.next_id();
        let c = Customer {
            id,
            name: name.unwrap_or_default(),
            email,
            first_name,
            last_name,
            comment,
            created_at: now,
        };
        let out = Self::customer_json(&c);
        self.customers.insert(id, c);
        Ok(Reply::json(200, out))
    }

    fn list_sales_orders(&mut self, q: &Query) -> Result<Reply, Reply> {
        check_query(
            q,
            &[
                "ids",
                "order_no",
                "customer_id",
                "location_id",
                "status",
                "ecommerce_order_type",
                "ecommerce_store_name",
                "ecommerce_order_id",
                "include_deleted",
                "created_at_min",
                "created_at_max",
                "updated_at_min",
                "updated_at_max",
            ],
        )?;
        let ids = q_ids(q, "ids")?;
        let customer = q_ids(q, "customer_id")?;
        let location = q_ids(q, "location_id")?;
        let include_deleted = q_bool(q, "include_deleted")?.unwrap_or(false);
        let (cmin, cmax) = (q_time(q, "created_at_min")?, q_time(q, "created_at_max")?);
        let (umin, umax) = (q_time(q, "updated_at_min")?, q_time(q, "updated_at_max")?);
        let exact = |key: &str, v: &Option<String>| {
            q_one(q, key).map_or(true, |want| v.as_deref() == Some(want))
        };
        let status = q_one(q, "status");
        let items: Vec<Value> = self
            .sales_orders
            .values()
            .rev()
            .filter(|s| include_deleted || s.deleted_at.is_none())
            .filter(|s| ids.is_empty() || ids.contains(&s.id))
            .filter(|s| customer.is_empty() || customer.contains(&s.customer_id))
            .filter(|s| location.is_empty() || location.contains(&s.location_id))
            .filter(|s| q_one(q, "order_no").map_or(true, |n| s.order_no == n))
            .filter(|s| exact("ecommerce_order_id", &s.ecommerce_order_id))
            .filter(|s| exact("ecommerce_order_type", &s.ecommerce_order_type))
            .filter(|s| exact("ecommerce_store_name", &s.ecommerce_store_name))
            .filter(|s| {
                cmin.map_or(true, |t| s.created_at >= t) && cmax.map_or(true, |t| s.created_at <= t)
            })
            .filter(|s| {
                umin.map_or(true, |t| s.updated_at >= t) && umax.map_or(true, |t| s.updated_at <= t)
            })
            .filter(|s| status.map_or(true, |st| self.so_status(s.id).as_deref() == Some(st)))
            .map(|s| self.so_json(s))
            .collect();
        paginate(q, items)
    }

    fn create_sales_order(&mut self, body: &Value, now: DateTime<Utc>) -> Result<Reply, Reply> {
        let mut ajv = Ajv::default();
        let allowed = [
            "customer_id",
            "sales_order_rows",
            "order_no",
            "location_id",
            "order_created_date",
            "delivery_date",
            "currency",
            "status",
            "additional_info",
            "customer_ref",
            "tracking_number",
            "tracking_number_url",
            "ecommerce_order_type",
            "ecommerce_store_name",
            "ecommerce_order_id",
            "addresses",
            "custom_fields",
        ];
        let Some(o) = ajv.object("", body, &allowed, &["customer_id", "sales_order_rows"]) else {
            return Err(Reply::invalid(ajv));
        };
        let customer_id = ajv.id(o, "", "customer_id", false);
        let order_no = ajv.string(o, "", "order_no", false, 1, 255);
        let location_id = ajv.id(o, "", "location_id", false);
        let currency = ajv.string(o, "", "currency", false, 3, 3);
        let status = if o.contains_key("status") {
            ajv.enumeration(o, "", "status", &["NOT_SHIPPED", "PENDING"])
        } else {
            Some("NOT_SHIPPED".into())
        };
        let order_created_date = ajv.string(o, "", "order_created_date", true, 0, 64);
        if let Some(d) = &order_created_date {
            if DateTime::parse_from_rfc3339(d).is_err() {
                ajv.details.push(json!({"path": ".order_created_date", "code": "format", "message": "should match format \"date-time\"", "info": {"format": "date-time"}}));
            }
        }
        ajv.string(o, "", "delivery_date", true, 0, 64);
        let additional_info = ajv.string(o, "", "additional_info", true, 0, 100_000);
        let customer_ref = ajv.string(o, "", "customer_ref", true, 0, 255);
        ajv.string(o, "", "tracking_number", true, 0, 256);
        ajv.string(o, "", "tracking_number_url", true, 0, 2048);
        let eco_type = ajv.string(o, "", "ecommerce_order_type", true, 1, 255);
        let eco_store = ajv.string(o, "", "ecommerce_store_name", true, 1, 255);
        let eco_id = ajv.string(o, "", "ecommerce_order_id", true, 1, 255);
        let mut rows = Vec::new();
        if let Some(arr) = ajv.array(o, "", "sales_order_rows", 1) {
            for (i, rv) in arr.iter().enumerate() {
                let base = format!(".sales_order_rows[{i}]");
                let row_allowed = [
                    "quantity",
                    "variant_id",
                    "price_per_unit",
                    "tax_rate_id",
                    "location_id",
                    "total_discount",
                    "attributes",
                    "custom_fields",
                ];
                if let Some(r) = ajv.object(&base, rv, &row_allowed, &["quantity", "variant_id"]) {
                    let qty = ajv.number(r, &base, "quantity", Quantity(0), false);
                    let variant = ajv.id(r, &base, "variant_id", false);
                    let price = ajv.number(r, &base, "price_per_unit", Quantity(0), false);
                    let loc = ajv.id(r, &base, "location_id", true);
                    if let (Some(qty), Some(variant)) = (qty, variant) {
                        rows.push((qty, variant, price, loc));
                    }
                }
            }
        }
        let mut addresses = Vec::new();
        if let Some(arr) = ajv.array(o, "", "addresses", 0) {
            for (i, av) in arr.iter().enumerate() {
                let base = format!(".addresses[{i}]");
                let fields = [
                    "first_name",
                    "last_name",
                    "company",
                    "phone",
                    "line_1",
                    "line_2",
                    "city",
                    "state",
                    "zip",
                    "country",
                ];
                let mut allowed_a: Vec<&str> = fields.to_vec();
                allowed_a.push("entity_type");
                if let Some(a) = ajv.object(&base, av, &allowed_a, &["entity_type"]) {
                    let et = ajv.enumeration(a, &base, "entity_type", &["billing", "shipping"]);
                    let mut m = Map::new();
                    for f in fields {
                        m.insert(
                            f.into(),
                            ajv.string(a, &base, f, true, 0, 255)
                                .map_or(Value::Null, Value::String),
                        );
                    }
                    if let Some(et) = et {
                        m.insert("entity_type".into(), json!(et));
                        addresses.push(m);
                    }
                }
            }
        }
        if !ajv.ok() {
            return Err(Reply::invalid(ajv));
        }
        // Business rules, each a plain-message 422 like Katana's.
        let customer_id = customer_id.unwrap_or_default();
        if !self.customers.contains_key(&customer_id) {
            return Err(Reply::unprocessable(&format!(
                "Customer {customer_id} not found"
            )));
        }
        let location_id = match location_id {
            Some(l) => l,
            None => match self.locations.values().find(|l| l.sales_allowed) {
                Some(l) => l.id,
                None => return Err(Reply::unprocessable("No default sales location")),
            },
        };
        for lid in std::iter::once(location_id).chain(rows.iter().filter_map(|r| r.3)) {
            match self.locations.get(&lid) {
                None => return Err(Reply::unprocessable(&format!("Location {lid} not found"))),
                Some(l) if !l.sales_allowed => {
                    return Err(Reply::unprocessable("Location has selling disabled"))
                }
                Some(_) => {}
            }
        }
        for (_, v, _, _) in &rows {
            if !self.variants.contains_key(v) {
                return Err(Reply::unprocessable(&format!("Variant {v} not found")));
            }
        }
        let id = self.next_id();
        let so_rows: Vec<SoRow> = rows
            .iter()
            .map(|(qty, variant, price, loc)| SoRow {
                id: 0,
                variant_id: *variant,
                quantity: *qty,
                price_per_unit: price.unwrap_or_else(|| self.variants[variant].sales_price),
                location_id: *loc,
            })
            .collect();
        let so_rows: Vec<SoRow> = so_rows
            .into_iter()
            .map(|mut r| {
                r.id = self.next_id();
                r
            })
            .collect();
        for a in addresses.iter_mut() {
            let aid = self.next_id();
            a.insert("id".into(), json!(aid));
            a.insert("sales_order_id".into(), json!(id));
        }
        let so = SalesOrder {
            id,
            customer_id,
            order_no: order_no.unwrap_or_else(|| format!("SO-{}", self.sales_orders.len() + 1)),
            location_id,
            base_status: status.unwrap_or_else(|| "NOT_SHIPPED".into()),
            currency: currency.unwrap_or_else(|| "USD".into()),
            order_created_date,
            additional_info,
            customer_ref,
            ecommerce_order_type: eco_type,
            ecommerce_store_name: eco_store,
            ecommerce_order_id: eco_id,
            rows: so_rows,
            addresses,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let commits = Self::commits(&so);
        self.sales_orders.insert(id, so);
        if commits {
            self.commit_remainder(id, 1);
        }
        let out = self.so_json(&self.sales_orders[&id]);
        self.emit_so("sales_order.created", id);
        Ok(Reply::json(200, out))
    }

    fn patch_sales_order(
        &mut self,
        id: i64,
        body: &Value,
        now: DateTime<Utc>,
    ) -> Result<Reply, Reply> {
        match self.sales_orders.get(&id) {
            Some(so) if so.deleted_at.is_none() => {}
            _ => return Err(Reply::not_found()),
        }
        let mut ajv = Ajv::default();
        // ecommerce_* are create-only: absent here, so they fail as additionalProperties.
        let allowed = [
            "order_no",
            "customer_id",
            "delivery_date",
            "picked_date",
            "location_id",
            "currency",
            "status",
            "additional_info",
            "customer_ref",
            "tracking_number",
            "tracking_number_url",
            "order_created_date",
            "conversion_rate",
            "conversion_date",
            "custom_fields",
        ];
        let Some(o) = ajv.object("", body, &allowed, &[]) else {
            return Err(Reply::invalid(ajv));
        };
        let status = if o.contains_key("status") {
            ajv.enumeration(
                o,
                "",
                "status",
                &["PENDING", "NOT_SHIPPED", "PACKED", "DELIVERED"],
            )
        } else {
            None
        };
        let order_no = ajv.string(o, "", "order_no", false, 1, 255);
        let additional_info = ajv.string(o, "", "additional_info", true, 0, 100_000);
        let customer_ref = ajv.string(o, "", "customer_ref", true, 0, 255);
        let customer_id = ajv.id(o, "", "customer_id", false);
        let location_id = ajv.id(o, "", "location_id", false);
        if !ajv.ok() {
            return Err(Reply::invalid(ajv));
        }
        let current = self.so_status(id).unwrap_or_default();
        let open = current == "NOT_SHIPPED" || current == "PENDING";
        if (order_no.is_some() || customer_id.is_some() || location_id.is_some()) && !open {
            return Err(Reply::unprocessable(
                "Field can only be changed while the order is NOT_SHIPPED or PENDING",
            ));
        }
        if let Some(c) = customer_id {
            if !self.customers.contains_key(&c) {
                return Err(Reply::unprocessable(&format!("Customer {c} not found")));
            }
        }
        if let Some(l) = location_id {
            match self.locations.get(&l) {
                None => return Err(Reply::unprocessable(&format!("Location {l} not found"))),
                Some(loc) if !loc.sales_allowed => {
                    return Err(Reply::unprocessable("Location has selling disabled"))
                }
                Some(_) => {}
            }
            // Move the open commitment to the new location.
            self.commit_remainder(id, -1);
            if let Some(so) = self.sales_orders.get_mut(&id) {
                so.location_id = l;
            }
            self.commit_remainder(id, 1);
        }
        if let Some(so) = self.sales_orders.get_mut(&id) {
            if let Some(n) = order_no {
                so.order_no = n;
            }
            if o.contains_key("additional_info") {
                so.additional_info = additional_info;
            }
            if o.contains_key("customer_ref") {
                so.customer_ref = customer_ref;
            }
            if let Some(c) = customer_id {
                so.customer_id = c;
            }
            so.updated_at = now;
        }
        match status.as_deref() {
            Some(s @ ("DELIVERED" | "PACKED")) => {
                if self.sales_orders[&id].base_status == "PENDING" {
                    // A quote must become an order (and commit) before it can ship.
                    if let Some(so) = self.sales_orders.get_mut(&id) {
                        so.base_status = "NOT_SHIPPED".into();
                    }
                    self.commit_remainder(id, 1);
                }
                self.fulfil_remainder(id, s, &Tracking::default(), now)
                    .map_err(|e| Reply::unprocessable(&e))?;
            }
            Some(s @ ("NOT_SHIPPED" | "PENDING")) => {
                if self.fulfillments.values().any(|f| f.sales_order_id == id) {
                    return Err(Reply::unprocessable(
                        "Delete the sales order's fulfillments before changing its status back",
                    ));
                }
                let was = self.sales_orders[&id].base_status.clone();
                if was != s {
                    if was == "NOT_SHIPPED" {
                        self.commit_remainder(id, -1);
                    }
                    if let Some(so) = self.sales_orders.get_mut(&id) {
                        so.base_status = s.to_string();
                    }
                    if s == "NOT_SHIPPED" {
                        self.commit_remainder(id, 1);
                    }
                }
                self.emit_so("sales_order.updated", id);
            }
            _ => self.emit_so("sales_order.updated", id),
        }
        Ok(Reply::json(200, self.so_json(&self.sales_orders[&id])))
    }

    fn delete_sales_order(&mut self, id: i64, now: DateTime<Utc>) -> Result<Reply, Reply> {
        let commits = match self.sales_orders.get(&id) {
            Some(so) if so.deleted_at.is_none() => Self::commits(so),
            _ => return Err(Reply::not_found()),
        };
        if commits {
            self.commit_remainder(id, -1);
        }
        if let Some(so) = self.sales_orders.get_mut(&id) {
            so.deleted_at = Some(now);
            so.updated_at = now;
        }
        self.emit("sales_order.deleted", id, None, None);
        Ok(Reply::empty(204))
    }

    fn create_fulfillment(&mut self, body: &Value, now: DateTime<Utc>) -> Result<Reply, Reply> {
        let mut ajv = Ajv::default();
        let allowed = [
            "sales_order_id",
            "status",
            "sales_order_fulfillment_rows",
            "picked_date",
            "conversion_rate",
            "conversion_date",
            "tracking_number",
            "tracking_url",
            "tracking_carrier",
            "tracking_method",
        ];
        let Some(o) = ajv.object(
            "",
            body,
            &allowed,
            &["sales_order_id", "status", "sales_order_fulfillment_rows"],
        ) else {
            return Err(Reply::invalid(ajv));
        };
        let so_id = ajv.id(o, "", "sales_order_id", false);
        let status = ajv.enumeration(o, "", "status", &["PACKED", "DELIVERED"]);
        let tracking = Tracking {
            tracking_number: ajv.string(o, "", "tracking_number", true, 0, 256),
            tracking_url: ajv.string(o, "", "tracking_url", true, 0, 2048),
            tracking_carrier: ajv.string(o, "", "tracking_carrier", true, 0, 255),
        };
        let method = ajv.string(o, "", "tracking_method", true, 0, 255);
        let mut rows = Vec::new();
        if let Some(arr) = ajv.array(o, "", "sales_order_fulfillment_rows", 1) {
            for (i, rv) in arr.iter().enumerate() {
                let base = format!(".sales_order_fulfillment_rows[{i}]");
                let ra = [
                    "sales_order_row_id",
                    "quantity",
                    "batch_transactions",
                    "serial_numbers",
                    "traceability",
                ];
                if let Some(r) = ajv.object(&base, rv, &ra, &["sales_order_row_id", "quantity"]) {
                    let row = ajv.id(r, &base, "sales_order_row_id", false);
                    let qty = ajv.number(r, &base, "quantity", Quantity(0), true);
                    if let (Some(row), Some(qty)) = (row, qty) {
                        rows.push((row, qty));
                    }
                }
            }
        }
        if !ajv.ok() {
            return Err(Reply::invalid(ajv));
        }
        let (so_id, status) = (so_id.unwrap_or_default(), status.unwrap_or_default());
        let fid = self
            .fulfil(so_id, &status, &rows, &tracking, method, now)
            .map_err(|e| Reply::unprocessable(&e))?;
        Ok(Reply::json(
            200,
            Self::fulfillment_json(&self.fulfillments[&fid]),
        ))
    }

    /// Katana's update DTO: tracking, dates, packer and status; rows are fixed once created.
    pub fn patch_fulfillment(
        &mut self,
        id: i64,
        body: &Value,
        now: DateTime<Utc>,
    ) -> Result<Reply, Reply> {
        let Some(current) = self.fulfillments.get(&id).cloned() else {
            return Err(Reply::not_found());
        };
        let mut ajv = Ajv::default();
        let allowed = [
            "picked_date",
            "status",
            "conversion_rate",
            "conversion_date",
            "packer_id",
            "tracking_number",
            "tracking_url",
            "tracking_carrier",
            "tracking_method",
        ];
        let Some(o) = ajv.object("", body, &allowed, &[]) else {
            return Err(Reply::invalid(ajv));
        };
        let status = if o.contains_key("status") {
            ajv.enumeration(o, "", "status", &["PACKED", "DELIVERED"])
        } else {
            None
        };
        let picked_date = ajv.date_time(o, "", "picked_date", false);
        let conversion_date = ajv.date_time(o, "", "conversion_date", true);
        let conversion_rate = match o.get("conversion_rate") {
            Some(Value::Null) | None => None,
            Some(_) => ajv.number(o, "", "conversion_rate", Quantity(0), true),
        };
        let packer_id = ajv.id(o, "", "packer_id", true);
        let tracking_number = ajv.string(o, "", "tracking_number", true, 0, 256);
        let tracking_url = ajv.string(o, "", "tracking_url", true, 0, 2048);
        let tracking_carrier = ajv.string(o, "", "tracking_carrier", true, 0, 255);
        let tracking_method = ajv.string(o, "", "tracking_method", true, 0, 255);
        if !ajv.ok() {
            return Err(Reply::invalid(ajv));
        }
        if current.status == "DELIVERED" && status.as_deref() == Some("PACKED") {
            return Err(Reply::unprocessable(
                "A delivered fulfillment cannot go back to PACKED",
            ));
        }
        let so_id = current.sales_order_id;
        let before = self.so_status(so_id);
        let Some(f) = self.fulfillments.get_mut(&id) else {
            return Err(Reply::not_found());
        };
        // Stock already left at PACKED, so PACKED -> DELIVERED moves nothing.
        if let Some(s) = status {
            f.status = s;
        }
        if let Some(d) = picked_date {
            f.picked_date = d;
        }
        if o.contains_key("conversion_date") {
            f.conversion_date = conversion_date.map(iso);
        }
        if o.contains_key("conversion_rate") {
            f.conversion_rate = conversion_rate.map(qnum);
        }
        if o.contains_key("packer_id") {
            f.packer_id = packer_id;
        }
        if o.contains_key("tracking_number") {
            f.tracking_number = tracking_number;
        }
        if o.contains_key("tracking_url") {
            f.tracking_url = tracking_url;
        }
        if o.contains_key("tracking_carrier") {
            f.tracking_carrier = tracking_carrier;
        }
        if o.contains_key("tracking_method") {
            f.tracking_method = tracking_method;
        }
        f.updated_at = now;
        if let Some(so) = self.sales_orders.get_mut(&so_id) {
            so.updated_at = now;
        }
        let after = self.so_status(so_id);
        if before != after && after.as_deref() == Some("DELIVERED") {
            self.emit_so("sales_order.delivered", so_id);
        }
        self.emit_so("sales_order.updated", so_id);
        Ok(Reply::json(
            200,
            Self::fulfillment_json(&self.fulfillments[&id]),
        ))
    }

    fn webhook_fields(
        ajv: &mut Ajv,
        o: &Map<String, Value>,
    ) -> (Option<String>, Option<Vec<String>>) {
        let url = ajv.string(o, "", "url", false, 1, 2048);
        let url = url.filter(|u| {
            // Katana requires https; loopback http is accepted so local receivers work.
            let ok = u.starts_with("https://") || u.starts_with("http://127.0.0.1") || u.starts_with("http://localhost");
            if !ok {
                ajv.details.push(json!({"path": ".url", "code": "pattern", "message": "should match pattern \"^https://.*\"", "info": {"pattern": "^https://.*"}}));
            }
            ok
        });
        let mut events = None;
        if let Some(arr) = ajv.array(o, "", "subscribed_events", 1) {
            let mut ev = Vec::new();
            for (i, e) in arr.iter().enumerate() {
                match e.as_str() {
                    Some(s) if WEBHOOK_EVENTS.contains(&s) => ev.push(s.to_string()),
                    _ => ajv.details.push(json!({"path": format!(".subscribed_events[{i}]"), "code": "enum", "message": "should be equal to one of the allowed values", "info": {}})),
                }
            }
            events = Some(ev);
        }
        ajv.boolean(o, "", "enabled");
        ajv.string(o, "", "description", true, 0, 255);
        (url, events)
    }

    fn create_webhook(&mut self, body: &Value) -> Result<Reply, Reply> {
        let mut ajv = Ajv::default();
        let allowed = ["url", "subscribed_events", "enabled", "description"];
        let Some(o) = ajv.object("", body, &allowed, &["url", "subscribed_events"]) else {
            return Err(Reply::invalid(ajv));
        };
        let (url, events) = Self::webhook_fields(&mut ajv, o);
        let enabled = o.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        let description = o
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string);
        if !ajv.ok() {
            return Err(Reply::invalid(ajv));
        }
        let w = self.add_webhook(
            url.unwrap_or_default(),
            events.unwrap_or_default(),
            None,
            enabled,
            description,
        );
        Ok(Reply::json(200, Self::webhook_json(&w)))
    }

    fn patch_webhook(&mut self, id: i64, body: &Value) -> Result<Reply, Reply> {
        if !self.webhooks.contains_key(&id) {
            return Err(Reply::not_found());
        }
        let mut ajv = Ajv::default();
        let allowed = ["url", "subscribed_events", "enabled", "description"];
        let Some(o) = ajv.object("", body, &allowed, &[]) else {
            return Err(Reply::invalid(ajv));
        };
        let (url, events) = Self::webhook_fields(&mut ajv, o);
        if !ajv.ok() {
            return Err(Reply::invalid(ajv));
        }
        let w = self.webhooks.get_mut(&id).ok_or_else(Reply::not_found)?;
        if let Some(u) = url {
            w.url = u;
        }
        if let Some(e) = events {
            w.subscribed_events = e;
        }
        if let Some(b) = o.get("enabled").and_then(Value::as_bool) {
            w.enabled = b;
        }
        if let Some(d) = o.get("description") {
            w.description = d.as_str().map(str::to_string);
        }
        Ok(Reply::json(200, Self::webhook_json(w)))
    }

    /// Registers a webhook (API or control surface); the token is 16 lowercase hex chars.
    pub fn add_webhook(
        &mut self,
        url: String,
        events: Vec<String>,
        token: Option<String>,
        enabled: bool,
        description: Option<String>,
    ) -> Webhook {
        let id = self.next_id();
        let token = token.unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
        let w = Webhook {
            id,
            url,
            token,
            enabled,
            description,
            subscribed_events: events,
        };
        self.webhooks.insert(id, w.clone());
        w
    }
}
