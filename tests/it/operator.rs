//! The operator surface over HTTP: the bearer-protected `/api`, `/metrics`, the
//! TikTok OAuth callback, `tks check` and `tks connect` against both simulators,
//! and the `tks exceptions` CLI, all with a manual clock.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use serde_json::{json, Value};

use tks::actors::Execute;
use tks::app::{start, AppHandle, StartOptions};
use tks::check::{CheckOptions, CheckReport, Status};
use tks::clock::ManualClock;
use tks::config::{FbtMode, Secret, Settings};
use tks::connectors::tiktok::auth::token_file_for;
use tks::connectors::tiktok::{ClientOptions, FileTokenStore, TokenStore};
use tks::connectors::Backoff;
use tks::domain::observed::{
    FulfillmentType, LineUnit, OrderSnapshot, Quantity, StockLevel, TikTokOrderStatus,
};
use tks::domain::order::{OrderCommand, Source};
use tks::domain::sku::SkuCommand;
use tks::sandbox::katana::{DemoCatalogue, KatanaSim, KatanaSimConfig};
use tks::sandbox::tiktok::{SimConfig, TikTokSim, MAIN_WAREHOUSE, RETURN_WAREHOUSE};

const ADMIN: &str = "admin-token-for-tests";

fn client_options() -> ClientOptions {
    ClientOptions {
        backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(20),
            max_attempts: 1,
        },
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

fn check_options() -> CheckOptions {
    CheckOptions {
        tiktok_client: ClientOptions {
            refresh_margin: Duration::ZERO,
            ..client_options()
        },
        katana_timeout: Duration::from_secs(5),
        katana_backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(20),
            max_attempts: 1,
        },
        token_file: None,
    }
}

/// Both simulators, seeded, and settings that point at them with a database in a
/// fresh directory.
struct Sims {
    manual: ManualClock,
    tiktok: TikTokSim,
    katana: KatanaSim,
    cat: DemoCatalogue,
    dir: tempfile::TempDir,
}

impl Sims {
    fn start() -> Sims {
        let manual = ManualClock::at_epoch();
        let tiktok = TikTokSim::start(SimConfig::demo(), manual.clock()).unwrap();
        tiktok.seed_demo_catalogue();
        let katana = KatanaSim::start(KatanaSimConfig::default(), manual.clock()).unwrap();
        let cat = katana.seed_demo_catalogue();
        Sims {
            manual,
            tiktok,
            katana,
            cat,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> String {
        self.dir.path().join("tks.db").display().to_string()
    }

    fn token_file(&self) -> PathBuf {
        token_file_for(&self.db())
    }

    /// A configuration that passes every check.
    fn settings(&self) -> Settings {
        let cfg = self.tiktok.config();
        let mut s = Settings::default();
        s.store.path = self.db();
        s.server.admin_token = Secret::new(ADMIN);
        s.tiktok.api_base = self.tiktok.base_url();
        s.tiktok.auth_base = self.tiktok.auth_base_url();
        s.tiktok.app_key = cfg.app_key.clone();
        s.tiktok.app_secret = Secret::new(cfg.app_secret.clone());
        s.tiktok.shop_id = cfg.shop_id.clone();
        s.tiktok.requests_per_second = 0;
        s.katana.api_base = self.katana.base_url().to_string();
        s.katana.api_key = Secret::new(self.katana.api_key());
        s.sync.safety_stock = 2;
        s.sync.fbt_orders = FbtMode::RecordAsDone;
        s.warehouses.pickup_warehouse_id = MAIN_WAREHOUSE.into();
        s.warehouses.return_warehouse_id = RETURN_WAREHOUSE.into();
        s.warehouses.pickup_location_id = self.cat.main_location_id;
        s.warehouses.return_location_id = self.cat.main_location_id;
        s.warehouses.fbt_location_id = self.cat.fbt_location_id;
        s
    }

    /// Katana variants for the TikTok demo SKUs, so the catalogues match.
    fn match_catalogues(&self) {
        for sku in ["MUG-RED", "MUG-BLUE", "CAP-1"] {
            self.katana.add_product(sku, &[(sku, "10.00")]).unwrap();
        }
    }

    async fn connect(&self, settings: &Settings) {
        tks::operator::connect_tiktok(
            settings,
            self.manual.clock(),
            &self.tiktok.issue_auth_code(),
            client_options(),
            None,
        )
        .await
        .unwrap();
    }

    async fn check(&self, settings: &Settings) -> CheckReport {
        tks::check::run(settings, self.manual.clock(), &check_options()).await
    }

    async fn serve(&self, settings: Settings) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let app = start(
            settings,
            self.manual.clock(),
            listener,
            StartOptions {
                tiktok_client: client_options(),
                katana_timeout: Duration::from_secs(5),
                token_file: None,
                pollers: false,
            },
        )
        .await
        .unwrap();
        Service {
            base: app.base_url(),
            app,
            http: reqwest::Client::new(),
        }
    }

    async fn stop(self) {
        self.tiktok.stop().await;
        self.katana.stop().await;
    }
}

struct Service {
    app: AppHandle,
    base: String,
    http: reqwest::Client,
}

impl Service {
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut rb = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// An authorised API call answering JSON.
    async fn api(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path, Some(ADMIN)).await;
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {body}"));
        (status, json)
    }

    async fn post_sync(&self, sku: &str, body: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/skus/{sku}/sync", self.base))
            .header("Authorization", format!("Bearer {ADMIN}"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn place_order(&self, id: &str, sku: &str, units: usize, at: &ManualClock) {
        let now = at.now();
        let snapshot = OrderSnapshot {
            shop_id: String::new(),
            order_id: id.into(),
            status: TikTokOrderStatus::AwaitingShipment,
            fulfillment_type: FulfillmentType::FulfillmentBySeller,
            shipping_type: Default::default(),
            create_time: now,
            update_time: now,
            currency: "USD".into(),
            warehouse_id: Some(MAIN_WAREHOUSE.into()),
            recipient: None,
            buyer_email: None,
            units: (0..units)
                .map(|i| LineUnit {
                    line_item_id: format!("{id}-{i}"),
                    sku_id: format!("sku-{sku}"),
                    seller_sku: sku.into(),
                    sale_price: "12.50".into(),
                    cancelled: false,
                    shipped: false,
                })
                .collect(),
        };
        self.app
            .services
            .commands
            .orders
            .execute(
                id,
                Execute::new(OrderCommand::observe(snapshot, Source::Webhook)),
            )
            .await
            .unwrap();
    }

    /// Polls `path` (real time, bounded) until `done` accepts its JSON.
    async fn api_until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.api(path).await;
            if status == 200 && done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never got there: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ----- access ------------------------------------------------------------------------

#[actix::test]
async fn api_needs_the_admin_bearer_token() {
    let sims = Sims::start();
    let svc = sims.serve(sims.settings()).await;
    for path in ["/api/exceptions", "/api/orders/1", "/api/no-such-thing"] {
        let (status, body) = svc.get(path, None).await;
        assert_eq!(status, 401, "{path} without a token: {body}");
        assert!(body.contains("Authorization"), "{body}");
        let (status, body) = svc.get(path, Some("not-the-token")).await;
        assert_eq!(status, 401, "{path} with a wrong token: {body}");
        // A token of the right length but different content is refused as well.
        let (status, _) = svc.get(path, Some(&"x".repeat(ADMIN.len()))).await;
        assert_eq!(status, 401);
    }
    let resp = svc
        .http
        .get(format!("{}/api/exceptions", svc.base))
        .header("Authorization", format!("Basic {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        401,
        "only the Bearer scheme is accepted"
    );
    assert!(resp.headers().contains_key("www-authenticate"));

    let (status, body) = svc.api("/api/exceptions").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"count": 0, "exceptions": []}));
    // With the right token an unknown endpoint is a JSON 404, not a 401.
    let (status, body) = svc.api("/api/no-such-thing").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("/api/orders/{id}"));
    svc.app.stop().await;
    sims.stop().await;
}

#[actix::test]
async fn api_is_closed_when_no_admin_token_is_configured() {
    let sims = Sims::start();
    let mut settings = sims.settings();
    settings.server.admin_token = Secret::default();
    let svc = sims.serve(settings).await;
    for token in [None, Some(""), Some(ADMIN)] {
        let (status, body) = svc.get("/api/exceptions", token).await;
        assert_eq!(status, 403, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("TKS_SERVER__ADMIN_TOKEN"),
            "{body}"
        );
    }
    // Health and metrics stay reachable for probes and scrapers.
    assert_eq!(svc.get("/health", None).await.0, 200);
    assert_eq!(svc.get("/metrics", None).await.0, 200);
    svc.app.stop().await;
    sims.stop().await;
}

// ----- orders, SKUs, exceptions -----------------------------------------------------------

#[actix::test]
async fn order_state_and_events_are_served_and_unknown_orders_are_404() {
    let sims = Sims::start();
    let svc = sims.serve(sims.settings()).await;
    svc.place_order("576000000000000001", "MUG-RED", 2, &sims.manual)
        .await;

    let (status, body) = svc.api("/api/orders/576000000000000001").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["order_id"], "576000000000000001");
    assert_eq!(body["stream"], "order-576000000000000001");
    assert_eq!(body["seq"], 1);
    assert_eq!(body["state"]["snapshot"]["order_id"], "576000000000000001");
    assert_eq!(
        body["state"]["snapshot"]["units"].as_array().unwrap().len(),
        2
    );
    let hold_until = sims.manual.now() + ChronoDuration::hours(1);
    assert_eq!(
        body["state"]["hold_until"],
        json!(hold_until),
        "the default 60m hold from create_time"
    );

    let (status, body) = svc.api("/api/orders/576000000000000001/events").await;
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{body}");
    let e = &events[0];
    assert_eq!(e["type"], "OrderPlaced");
    assert_eq!(e["seq"], 1);
    assert_eq!(e["version"], 2);
    assert!(e["position"].as_u64().unwrap() >= 1);
    assert_eq!(e["payload"]["snapshot"]["order_id"], "576000000000000001");
    assert_eq!(e["payload"]["source"], "Webhook");
    assert_eq!(e["recorded_at"], json!(sims.manual.now()));
    assert_eq!(
        e["correlation"], e["event_id"],
        "a root event starts its correlation"
    );
    assert!(e["causation"].is_null());

    for path in ["/api/orders/999", "/api/orders/999/events"] {
        let (status, body) = svc.api(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains("999"), "{body}");
    }
    svc.app.stop().await;
    sims.stop().await;
}

#[actix::test]
async fn sku_shows_its_atp_and_the_sync_toggle_is_recorded() {
    let sims = Sims::start();
    let svc = sims.serve(sims.settings()).await;
    let skus = &svc.app.services.commands.skus;
    skus.execute(
        "MUG-RED",
        Execute::new(SkuCommand::ObserveStock(vec![StockLevel {
            variant_id: 1,
            location_id: sims.cat.main_location_id,
            in_stock: Quantity::from_units(10),
            committed: Quantity::from_units(3),
        }])),
    )
    .await
    .unwrap();
    // Two units sold on TikTok, not yet in Katana, hold stock back (F10).
    svc.place_order("576000000000000002", "MUG-RED", 2, &sims.manual)
        .await;
    let body = svc
        .api_until("/api/skus/MUG-RED", |b| {
            b["state"]["demand"]["576000000000000002"] == 2
        })
        .await;
    // 10 in stock - 3 committed - 2 pending - safety stock 2
    assert_eq!(body["atp"], 3, "{body}");
    assert_eq!(body["safety_stock"], 2);
    assert_eq!(body["state"]["sync_enabled"], true);
    let events_before = body["events"].as_u64().unwrap();
    assert_eq!(body["seq"].as_u64(), Some(events_before));
    assert!(events_before >= 2, "{body}");

    let (status, body) = svc.post_sync("MUG-RED", r#"{"enabled": false}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true);
    assert_eq!(body["sync_enabled"], false);
    assert_eq!(body["events"][0]["type"], "ChannelSyncToggled");
    let log = svc
        .app
        .services
        .store
        .read_stream("sku-MUG-RED", events_before)
        .unwrap();
    assert_eq!(log[0].event_type, "ChannelSyncToggled");
    assert_eq!(log[0].payload, r#"{"enabled":false}"#);
    let (_, body) = svc.api("/api/skus/MUG-RED").await;
    assert_eq!(body["state"]["sync_enabled"], false);
    assert_eq!(body["events"].as_u64(), Some(events_before + 1));

    // The same value again records nothing.
    let (status, body) = svc.post_sync("MUG-RED", r#"{"enabled": false}"#).await;
    assert_eq!(status, 200);
    assert_eq!(body["changed"], false);

    for bad in [
        "",
        "enabled=false",
        "{}",
        r#"{"enabled": "no"}"#,
        r#"{"enabled": false, "also": 1}"#,
        "[true]",
    ] {
        let (status, body) = svc.post_sync("MUG-RED", bad).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("enabled"),
            "{body}"
        );
    }
    let (_, body) = svc.api("/api/skus/MUG-RED").await;
    assert_eq!(
        body["events"].as_u64(),
        Some(events_before + 1),
        "refused bodies record nothing"
    );

    let (status, _) = svc.api("/api/skus/NO-SUCH-SKU").await;
    assert_eq!(status, 404);
    // A toggle for a SKU that exists nowhere is a 404 and creates no stream.
    let (status, body) = svc.post_sync("NO-SUCH-SKU", r#"{"enabled": false}"#).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        svc.app
            .services
            .store
            .stream_seq("sku-NO-SUCH-SKU")
            .unwrap(),
        0
    );
    svc.app.stop().await;
    sims.stop().await;
}

#[actix::test]
async fn open_exceptions_are_listed_until_resolved() {
    let sims = Sims::start();
    let svc = sims.serve(sims.settings()).await;
    svc.place_order("576000000000000003", "MUG-RED", 1, &sims.manual)
        .await;
    let orders = &svc.app.services.commands.orders;
    orders
        .execute(
            "576000000000000003",
            Execute::new(OrderCommand::RaiseException {
                key: "so-rejected".into(),
                message: "Katana refused the sales order: Location has selling disabled".into(),
            }),
        )
        .await
        .unwrap();
    let (status, body) = svc.api("/api/exceptions").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"count": 1, "exceptions": [{
            "stream": "order-576000000000000003",
            "kind": "order",
            "id": "576000000000000003",
            "key": "so-rejected",
            "message": "Katana refused the sales order: Location has selling disabled",
        }]})
    );
    orders
        .execute(
            "576000000000000003",
            Execute::new(OrderCommand::ResolveException {
                key: "so-rejected".into(),
            }),
        )
        .await
        .unwrap();
    let (_, body) = svc.api("/api/exceptions").await;
    assert_eq!(body["count"], 0, "{body}");
    svc.app.stop().await;
    sims.stop().await;
}

// ----- health and metrics --------------------------------------------------------------------

/// Checks the Prometheus text exposition format line by line: comments are HELP or
/// TYPE with a known type, every sample belongs to a declared family, label values
/// are quoted, values are numbers. Returns the samples as (name{labels}, value).
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut families = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, tail) = (parts.next(), parts.next(), parts.next());
            match kind {
                Some("HELP") => assert!(name.is_some() && tail.is_some(), "{line}"),
                Some("TYPE") => {
                    assert!(
                        matches!(
                            tail,
                            Some("counter" | "gauge" | "histogram" | "summary" | "untyped")
                        ),
                        "{line}"
                    );
                    families.insert(name.unwrap().to_string());
                }
                _ => panic!("unexpected comment: {line}"),
            }
            continue;
        }
        assert!(!line.trim().is_empty(), "blank line in exposition");
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels close");
                for pair in labels.split(',') {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(
                        v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                        "{line}"
                    );
                }
                name
            }
            None => series,
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| families.contains(*f)))
            .unwrap_or(name);
        assert!(families.contains(family), "sample without TYPE: {line}");
        samples.push((series.to_string(), value));
    }
    samples
}

#[actix::test]
async fn metrics_show_orders_and_webhooks_in_prometheus_text() {
    let sims = Sims::start();
    let svc = sims.serve(sims.settings()).await;
    svc.place_order("576000000000000004", "MUG-RED", 1, &sims.manual)
        .await;
    // A webhook with a bad signature is refused, and counted.
    let resp = svc
        .http
        .post(format!("{}/webhooks/tiktok", svc.base))
        .header("Authorization", "0000")
        .body(r#"{"type":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let resp = svc
            .http
            .get(format!("{}/metrics", svc.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = resp.text().await.unwrap();
        let samples = parse_prometheus(&text);
        // The order gauge follows the log asynchronously.
        if samples.iter().any(|(s, _)| s.starts_with("tks_orders{")) {
            break samples;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let value = |series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {series} in {samples:?}"))
    };
    assert_eq!(value("tks_orders{state=\"held\"}"), 1.0);
    assert_eq!(
        value("tks_webhooks_total{source=\"tiktok\",outcome=\"unauthorized\"}"),
        1.0
    );
    assert_eq!(value("tks_webhook_seconds_count{source=\"tiktok\"}"), 1.0);
    assert_eq!(value("tks_open_exceptions"), 0.0);
    svc.app.stop().await;
    sims.stop().await;
}

#[actix::test]
async fn health_reports_the_log_head_and_configured_connectors() {
    let sims = Sims::start();
    let mut settings = sims.settings();
    settings.katana.api_key = Secret::default();
    let svc = sims.serve(settings).await;
    svc.place_order("576000000000000005", "CAP-1", 1, &sims.manual)
        .await;
    let (status, body) = svc.get("/health", None).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "ok");
    assert!(body["log_head"].as_u64().unwrap() >= 1, "{body}");
    assert_eq!(body["connectors"]["tiktok"]["configured"], true);
    assert_eq!(body["connectors"]["katana"]["configured"], false);
    svc.app.stop().await;
    sims.stop().await;
}

// ----- OAuth ---------------------------------------------------------------------------------

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[actix::test]
async fn oauth_callback_exchanges_the_code_and_writes_the_token_file() {
    let sims = Sims::start();
    let svc = sims.serve(sims.settings()).await;
    assert!(!sims.token_file().exists());
    let code = sims.tiktok.issue_auth_code();
    let (status, body) = svc
        .get(
            &format!("/oauth/tiktok/callback?code={code}&state=opaque-csrf-value"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Connected shop Sim Pottery"), "{body}");
    assert!(body.contains(&sims.tiktok.config().shop_id), "{body}");

    let stored = FileTokenStore::new(sims.token_file())
        .load()
        .unwrap()
        .expect("tokens stored next to the database");
    assert_eq!(
        stored.shop.as_ref().map(|s| s.id.as_str()),
        Some(sims.tiktok.config().shop_id.as_str())
    );
    assert!(
        !body.contains(stored.access_token.expose())
            && !body.contains(stored.refresh_token.expose()),
        "the page never shows tokens"
    );
    #[cfg(unix)]
    assert_eq!(mode(&sims.token_file()), 0o600);

    // The running service uses the new connection at once.
    let tokens = svc.app.services.tiktok.as_ref().unwrap().tokens().await;
    assert_eq!(tokens.unwrap().access_token, stored.access_token);

    // A code is single-use: the second exchange is refused and says what to do.
    let (status, body) = svc
        .get(&format!("/oauth/tiktok/callback?code={code}"), None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("already used"), "{body}");
    svc.app.stop().await;
    sims.stop().await;
}

#[actix::test]
async fn oauth_callback_refuses_denials_missing_codes_and_non_seller_accounts() {
    let sims = Sims::start();
    let svc = sims.serve(sims.settings()).await;
    let (status, body) = svc
        .get(
            "/oauth/tiktok/callback?code=null&error=auth_denied&state=s",
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("declined"), "{body}");
    for query in ["", "?state=s", "?code=&state=s", "?code=null"] {
        let (status, body) = svc
            .get(&format!("/oauth/tiktok/callback{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains("no authorisation code"), "{body}");
    }
    // A creator (non-seller) authorisation: TikTok's stand-in for a sub-account.
    let code = sims.tiktok.issue_auth_code_for(1);
    let (status, body) = svc
        .get(&format!("/oauth/tiktok/callback?code={code}"), None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("main account"), "{body}");
    assert!(body.contains("not a seller account"), "{body}");
    // Markup from the query never reaches the page unescaped.
    let (status, body) = svc
        .get("/oauth/tiktok/callback?error=%3Cscript%3E", None)
        .await;
    assert_eq!(status, 400);
    assert!(
        !body.contains("<script>") && body.contains("&lt;script&gt;"),
        "{body}"
    );
    assert!(!sims.token_file().exists(), "nothing was stored");
    svc.app.stop().await;
    sims.stop().await;
}

#[actix::test]
async fn a_code_for_another_shop_leaves_the_existing_connection_alone() {
    let sims = Sims::start();
    let good = sims.settings();
    sims.connect(&good).await;
    let before = FileTokenStore::new(sims.token_file())
        .load()
        .unwrap()
        .unwrap();
    let mut other = good.clone();
    other.tiktok.shop_id = "7494700000000000000".into();
    let svc = sims.serve(other).await;
    let code = sims.tiktok.issue_auth_code();
    let (status, body) = svc
        .get(&format!("/oauth/tiktok/callback?code={code}"), None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("7494700000000000000"), "{body}");
    let after = FileTokenStore::new(sims.token_file())
        .load()
        .unwrap()
        .unwrap();
    assert_eq!(after, before, "the stored connection is unchanged");
    let live = svc.app.services.tiktok.as_ref().unwrap().tokens().await;
    assert_eq!(live, Some(before));
    svc.app.stop().await;
    sims.stop().await;
}

#[actix::test]
async fn connect_stores_tokens_next_to_the_database_and_reports_the_shop() {
    let sims = Sims::start();
    let settings = sims.settings();
    let connected = tks::operator::connect_tiktok(
        &settings,
        sims.manual.clock(),
        &sims.tiktok.issue_auth_code(),
        client_options(),
        None,
    )
    .await
    .unwrap();
    let cfg = sims.tiktok.config();
    assert_eq!(connected.shop.id, cfg.shop_id);
    assert_eq!(connected.shop.cipher, cfg.shop_cipher);
    assert_eq!(
        connected.token_file.as_deref(),
        Some(sims.token_file().as_path())
    );
    assert_eq!(
        connected.access_token_expires_at,
        Some(sims.manual.now() + ChronoDuration::days(7))
    );
    let text = connected.render();
    for part in [
        "Sim Pottery",
        cfg.shop_id.as_str(),
        cfg.shop_cipher.as_str(),
        "US",
        "2026-01-08T00:00:00+00:00",
    ] {
        assert!(text.contains(part), "{part} missing from:\n{text}");
    }
    let stored = FileTokenStore::new(sims.token_file())
        .load()
        .unwrap()
        .unwrap();
    assert!(!text.contains(stored.access_token.expose()));
    assert!(!text.contains(stored.refresh_token.expose()));
    #[cfg(unix)]
    assert_eq!(mode(&sims.token_file()), 0o600);

    let err = tks::operator::connect_tiktok(
        &settings,
        sims.manual.clock(),
        &sims.tiktok.issue_auth_code_for(3),
        client_options(),
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("MAIN (owner) account"), "{err}");
    sims.stop().await;
}

// ----- tks check -------------------------------------------------------------------------------

#[actix::test]
async fn check_is_all_ok_against_seeded_simulators() {
    let sims = Sims::start();
    sims.match_catalogues();
    let mut settings = sims.settings();
    let ups = "7117858858072016601";
    settings.carriers.insert("UPS".into(), ups.into());
    sims.connect(&settings).await;

    let report = sims.check(&settings).await;
    let text = report.render();
    assert_eq!(report.verdict(), Status::Ok, "{text}");
    assert!(report.passed());
    assert!(
        report.findings.iter().all(|f| f.status == Status::Ok),
        "{text}"
    );
    for check in [
        "tiktok.token",
        "tiktok.shop",
        "tiktok.api",
        "tiktok.pickup_warehouse",
        "tiktok.return_warehouse",
        "tiktok.delivery_options",
        "tiktok.seller_shipping",
        "tiktok.shipping_providers",
        "carriers",
        "katana.api_key",
        "katana.pickup_location",
        "katana.return_location",
        "katana.fbt_location",
        "sku_match",
        "tiktok.shop_name",
    ] {
        assert!(report.find(check).is_some(), "no {check} line:\n{text}");
    }
    assert!(
        text.lines().last().unwrap().starts_with("verdict: OK"),
        "{text}"
    );
    // F17: the options and providers are listed for setting up carrier mapping.
    assert!(report
        .delivery_options
        .iter()
        .any(|o| o.kind == "SEND_BY_SELLER"));
    let providers: Vec<&str> = report
        .shipping_providers
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(providers, vec!["USPS", "UPS", "FedEx"]);
    assert!(report
        .shipping_providers
        .iter()
        .any(|p| p.id == ups && p.name == "UPS"));
    let m = report.sku_match.as_ref().unwrap();
    assert_eq!(m.matched.len(), 3);
    // The draft prototype is named as not live, and is no problem.
    assert!(report
        .find("listings.not_live")
        .is_some_and(|f| f.detail.contains("PROTO-1")));
    assert!(m.only_tiktok.is_empty());
    assert_eq!(m.only_katana.len(), 4, "the Katana demo SKUs: {m:?}");

    let json = report.to_json();
    assert_eq!(json["verdict"], "OK");
    assert_eq!(json["passed"], true);
    assert_eq!(json["tiktok"]["shop"]["name"], "Sim Pottery");
    assert_eq!(json["sku_match"]["only_tiktok"], json!([]));
    sims.stop().await;
}

#[actix::test]
async fn check_fails_on_an_unfit_warehouse_or_location_and_unknown_carriers() {
    let sims = Sims::start();
    let good = sims.settings();
    sims.connect(&good).await;

    // A pickup warehouse id TikTok does not know, a pickup location without sales.
    let mut bad = good.clone();
    bad.warehouses.pickup_warehouse_id = "7300000000000009999".into();
    bad.warehouses.pickup_location_id = sims.cat.no_sales_location_id;
    let report = sims.check(&bad).await;
    let text = report.render();
    assert_eq!(report.verdict(), Status::Fail, "{text}");
    assert!(!report.passed());
    let w = report.find("tiktok.pickup_warehouse").unwrap();
    assert_eq!(w.status, Status::Fail, "{text}");
    assert!(
        w.detail.contains("no such TikTok warehouse"),
        "{}",
        w.detail
    );
    assert!(
        w.detail.contains(MAIN_WAREHOUSE),
        "names the candidates: {}",
        w.detail
    );
    let l = report.find("katana.pickup_location").unwrap();
    assert_eq!(l.status, Status::Fail, "{text}");
    assert!(l.detail.contains("does not allow sales"), "{}", l.detail);
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("verdict: FAIL (2 blocking"),
        "{text}"
    );
    assert_eq!(report.to_json()["passed"], false);

    // The return warehouse as pickup: wrong type. A carrier id TikTok does not offer.
    let mut bad = good.clone();
    bad.warehouses.pickup_warehouse_id = RETURN_WAREHOUSE.into();
    bad.carriers.insert("DHL".into(), "1234".into());
    let report = sims.check(&bad).await;
    let text = report.render();
    let w = report.find("tiktok.pickup_warehouse").unwrap();
    assert_eq!(w.status, Status::Fail, "{text}");
    assert!(w.detail.contains("needs SALES_WAREHOUSE"), "{}", w.detail);
    let seller = report.find("tiktok.seller_shipping").unwrap();
    assert_eq!(
        seller.status,
        Status::Fail,
        "the return warehouse offers no seller shipping: {text}"
    );
    assert_eq!(
        report.find("carriers").unwrap().status,
        Status::Warn,
        "{text}"
    );

    let mut bad = good.clone();
    bad.carriers.insert("DHL".into(), "1234".into());
    let report = sims.check(&bad).await;
    let c = report.find("carriers").unwrap();
    assert_eq!(c.status, Status::Fail, "{}", report.render());
    assert!(c.detail.contains("\"DHL\" = \"1234\""), "{}", c.detail);

    // Unmatched SKUs are a warning, not a blocker: those orders wait as exceptions.
    let report = sims.check(&good).await;
    let m = report.find("sku_match").unwrap();
    assert_eq!(m.status, Status::Warn, "{}", report.render());
    assert!(m.detail.contains("MUG-RED"), "{}", m.detail);
    assert!(report.passed());
    sims.stop().await;
}

#[actix::test]
async fn check_says_how_to_connect_and_when_katana_refuses_the_key() {
    let sims = Sims::start();
    let mut settings = sims.settings();
    settings.katana.api_key = Secret::new("wrong-key");
    let report = sims.check(&settings).await;
    let text = report.render();
    let t = report.find("tiktok.token").unwrap();
    assert_eq!(t.status, Status::Fail, "{text}");
    assert!(
        t.detail.contains("tks connect tiktok --auth-code"),
        "{}",
        t.detail
    );
    let k = report.find("katana.api_key").unwrap();
    assert_eq!(k.status, Status::Fail, "{text}");
    assert!(k.detail.contains("refused the API key"), "{}", k.detail);
    assert_eq!(report.find("sku_match").unwrap().status, Status::Warn);
    assert!(!report.passed());

    // An access token past its expiry is refreshed by the check's first call, and
    // the report shows the tokens as they are after it.
    sims.connect(&sims.settings()).await;
    let before = FileTokenStore::new(sims.token_file())
        .load()
        .unwrap()
        .unwrap();
    sims.manual.advance(Duration::from_secs(340 * 24 * 3600));
    let report = sims.check(&sims.settings()).await;
    let t = report.find("tiktok.token").unwrap();
    assert_eq!(t.status, Status::Ok, "{}", report.render());
    let fresh = (sims.manual.now() + ChronoDuration::days(7))
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    assert!(
        t.detail
            .contains(&format!("access token valid until {fresh}")),
        "{}",
        t.detail
    );
    assert_eq!(report.find("tiktok.api").unwrap().status, Status::Ok);
    let after = FileTokenStore::new(sims.token_file())
        .load()
        .unwrap()
        .unwrap();
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "rotated tokens are kept"
    );
    sims.stop().await;
}

// ----- tks exceptions (the binary) ----------------------------------------------------------

fn tks(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tks"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

#[actix::test]
async fn tks_exceptions_lists_what_the_database_holds() {
    let sims = Sims::start();
    let settings = sims.settings();
    let config = sims.dir.path().join("tks.toml");
    std::fs::write(
        &config,
        format!("[store]\npath = {:?}\n", settings.store.path),
    )
    .unwrap();
    let config = config.display().to_string();

    let out = tks(&["exceptions", "--config", &config]);
    assert!(!out.status.success(), "no database yet");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("no such database"),
        "{err}"
    );
    assert!(
        !Path::new(&settings.store.path).exists(),
        "not created by a listing"
    );

    let svc = sims.serve(settings.clone()).await;
    let out = tks(&["exceptions", "--config", &config]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no open exceptions\n");

    svc.place_order("576000000000000006", "PROTO-1", 1, &sims.manual)
        .await;
    svc.app
        .services
        .commands
        .orders
        .execute(
            "576000000000000006",
            Execute::new(OrderCommand::RaiseException {
                key: "unmatched-sku".into(),
                message: "no Katana variant with SKU PROTO-1".into(),
            }),
        )
        .await
        .unwrap();
    let out = tks(&["exceptions", "--config", &config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "order-576000000000000006  unmatched-sku  no Katana variant with SKU PROTO-1\n"
    );
    let out = tks(&["exceptions", "--config", &config, "--json"]);
    assert!(out.status.success());
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["count"], 1);
    assert_eq!(body["exceptions"][0]["id"], "576000000000000006");
    assert_eq!(body["exceptions"][0]["key"], "unmatched-sku");
    svc.app.stop().await;
    sims.stop().await;
}

#[actix::test]
async fn shared_services_see_the_same_exceptions_as_the_cli_reader() {
    // The API and the CLI read one index; a SKU exception is listed with kind "sku".
    let sims = Sims::start();
    let svc = sims.serve(sims.settings()).await;
    svc.app
        .services
        .commands
        .skus
        .execute(
            "CAP#1",
            Execute::new(SkuCommand::RaiseException {
                key: "inventory-rejected".into(),
                message: "TikTok refused quantity".into(),
            }),
        )
        .await
        .unwrap();
    let store: Arc<dyn tks::store::EventStore> = svc.app.services.store.clone();
    let listed = tks::operator::open_exceptions(store.as_ref()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, "sku");
    assert_eq!(listed[0].id, "CAP#1");
    let (_, body) = svc.api("/api/exceptions").await;
    assert_eq!(body["exceptions"][0]["id"], "CAP#1");
    assert_eq!(body["exceptions"][0]["kind"], "sku");
    svc.app.stop().await;
    sims.stop().await;
}
