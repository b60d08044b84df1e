//! The whole service against both HTTP simulators, with a manual clock: every flow
//! of product.md as a merchant would see it.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use tks::app::{self, AppHandle, StartOptions};
use tks::clock::ManualClock;
use tks::config::{Secret, Settings};
use tks::connectors::pollers;
use tks::connectors::tiktok::auth::FileTokenStore;
use tks::connectors::tiktok::client::{ClientOptions, TikTokClient};
use tks::domain::observed::{Quantity, TikTokOrderStatus};
use tks::sandbox::katana::{KatanaSim, KatanaSimConfig, Tracking, WEBHOOK_EVENTS};
use tks::sandbox::tiktok::{
    NewOrder, NewProduct, NewSku, SimConfig, TikTokSim, MAIN_WAREHOUSE, RETURN_WAREHOUSE,
};
use tks::store::EventStore;

pub const KATANA_WEBHOOK_TOKEN: &str = "a1b2c3d4e5f60718";

pub struct TestApp {
    pub clock: ManualClock,
    pub tiktok: TikTokSim,
    pub katana: KatanaSim,
    pub app: AppHandle,
    pub variants: BTreeMap<String, i64>,
    pub main_location: i64,
    pub _dir: tempfile::TempDir,
}

/// Settings pointing at the two simulators.
pub fn settings_for(
    tiktok: &TikTokSim,
    katana: &KatanaSim,
    db: &std::path::Path,
    main_location: i64,
    fbt_location: i64,
) -> Settings {
    let demo = SimConfig::demo();
    let mut s = Settings::default();
    s.store.path = db.to_string_lossy().into_owned();
    s.server.bind = "127.0.0.1:0".into();
    s.server.admin_token = Secret::new("test-admin-token");
    s.tiktok.api_base = tiktok.base_url().to_string();
    s.tiktok.auth_base = tiktok.auth_base_url().to_string();
    s.tiktok.app_key = demo.app_key;
    s.tiktok.app_secret = Secret::new(demo.app_secret);
    s.tiktok.shop_id = demo.shop_id;
    s.tiktok.shop_cipher = demo.shop_cipher;
    s.tiktok.requests_per_second = 0;
    s.katana.api_base = katana.base_url().to_string();
    s.katana.api_key = Secret::new(katana.api_key());
    s.katana.webhook_token = Secret::new(KATANA_WEBHOOK_TOKEN);
    s.warehouses.pickup_warehouse_id = MAIN_WAREHOUSE.into();
    s.warehouses.return_warehouse_id = RETURN_WAREHOUSE.into();
    s.warehouses.pickup_location_id = main_location;
    s.warehouses.return_location_id = main_location;
    s.warehouses.fbt_location_id = fbt_location;
    s
}

fn product(id: &str, sku_id: &str, seller_sku: &str, price: &str) -> NewProduct {
    NewProduct {
        id: Some(id.into()),
        title: format!("Product {seller_sku}"),
        status: "ACTIVATE".into(),
        skus: vec![NewSku {
            id: Some(sku_id.into()),
            seller_sku: seller_sku.into(),
            price: price.into(),
            inventory: vec![(MAIN_WAREHOUSE.to_string(), 0)],
        }],
    }
}

/// Simulators seeded with SKUs A and B on both sides and C on TikTok only; the
/// service connected (tokens exchanged) and started with the catalogue mapped.
pub async fn spawn_app(tune: impl FnOnce(&mut Settings)) -> TestApp {
    let clock = ManualClock::new(
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 5, 4, 9, 0, 0).unwrap(),
    );
    let tiktok = TikTokSim::start(SimConfig::demo(), clock.clock()).unwrap();
    tiktok
        .set_catalogue(vec![
            product("1729000000000000101", "1729100000000000101", "A", "10.00"),
            product("1729000000000000102", "1729100000000000102", "B", "5.00"),
            product("1729000000000000103", "1729100000000000103", "C", "7.00"),
        ])
        .unwrap();
    let katana = KatanaSim::start(KatanaSimConfig::default(), clock.clock()).unwrap();
    let main_location = katana.add_location("Main warehouse", true);
    let fbt_location = katana.add_location("TikTok FBT", true);
    let mut variants = BTreeMap::new();
    for (name, sku, price, stock) in [("Alpha", "A", "10.00", 10), ("Beta", "B", "5.00", 5)] {
        let id = katana.add_product(name, &[(sku, price)]).unwrap()[0];
        katana
            .set_stock(id, main_location, Quantity::from_units(stock))
            .unwrap();
        variants.insert(sku.to_string(), id);
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tks.db");
    let mut settings = settings_for(&tiktok, &katana, &db, main_location, fbt_location);
    tune(&mut settings);

    // Connect once, as `tks connect tiktok` would: the service finds the tokens.
    let tokens = Arc::new(FileTokenStore::new(app::token_file_for(
        &settings.store.path,
    )));
    let connect = TikTokClient::new(
        &settings.tiktok,
        clock.clock(),
        tokens,
        ClientOptions::default(),
    )
    .unwrap();
    connect
        .exchange_auth_code(&tiktok.issue_auth_code())
        .await
        .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let options = StartOptions {
        pollers: false,
        katana_timeout: Duration::from_secs(5),
        ..StartOptions::default()
    };
    let app = app::start(settings, clock.clock(), listener, options)
        .await
        .unwrap();
    tiktok.set_webhook_url(Some(format!("{}/webhooks/tiktok", app.base_url())));
    katana.add_webhook(
        &format!("{}/webhooks/katana", app.base_url()),
        WEBHOOK_EVENTS,
        Some(KATANA_WEBHOOK_TOKEN),
    );
    // What the pollers do first thing at startup: map the catalogue, read stock.
    pollers::refresh_catalogue(&app.services).await.unwrap();
    pollers::poll_stock(&app.services).await.unwrap();
    TestApp {
        clock,
        tiktok,
        katana,
        app,
        variants,
        main_location,
        _dir: dir,
    }
}

impl TestApp {
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.app.services.store
    }

    pub fn events(&self, stream: &str) -> Vec<String> {
        self.store()
            .read_stream(stream, 0)
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    /// Waits (in real time, bounded) until every durable subscriber has handled the
    /// whole log and the log stopped growing: the service is idle.
    pub async fn settle(&self) {
        let names = [
            "demand-policy",
            "tiktok-reader",
            "tiktok-writer",
            "katana-writer",
            "katana-reader",
        ];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut quiet = 0;
        let mut last = u64::MAX;
        loop {
            let head = self.store().head();
            let caught_up = names
                .iter()
                .all(|n| self.store().checkpoint(n).unwrap() >= head);
            if caught_up && head == last {
                quiet += 1;
                if quiet >= 5 {
                    return;
                }
            } else {
                quiet = 0;
            }
            last = head;
            assert!(
                tokio::time::Instant::now() < deadline,
                "the service never settled (head {head})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Moves the clock forward in steps, letting the service settle after each.
    pub async fn advance(&self, by: Duration, step: Duration) {
        let target = self.clock.now() + chrono::Duration::from_std(by).unwrap();
        while self.clock.now() < target {
            let next = (self.clock.now() + chrono::Duration::from_std(step).unwrap()).min(target);
            self.clock.set(next);
            self.settle().await;
        }
    }

    pub fn sales_orders(&self) -> Vec<Value> {
        self.katana
            .sales_orders()
            .into_iter()
            .filter(|so| so["deleted_at"].is_null())
            .collect()
    }

    pub fn place(&self, items: &[(&str, u32)]) -> String {
        let o = self
            .tiktok
            .create_order(NewOrder::of(items, TikTokOrderStatus::AwaitingShipment))
            .unwrap();
        o.id
    }

    /// Rows of a Katana SO as (sku, quantity), via the seeded variant ids.
    pub fn rows(&self, so: &Value) -> Vec<(String, f64)> {
        let sku_of: BTreeMap<i64, &String> = self.variants.iter().map(|(s, v)| (*v, s)).collect();
        let mut rows: Vec<(String, f64)> = so["sales_order_rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let v = r["variant_id"].as_i64().unwrap();
                let q = match &r["quantity"] {
                    Value::String(s) => s.parse().unwrap(),
                    n => n.as_f64().unwrap(),
                };
                (sku_of.get(&v).map(|s| s.to_string()).unwrap_or_default(), q)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    pub async fn stop(self) {
        self.app.stop().await;
        self.tiktok.stop().await;
        self.katana.stop().await;
    }
}

const MIN: Duration = Duration::from_secs(60);

#[actix::test]
async fn two_units_of_a_and_one_of_b_become_one_so_when_the_hold_ends() {
    let t = spawn_app(|_| {}).await;
    let id = t.place(&[("A", 2), ("B", 1)]);
    t.settle().await;
    assert_eq!(
        t.events(&format!("order-{id}"))[..2],
        ["OrderSignalled", "OrderPlaced"]
    );

    t.advance(Duration::from_secs(59 * 60 + 59), 10 * MIN).await;
    assert!(t.sales_orders().is_empty(), "pushed before the hold ended");

    t.advance(Duration::from_secs(1), MIN).await;
    let sos = t.sales_orders();
    assert_eq!(sos.len(), 1);
    let so = &sos[0];
    assert_eq!(
        t.rows(so),
        vec![("A".to_string(), 2.0), ("B".to_string(), 1.0)]
    );
    assert_eq!(so["status"], "NOT_SHIPPED");
    assert_eq!(so["ecommerce_order_id"], id.as_str());
    assert_eq!(so["ecommerce_order_type"], "tiktok");
    assert_eq!(so["order_no"], format!("TT-{id}"));
    assert_eq!(so["location_id"], t.main_location);
    let events = t.events(&format!("order-{id}"));
    assert!(
        events.contains(&"HoldExpired".to_string()) && events.contains(&"SoCreated".to_string()),
        "{events:?}"
    );
    t.stop().await;
}

#[actix::test]
async fn duplicate_webhooks_and_polls_still_make_one_so() {
    let t = spawn_app(|_| {}).await;
    let mut faults = t.tiktok.faults();
    faults.duplicate_webhooks = true;
    t.tiktok.set_faults(faults);
    let id = t.place(&[("A", 1)]);
    for _ in 0..5 {
        t.tiktok
            .set_order_status(&id, TikTokOrderStatus::AwaitingShipment)
            .ok();
    }
    t.settle().await;
    pollers::poll_tiktok_orders(&t.app.services).await.unwrap();
    t.advance(61 * MIN, 10 * MIN).await;
    for _ in 0..3 {
        pollers::poll_tiktok_orders(&t.app.services).await.unwrap();
        t.settle().await;
    }
    let sos: Vec<Value> = t
        .sales_orders()
        .into_iter()
        .filter(|so| so["ecommerce_order_id"] == id.as_str())
        .collect();
    assert_eq!(sos.len(), 1);
    let events = t.events(&format!("order-{id}"));
    assert_eq!(events.iter().filter(|e| *e == "SoCreated").count(), 1);
    assert_eq!(events.iter().filter(|e| *e == "OrderPlaced").count(), 1);
    t.stop().await;
}

#[actix::test]
async fn a_partial_delivery_ships_one_line_item_then_the_rest() {
    let t = spawn_app(|_| {}).await;
    let id = t.place(&[("A", 2)]);
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    let so = t.sales_orders().pop().expect("SO created");
    let so_id = so["id"].as_i64().unwrap();
    let row = so["sales_order_rows"][0]["id"].as_i64().unwrap();
    let tracking = |n: &str| Tracking {
        tracking_number: Some(n.into()),
        tracking_url: None,
        tracking_carrier: Some("UPS".into()),
    };
    t.katana
        .deliver(
            so_id,
            Some(&[(row, Quantity::from_units(1))]),
            tracking("1Z001"),
        )
        .unwrap();
    t.settle().await;
    let shipments = t.tiktok.shipments();
    assert_eq!(shipments.len(), 1, "{shipments:?}");
    assert_eq!(shipments[0].order_id, id);
    assert_eq!(shipments[0].line_item_ids.len(), 1);
    assert_eq!(shipments[0].tracking_number, "1Z001");
    assert_eq!(
        t.tiktok.order(&id).unwrap().status,
        TikTokOrderStatus::PartiallyShipping
    );

    t.katana.deliver(so_id, None, tracking("1Z002")).unwrap();
    t.settle().await;
    let shipments = t.tiktok.shipments();
    assert_eq!(shipments.len(), 2);
    assert_ne!(shipments[0].line_item_ids, shipments[1].line_item_ids);
    assert_eq!(
        t.tiktok.order(&id).unwrap().status,
        TikTokOrderStatus::AwaitingCollection
    );
    t.stop().await;
}

#[actix::test]
async fn three_quick_stock_changes_make_one_push_of_the_latest_atp() {
    let t = spawn_app(|_| {}).await;
    let a = t.variants["A"];
    for stock in [9, 8, 7] {
        t.katana
            .set_stock(a, t.main_location, Quantity::from_units(stock))
            .unwrap();
        t.settle().await;
        t.advance(MIN, MIN).await;
    }
    assert!(
        t.tiktok.inventory_pushes().is_empty(),
        "pushed inside the buffer"
    );
    t.advance(60 * MIN, 10 * MIN).await;
    let pushes: Vec<_> = t
        .tiktok
        .inventory_pushes()
        .into_iter()
        .filter(|p| p.sku_id == "1729100000000000101")
        .collect();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].quantity, 7);
    t.stop().await;
}

#[actix::test]
async fn held_orders_reduce_the_atp_pushed() {
    let t = spawn_app(|s| s.sync.inventory_buffer = Duration::from_secs(15 * 60)).await;
    t.place(&[("A", 3)]);
    t.settle().await;
    t.advance(MIN, MIN).await;
    let a = t.variants["A"];
    t.katana
        .set_stock(a, t.main_location, Quantity::from_units(12))
        .unwrap();
    t.settle().await;
    t.advance(15 * MIN, MIN).await;
    let pushes: Vec<_> = t
        .tiktok
        .inventory_pushes()
        .into_iter()
        .filter(|p| p.sku_id == "1729100000000000101")
        .collect();
    // 12 in stock, 3 units sold on TikTok and still in the hold.
    assert_eq!(
        pushes.iter().map(|p| p.quantity).collect::<Vec<_>>(),
        vec![9],
        "{pushes:?}"
    );
    t.stop().await;
}
