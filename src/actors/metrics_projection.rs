//! The in-memory projection behind the order and exception gauges of `/metrics`
//! and the counts of `GET /api/shops`: folded from the whole log at every start,
//! in total and per shop.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde::Deserialize;

use super::policies::{id_of, order_event, sku_event};
use super::Subscriber;
use crate::domain::allocation::Shops;
use crate::domain::exceptions::keys;
use crate::domain::order::{Order, OrderEvent};
use crate::domain::sku::SkuEvent;
use crate::metrics::Metrics;
use crate::names::subscriber;
use crate::seam::SeamError;
use crate::store::RecordedEvent;

/// Where the projection has an order: its gauge, once it has one, and its shop.
#[derive(Clone, Copy)]
struct Tracked {
    label: Option<&'static str>,
    /// An index into [`MetricsProjection::shops`].
    shop: u16,
}

pub struct MetricsProjection {
    metrics: Arc<Metrics>,
    /// The labels `/metrics` gives each served shop, by position in `keys`.
    shops: Vec<String>,
    /// The event keys of the served shops (empty: the primary), then any key a
    /// log names that the settings no longer serve.
    keys: Vec<String>,
    orders: HashMap<String, Tracked>,
    /// `<stream>#<key>` of every open exception -> the shop it counts for.
    exceptions: HashMap<String, Option<u16>>,
}

/// Only the shop of an `OrderPlaced`: decoding a million snapshots in full, only
/// to count them, would be most of the work of a start.
#[derive(Deserialize)]
struct PlacedIn {
    snapshot: ShopOf,
}

#[derive(Deserialize)]
struct ShopOf {
    #[serde(default)]
    shop_id: String,
}

/// Only the shop of an `OrderSignalled`.
#[derive(Deserialize)]
struct SignalledBy {
    #[serde(default)]
    shop: String,
}

impl MetricsProjection {
    pub fn new(metrics: Arc<Metrics>, shops: &Shops) -> Self {
        MetricsProjection {
            metrics,
            shops: shops
                .iter()
                .map(|s| Metrics::shop_label(&s.shop_id).to_string())
                .collect(),
            keys: shops.keys().map(str::to_string).collect(),
            orders: HashMap::new(),
            exceptions: HashMap::new(),
        }
    }

    /// The gauge an order event moves to, by its type alone.
    fn label(event_type: &str) -> Option<&'static str> {
        Some(match event_type {
            "OrderPlaced" => "held",
            "HoldExpired" => "hold_expired",
            "OrderSkipped" => "skipped",
            "OrderCancelled" => "cancelled",
            "SoRequested" => "so_requested",
            "SoBlocked" => "blocked",
            "SoCreated" => "in_katana",
            "SoDeleted" => "cancelled",
            "SoDelivered" => "delivered",
            "FulfillmentPushed" => "fulfilled",
            _ => return None,
        })
    }

    /// The index of the shop an event key names, adding a key no longer served
    /// so its orders still count somewhere visible.
    fn shop_index(&mut self, key: &str) -> u16 {
        if let Some(i) = self.keys.iter().position(|k| k == key) {
            return i as u16;
        }
        self.keys.push(key.to_string());
        self.shops.push(key.to_string());
        (self.keys.len() - 1) as u16
    }

    /// The shop key an order event names, if it is one that names a shop. Only
    /// read while several shops are served: with one, every order is its.
    fn named_shop(&self, event: &RecordedEvent) -> Option<String> {
        if self.keys.len() < 2 {
            return None;
        }
        match event.event_type.as_str() {
            "OrderPlaced" => serde_json::from_str::<PlacedIn>(&event.payload)
                .ok()
                .map(|p| p.snapshot.shop_id),
            "OrderSignalled" => serde_json::from_str::<SignalledBy>(&event.payload)
                .ok()
                .map(|s| s.shop),
            _ => None,
        }
    }

    fn observe(&mut self, event: &RecordedEvent) -> Result<(), SeamError> {
        let key = |k: &str| format!("{}#{k}", event.stream);
        let exception = matches!(
            event.event_type.as_str(),
            "ExceptionRaised" | "ExceptionResolved"
        );
        if let Some(order_id) = id_of::<Order>(&event.stream) {
            let named = self.named_shop(event).map(|k| self.shop_index(&k));
            let tracked = self.orders.entry(order_id.to_string()).or_insert(Tracked {
                label: None,
                shop: 0,
            });
            if let Some(shop) = named {
                tracked.shop = shop;
            }
            let tracked = *tracked;
            if exception {
                match order_event(event)?.map(|(_, ev)| ev) {
                    Some(OrderEvent::ExceptionRaised(x)) => {
                        self.raised(key(&x.key), Some(tracked.shop))
                    }
                    Some(OrderEvent::ExceptionResolved(x)) => self.resolved(&key(&x.key)),
                    _ => {}
                }
            }
            if let Some(to) = Self::label(&event.event_type) {
                // A cancelled order stays cancelled in the gauge whatever follows.
                let from = tracked.label;
                if from != Some("cancelled") && from != Some(to) {
                    let shop = &self.shops[tracked.shop as usize];
                    self.metrics.order_moved(shop, from, to);
                    if let Some(t) = self.orders.get_mut(order_id) {
                        t.label = Some(to);
                    }
                }
            }
        } else if exception {
            match sku_event(event)?.map(|(_, ev)| ev) {
                Some(SkuEvent::ExceptionRaised(x)) => {
                    let shop = keys::inventory_rejected_shop(&x.key).map(|k| self.shop_index(k));
                    self.raised(key(&x.key), shop)
                }
                Some(SkuEvent::ExceptionResolved(x)) => self.resolved(&key(&x.key)),
                _ => {}
            }
        }
        Ok(())
    }

    fn raised(&mut self, key: String, shop: Option<u16>) {
        if let std::collections::hash_map::Entry::Vacant(open) = self.exceptions.entry(key) {
            open.insert(shop);
            let shop = shop.map(|i| self.shops[i as usize].as_str());
            self.metrics.exceptions_changed(shop, 1);
        }
    }

    fn resolved(&mut self, key: &str) {
        if let Some(shop) = self.exceptions.remove(key) {
            let shop = shop.map(|i| self.shops[i as usize].as_str());
            self.metrics.exceptions_changed(shop, -1);
        }
    }
}

impl Subscriber for MetricsProjection {
    fn name(&self) -> &str {
        subscriber::METRICS
    }

    fn durable(&self) -> bool {
        false
    }

    fn handle<'a>(
        &'a mut self,
        event: &'a RecordedEvent,
    ) -> LocalBoxFuture<'a, Result<(), SeamError>> {
        let result = self.observe(event);
        Box::pin(async { result })
    }
}
