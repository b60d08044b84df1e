//! The simulator's API: each request dispatched to its handler, Katana's query
//! parameter rules and pagination, and the replies in Katana's wire form.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::model::{iso, qnum, Customer, SalesOrder, SoRow, Tracking, WEBHOOK_EVENTS};
use super::state::SimState;
use super::validate::{Ajv, MAX_ID};
use crate::domain::observed::Quantity;

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

pub(super) type Query = Vec<(String, String)>;

pub(super) fn q_all<'a>(q: &'a Query, key: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

pub(super) fn q_one<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Rejects query parameters an endpoint does not know, as Katana's gateway does (a
/// 422 naming the parameter): a misspelt filter must not be silently ignored by the
/// simulator, or a client bug that reads everything would go unnoticed.
pub(super) fn check_query(q: &Query, allowed: &[&str]) -> Result<(), Reply> {
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

pub(super) fn q_ids(q: &Query, key: &str) -> Result<Vec<i64>, Reply> {
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

pub(super) fn q_bool(q: &Query, key: &str) -> Result<Option<bool>, Reply> {
    match q_one(q, key) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(Reply::bad_request(&format!(
            "`{key}` must be true or false, got {v:?}"
        ))),
    }
}

pub(super) fn q_time(q: &Query, key: &str) -> Result<Option<DateTime<Utc>>, Reply> {
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
pub(super) fn paginate(q: &Query, items: Vec<Value>) -> Result<Reply, Reply> {
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

impl SimState {
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

    pub(super) fn create_customer(
        &mut self,
        body: &Value,
        now: DateTime<Utc>,
    ) -> Result<Reply, Reply> {
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

    pub(super) fn list_sales_orders(&mut self, q: &Query) -> Result<Reply, Reply> {
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

    pub(super) fn create_sales_order(
        &mut self,
        body: &Value,
        now: DateTime<Utc>,
    ) -> Result<Reply, Reply> {
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

    pub(super) fn patch_sales_order(
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

    pub(super) fn delete_sales_order(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Reply, Reply> {
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

    pub(super) fn create_fulfillment(
        &mut self,
        body: &Value,
        now: DateTime<Utc>,
    ) -> Result<Reply, Reply> {
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

    pub(super) fn webhook_fields(
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

    pub(super) fn create_webhook(&mut self, body: &Value) -> Result<Reply, Reply> {
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

    pub(super) fn patch_webhook(&mut self, id: i64, body: &Value) -> Result<Reply, Reply> {
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
}
