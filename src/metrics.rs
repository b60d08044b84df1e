//! Counters and gauges for `/metrics`, in the Prometheus text format: orders by
//! state, pushes, API calls and errors per connector, webhook latency; orders,
//! open exceptions and TikTok calls also per shop.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use crate::clock::Clock;

/// Webhook latency histogram bucket bounds, in seconds.
const LATENCY_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Default)]
struct Inner {
    /// (connector, operation, outcome) -> count
    api_calls: BTreeMap<(String, String, String), u64>,
    /// kind ("sales_order", "fulfillment", "inventory") -> count
    pushes: BTreeMap<String, u64>,
    /// (source, outcome) -> count
    webhooks: BTreeMap<(String, String), u64>,
    /// source -> (bucket counts, sum, count)
    webhook_latency: BTreeMap<String, ([u64; LATENCY_BUCKETS.len()], f64, u64)>,
    /// order state -> number of orders in it
    orders_by_state: BTreeMap<String, i64>,
    open_exceptions: i64,
    /// (shop, state) -> number of the shop's orders in it
    shop_orders: BTreeMap<(String, String), i64>,
    /// shop -> its open exceptions (its orders', its SKU pushes')
    shop_exceptions: BTreeMap<String, i64>,
    /// (shop, operation, outcome) -> TikTok calls made for the shop
    shop_calls: BTreeMap<(String, String, String), u64>,
    /// connector -> when calls last succeeded and when they failed lately
    health: BTreeMap<String, CallTimes>,
}

/// When a connector's calls last succeeded and failed, for the console's health.
#[derive(Clone, Debug, Default)]
pub struct CallTimes {
    pub last_ok: Option<DateTime<Utc>>,
    pub last_error: Option<DateTime<Utc>>,
    /// Failures within the last hour, oldest first.
    pub recent_errors: VecDeque<DateTime<Utc>>,
}

/// What `GET /api/shops` shows of one shop.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ShopCounts {
    /// Every order of the shop the log holds.
    pub orders: i64,
    /// The same, by the gauge's states.
    pub orders_by_state: BTreeMap<String, i64>,
    pub open_exceptions: i64,
    /// TikTok calls made for the shop since start: (ok, error).
    pub tiktok_calls_ok: u64,
    pub tiktok_calls_failed: u64,
}

/// How far back `recent_errors` reaches.
const ERROR_WINDOW: chrono::Duration = chrono::Duration::hours(1);

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Without a clock no call times are kept (counters still are).
    clock: Option<Clock>,
}

impl Metrics {
    /// Metrics that also keep when each connector's calls last succeeded or failed.
    pub fn with_clock(clock: Clock) -> Self {
        Metrics {
            inner: Mutex::default(),
            clock: Some(clock),
        }
    }

    /// The label a shop goes by here: its id, or `default` for the one shop of
    /// an instance that configures no id.
    pub fn shop_label(shop_id: &str) -> &str {
        if shop_id.is_empty() {
            "default"
        } else {
            shop_id
        }
    }

    /// A TikTok call made for one shop: counted with the connector's and the shop's.
    pub fn tiktok_call(&self, shop_id: &str, operation: &str, ok: bool) {
        self.api_call("tiktok", operation, ok);
        let outcome = if ok { "ok" } else { "error" };
        *self
            .inner
            .lock()
            .shop_calls
            .entry((
                Self::shop_label(shop_id).into(),
                operation.into(),
                outcome.into(),
            ))
            .or_insert(0) += 1;
    }

    pub fn api_call(&self, connector: &str, operation: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        let mut m = self.inner.lock();
        *m.api_calls
            .entry((connector.into(), operation.into(), outcome.into()))
            .or_insert(0) += 1;
        if let Some(clock) = &self.clock {
            let now = clock.now();
            let h = m.health.entry(connector.into()).or_default();
            if ok {
                h.last_ok = Some(now);
            } else {
                h.last_error = Some(now);
                h.recent_errors.push_back(now);
            }
            while h
                .recent_errors
                .front()
                .is_some_and(|t| *t < now - ERROR_WINDOW)
            {
                h.recent_errors.pop_front();
            }
        }
    }

    /// When `connector`'s calls last succeeded and failed; errors pruned to the
    /// last hour as of now.
    pub fn call_times(&self, connector: &str) -> CallTimes {
        let mut m = self.inner.lock();
        let mut h = m.health.entry(connector.into()).or_default().clone();
        if let Some(clock) = &self.clock {
            let now = clock.now();
            h.recent_errors.retain(|t| *t >= now - ERROR_WINDOW);
        }
        h
    }

    /// (ok, error) calls of `connector` since start.
    pub fn api_outcomes(&self, connector: &str) -> (u64, u64) {
        let m = self.inner.lock();
        let mut out = (0, 0);
        for ((c, _, outcome), n) in &m.api_calls {
            if c == connector {
                if outcome == "ok" {
                    out.0 += n;
                } else {
                    out.1 += n;
                }
            }
        }
        out
    }

    pub fn api_calls(&self, connector: &str) -> u64 {
        self.inner
            .lock()
            .api_calls
            .iter()
            .filter(|((c, _, _), _)| c == connector)
            .map(|(_, n)| *n)
            .sum()
    }

    pub fn pushed(&self, kind: &str) {
        *self.inner.lock().pushes.entry(kind.into()).or_insert(0) += 1;
    }

    pub fn pushes(&self, kind: &str) -> u64 {
        self.inner.lock().pushes.get(kind).copied().unwrap_or(0)
    }

    pub fn webhook(&self, source: &str, outcome: &str, latency: Duration) {
        let mut m = self.inner.lock();
        *m.webhooks
            .entry((source.into(), outcome.into()))
            .or_insert(0) += 1;
        let secs = latency.as_secs_f64();
        let h =
            m.webhook_latency
                .entry(source.into())
                .or_insert(([0; LATENCY_BUCKETS.len()], 0.0, 0));
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.0[i] += 1;
            }
        }
        h.1 += secs;
        h.2 += 1;
    }

    /// An order of `shop` (its label) moved from `from` (None: new) to `to`.
    pub fn order_moved(&self, shop: &str, from: Option<&str>, to: &str) {
        let mut m = self.inner.lock();
        if let Some(f) = from {
            *m.orders_by_state.entry(f.into()).or_insert(0) -= 1;
            *m.shop_orders.entry((shop.into(), f.into())).or_insert(0) -= 1;
        }
        *m.orders_by_state.entry(to.into()).or_insert(0) += 1;
        *m.shop_orders.entry((shop.into(), to.into())).or_insert(0) += 1;
    }

    /// What the log holds of one shop (by its label), and its calls since start.
    pub fn shop_counts(&self, shop: &str) -> ShopCounts {
        let m = self.inner.lock();
        let mut out = ShopCounts {
            open_exceptions: m.shop_exceptions.get(shop).copied().unwrap_or(0),
            ..ShopCounts::default()
        };
        for ((s, state), n) in &m.shop_orders {
            if s == shop && *n != 0 {
                out.orders += n;
                out.orders_by_state.insert(state.clone(), *n);
            }
        }
        for ((s, _, outcome), n) in &m.shop_calls {
            if s == shop {
                if outcome == "ok" {
                    out.tiktok_calls_ok += n;
                } else {
                    out.tiktok_calls_failed += n;
                }
            }
        }
        out
    }

    pub fn orders_in(&self, state: &str) -> i64 {
        self.inner
            .lock()
            .orders_by_state
            .get(state)
            .copied()
            .unwrap_or(0)
    }

    /// Open exceptions went up or down by `delta`; `shop` is the label of the
    /// shop they concern, none for those of no one shop (a SKU nobody sells).
    pub fn exceptions_changed(&self, shop: Option<&str>, delta: i64) {
        let mut m = self.inner.lock();
        m.open_exceptions += delta;
        if let Some(shop) = shop {
            *m.shop_exceptions.entry(shop.into()).or_insert(0) += delta;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let m = self.inner.lock();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP tks_orders Orders by sync state.");
        let _ = writeln!(out, "# TYPE tks_orders gauge");
        for (state, n) in &m.orders_by_state {
            let _ = writeln!(out, "tks_orders{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP tks_open_exceptions Exceptions waiting for their cause to be fixed."
        );
        let _ = writeln!(out, "# TYPE tks_open_exceptions gauge");
        let _ = writeln!(out, "tks_open_exceptions {}", m.open_exceptions);
        let _ = writeln!(out, "# HELP tks_shop_orders Orders by shop and sync state.");
        let _ = writeln!(out, "# TYPE tks_shop_orders gauge");
        for ((shop, state), n) in &m.shop_orders {
            let _ = writeln!(
                out,
                "tks_shop_orders{{shop=\"{shop}\",state=\"{state}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tks_shop_open_exceptions Open exceptions of one shop's orders and pushes."
        );
        let _ = writeln!(out, "# TYPE tks_shop_open_exceptions gauge");
        for (shop, n) in &m.shop_exceptions {
            let _ = writeln!(out, "tks_shop_open_exceptions{{shop=\"{shop}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP tks_shop_tiktok_calls_total Calls to TikTok made for one shop."
        );
        let _ = writeln!(out, "# TYPE tks_shop_tiktok_calls_total counter");
        for ((shop, op, outcome), n) in &m.shop_calls {
            let _ = writeln!(
                out,
                "tks_shop_tiktok_calls_total{{shop=\"{shop}\",operation=\"{op}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP tks_pushes_total Successful pushes by kind.");
        let _ = writeln!(out, "# TYPE tks_pushes_total counter");
        for (kind, n) in &m.pushes {
            let _ = writeln!(out, "tks_pushes_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP tks_api_calls_total Calls to TikTok and Katana."
        );
        let _ = writeln!(out, "# TYPE tks_api_calls_total counter");
        for ((c, op, outcome), n) in &m.api_calls {
            let _ = writeln!(
                out,
                "tks_api_calls_total{{connector=\"{c}\",operation=\"{op}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tks_webhooks_total Webhook deliveries by outcome."
        );
        let _ = writeln!(out, "# TYPE tks_webhooks_total counter");
        for ((source, outcome), n) in &m.webhooks {
            let _ = writeln!(
                out,
                "tks_webhooks_total{{source=\"{source}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tks_webhook_seconds Time to record a webhook durably."
        );
        let _ = writeln!(out, "# TYPE tks_webhook_seconds histogram");
        for (source, (buckets, sum, count)) in &m.webhook_latency {
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tks_webhook_seconds_bucket{{source=\"{source}\",le=\"{bound}\"}} {}",
                    buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "tks_webhook_seconds_bucket{{source=\"{source}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "tks_webhook_seconds_sum{{source=\"{source}\"}} {sum}");
            let _ = writeln!(
                out,
                "tks_webhook_seconds_count{{source=\"{source}\"}} {count}"
            );
        }
        out
    }
}
