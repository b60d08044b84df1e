//! The operator API (F23): health, metrics, orders and SKUs with their events,
//! open exceptions, and the per-SKU channel sync toggle (F12).
//!
//! Access: everything under `/api` needs `Authorization: Bearer <server.admin_token>`,
//! compared in constant time. Without a configured token `/api` stays closed (403
//! naming `TKS_SERVER__ADMIN_TOKEN`): an unset secret must never mean "open".
//! `/health` and `/metrics` are unauthenticated on purpose: load balancers and
//! Prometheus scrapers rarely carry credentials, and neither endpoint reveals order
//! contents or secrets (counts, the log head and which connectors are configured).
//! Bind the server to loopback (the default) or a private network accordingly.
//!
//! Errors are JSON `{"error": "..."}` with the status that says whose fault it is.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::{command_error, error, store_error};
use super::ports::ApiPorts;
use crate::actors::Execute;
use crate::domain::order::Order;
use crate::domain::sku::{Sku, SkuCommand};
use crate::domain::Aggregate;
use crate::names::subscriber;
use crate::store::{RecordedEvent, UnitOfWork};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics))
        .service(
            web::scope("/api")
                .wrap(from_fn(require_admin))
                .route("/orders/{id}", web::get().to(order))
                .route("/orders/{id}/events", web::get().to(order_events))
                .route("/orders/{id}/label", web::get().to(order_label))
                .route("/skus/{sku}", web::get().to(sku))
                .route("/skus/{sku}/sync", web::post().to(toggle_sync))
                .route("/exceptions", web::get().to(exceptions))
                .route("/shops", web::get().to(super::shops::shops))
                .default_service(web::to(unknown_route)),
        );
}

/// A refused request, turned into its response at the edge (small to pass around).
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    fn response(self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            r.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"tks\""));
        }
        r.json(json!({ "error": self.message }))
    }
}

// ----- access ------------------------------------------------------------------------

/// Why a request may not use the API.
fn authorize(ports: &ApiPorts, authorization: Option<&str>) -> Result<(), Refusal> {
    let expected = ports.settings.server.admin_token.expose();
    if expected.is_empty() {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "the operator API is disabled: no admin token is configured; set TKS_SERVER__ADMIN_TOKEN \
             (or server.admin_token) and send it as `Authorization: Bearer <token>`",
        ));
    }
    let unauthorized = |message: &str| Refusal::new(StatusCode::UNAUTHORIZED, message);
    let Some(value) = authorization else {
        return Err(unauthorized(
            "missing `Authorization: Bearer <token>` (the token is server.admin_token)",
        ));
    };
    let presented = match value.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ))
        }
    };
    // Comparing digests keeps the comparison constant-time in the length too.
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    if bool::from(a.ct_eq(&b)) {
        Ok(())
    } else {
        Err(unauthorized("wrong admin token"))
    }
}

async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<ApiPorts>>() {
        Some(ports) => authorize(
            ports,
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        ),
        None => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the API is not configured",
        )),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => Ok(req.into_response(refusal.response()).map_into_right_body()),
    }
}

async fn unknown_route() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "no such API endpoint: see /api/orders/{id}, /api/orders/{id}/events, \
         /api/orders/{id}/label, /api/skus/{sku}, \
         POST /api/skus/{sku}/sync, /api/exceptions",
    )
}

// ----- unauthenticated -----------------------------------------------------------------

/// How long the health check waits for its probe write.
const HEALTH_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// 200 while the service can do its job; 503 ("degraded") while the store cannot
/// write (disk full, read-only file system), since then no webhook can be accepted.
/// Subscribers retrying an event are listed either way: an API outage is theirs
/// to wait out, not a reason to restart the service. A subscriber stopped on an
/// event it cannot decode makes the status "degraded" but keeps the 200: webhooks
/// are still accepted, and a restart of the same build would stop it again.
async fn health(ports: web::Data<ApiPorts>) -> HttpResponse {
    let probe = UnitOfWork {
        checkpoint: Some((subscriber::HEALTH_PROBE.into(), ports.store.head())),
        ..Default::default()
    };
    let store = match tokio::time::timeout(HEALTH_WRITE_TIMEOUT, ports.store.commit(probe)).await {
        Ok(Ok(_)) => json!({ "writable": true }),
        Ok(Err(e)) => json!({ "writable": false, "error": e.to_string() }),
        Err(_) => json!({ "writable": false, "error": "no write completed within 3 s" }),
    };
    let writable = store["writable"] == true;
    let stopped = ports.feeds.stops();
    let body = json!({
        "status": if writable && stopped.is_empty() { "ok" } else { "degraded" },
        "log_head": ports.store.head(),
        "store": store,
        "connectors": {
            "tiktok": { "configured": ports.shops.is_some() },
            "katana": { "configured": ports.katana_configured },
        },
        "not_configured": crate::console::health::missing_json(&ports.settings),
        "retrying": ports.feeds.stalls(),
        "stopped": stopped,
    });
    if writable {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(ports: web::Data<ApiPorts>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(ports.metrics.render() + &ports.feeds.render())
}

// ----- orders and SKUs -------------------------------------------------------------------

/// The last sequence number of a stream, or the 404 for one that has no events.
/// Checked in the log first so a lookup of a wrong id never starts an actor.
fn existing(ports: &ApiPorts, stream: &str, what: &str) -> Result<u64, Refusal> {
    match ports.store.stream_seq(stream) {
        Ok(0) => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no events for {what}"),
        )),
        Ok(seq) => Ok(seq),
        Err(e) => Err(Refusal::new(super::errors::store_status(&e), e.to_string())),
    }
}

fn event_json(e: &RecordedEvent) -> Value {
    // Payloads are JSON written by the domain codec; a payload that is not (never
    // expected) is still shown rather than hidden.
    let payload = serde_json::from_str::<Value>(&e.payload)
        .unwrap_or_else(|_| Value::String(e.payload.clone()));
    json!({
        "position": e.position,
        "seq": e.seq,
        "type": e.event_type,
        "version": e.version,
        "payload": payload,
        "recorded_at": e.meta.recorded_at,
        "event_id": e.meta.event_id,
        "correlation": e.meta.correlation_id,
        "causation": e.meta.causation_id,
    })
}

async fn order(ports: web::Data<ApiPorts>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    let stream = Order::stream_id(&id);
    if let Err(r) = existing(&ports, &stream, &format!("order {id}")) {
        return r.response();
    }
    match ports.commands.orders.state(&id).await {
        Ok((state, seq)) => HttpResponse::Ok().json(json!({
            "order_id": id,
            "stream": stream,
            "seq": seq,
            "state": state,
        })),
        Err(e) => command_error(e),
    }
}

/// F25: a fresh label for each package TikTok arranged (TikTok's URLs expire after
/// 24 h, so one is never served from the log).
async fn order_label(ports: web::Data<ApiPorts>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    let stream = Order::stream_id(&id);
    if let Err(r) = existing(&ports, &stream, &format!("order {id}")) {
        return r.response();
    }
    let state = match ports.commands.orders.state(&id).await {
        Ok((state, _)) => state,
        Err(e) => return command_error(e),
    };
    if state.arranged_packages.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("order {id} has no shipment arranged with TikTok's label"),
        );
    }
    // The label belongs to the shop the order was placed in: another shop's
    // cipher would not find its package.
    let key = state
        .snapshot
        .as_ref()
        .map(|s| s.shop_id.clone())
        .unwrap_or_default();
    let Some(shop) = ports.shops.as_ref().and_then(|s| s.by_key(&key)) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("TikTok is not configured for the shop of order {id}"),
        );
    };
    let tiktok = &shop.client;
    let now = ports.clock.now();
    let mut labels = Vec::new();
    for package_id in state.arranged_packages.keys().flat_map(|p| p.split(',')) {
        let label = tiktok.shipping_label(package_id).await;
        ports
            .metrics
            .tiktok_call(&shop.settings.id, "shipping_label", label.is_ok());
        match label {
            Ok(l) => labels.push(json!({
                "package_id": package_id,
                "tracking_number": l.tracking_number,
                "label_url": l.doc_url,
                "expires_at": now + chrono::Duration::hours(24),
            })),
            Err(e) => {
                return error(
                    StatusCode::BAD_GATEWAY,
                    format!("TikTok did not issue the label of package {package_id}: {e}"),
                )
            }
        }
    }
    HttpResponse::Ok().json(json!({ "order_id": id, "labels": labels }))
}

async fn order_events(ports: web::Data<ApiPorts>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    let stream = Order::stream_id(&id);
    match ports.store.read_stream(&stream, 0) {
        Ok(events) if events.is_empty() => {
            error(StatusCode::NOT_FOUND, format!("no events for order {id}"))
        }
        Ok(events) => HttpResponse::Ok().json(json!({
            "order_id": id,
            "stream": stream,
            "events": events.iter().map(event_json).collect::<Vec<_>>(),
        })),
        Err(e) => store_error(e),
    }
}

async fn sku(ports: web::Data<ApiPorts>, sku: web::Path<String>) -> HttpResponse {
    let sku = sku.into_inner();
    let stream = Sku::stream_id(&sku);
    if let Err(r) = existing(&ports, &stream, &format!("SKU {sku}")) {
        return r.response();
    }
    let safety_stock = ports.settings.sync.safety_stock;
    match ports.commands.skus.state(&sku).await {
        Ok((state, seq)) => HttpResponse::Ok().json(json!({
            "sku": sku,
            "stream": stream,
            "seq": seq,
            // Streams start at seq 1 and never skip, so the last seq is the count.
            "events": seq,
            "safety_stock": safety_stock,
            "atp": state.atp(safety_stock),
            "shops": super::shops::sku_offers(&ports, &state),
            "state": state,
        })),
        Err(e) => command_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncToggle {
    enabled: bool,
}

async fn toggle_sync(
    ports: web::Data<ApiPorts>,
    sku: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let sku = sku.into_inner();
    // Through `Value` because serde would also take a struct from an array (`[true]`).
    let parsed = serde_json::from_slice::<Value>(&body).and_then(|v| match v {
        Value::Object(_) => serde_json::from_value::<SyncToggle>(v),
        _ => Err(serde::de::Error::custom("not a JSON object")),
    });
    let toggle = match parsed {
        Ok(t) => t,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body must be JSON {{\"enabled\": true|false}}: {e}"),
            )
        }
    };
    // A SKU that exists nowhere (no events, in neither catalogue) is a typo: do
    // not create a stream for it.
    let known = !ports.catalogue.tiktok_listings(&sku).is_empty()
        || ports.catalogue.variant_for(&sku).is_some();
    if !known {
        if let Err(refusal) = existing(&ports, &format!("sku-{sku}"), "SKU") {
            return refusal.response();
        }
    }
    let command = SkuCommand::ToggleSync {
        enabled: toggle.enabled,
    };
    match ports
        .commands
        .skus
        .execute(&sku, Execute::new(command))
        .await
    {
        Ok(events) => HttpResponse::Ok().json(json!({
            "sku": sku,
            "sync_enabled": toggle.enabled,
            // Toggling to the current value records nothing.
            "changed": !events.is_empty(),
            "events": events
                .iter()
                .map(|e| json!({ "position": e.position, "seq": e.seq, "type": e.event_type }))
                .collect::<Vec<_>>(),
        })),
        Err(e) => command_error(e),
    }
}

async fn exceptions(ports: web::Data<ApiPorts>) -> HttpResponse {
    match crate::operator::open_exceptions(ports.store.as_ref()) {
        Ok(list) => HttpResponse::Ok().json(crate::operator::exceptions_json(&list)),
        Err(e) => store_error(e),
    }
}
