//! A strict Katana MRP simulator: a real actix-web server on 127.0.0.1 speaking
//! Katana's wire protocol (Bearer auth, Ajv-style 422s, wrapped errors, the
//! 60-per-60-seconds limiter through the injected clock, string `X-Pagination`,
//! signed and retried webhooks), plus a control surface for tests and the sandbox,
//! both as methods on [`KatanaSim`] and as JSON under `/_sim/...` (no API key).

mod model;
mod render;
mod routes;
mod state;
mod stock;
mod validate;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use model::Outgoing;
pub use model::{DeliveryRecord, RequestRecord, Tracking, WEBHOOK_EVENTS};
use routes::Reply;
use state::SimState;

use crate::clock::Clock;
use crate::connectors::katana::webhook::sign;
use crate::domain::observed::Quantity;
use crate::sandbox::in_flight::InFlight;

/// Katana's retry schedule after a failed delivery (after the previous attempt).
pub const WEBHOOK_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(900),
];

#[derive(Clone, Debug)]
pub struct KatanaSimConfig {
    /// Bearer keys accepted by the API.
    pub api_keys: Vec<String>,
    /// Requests per `rate_window` (Katana: 60 per 60 s).
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// How long the simulator waits for a webhook receiver (Katana: 10 s).
    pub webhook_timeout: Duration,
}

impl Default for KatanaSimConfig {
    fn default() -> Self {
        KatanaSimConfig {
            api_keys: vec!["sim-katana-key".into()],
            rate_limit: 60,
            rate_window: Duration::from_secs(60),
            webhook_timeout: Duration::from_secs(10),
        }
    }
}

/// Request counts for assertions.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SimStats {
    pub requests: usize,
    pub rate_limited: usize,
    pub unauthorized: usize,
    pub by_endpoint: std::collections::BTreeMap<String, usize>,
}

/// The demo catalogue's ids.
#[derive(Clone, Debug, Serialize)]
pub struct DemoCatalogue {
    pub main_location_id: i64,
    pub fbt_location_id: i64,
    pub no_sales_location_id: i64,
    /// (sku, variant id)
    pub variants: Vec<(String, i64)>,
}

struct Shared {
    state: Mutex<SimState>,
    clock: Clock,
    out: mpsc::UnboundedSender<Outgoing>,
    webhooks_in_flight: InFlight,
}

impl Shared {
    fn send_webhooks(&self, events: Vec<Outgoing>) {
        for e in events {
            self.webhooks_in_flight.start();
            if self.out.send(e).is_err() {
                self.webhooks_in_flight.done();
            }
        }
    }
}

/// A running simulator; clones share it.
#[derive(Clone)]
pub struct KatanaSim {
    shared: Arc<Shared>,
    base: String,
    server: actix_web::dev::ServerHandle,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl KatanaSim {
    /// Binds 127.0.0.1:0 and serves; must be called inside a tokio runtime.
    pub fn start(cfg: KatanaSimConfig, clock: Clock) -> std::io::Result<KatanaSim> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let base = format!("http://127.0.0.1:{port}/v1");
        let window =
            chrono::Duration::from_std(cfg.rate_window).unwrap_or(chrono::Duration::seconds(60));
        let mut st = SimState::new(cfg.api_keys.clone(), cfg.rate_limit, window);
        st.base_url = base.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            clock: clock.clone(),
            out: tx,
            webhooks_in_flight: InFlight::default(),
        });
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let server_handle = server.handle();
        let srv = tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "katana simulator stopped");
            }
        });
        let http = reqwest::Client::builder()
            .timeout(cfg.webhook_timeout)
            .build()
            .map_err(std::io::Error::other)?;
        let dispatcher = tokio::spawn(dispatch(rx, shared.clone(), http));
        Ok(KatanaSim {
            shared,
            base,
            server: server_handle,
            tasks: Arc::new(Mutex::new(vec![srv, dispatcher])),
        })
    }

    /// The API base, ending with `/v1`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The first accepted API key.
    pub fn api_key(&self) -> String {
        self.shared
            .state
            .lock()
            .api_keys
            .first()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    fn with<T>(&self, f: impl FnOnce(&mut SimState, DateTime<Utc>) -> T) -> T {
        let now = self.now();
        let (out, events) = {
            let mut st = self.shared.state.lock();
            let out = f(&mut st, now);
            (out, std::mem::take(&mut st.outbox))
        };
        self.shared.send_webhooks(events);
        out
    }

    // ------------------------------------------------------------ seeding

    pub fn add_location(&self, name: &str, sales_allowed: bool) -> i64 {
        self.with(|s, now| s.add_location(name, sales_allowed, now))
    }

    /// A product with variants `(sku, sales price)`; returns the variant ids in order.
    pub fn add_product(&self, name: &str, variants: &[(&str, &str)]) -> Result<Vec<i64>, String> {
        let parsed: Result<Vec<(String, Quantity)>, String> = variants
            .iter()
            .map(|(s, p)| {
                p.parse::<Quantity>()
                    .map(|q| (s.to_string(), q))
                    .map_err(|e| e.to_string())
            })
            .collect();
        let parsed = parsed?;
        self.with(|s, now| s.add_product(name, &parsed, now))
    }

    pub fn set_stock(
        &self,
        variant_id: i64,
        location_id: i64,
        in_stock: Quantity,
    ) -> Result<(), String> {
        self.with(|s, _| s.set_stock(variant_id, location_id, in_stock))
    }

    /// (in stock, committed) of a variant at a location.
    pub fn stock(&self, variant_id: i64, location_id: i64) -> (Quantity, Quantity) {
        let s = self
            .shared
            .state
            .lock()
            .inventory
            .get(&(variant_id, location_id))
            .copied()
            .unwrap_or_default();
        (s.in_stock, s.committed)
    }

    /// Three locations (main, FBT, one without sales) and four SKUs with stock.
    pub fn seed_demo_catalogue(&self) -> DemoCatalogue {
        self.with(seed_demo)
    }

    // ------------------------------------------------------------ merchant actions

    /// Delivers a sales order like a warehouse worker: `rows` = None delivers all that
    /// remains, otherwise `(sales order row id, quantity)` pairs. Returns the fulfillment id.
    /// Packs rows of an SO (all that is left when `rows` is None), as the warehouse
    /// does before the parcel leaves: a `PACKED` fulfillment.
    pub fn pack(
        &self,
        so_id: i64,
        rows: Option<&[(i64, Quantity)]>,
        tracking: Tracking,
    ) -> Result<i64, String> {
        self.with(|s, now| match rows {
            Some(r) => s.fulfil(so_id, "PACKED", r, &tracking, None, now),
            None => s
                .fulfil_remainder(so_id, "PACKED", &tracking, now)?
                .ok_or_else(|| format!("sales order {so_id} has nothing left to pack")),
        })
    }

    pub fn deliver(
        &self,
        so_id: i64,
        rows: Option<&[(i64, Quantity)]>,
        tracking: Tracking,
    ) -> Result<i64, String> {
        self.with(|s, now| match rows {
            Some(r) => s.fulfil(so_id, "DELIVERED", r, &tracking, None, now),
            None => s
                .fulfil_remainder(so_id, "DELIVERED", &tracking, now)?
                .ok_or_else(|| format!("sales order {so_id} has nothing left to deliver")),
        })
    }

    /// Edits a fulfillment's tracking as a merchant does in Katana's UI, through the same
    /// rules as `PATCH /sales_order_fulfillments/{id}`; `None` fields are cleared. Returns
    /// the fulfillment's read model, or the API's error body.
    pub fn edit_fulfillment_tracking(
        &self,
        fulfillment_id: i64,
        tracking: Tracking,
    ) -> Result<Value, Value> {
        let body = json!({
            "tracking_number": tracking.tracking_number,
            "tracking_url": tracking.tracking_url,
            "tracking_carrier": tracking.tracking_carrier,
        });
        self.with(
            |s, now| match s.patch_fulfillment(fulfillment_id, &body, now) {
                Ok(r) => Ok(r.body.unwrap_or(Value::Null)),
                Err(r) => Err(r.body.unwrap_or(Value::Null)),
            },
        )
    }

    // ------------------------------------------------------------ read-back

    /// Every SO as its read model (rows, addresses, ecommerce fields), deleted included.
    pub fn sales_orders(&self) -> Vec<Value> {
        self.shared.state.lock().all_sales_orders()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.state.lock().requests.clone()
    }

    pub fn stats(&self) -> SimStats {
        let st = self.shared.state.lock();
        let mut s = SimStats {
            requests: st.requests.len(),
            ..SimStats::default()
        };
        for r in &st.requests {
            if r.status == 429 {
                s.rate_limited += 1;
            }
            if r.status == 401 {
                s.unauthorized += 1;
            }
            *s.by_endpoint
                .entry(format!("{} {}", r.method, r.path))
                .or_default() += 1;
        }
        s
    }

    /// The most requests admitted (not 429/401) in any window of the configured length.
    pub fn max_requests_in_any_window(&self) -> usize {
        let st = self.shared.state.lock();
        let times: Vec<DateTime<Utc>> = st
            .requests
            .iter()
            .filter(|r| r.status != 429 && r.status != 401)
            .map(|r| r.at)
            .collect();
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= st.rate_window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    pub fn webhook_deliveries(&self) -> Vec<DeliveryRecord> {
        self.shared.state.lock().deliveries.clone()
    }

    // ------------------------------------------------------------ webhooks & faults

    /// Configures a webhook directly (as in Katana's UI); returns (id, token).
    pub fn add_webhook(&self, url: &str, events: &[&str], token: Option<&str>) -> (i64, String) {
        self.with(|s, _| {
            let w = s.add_webhook(
                url.to_string(),
                events.iter().map(|e| e.to_string()).collect(),
                token.map(str::to_string),
                true,
                None,
            );
            (w.id, w.token)
        })
    }

    /// The next `n` API requests answer 500 (after being counted by the limiter).
    pub fn fail_next(&self, n: u32) {
        self.shared.state.lock().faults.fail_next = n;
    }

    /// The next `n` API requests are applied, but their response is held back for
    /// `delay` of real time (to outlast a client's timeout).
    pub fn delay_next(&self, n: u32, delay: Duration) {
        self.delay_next_method(None, n, delay);
    }

    /// Like [`Self::delay_next`], counting only requests with `method` (e.g. `POST`).
    pub fn delay_next_method(&self, method: Option<&str>, n: u32, delay: Duration) {
        let mut st = self.shared.state.lock();
        st.faults.delay_next = n;
        st.faults.delay_ms = delay.as_millis() as u64;
        st.faults.delay_method = method.map(str::to_uppercase);
    }

    /// The next `n` requests `METHOD /path` (e.g. `POST /sales_orders`; every
    /// request when `None`) are applied only after `delay` of real time, whether or
    /// not their caller is still waiting.
    pub fn commit_late_next(&self, request: Option<&str>, n: u32, delay: Duration) {
        let mut st = self.shared.state.lock();
        st.faults.late_commit_next = n;
        st.faults.late_commit_ms = delay.as_millis() as u64;
        st.faults.late_commit_request = request.map(str::to_string);
    }

    /// Webhooks queued or on the wire (a retry waiting on the clock is not).
    pub fn webhooks_in_flight(&self) -> usize {
        self.shared.webhooks_in_flight.count()
    }

    /// Requests held by [`Self::commit_late_next`] that are not applied yet.
    pub fn late_commits_in_flight(&self) -> u32 {
        self.shared.state.lock().faults.late_commits_in_flight
    }

    /// Requests held by [`Self::commit_late_next`] so far.
    pub fn late_commits_taken(&self) -> u64 {
        self.shared.state.lock().faults.late_commits_taken
    }

    pub fn set_rate_limit(&self, enabled: bool, limit: Option<u32>) {
        let mut st = self.shared.state.lock();
        st.rate_limit_enabled = enabled;
        if let Some(l) = limit {
            st.rate_limit = l.max(1);
        }
    }

    /// Uses up the current window, as another application on the same key would.
    pub fn exhaust_rate_limit(&self) {
        self.with(|s, now| s.exhaust(now));
    }

    /// `false`: creating a fulfillment leaves its SO's `updated_at` alone and fires
    /// no sales-order webhook (Katana does not say whether it does either).
    pub fn set_fulfillment_touches_so(&self, touches: bool) {
        self.with(|s, _| s.fulfillment_touches_so = touches);
    }

    pub fn drop_next_webhooks(&self, n: u32) {
        self.shared.state.lock().faults.drop_next_webhooks = n;
    }

    pub fn duplicate_next_webhooks(&self, n: u32) {
        self.shared.state.lock().faults.duplicate_next_webhooks = n;
    }
}

fn respond(reply: Reply, mut headers: Vec<(String, String)>) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(reply.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = HttpResponse::build(status);
    headers.extend(reply.headers);
    for (k, v) in headers {
        b.insert_header((k, v));
    }
    match reply.body {
        Some(v) => b.content_type("application/json").body(v.to_string()),
        None => b.finish(),
    }
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let late = {
        let mut st = shared.state.lock();
        let f = &mut st.faults;
        let this = format!(
            "{} {}",
            req.method(),
            req.path().strip_prefix("/v1").unwrap_or("")
        );
        let matches = f
            .late_commit_request
            .as_deref()
            .map_or(true, |r| r.eq_ignore_ascii_case(&this));
        let api = req.path().starts_with("/v1/") && !req.path().starts_with("/v1/_sim");
        (f.late_commit_next > 0 && matches && api).then(|| {
            f.late_commit_next -= 1;
            f.late_commits_in_flight += 1;
            f.late_commits_taken += 1;
            Duration::from_millis(f.late_commit_ms)
        })
    };
    let Some(late) = late else {
        return process(req, body, shared).await;
    };
    // Detached, so the request is applied even when its caller hangs up or dies,
    // as a server that already took the request would.
    let work = actix_web::rt::spawn(async move {
        actix_web::rt::time::sleep(late).await;
        let response = process(req, body, shared.clone()).await;
        shared.state.lock().faults.late_commits_in_flight -= 1;
        response
    });
    match work.await {
        Ok(response) => response,
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn process(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some(path) = req.path().strip_prefix("/v1") else {
        return respond(Reply::not_found(), Vec::new());
    };
    let method = req.method().as_str().to_string();
    let query: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    if let Some(ctl) = path.strip_prefix("/_sim") {
        return respond(control(&shared, &method, ctl, &body), Vec::new());
    }
    let now = shared.clock.now();
    let (reply, headers, events, delay) = {
        let mut st = shared.state.lock();
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let authorized = auth
            .strip_prefix("Bearer ")
            .is_some_and(|k| st.api_keys.iter().any(|a| a == k.trim()));
        let reply = if !authorized {
            Reply::error(401, "UnauthorizedError", "Unauthorized")
        } else {
            match st.admit(now) {
                Err(wait) => {
                    let mut r = Reply::json(
                        429,
                        json!({"statusCode": 429, "name": "TooManyRequests", "message": "Too Many Requests"}),
                    );
                    r.headers.push(("Retry-After".into(), wait.to_string()));
                    r
                }
                Ok(()) if st.faults.fail_next > 0 => {
                    st.faults.fail_next -= 1;
                    Reply::error(500, "InternalServerError", "Internal Server Error")
                }
                Ok(()) => st.route(&method, path, &query, &body, now),
            }
        };
        let headers = st.rate_headers(now);
        let retry_after = reply
            .headers
            .iter()
            .find(|(k, _)| k == "Retry-After")
            .and_then(|(_, v)| v.parse().ok());
        st.requests.push(RequestRecord {
            at: now,
            method: method.clone(),
            path: path.to_string(),
            query: query.clone(),
            status: reply.status,
            retry_after,
        });
        let method_matches = st
            .faults
            .delay_method
            .as_deref()
            .map_or(true, |m| m == method);
        let delay = if st.faults.delay_next > 0
            && method_matches
            && reply.status != 429
            && reply.status != 401
        {
            st.faults.delay_next -= 1;
            Some(Duration::from_millis(st.faults.delay_ms))
        } else {
            None
        };
        let events = std::mem::take(&mut st.outbox);
        (reply, headers, events, delay)
    };
    shared.send_webhooks(events);
    if let Some(d) = delay {
        // Real time on purpose: the client's timeout is a real-time timer.
        actix_web::rt::time::sleep(d).await;
    }
    respond(reply, headers)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CtlLocation {
    name: String,
    #[serde(default = "yes")]
    sales_allowed: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CtlProduct {
    name: String,
    variants: Vec<CtlVariant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CtlVariant {
    sku: String,
    #[serde(default)]
    sales_price: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CtlStock {
    variant_id: i64,
    location_id: i64,
    in_stock: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CtlDeliver {
    #[serde(default)]
    rows: Option<Vec<CtlDeliverRow>>,
    #[serde(flatten)]
    tracking: TrackingIn,
}

#[derive(Deserialize)]
struct TrackingIn {
    #[serde(default)]
    tracking_number: Option<String>,
    #[serde(default)]
    tracking_url: Option<String>,
    #[serde(default)]
    tracking_carrier: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CtlDeliverRow {
    sales_order_row_id: i64,
    quantity: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CtlWebhook {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CtlFaults {
    fail_next: Option<u32>,
    delay_next: Option<u32>,
    delay_ms: Option<u64>,
    delay_method: Option<String>,
    late_commit_next: Option<u32>,
    late_commit_ms: Option<u64>,
    late_commit_request: Option<String>,
    rate_limit_enabled: Option<bool>,
    rate_limit: Option<u32>,
    exhaust_rate_limit: Option<bool>,
    drop_next_webhooks: Option<u32>,
    duplicate_next_webhooks: Option<u32>,
}

fn ctl_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::bad_request(&format!("control body: {e}")))
}

/// The `/_sim/...` control surface (JSON, no API key, not rate limited or counted).
fn control(shared: &Arc<Shared>, method: &str, path: &str, body: &[u8]) -> Reply {
    let now = shared.clock.now();
    let r: Result<Reply, Reply> = (|| {
        let mut st = shared.state.lock();
        let unproc = |e: String| Reply::unprocessable(&e);
        let out = match (method, path.trim_end_matches('/')) {
            ("POST", "/locations") => {
                let b: CtlLocation = ctl_body(body)?;
                Reply::json(
                    200,
                    json!({"id": st.add_location(&b.name, b.sales_allowed, now)}),
                )
            }
            ("POST", "/products") => {
                let b: CtlProduct = ctl_body(body)?;
                let vs: Result<Vec<(String, Quantity)>, String> = b
                    .variants
                    .iter()
                    .map(|v| {
                        v.sales_price
                            .as_deref()
                            .unwrap_or("0")
                            .parse::<Quantity>()
                            .map(|p| (v.sku.clone(), p))
                            .map_err(|e| e.to_string())
                    })
                    .collect();
                let ids = st
                    .add_product(&b.name, &vs.map_err(unproc)?, now)
                    .map_err(unproc)?;
                Reply::json(200, json!({"variant_ids": ids}))
            }
            ("POST", "/stock") => {
                let b: CtlStock = ctl_body(body)?;
                let q = crate::connectors::katana::model::quantity_from_value(&b.in_stock)
                    .map_err(unproc)?;
                st.set_stock(b.variant_id, b.location_id, q)
                    .map_err(unproc)?;
                Reply::empty(204)
            }
            ("GET", "/sales_orders") => Reply::json(200, json!({"data": st.all_sales_orders()})),
            ("GET", "/stats") => {
                drop(st);
                return Ok(Reply::json(
                    200,
                    json!({"requests": requests_summary(shared)}),
                ));
            }
            ("GET", "/requests") => Reply::json(200, json!({"data": st.requests})),
            ("GET", "/webhook_deliveries") => Reply::json(200, json!({"data": st.deliveries})),
            ("GET", "/faults") => Reply::json(200, json!(st.faults)),
            ("POST", "/faults") => {
                let b: CtlFaults = ctl_body(body)?;
                if let Some(n) = b.fail_next {
                    st.faults.fail_next = n;
                }
                if let Some(n) = b.delay_next {
                    st.faults.delay_next = n;
                    st.faults.delay_ms = b.delay_ms.unwrap_or(st.faults.delay_ms);
                    st.faults.delay_method = b.delay_method.map(|m| m.to_uppercase());
                }
                if let Some(n) = b.late_commit_next {
                    st.faults.late_commit_next = n;
                    st.faults.late_commit_ms = b.late_commit_ms.unwrap_or(st.faults.late_commit_ms);
                    st.faults.late_commit_request = b.late_commit_request;
                }
                if let Some(e) = b.rate_limit_enabled {
                    st.rate_limit_enabled = e;
                }
                if let Some(l) = b.rate_limit {
                    st.rate_limit = l.max(1);
                }
                if b.exhaust_rate_limit == Some(true) {
                    st.exhaust(now);
                }
                if let Some(n) = b.drop_next_webhooks {
                    st.faults.drop_next_webhooks = n;
                }
                if let Some(n) = b.duplicate_next_webhooks {
                    st.faults.duplicate_next_webhooks = n;
                }
                Reply::json(200, json!(st.faults))
            }
            ("POST", "/webhooks") => {
                let b: CtlWebhook = ctl_body(body)?;
                if let Some(bad) = b
                    .events
                    .iter()
                    .find(|e| !WEBHOOK_EVENTS.contains(&e.as_str()))
                {
                    return Err(Reply::unprocessable(&format!("unknown event {bad}")));
                }
                let w = st.add_webhook(b.url, b.events, b.token, true, None);
                Reply::json(200, SimState::webhook_json(&w))
            }
            ("POST", "/seed_demo") => {
                let cat = seed_demo(&mut st, now);
                Reply::json(200, json!(cat))
            }
            ("POST", p) => {
                // /sales_orders/{id}/deliver
                let parts: Vec<&str> = p.trim_matches('/').split('/').collect();
                match parts.as_slice() {
                    ["sales_orders", id, "deliver"] => {
                        let id: i64 = id.parse().map_err(|_| Reply::not_found())?;
                        let b: CtlDeliver = ctl_body(body)?;
                        let tracking = Tracking {
                            tracking_number: b.tracking.tracking_number,
                            tracking_url: b.tracking.tracking_url,
                            tracking_carrier: b.tracking.tracking_carrier,
                        };
                        let fid = match b.rows {
                            Some(rows) => {
                                let rows: Result<Vec<(i64, Quantity)>, String> = rows
                                    .iter()
                                    .map(|r| {
                                        crate::connectors::katana::model::quantity_from_value(
                                            &r.quantity,
                                        )
                                        .map(|q| (r.sales_order_row_id, q))
                                    })
                                    .collect();
                                st.fulfil(
                                    id,
                                    "DELIVERED",
                                    &rows.map_err(unproc)?,
                                    &tracking,
                                    None,
                                    now,
                                )
                                .map_err(unproc)?
                            }
                            None => st
                                .fulfil_remainder(id, "DELIVERED", &tracking, now)
                                .map_err(unproc)?
                                .ok_or_else(|| Reply::unprocessable("nothing left to deliver"))?,
                        };
                        Reply::json(200, json!({"fulfillment_id": fid}))
                    }
                    _ => Reply::not_found(),
                }
            }
            _ => Reply::not_found(),
        };
        let events = std::mem::take(&mut st.outbox);
        drop(st);
        shared.send_webhooks(events);
        Ok(out)
    })();
    r.unwrap_or_else(|e| e)
}

fn requests_summary(shared: &Arc<Shared>) -> Value {
    let st = shared.state.lock();
    let total = st.requests.len();
    let limited = st.requests.iter().filter(|r| r.status == 429).count();
    json!({"total": total, "rate_limited": limited})
}

fn seed_demo(st: &mut SimState, now: DateTime<Utc>) -> DemoCatalogue {
    let main = st.add_location("Main warehouse", true, now);
    let fbt = st.add_location("TikTok FBT", true, now);
    let no_sales = st.add_location("Workshop", false, now);
    let mut variants = Vec::new();
    for (name, sku, price, stock) in [
        ("Ceramic mug", "MUG-WHITE", 1_250_000, 40),
        ("Ceramic mug", "MUG-BLACK", 1_250_000, 25),
        ("Linen tote", "TOTE-NAT", 1_800_000, 60),
        ("Scented candle", "CANDLE-FIG", 2_200_000, 15),
    ] {
        let existing = st.variants.values().find(|v| v.sku == sku).map(|v| v.id);
        let id = match existing {
            Some(id) => id,
            None => match st.add_product(name, &[(sku.to_string(), Quantity(price))], now) {
                Ok(ids) => ids[0],
                Err(_) => continue,
            },
        };
        let _ = st.set_stock(id, main, Quantity::from_units(stock));
        let _ = st.set_stock(id, fbt, Quantity::from_units(5));
        variants.push((sku.to_string(), id));
    }
    DemoCatalogue {
        main_location_id: main,
        fbt_location_id: fbt,
        no_sales_location_id: no_sales,
        variants,
    }
}

/// Sends webhook events: each delivery is its own task so a slow receiver delays
/// nobody else; failures are retried on Katana's schedule through the clock.
async fn dispatch(
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
    http: reqwest::Client,
) {
    while let Some(ev) = rx.recv().await {
        let (drop_it, dup) = {
            let mut st = shared.state.lock();
            let f = &mut st.faults;
            let d = f.drop_next_webhooks > 0;
            if d {
                f.drop_next_webhooks -= 1;
            }
            let dup = !d && f.duplicate_next_webhooks > 0;
            if dup {
                f.duplicate_next_webhooks -= 1;
            }
            (d, dup)
        };
        if drop_it {
            record(&shared, &ev, 0, None, true);
            shared.webhooks_in_flight.done();
            continue;
        }
        if dup {
            shared.webhooks_in_flight.start();
        }
        for _ in 0..if dup { 2 } else { 1 } {
            tokio::spawn(deliver(ev.clone(), shared.clone(), http.clone()));
        }
    }
}

fn object_id(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("object")
                .and_then(|o| o.get("id"))
                .and_then(|i| i.as_str().map(str::to_string))
        })
        .unwrap_or_default()
}

fn record(shared: &Shared, ev: &Outgoing, attempt: u32, status: Option<u16>, dropped: bool) {
    let at = shared.clock.now();
    shared.state.lock().deliveries.push(DeliveryRecord {
        webhook_id: ev.webhook_id,
        event: ev.event.clone(),
        object_id: object_id(&ev.body),
        attempt,
        at,
        status,
        dropped,
        body: String::from_utf8_lossy(&ev.body).into_owned(),
    });
}

async fn deliver(ev: Outgoing, shared: Arc<Shared>, http: reqwest::Client) {
    let signature = sign(&ev.token, &ev.body);
    for attempt in 0..=WEBHOOK_RETRY_DELAYS.len() as u32 {
        if attempt > 0 {
            shared
                .clock
                .sleep(WEBHOOK_RETRY_DELAYS[attempt as usize - 1])
                .await;
            shared.webhooks_in_flight.start();
        }
        let mut req = http
            .post(&ev.url)
            .header("content-type", "application/json")
            .header("x-sha2-signature", &signature)
            .body(ev.body.clone());
        if attempt > 0 {
            req = req.header("X-Katana-Retry-Num", attempt.to_string());
        }
        let status = req.send().await.ok().map(|r| r.status().as_u16());
        record(&shared, &ev, attempt, status, false);
        shared.webhooks_in_flight.done();
        if status.is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
    }
}
