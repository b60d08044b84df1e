//! The Katana simulator's state: everything it holds, ids, the rate limiter, the
//! setup the control surface does (locations, products, stock, webhooks) and the
//! webhook events a change queues.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::model::{
    Customer, DeliveryRecord, Faults, Fulfillment, Location, Outgoing, Product, RequestRecord,
    SalesOrder, Stock, Variant, Webhook,
};
use crate::domain::observed::Quantity;

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

    pub(super) fn prune(&mut self, now: DateTime<Utc>) {
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

    pub(super) fn emit(
        &mut self,
        event: &str,
        object_id: i64,
        status: Option<&str>,
        href: Option<String>,
    ) {
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

    pub(super) fn emit_so(&mut self, event: &str, so_id: i64) {
        let status = self.so_status(so_id);
        let href = format!("{}/sales_orders/{so_id}", self.base_url);
        self.emit(event, so_id, status.as_deref(), Some(href));
    }

    pub(super) fn emit_inventory(&mut self, variant_id: i64) {
        let href = format!("{}/variants/{variant_id}", self.base_url);
        self.emit(
            "current_inventory.product_updated",
            variant_id,
            None,
            Some(href),
        );
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
