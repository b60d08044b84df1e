//! TikTok connector against the TikTok simulator, over HTTP, with a manual clock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use parking_lot::Mutex;
use serde_json::Value;

use tks::clock::ManualClock;
use tks::config::{Secret, TikTokSettings};
use tks::connectors::tiktok::client::codes;
use tks::connectors::tiktok::{
    sign, webhook, ClientOptions, MemoryTokenStore, NotificationType, TikTokClient, TikTokError,
    TokenStore, UpdateWindow, WebhookError,
};
use tks::connectors::Backoff;
use tks::domain::observed::TikTokOrderStatus;
use tks::sandbox::tiktok::{
    sim_codes, Faults, NewOrder, SimConfig, TikTokSim, MAIN_WAREHOUSE, RETURN_WAREHOUSE,
    SECOND_WAREHOUSE,
};

const MUG_PRODUCT: &str = "1729000000000000001";
const MUG_BLUE: &str = "1729100000000000002";
const DRAFT_PRODUCT: &str = "1729000000000000003";
const DRAFT_SKU: &str = "1729100000000000004";

pub(crate) struct Env {
    pub(crate) manual: ManualClock,
    pub(crate) sim: TikTokSim,
    pub(crate) client: TikTokClient,
    store: Arc<MemoryTokenStore>,
    settings: TikTokSettings,
}

fn settings_for(sim: &TikTokSim, cfg: &SimConfig) -> TikTokSettings {
    TikTokSettings {
        api_base: sim.base_url(),
        auth_base: sim.auth_base_url(),
        app_key: cfg.app_key.clone(),
        app_secret: Secret::new(cfg.app_secret.clone()),
        shop_id: cfg.shop_id.clone(),
        requests_per_second: 0,
        ..TikTokSettings::default()
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        backoff: Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
            max_attempts: 4,
        },
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

/// A connected client: code exchanged, shop picked, demo catalogue seeded.
pub(crate) async fn env_with(cfg: SimConfig) -> Env {
    let manual = ManualClock::at_epoch();
    let sim = TikTokSim::start(cfg.clone(), manual.clock()).unwrap();
    sim.seed_demo_catalogue();
    let settings = settings_for(&sim, &cfg);
    let store = Arc::new(MemoryTokenStore::default());
    let client = TikTokClient::new(&settings, manual.clock(), store.clone(), options()).unwrap();
    client
        .exchange_auth_code(&sim.issue_auth_code())
        .await
        .unwrap();
    Env {
        manual,
        sim,
        client,
        store,
        settings,
    }
}

async fn env() -> Env {
    env_with(SimConfig::demo()).await
}

/// Polls `fut` while moving the manual clock forward, so back-off and pacing sleeps elapse
/// without real waiting.
async fn drive<F: Future>(manual: &ManualClock, fut: F) -> F::Output {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = tokio::time::sleep(Duration::from_millis(2)) => manual.advance(Duration::from_millis(500)),
        }
    }
}

async fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(v) = probe() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

/// A hand-signed request, to probe the simulator's gateway checks directly.
pub(crate) struct Raw<'a> {
    env: &'a Env,
    method: &'a str,
    path: &'a str,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Option<String>,
    timestamp_offset: i64,
    uppercase_sign: bool,
    with_cipher: bool,
}

impl<'a> Raw<'a> {
    pub(crate) fn new(env: &'a Env, method: &'a str, path: &'a str) -> Self {
        Raw {
            env,
            method,
            path,
            query: vec![],
            body: None,
            timestamp_offset: 0,
            uppercase_sign: false,
            with_cipher: true,
        }
    }

    pub(crate) async fn send(self) -> (u16, Value) {
        let cfg = self.env.sim.config();
        let mut q: Vec<(String, String)> = vec![
            ("app_key".into(), cfg.app_key.clone()),
            (
                "timestamp".into(),
                (self.env.manual.now().timestamp() + self.timestamp_offset).to_string(),
            ),
        ];
        if self.with_cipher {
            q.push(("shop_cipher".into(), cfg.shop_cipher.clone()));
        }
        q.extend(self.query);
        let mut s = sign::sign(
            &cfg.app_secret,
            self.path,
            &q,
            self.body.as_deref().map(str::as_bytes),
        );
        if self.uppercase_sign {
            s = s.to_uppercase();
        }
        q.push(("sign".into(), s));
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q.iter())
            .finish();
        let token = self.env.client.tokens().await.unwrap().access_token;
        let url = format!("{}{}?{}", self.env.sim.base_url(), self.path, qs);
        let req = reqwest::Client::new()
            .request(self.method.parse().unwrap(), url)
            .header("content-type", "application/json")
            .header("x-tts-access-token", token.expose());
        let req = match self.body {
            Some(b) => req.body(b),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

pub(crate) fn code(v: &Value) -> i64 {
    v["code"].as_i64().unwrap()
}

pub(crate) fn api_code(r: Result<impl std::fmt::Debug, TikTokError>) -> i64 {
    match r {
        Err(TikTokError::Api { code, .. }) => code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

// ----- OAuth and tokens ---------------------------------------------------------------------

#[tokio::test]
async fn exchange_lists_shops_picks_the_configured_one_and_persists_tokens() {
    let mut cfg = SimConfig::demo();
    cfg.extra_shops.push(tks::sandbox::tiktok::SimShop {
        id: "7000000000000000002".into(),
        name: "Other shop".into(),
        cipher: "ROW_other".into(),
        region: "GB".into(),
    });
    let e = env_with(cfg.clone()).await;
    assert_eq!(e.client.shop_cipher(), cfg.shop_cipher);
    let saved = e.store.load().unwrap().unwrap();
    assert_eq!(saved.shop.as_ref().unwrap().id, cfg.shop_id);
    // Expiries are absolute unix times.
    let now = e.manual.now().timestamp();
    assert_eq!(saved.access_token_expire_in, now + 7 * 24 * 3600);
    assert_eq!(saved.refresh_token_expire_in, now + 365 * 24 * 3600);
    assert!(!format!("{saved:?}").contains(saved.access_token.expose()));
    let shops = e.client.authorized_shops().await.unwrap();
    assert_eq!(shops.len(), 2);

    // The code was single-use.
    let again = TikTokClient::new(
        &e.settings,
        e.manual.clock(),
        Arc::new(MemoryTokenStore::default()),
        options(),
    )
    .unwrap();
    let code = e.sim.issue_auth_code();
    again.exchange_auth_code(&code).await.unwrap();
    let err = again.exchange_auth_code(&code).await.unwrap_err();
    assert!(
        matches!(err, TikTokError::Reauthorize { code: Some(c), .. } if c == codes::INVALID_AUTH_CODE),
        "{err:?}"
    );

    // Without a configured shop id, two shops are ambiguous.
    let mut s = e.settings.clone();
    s.shop_id.clear();
    let ambiguous = TikTokClient::new(
        &s,
        e.manual.clock(),
        Arc::new(MemoryTokenStore::default()),
        options(),
    )
    .unwrap();
    let err = ambiguous
        .exchange_auth_code(&e.sim.issue_auth_code())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TikTokError::ShopNotAuthorized { .. }),
        "{err:?}"
    );
    e.sim.stop().await;
}

#[tokio::test]
async fn non_seller_authorisation_and_missing_scope_tell_the_user_to_use_the_main_account() {
    let e = env().await;
    let other = TikTokClient::new(
        &e.settings,
        e.manual.clock(),
        Arc::new(MemoryTokenStore::default()),
        options(),
    )
    .unwrap();
    let err = other
        .exchange_auth_code(&e.sim.issue_auth_code_for(1))
        .await
        .unwrap_err();
    assert!(matches!(err, TikTokError::Reauthorize { .. }), "{err:?}");
    assert!(err.to_string().contains("MAIN"), "{err}");

    e.sim.set_faults(Faults {
        deny_scope_prefix: Some("/order/".into()),
        ..Faults::default()
    });
    let before = e.sim.request_count();
    let err = e.client.get_orders(&["1".to_string()]).await.unwrap_err();
    assert!(
        matches!(
            err,
            TikTokError::Reauthorize {
                code: Some(105005),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("scope"), "{err}");
    assert_eq!(
        e.sim.request_count() - before,
        1,
        "a scope error is not retried"
    );
    e.sim.stop().await;
}

#[tokio::test]
async fn access_token_is_refreshed_before_it_expires_and_both_tokens_are_persisted() {
    let e = env().await;
    let before = e.store.load().unwrap().unwrap();
    let saves = e.store.save_count();
    // Inside the 10-minute margin, but not expired yet.
    e.manual.advance(Duration::from_secs(7 * 24 * 3600 - 300));
    let w = e.client.warehouses().await.unwrap();
    assert_eq!(w.len(), 3);
    let after = e.store.load().unwrap().unwrap();
    assert_ne!(after.access_token, before.access_token);
    assert_ne!(after.refresh_token, before.refresh_token);
    assert_eq!(
        after.shop, before.shop,
        "the shop binding survives a refresh"
    );
    assert_eq!(e.store.save_count(), saves + 1);
    assert_eq!(
        after.access_token_expire_in,
        e.manual.now().timestamp() + 7 * 24 * 3600
    );
    e.sim.stop().await;
}

#[tokio::test]
async fn expired_token_reported_by_tiktok_is_refreshed_once_and_the_call_retried() {
    let e = env().await;
    let before = e.store.load().unwrap().unwrap();
    e.sim.expire_access_tokens();
    let requests = e.sim.request_count();
    let w = e.client.warehouses().await.unwrap();
    assert_eq!(w.len(), 3);
    // failed call + token refresh + retried call
    assert_eq!(e.sim.request_count() - requests, 3);
    let after = e.store.load().unwrap().unwrap();
    assert_ne!(after.access_token, before.access_token);
    e.sim.stop().await;
}

// ----- errors, retries, pacing ------------------------------------------------------------

#[tokio::test]
async fn rate_limit_is_backed_off_through_the_clock_then_succeeds() {
    let e = env().await;
    e.sim.set_faults(Faults {
        throttle_next: 2,
        ..Faults::default()
    });
    let start = e.manual.now();
    let requests = e.sim.request_count();
    let w = drive(&e.manual, e.client.warehouses()).await.unwrap();
    assert_eq!(w.len(), 3);
    assert_eq!(e.sim.request_count() - requests, 3);
    assert!(e.manual.now() > start, "the back-off waited on the clock");

    // QPS over the configured limit: 429 + 36009002, retried after the clock second passes.
    e.sim.set_faults(Faults {
        qps_limit: Some(1),
        ..Faults::default()
    });
    let both = drive(&e.manual, async {
        let a = e.client.warehouses().await;
        let b = e.client.warehouses().await;
        (a, b)
    })
    .await;
    assert!(both.0.is_ok() && both.1.is_ok());

    e.sim.set_faults(Faults {
        fail_next: 1,
        ..Faults::default()
    });
    assert!(drive(&e.manual, e.client.warehouses()).await.is_ok());
    e.sim.stop().await;
}

#[tokio::test]
async fn a_429_pauses_every_call_of_the_client_not_only_the_refused_one() {
    let e = env().await;
    e.sim.set_faults(Faults {
        throttle_next: 1,
        ..Faults::default()
    });
    let before = e.sim.request_count();
    let a = {
        let c = e.client.clone();
        tokio::spawn(async move { c.warehouses().await })
    };
    // The client has taken the 429 once it pauses (the simulator counting the
    // request is not enough: its answer may still be on the way).
    for _ in 0..5000 {
        if e.client.paused_until().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        e.client.paused_until().is_some(),
        "the first call got its 429"
    );
    assert_eq!(e.sim.request_count(), before + 1);
    // A call started after the 429 waits out the shared pause too.
    let b = {
        let c = e.client.clone();
        tokio::spawn(async move { c.warehouses().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    e.manual.advance(Duration::from_millis(900));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        e.sim.request_count(),
        before + 1,
        "nothing is sent while the pause lasts"
    );
    e.manual.advance(Duration::from_millis(1100));
    let (a, b) = tokio::join!(
        drive(&e.manual, async { a.await.unwrap() }),
        drive(&e.manual, async { b.await.unwrap() })
    );
    assert!(a.is_ok() && b.is_ok());
    e.sim.stop().await;
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_exhausted_retries_surface() {
    let e = env().await;
    let o = e
        .sim
        .create_order(NewOrder::of(
            &[("CAP-1", 1)],
            TikTokOrderStatus::AwaitingShipment,
        ))
        .unwrap();
    let requests = e.sim.request_count();
    let r = e
        .client
        .mark_package_shipped(&o.id, &[o.units[0].id.clone()], "1Z999", "999")
        .await;
    assert_eq!(api_code(r), sim_codes::PROVIDER_INVALID);
    assert_eq!(e.sim.request_count() - requests, 1);

    e.sim.set_faults(Faults {
        fail_next: 10,
        ..Faults::default()
    });
    let requests = e.sim.request_count();
    let r = drive(&e.manual, e.client.warehouses()).await;
    assert_eq!(api_code(r), codes::INTERNAL_ERROR);
    assert_eq!(e.sim.request_count() - requests, 4, "max_attempts");
    e.sim.stop().await;
}

#[tokio::test]
async fn a_slow_response_times_out_as_a_retryable_error() {
    let e = env().await;
    let mut s = e.settings.clone();
    s.requests_per_second = 0;
    let impatient = TikTokClient::new(
        &s,
        e.manual.clock(),
        e.store.clone(),
        ClientOptions {
            timeout: Duration::from_millis(100),
            backoff: Backoff {
                max_attempts: 1,
                ..Backoff::default()
            },
            ..ClientOptions::default()
        },
    )
    .unwrap();
    e.sim.set_faults(Faults {
        delay_ms: 400,
        ..Faults::default()
    });
    let err = impatient.warehouses().await.unwrap_err();
    assert!(matches!(err, TikTokError::Timeout), "{err:?}");
    e.sim.stop().await;
}

#[tokio::test]
async fn client_side_pacing_spaces_requests_on_the_clock() {
    let e = env().await;
    let mut s = e.settings.clone();
    s.requests_per_second = 2;
    let paced = TikTokClient::new(&s, e.manual.clock(), e.store.clone(), options()).unwrap();
    let start = e.manual.now();
    for _ in 0..4 {
        drive(&e.manual, paced.warehouses()).await.unwrap();
    }
    // Two pass at once, the next two each wait half a second.
    assert!(e.manual.now() - start >= chrono::Duration::milliseconds(1000));
    e.sim.stop().await;
}

// ----- orders --------------------------------------------------------------------------------

#[tokio::test]
async fn order_search_follows_pages_sorted_by_update_time_within_an_overlapping_window() {
    let e = env().await;
    let since = e.manual.now();
    let mut ids = Vec::new();
    for i in 0..7 {
        e.manual.advance(Duration::from_secs(60));
        let o = e
            .sim
            .create_order(NewOrder::of(
                &[("MUG-RED", 1 + i % 2)],
                TikTokOrderStatus::AwaitingShipment,
            ))
            .unwrap();
        ids.push(o.id);
    }
    // Touch the first order last: it must come last when sorted by update_time.
    e.manual.advance(Duration::from_secs(60));
    e.sim
        .set_order_status(&ids[0], TikTokOrderStatus::InTransit)
        .unwrap();
    let requests = e.sim.request_count();
    let window = UpdateWindow::overlapping(since, Duration::from_secs(3600), e.manual.now());
    let orders = e.client.search_orders(window, 3).await.unwrap();
    assert_eq!(
        e.sim.request_count() - requests,
        3,
        "7 orders in pages of 3"
    );
    let got: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
    let mut want: Vec<&str> = ids[1..].iter().map(String::as_str).collect();
    want.push(&ids[0]);
    assert_eq!(got, want);

    let snaps = e
        .client
        .orders_updated_since(since, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(snaps.len(), 7);
    assert_eq!(snaps[0].units.len(), 2, "one line unit per purchased unit");
    assert_eq!(snaps.last().unwrap().status, TikTokOrderStatus::InTransit);

    // A window in the future finds nothing.
    let later = UpdateWindow {
        update_time_ge: e.manual.now().timestamp() + 10,
        update_time_lt: e.manual.now().timestamp() + 20,
    };
    assert!(e.client.search_orders(later, 100).await.unwrap().is_empty());
    e.sim.stop().await;
}

#[tokio::test]
async fn order_detail_chunks_more_than_fifty_ids_and_maps_snapshots() {
    let e = env().await;
    let mut ids = Vec::new();
    for _ in 0..53 {
        ids.push(
            e.sim
                .create_order(NewOrder::of(&[("CAP-1", 1)], TikTokOrderStatus::OnHold))
                .unwrap()
                .id,
        );
    }
    let requests = e.sim.request_count();
    let snaps = e.client.get_order_snapshots(&ids).await.unwrap();
    assert_eq!(e.sim.request_count() - requests, 2);
    assert_eq!(snaps.len(), 53);
    assert!(
        snaps.iter().all(|s| s.recipient.is_none()),
        "no address while ON_HOLD"
    );
    e.sim
        .set_order_status(&ids[0], TikTokOrderStatus::AwaitingShipment)
        .unwrap();
    let s = &e.client.get_order_snapshots(&ids[..1]).await.unwrap()[0];
    assert_eq!(s.recipient.as_ref().unwrap().zip, "62701");
    assert_eq!(s.units[0].seller_sku, "CAP-1");
    e.sim.stop().await;
}

#[tokio::test]
async fn cancelled_units_and_edits_show_up_in_the_mapped_snapshot() {
    let e = env().await;
    let o = e
        .sim
        .create_order(NewOrder::of(
            &[("MUG-RED", 2), ("CAP-1", 1)],
            TikTokOrderStatus::AwaitingShipment,
        ))
        .unwrap();
    e.sim
        .cancel_order(&o.id, Some(vec![o.units[2].id.clone()]))
        .unwrap();
    let s = &e
        .client
        .get_order_snapshots(std::slice::from_ref(&o.id))
        .await
        .unwrap()[0];
    assert_eq!(
        s.units.iter().map(|u| u.cancelled).collect::<Vec<_>>(),
        vec![false, false, true]
    );
    assert_eq!(s.status, TikTokOrderStatus::AwaitingShipment);
    e.sim.cancel_order(&o.id, None).unwrap();
    let s = &e
        .client
        .get_order_snapshots(std::slice::from_ref(&o.id))
        .await
        .unwrap()[0];
    assert_eq!(s.status, TikTokOrderStatus::Cancelled);
    e.sim.stop().await;
}

// ----- fulfilment & logistics ---------------------------------------------------------------

#[tokio::test]
async fn partial_shipment_then_full_shipment() {
    let e = env().await;
    let o = e
        .sim
        .create_order(NewOrder::of(
            &[("MUG-RED", 2), ("CAP-1", 1)],
            TikTokOrderStatus::AwaitingShipment,
        ))
        .unwrap();
    let options = e.client.delivery_options(MAIN_WAREHOUSE).await.unwrap();
    let seller = options
        .iter()
        .find(|d| d.option_type == "SEND_BY_SELLER")
        .unwrap();
    let providers = e.client.shipping_providers(&seller.id).await.unwrap();
    let ups = providers.iter().find(|p| p.name == "UPS").unwrap();

    let first = e
        .client
        .mark_package_shipped(&o.id, &[o.units[0].id.clone()], "1ZFIRST", &ups.id)
        .await
        .unwrap();
    assert!(!first.package_id.is_empty());
    let s = &e
        .client
        .get_order_snapshots(std::slice::from_ref(&o.id))
        .await
        .unwrap()[0];
    assert_eq!(s.status, TikTokOrderStatus::PartiallyShipping);
    assert_eq!(
        s.units.iter().map(|u| u.shipped).collect::<Vec<_>>(),
        vec![true, false, false]
    );

    // The same unit cannot ship twice.
    let again = e
        .client
        .mark_package_shipped(&o.id, &[o.units[0].id.clone()], "1ZAGAIN", &ups.id)
        .await;
    assert_eq!(api_code(again), sim_codes::LINE_ITEM_INVALID);
    // A unit of another order is refused.
    let other = e
        .sim
        .create_order(NewOrder::of(
            &[("CAP-1", 1)],
            TikTokOrderStatus::AwaitingShipment,
        ))
        .unwrap();
    let foreign = e
        .client
        .mark_package_shipped(&o.id, &[other.units[0].id.clone()], "1ZX", &ups.id)
        .await;
    assert_eq!(api_code(foreign), sim_codes::LINE_ITEM_INVALID);

    let rest: Vec<String> = o.units[1..].iter().map(|u| u.id.clone()).collect();
    let second = e
        .client
        .mark_package_shipped(&o.id, &rest, "1ZSECOND", &ups.id)
        .await
        .unwrap();
    assert_ne!(second.package_id, first.package_id);
    let s = &e
        .client
        .get_order_snapshots(std::slice::from_ref(&o.id))
        .await
        .unwrap()[0];
    assert_eq!(s.status, TikTokOrderStatus::AwaitingCollection);
    assert!(s.units.iter().all(|u| u.shipped));

    let shipments = e.sim.shipments();
    assert_eq!(shipments.len(), 2);
    assert_eq!(shipments[1].line_item_ids, rest);
    assert_eq!(shipments[1].tracking_number, "1ZSECOND");
    assert_eq!(shipments[1].shipping_provider_id, ups.id);
    e.sim.stop().await;
}

#[tokio::test]
async fn shipment_is_refused_while_on_hold_and_accepted_once_released() {
    let e = env().await;
    let o = e
        .sim
        .create_order(NewOrder::of(&[("CAP-1", 1)], TikTokOrderStatus::OnHold))
        .unwrap();
    let opts = e.client.delivery_options(MAIN_WAREHOUSE).await.unwrap();
    let seller = opts
        .iter()
        .find(|d| d.option_type == "SEND_BY_SELLER")
        .unwrap();
    let providers = e.client.shipping_providers(&seller.id).await.unwrap();
    let provider = providers[0].id.as_str();
    let units = vec![o.units[0].id.clone()];
    let r = e
        .client
        .mark_package_shipped(&o.id, &units, "1Z", provider)
        .await;
    assert_eq!(api_code(r), sim_codes::ORDER_NOT_SHIPPABLE);
    assert!(e.sim.shipments().is_empty());
    e.sim
        .set_order_status(&o.id, TikTokOrderStatus::AwaitingShipment)
        .unwrap();
    e.client
        .mark_package_shipped(&o.id, &units, "1Z", provider)
        .await
        .unwrap();
    assert_eq!(
        e.sim.order(&o.id).unwrap().status,
        TikTokOrderStatus::AwaitingCollection
    );
    e.sim.stop().await;
}

#[tokio::test]
async fn warehouses_delivery_options_and_providers() {
    let e = env().await;
    let w = e.client.warehouses().await.unwrap();
    let ret = w.iter().find(|w| w.id == RETURN_WAREHOUSE).unwrap();
    assert_eq!(ret.warehouse_type, "RETURN_WAREHOUSE");
    let main = w.iter().find(|w| w.id == MAIN_WAREHOUSE).unwrap();
    assert_eq!(
        (main.warehouse_type.as_str(), main.effect_status.as_str()),
        ("SALES_WAREHOUSE", "ENABLED")
    );
    assert!(main.is_default);
    let opts = e.client.delivery_options(MAIN_WAREHOUSE).await.unwrap();
    assert_eq!(
        opts.iter()
            .filter(|o| o.option_type == "SEND_BY_SELLER")
            .count(),
        1
    );
    let seller = opts
        .iter()
        .find(|o| o.option_type == "SEND_BY_SELLER")
        .unwrap();
    let providers = e.client.shipping_providers(&seller.id).await.unwrap();
    assert_eq!(providers.len(), 3);
    assert_eq!(
        api_code(e.client.delivery_options("1").await),
        sim_codes::NOT_FOUND
    );
    e.sim.stop().await;
}

// ----- products & inventory ------------------------------------------------------------------

#[tokio::test]
async fn inventory_update_sends_every_warehouse_of_a_multi_warehouse_sku() {
    let e = env().await;
    let cat = e.client.catalogue().await.unwrap();
    assert_eq!(
        cat.len(),
        3,
        "the draft product is not part of the live catalogue"
    );
    assert!(cat.iter().all(|c| c.product_status == "ACTIVATE"));
    assert_eq!(e.client.all_listings().await.unwrap().len(), 4);
    let blue = cat.iter().find(|c| c.seller_sku == "MUG-BLUE").unwrap();
    assert_eq!(blue.warehouses.len(), 2);

    let out = e
        .client
        .update_inventory(MUG_PRODUCT, MUG_BLUE, MAIN_WAREHOUSE, 42)
        .await
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
    let stock = e.sim.stock();
    assert_eq!(stock[MUG_BLUE][MAIN_WAREHOUSE], 42);
    assert_eq!(
        stock[MUG_BLUE][SECOND_WAREHOUSE], 7,
        "other warehouse keeps its last known quantity"
    );
    let pushes = e.sim.inventory_pushes();
    assert_eq!(pushes.len(), 2);
    assert!(pushes
        .iter()
        .all(|p| p.sku_id == MUG_BLUE && p.time == e.manual.now().timestamp()));

    // Clamped to TikTok's range.
    e.client
        .update_inventory(MUG_PRODUCT, MUG_BLUE, SECOND_WAREHOUSE, 250_000)
        .await
        .unwrap();
    e.client
        .update_inventory(MUG_PRODUCT, MUG_BLUE, MAIN_WAREHOUSE, -3)
        .await
        .unwrap();
    let stock = e.sim.stock();
    assert_eq!(stock[MUG_BLUE][SECOND_WAREHOUSE], 99_999);
    assert_eq!(stock[MUG_BLUE][MAIN_WAREHOUSE], 0);

    // A non-active product is refused as a whole.
    let r = e
        .client
        .update_inventory(DRAFT_PRODUCT, DRAFT_SKU, MAIN_WAREHOUSE, 1)
        .await;
    assert_eq!(api_code(r), sim_codes::PRODUCT_NOT_ACTIVE);
    // A warehouse the SKU does not have is caught before calling TikTok.
    let r = e
        .client
        .update_inventory(MUG_PRODUCT, MUG_BLUE, RETURN_WAREHOUSE, 1)
        .await;
    assert!(matches!(r, Err(TikTokError::InvalidInput(_))), "{r:?}");
    e.sim.stop().await;
}

#[tokio::test]
async fn a_sku_given_a_second_warehouse_since_the_catalogue_read_is_read_and_sent_again_at_once() {
    let e = env().await;
    e.client.catalogue().await.unwrap();
    // Behind the client's back the SKU gains a warehouse: its cached picture is now stale.
    let mut demo = tks::sandbox::tiktok::state::State::demo_catalogue();
    demo[0].skus[0]
        .inventory
        .push((SECOND_WAREHOUSE.to_string(), 4));
    e.sim.set_catalogue(demo).unwrap();
    let red = "1729100000000000001";
    let out = e
        .client
        .update_inventory(MUG_PRODUCT, red, MAIN_WAREHOUSE, 8)
        .await
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(out.sent[0].1.len(), 2);
    assert_eq!(e.sim.stock()[red][MAIN_WAREHOUSE], 8);
    assert_eq!(e.sim.stock()[red][SECOND_WAREHOUSE], 4);
    e.sim.stop().await;
}

#[tokio::test]
async fn per_sku_inventory_errors_are_surfaced_and_the_stale_sku_is_reread() {
    let e = env().await;
    e.client.catalogue().await.unwrap();
    // Behind the client's back the SKU moves to another warehouse: ours is gone.
    let mut demo = tks::sandbox::tiktok::state::State::demo_catalogue();
    demo[0].skus[0].inventory = vec![(SECOND_WAREHOUSE.to_string(), 4)];
    e.sim.set_catalogue(demo).unwrap();
    let red = "1729100000000000001";
    let out = e
        .client
        .update_inventory(MUG_PRODUCT, red, MAIN_WAREHOUSE, 8)
        .await
        .unwrap();
    assert!(!out.is_ok());
    assert_eq!(out.sku_errors[0].code, sim_codes::WAREHOUSES_INCOMPLETE);
    assert_eq!(out.sku_errors[0].sku_id.as_deref(), Some(red));
    assert!(e.sim.inventory_pushes().is_empty());
    // The next push re-reads the SKU and finds the pickup warehouse unassigned.
    let r = e
        .client
        .update_inventory(MUG_PRODUCT, red, MAIN_WAREHOUSE, 8)
        .await;
    assert!(matches!(r, Err(TikTokError::InvalidInput(_))), "{r:?}");
    assert_eq!(e.sim.stock()[red][SECOND_WAREHOUSE], 4);
    e.sim.stop().await;
}

// ----- simulator strictness ------------------------------------------------------------------

#[tokio::test]
async fn simulator_refuses_what_tiktok_refuses() {
    let e = env().await;
    let wh = "/logistics/202309/warehouses";
    assert_eq!(code(&Raw::new(&e, "GET", wh).send().await.1), 0);

    let mut r = Raw::new(&e, "GET", wh);
    r.uppercase_sign = true;
    assert_eq!(code(&r.send().await.1), codes::INVALID_SIGN);

    let mut r = Raw::new(&e, "GET", wh);
    r.timestamp_offset = -301;
    let (_, v) = r.send().await;
    assert_eq!(code(&v), codes::INVALID_PARAM);
    assert!(v["message"].as_str().unwrap().contains("timestamp"));
    let mut r = Raw::new(&e, "GET", wh);
    r.timestamp_offset = 31;
    assert_eq!(code(&r.send().await.1), codes::INVALID_PARAM);

    let mut r = Raw::new(&e, "GET", wh);
    r.with_cipher = false;
    assert_eq!(code(&r.send().await.1), codes::MISSING_SHOP_CIPHER);

    let r = Raw::new(&e, "GET", "/authorization/202309/shops");
    assert_eq!(
        code(&r.send().await.1),
        codes::INVALID_PARAM,
        "cipher on /authorization"
    );
    let r = Raw::new(&e, "GET", "/seller/202309/shops");
    assert_eq!(
        code(&r.send().await.1),
        codes::INVALID_PARAM,
        "cipher on /seller"
    );

    let (status, v) = Raw::new(&e, "GET", "/order/202309/nope").send().await;
    assert_eq!((status, code(&v)), (404, codes::INVALID_PATH));
    assert!(v["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    let (_, v) = Raw::new(&e, "POST", wh).send().await;
    assert_eq!(code(&v), codes::INVALID_METHOD);

    let ids: Vec<String> = (0..51).map(|i| format!("57600000000000{i:04}")).collect();
    let mut r = Raw::new(&e, "GET", "/order/202309/orders");
    r.query.push(("ids".into(), ids.join(",")));
    assert_eq!(code(&r.send().await.1), codes::INVALID_PARAM);

    let search = "/order/202309/orders/search";
    for (size, want) in [
        ("0", codes::INVALID_PARAM),
        ("101", codes::INVALID_PARAM),
        ("100", 0),
    ] {
        let mut r = Raw::new(&e, "POST", search);
        r.query.push(("page_size".into(), size.into()));
        r.body = Some("{}".into());
        assert_eq!(code(&r.send().await.1), want, "page_size {size}");
    }
    let mut r = Raw::new(&e, "POST", search);
    r.query.push(("page_size".into(), "10".into()));
    r.body = Some(r#"{"update_time_from":1}"#.into());
    let (_, v) = r.send().await;
    assert_eq!(code(&v), codes::INVALID_PARAM, "unknown body field");
    let mut r = Raw::new(&e, "POST", search);
    r.query.push(("page_size".into(), "10".into()));
    r.query.push(("version".into(), "202309".into()));
    r.body = Some("{}".into());
    assert_eq!(
        code(&r.send().await.1),
        codes::INVALID_PARAM,
        "unknown query parameter"
    );

    // Tampering with the body after signing breaks the signature.
    let mut r = Raw::new(&e, "POST", search);
    r.query.push(("page_size".into(), "10".into()));
    r.body = Some(r#"{"update_time_ge":1}"#.into());
    let (_, ok) = r.send().await;
    assert_eq!(code(&ok), 0);
    assert!(ok["data"]["next_page_token"].is_string());

    let u = "/product/202309/products/1729000000000000001/inventory/update";
    let mut r = Raw::new(&e, "POST", u);
    r.body = Some(format!(
        r#"{{"skus":[{{"id":"{MUG_BLUE}","inventory":[{{"warehouse_id":"{MAIN_WAREHOUSE}","quantity":3}}]}}]}}"#
    ));
    let (_, v) = r.send().await;
    assert_eq!(code(&v), 0);
    assert_eq!(
        v["data"]["errors"][0]["code"].as_i64(),
        Some(sim_codes::WAREHOUSES_INCOMPLETE)
    );
    e.sim.stop().await;
}

#[tokio::test]
async fn missing_invalid_and_expired_tokens_are_refused() {
    let e = env().await;
    let cfg = e.sim.config().clone();
    let call = |token: Option<&'static str>| {
        let now = e.manual.now().timestamp().to_string();
        let q = vec![
            ("app_key".to_string(), cfg.app_key.clone()),
            ("timestamp".to_string(), now),
            ("shop_cipher".to_string(), cfg.shop_cipher.clone()),
        ];
        let s = sign::sign(&cfg.app_secret, "/logistics/202309/warehouses", &q, None);
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q.iter())
            .append_pair("sign", &s)
            .finish();
        let mut req = reqwest::Client::new().get(format!(
            "{}/logistics/202309/warehouses?{qs}",
            e.sim.base_url()
        ));
        if let Some(t) = token {
            req = req.header("x-tts-access-token", t);
        }
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(code(&call(None).await), codes::INVALID_ACCESS_TOKEN_HEADER);
    assert_eq!(
        code(&call(Some("ROW_forged")).await),
        codes::INVALID_CREDENTIAL
    );
    e.sim.expire_access_tokens();
    let mut r = Raw::new(&e, "GET", "/logistics/202309/warehouses");
    r.with_cipher = true;
    assert_eq!(code(&r.send().await.1), codes::ACCESS_TOKEN_EXPIRED);
    e.sim.stop().await;
}

// ----- webhooks -----------------------------------------------------------------------------

#[derive(Default)]
struct Received {
    hooks: Mutex<Vec<(String, Vec<u8>)>>,
    fail_first: Mutex<u32>,
}

async fn receiver(state: Arc<Received>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/webhooks/tiktok",
            web::post().to(
                |req: HttpRequest, body: web::Bytes, st: web::Data<Arc<Received>>| async move {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    st.hooks.lock().push((auth, body.to_vec()));
                    let mut f = st.fail_first.lock();
                    if *f > 0 {
                        *f -= 1;
                        HttpResponse::InternalServerError().finish()
                    } else {
                        HttpResponse::Ok().finish()
                    }
                },
            ),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://{addr}/webhooks/tiktok")
}

#[tokio::test]
async fn webhooks_are_signed_verifiable_and_retried_on_the_clock() {
    let got = Arc::new(Received::default());
    *got.fail_first.lock() = 1;
    let url = receiver(got.clone()).await;
    let mut cfg = SimConfig::demo();
    cfg.webhook_url = Some(url);
    let e = env_with(cfg.clone()).await;

    let o = e
        .sim
        .create_order(NewOrder::of(&[("CAP-1", 1)], TikTokOrderStatus::OnHold))
        .unwrap();
    let (auth, body) = wait_for(|| got.hooks.lock().first().cloned()).await;
    assert_eq!(
        webhook::verify(&cfg.app_key, &cfg.app_secret, &body, &auth),
        Ok(())
    );
    let n = webhook::parse(&body).unwrap();
    assert_eq!(n.kind, NotificationType::OrderStatusChange);
    assert_eq!(n.order_id.as_deref(), Some(o.id.as_str()));
    assert_eq!(n.order_status.as_deref(), Some("ON_HOLD"));
    assert_eq!(n.shop_id, cfg.shop_id);
    assert!(
        !n.notification_id.starts_with("sha256:"),
        "carries tts_notification_id"
    );

    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'O').unwrap();
    tampered[pos] = b'X';
    assert_eq!(
        webhook::verify(&cfg.app_key, &cfg.app_secret, &tampered, &auth),
        Err(WebhookError::BadSignature)
    );

    // The receiver answered 500: nothing more until two minutes pass on the clock.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got.hooks.lock().len(), 1);
    e.manual.advance(Duration::from_secs(119));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(got.hooks.lock().len(), 1);
    e.manual.advance(Duration::from_secs(1));
    let (_, retried) = wait_for(|| got.hooks.lock().get(1).cloned()).await;
    assert_eq!(retried, body, "a retry is the same notification");
    let attempts = e.sim.webhook_attempts();
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        vec![500, 200]
    );

    // Address change -> type 3, cancellation -> type 11 (+ type 1 CANCELLED).
    e.sim
        .set_order_status(&o.id, TikTokOrderStatus::AwaitingShipment)
        .unwrap();
    e.sim
        .edit_order(
            &o.id,
            tks::sandbox::tiktok::OrderEdit {
                address: Some(tks::sandbox::tiktok::SimAddress::demo()),
                ..Default::default()
            },
        )
        .unwrap();
    e.sim.cancel_order(&o.id, None).unwrap();
    let kinds = wait_for(|| {
        let hooks = got.hooks.lock();
        let kinds: Vec<i64> = hooks[2..]
            .iter()
            .map(|(_, b)| webhook::parse(b).unwrap().type_code)
            .collect();
        (kinds.len() >= 4).then_some(kinds)
    })
    .await;
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(sorted, vec![1, 1, 3, 11]);
    e.sim.stop().await;
}

#[tokio::test]
async fn webhook_faults_duplicate_and_drop() {
    let got = Arc::new(Received::default());
    let url = receiver(got.clone()).await;
    let mut cfg = SimConfig::demo();
    cfg.webhook_url = Some(url);
    let e = env_with(cfg).await;
    e.sim.set_faults(Faults {
        duplicate_webhooks: true,
        drop_webhooks: 1,
        ..Faults::default()
    });
    e.sim
        .create_order(NewOrder::of(&[("CAP-1", 1)], TikTokOrderStatus::OnHold))
        .unwrap();
    let o = e
        .sim
        .create_order(NewOrder::of(&[("CAP-1", 1)], TikTokOrderStatus::OnHold))
        .unwrap();
    let two = wait_for(|| {
        let h = got.hooks.lock();
        (h.len() >= 2).then(|| h.clone())
    })
    .await;
    let a = webhook::parse(&two[0].1).unwrap();
    let b = webhook::parse(&two[1].1).unwrap();
    assert_eq!(
        a.notification_id, b.notification_id,
        "duplicate keeps the id"
    );
    assert_eq!(
        a.order_id.as_deref(),
        Some(o.id.as_str()),
        "the first order's event was dropped"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got.hooks.lock().len(), 2);
    e.sim.stop().await;
}

// ----- control surface over HTTP -------------------------------------------------------------

#[tokio::test]
async fn control_surface_over_http() {
    let e = env().await;
    let http = reqwest::Client::new();
    let base = format!("{}/_sim", e.sim.base_url());
    let o: Value = http
        .post(format!("{base}/orders"))
        .json(&serde_json::json!({"items": [{"sku": "MUG-BLUE", "quantity": 2}], "status": "AWAITING_SHIPMENT"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = o["id"].as_str().unwrap().to_string();
    assert_eq!(o["line_items"].as_array().unwrap().len(), 2);
    let bad = http
        .post(format!("{base}/orders"))
        .json(&serde_json::json!({"items": [{"sku": "NOPE", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let r = http
        .post(format!("{base}/orders/{id}/status"))
        .json(&serde_json::json!({"status": "IN_TRANSIT"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(
        e.sim.order(&id).unwrap().status,
        TikTokOrderStatus::InTransit
    );
    let code: Value = http
        .post(format!("{base}/auth_code"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other = TikTokClient::new(
        &e.settings,
        e.manual.clock(),
        Arc::new(MemoryTokenStore::default()),
        options(),
    )
    .unwrap();
    other
        .exchange_auth_code(code["code"].as_str().unwrap())
        .await
        .unwrap();
    let r = http
        .post(format!("{base}/faults"))
        .json(&serde_json::json!({"fail_next": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(e.sim.faults().fail_next, 1);
    let shipments: Value = http
        .get(format!("{base}/shipments"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shipments, serde_json::json!([]));
    e.sim.stop().await;
}

#[tokio::test]
async fn tokens_in_a_file_store_survive_a_restart_and_refreshes_are_written_back() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiktok-tokens.json");
    let file: Arc<dyn TokenStore> = Arc::new(tks::connectors::tiktok::FileTokenStore::new(&path));
    let mut s = e.settings.clone();
    s.shop_cipher.clear();
    let first = TikTokClient::new(&s, e.manual.clock(), file.clone(), options()).unwrap();
    first
        .exchange_auth_code(&e.sim.issue_auth_code())
        .await
        .unwrap();
    drop(first);
    // A new process: the cipher and tokens come from the file, no re-authorisation.
    let second = TikTokClient::new(&s, e.manual.clock(), file.clone(), options()).unwrap();
    assert_eq!(second.shop_cipher(), e.sim.config().shop_cipher);
    let before = file.load().unwrap().unwrap();
    e.sim.expire_access_tokens();
    assert_eq!(second.warehouses().await.unwrap().len(), 3);
    let after = file.load().unwrap().unwrap();
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "rotated pair persisted"
    );
    let raw = std::fs::read_to_string(&path).unwrap();
    assert!(raw.contains(after.access_token.expose()));
    assert!(!format!("{second:?}").contains(after.access_token.expose()));
    e.sim.stop().await;
}
