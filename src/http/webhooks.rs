//! Inbound webhooks. Each is verified on its raw bytes (401 and no effect when the
//! signature is wrong), parsed (400 when malformed), and recorded durably as a
//! signal on the stream it concerns, deduplicated, before the 200 goes out. The
//! signal makes a connector re-read the object: the payloads are thin by design.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::errors;
use super::ports::WebhookPorts;
use crate::actors::{CommandError, Execute};
use crate::connectors::katana::webhook as katana_webhook;
use crate::connectors::tiktok::webhook as tiktok_webhook;
use crate::domain::order::{OrderCommand, Signaller};
use crate::domain::sku::SkuCommand;
use crate::store::{InboxEntry, StoreError, UnitOfWork};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/tiktok", web::post().to(tiktok))
        .route("/webhooks/katana", web::post().to(katana));
}

fn refuse(status: u16, message: &str) -> HttpResponse {
    errors::error(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        message,
    )
}

/// The outcome of recording one delivery.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Recorded {
    New,
    Duplicate,
    /// Not durable: answered 503 so the sender delivers it again.
    Failed,
}

fn recorded(result: Result<(), CommandError>) -> Recorded {
    match result {
        Ok(()) => Recorded::New,
        Err(CommandError::Store(StoreError::Duplicate { .. })) => Recorded::Duplicate,
        Err(e) => {
            tracing::error!(error = %e, "webhook not recorded; the sender will retry");
            Recorded::Failed
        }
    }
}

async fn inbox_only(ports: &WebhookPorts, entry: InboxEntry) -> Recorded {
    let unit = UnitOfWork {
        inbox: Some(entry),
        ..Default::default()
    };
    recorded(
        ports
            .store
            .commit(unit)
            .await
            .map(|_| ())
            .map_err(CommandError::Store),
    )
}

fn answer(ports: &WebhookPorts, source: &str, started: Instant, r: Recorded) -> HttpResponse {
    let outcome = match r {
        Recorded::New => "recorded",
        Recorded::Duplicate => "duplicate",
        Recorded::Failed => "failed",
    };
    ports.metrics.webhook(source, outcome, started.elapsed());
    match r {
        Recorded::Failed => {
            errors::error(errors::WEBHOOK_NOT_RECORDED, "not recorded, retry later")
        }
        _ => HttpResponse::Ok().finish(),
    }
}

/// The body as the audit copy keeps it: the exact signed bytes, so a body that is
/// not UTF-8 (neither API sends one) is refused rather than stored altered.
fn utf8_payload(
    ports: &WebhookPorts,
    source: &str,
    started: Instant,
    body: &[u8],
) -> Option<String> {
    match std::str::from_utf8(body) {
        Ok(s) => Some(s.to_string()),
        Err(_) => {
            ports
                .metrics
                .webhook(source, "malformed", started.elapsed());
            None
        }
    }
}

async fn tiktok(
    ports: web::Data<WebhookPorts>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let started = Instant::now();
    let s = &ports.settings.tiktok;
    if s.app_key.is_empty() || s.app_secret.is_empty() {
        // Without the secret anyone could compute the "signature": refuse, and say
        // why, rather than accept what cannot be checked.
        ports
            .metrics
            .webhook("tiktok", "unconfigured", started.elapsed());
        return refuse(
            503,
            "TikTok webhooks cannot be verified: tiktok.app_key and tiktok.app_secret must both be set",
        );
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(e) = tiktok_webhook::verify(&s.app_key, s.app_secret.expose(), &body, auth) {
        ports
            .metrics
            .webhook("tiktok", "unauthorized", started.elapsed());
        return refuse(e.http_status(), &e.to_string());
    }
    let Some(payload) = utf8_payload(&ports, "tiktok", started, &body) else {
        return refuse(400, "webhook body is not UTF-8");
    };
    let note = match tiktok_webhook::parse(&body) {
        Ok(n) => n,
        Err(e) => {
            ports
                .metrics
                .webhook("tiktok", "malformed", started.elapsed());
            return refuse(e.http_status(), &e.to_string());
        }
    };
    let entry = InboxEntry {
        source: "tiktok".into(),
        delivery_id: note.notification_id.clone(),
        received_at: ports.clock.now(),
        payload,
    };
    let shops = &ports.shops;
    // A shop this instance does not serve: recorded and answered 200 (TikTok would
    // retry a refusal for days), but no order is touched. A single shop configured
    // without its id serves whatever shop the app's webhooks are for.
    let foreign = !shops
        .iter()
        .any(|s| s.shop_id.is_empty() || s.shop_id == note.shop_id);
    if foreign {
        tracing::info!(shop_id = %note.shop_id, "webhook for a shop this instance does not serve");
        ports
            .metrics
            .webhook("tiktok", "foreign_shop", started.elapsed());
        return answer(&ports, "tiktok", started, inbox_only(&ports, entry).await);
    }
    let result = match &note.order_id {
        Some(order_id) => {
            let mut msg = Execute::new(OrderCommand::Signal {
                by: Signaller::TikTok,
                delivery_id: note.notification_id.clone(),
                what: format!("{:?}", note.kind),
                shop: shops.event_key(&note.shop_id).to_string(),
            });
            msg.inbox = Some(entry);
            recorded(
                ports
                    .commands
                    .orders
                    .execute(order_id, msg)
                    .await
                    .map(|_| ()),
            )
        }
        None => inbox_only(&ports, entry).await,
    };
    answer(&ports, "tiktok", started, result)
}

async fn katana(
    ports: web::Data<WebhookPorts>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let started = Instant::now();
    let signature = req
        .headers()
        .get("x-sha2-signature")
        .and_then(|v| v.to_str().ok());
    let token = ports.katana_webhook_token.read().clone();
    if token.is_empty() {
        ports
            .metrics
            .webhook("katana", "unconfigured", started.elapsed());
        return refuse(
            503,
            "Katana webhooks cannot be verified: set katana.webhook_token (or server.public_url to register the webhook)",
        );
    }
    if let Err(e) = katana_webhook::verify(token.expose(), &body, signature) {
        ports
            .metrics
            .webhook("katana", "unauthorized", started.elapsed());
        return refuse(e.http_status(), &e.to_string());
    }
    let Some(payload) = utf8_payload(&ports, "katana", started, &body) else {
        return refuse(400, "webhook body is not UTF-8");
    };
    let event = match katana_webhook::parse(&body) {
        Ok(e) => e,
        Err(e) => {
            ports
                .metrics
                .webhook("katana", "malformed", started.elapsed());
            return refuse(e.http_status(), &e.to_string());
        }
    };
    // Katana sends no delivery id. `.delivered` and `.updated` arrive together for
    // one change, so deliveries are keyed by object and status within a minute: the
    // pair costs one re-read of Katana's scarce budget, and the poll backstops a
    // genuinely new change that looked identical within that minute.
    //
    // Stock webhooks are the exception: two changes of one variant within a minute
    // look identical, and the second is the one TikTok must see before it oversells.
    // Each is recorded; their re-reads are coalesced into one list call anyway.
    let minute = ports.clock.now().timestamp() / 60;
    let is_stock = event.resource_type.starts_with("current_inventory")
        || event.event.starts_with("current_inventory");
    let delivery_id = if is_stock {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        hex::encode(Sha256::digest(format!(
            "{}|{}|{}|{minute}",
            event.resource_type,
            event.object_id,
            event.status.as_deref().unwrap_or("")
        )))
    };
    let entry = |suffix: &str| InboxEntry {
        source: "katana".into(),
        delivery_id: format!("{delivery_id}{suffix}"),
        received_at: ports.clock.now(),
        payload: payload.clone(),
    };
    let object_id = event.object_id_int();
    let result = if event.resource_type == "sales_order" {
        let stream = match object_id {
            Some(id) => ports
                .store
                .lookup(crate::names::lookup::SO, &id.to_string()),
            None => Ok(None),
        };
        match stream {
            Ok(Some(stream)) => {
                let mut msg = Execute::new(OrderCommand::Signal {
                    by: Signaller::Katana,
                    delivery_id: delivery_id.clone(),
                    what: event.event.clone(),
                    shop: String::new(),
                });
                msg.inbox = Some(entry(""));
                recorded(
                    ports
                        .commands
                        .orders
                        .execute_on_stream(&stream, msg)
                        .await
                        .map(|_| ()),
                )
            }
            // Not one of ours (or not yet recorded): keep the delivery, nothing to do.
            Ok(None) => inbox_only(&ports, entry("")).await,
            Err(e) => recorded(Err(CommandError::Store(e))),
        }
    } else if is_stock {
        let skus = object_id
            .map(|v| ports.catalogue.seller_skus_for_variant(v))
            .unwrap_or_default();
        if skus.is_empty() {
            inbox_only(&ports, entry("")).await
        } else {
            let mut outcome = Recorded::Duplicate;
            for sku in skus {
                let mut msg = Execute::new(SkuCommand::Signal {
                    delivery_id: delivery_id.clone(),
                    what: event.event.clone(),
                });
                msg.inbox = Some(entry(&format!("#{sku}")));
                match recorded(ports.commands.skus.execute(&sku, msg).await.map(|_| ())) {
                    Recorded::New => outcome = Recorded::New,
                    Recorded::Duplicate => {}
                    Recorded::Failed => {
                        outcome = Recorded::Failed;
                        break;
                    }
                }
            }
            outcome
        }
    } else {
        inbox_only(&ports, entry("")).await
    };
    answer(&ports, "katana", started, result)
}
