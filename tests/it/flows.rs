//! The whole service against both HTTP simulators, with a manual clock: every flow
//! of product.md as a merchant would see it.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use tks::app::{AppHandle, StartOptions};
use tks::clock::ManualClock;
use tks::config::{Secret, Settings};
use tks::connectors::pollers;
use tks::domain::observed::{Quantity, TikTokOrderStatus};
use tks::sandbox::harness::{self, KatanaWebhook, Simulators};
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

pub fn product(id: &str, sku_id: &str, seller_sku: &str, price: &str) -> NewProduct {
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
    spawn_app_with(tune, |_| {}).await
}

/// [`spawn_app`] with the start options changed too (client timeouts, say).
pub async fn spawn_app_with(
    tune: impl FnOnce(&mut Settings),
    tune_options: impl FnOnce(&mut StartOptions),
) -> TestApp {
    spawn_app_for(SimConfig::demo(), tune, tune_options).await
}

/// [`spawn_app_with`] against a TikTok shop configured otherwise (its market, say).
pub async fn spawn_app_for(
    shop: SimConfig,
    tune: impl FnOnce(&mut Settings),
    tune_options: impl FnOnce(&mut StartOptions),
) -> TestApp {
    let clock = ManualClock::new(
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 5, 4, 9, 0, 0).unwrap(),
    );
    let tiktok = TikTokSim::start(shop, clock.clock()).unwrap();
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    settings.server.bind = listener.local_addr().unwrap().to_string();
    tune(&mut settings);
    let katana_webhook = if settings.server.public_url.is_empty() {
        KatanaWebhook::AddedByOperator {
            token: Some(KATANA_WEBHOOK_TOKEN.into()),
        }
    } else {
        KatanaWebhook::RegisteredByService
    };
    let mut options = StartOptions {
        pollers: false,
        katana_timeout: Duration::from_secs(5),
        ..StartOptions::default()
    };
    tune_options(&mut options);
    let app = harness::start_connected(
        settings,
        &clock.clock(),
        listener,
        options,
        Simulators {
            tiktok: &tiktok,
            katana: &katana,
        },
        katana_webhook,
    )
    .await
    .unwrap();
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
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut quiet = 0;
        let mut last = u64::MAX;
        loop {
            let head = self.store().head();
            let caught_up = harness::caught_up(self.store(), self.simulators());
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

    pub fn simulators(&self) -> Simulators<'_> {
        Simulators {
            tiktok: &self.tiktok,
            katana: &self.katana,
        }
    }

    /// A webhook a simulator is still sending would add to the log after a quiet
    /// spell on a loaded machine.
    fn webhooks_on_the_wire(&self) -> bool {
        self.katana.webhooks_in_flight() > 0 || self.tiktok.webhooks_in_flight() > 0
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

    /// Waits until the log stops growing for a while, even if a subscriber is still
    /// waiting (for Katana's rate budget to refill on the clock, say).
    pub async fn quiet(&self) {
        let mut last = self.store().head();
        let mut still = 0;
        for _ in 0..2000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let head = self.store().head();
            if head == last && !self.webhooks_on_the_wire() {
                still += 1;
                if still >= 20 {
                    return;
                }
            } else {
                still = 0;
                last = head;
            }
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

    /// Places an order and lets its hold run out: the SO exists afterwards.
    pub async fn place_past_hold(&self, items: &[(&str, u32)]) -> String {
        let id = self.place(items);
        self.settle().await;
        self.advance(61 * MIN, 10 * MIN).await;
        id
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
    pollers::poll_tiktok_orders(&t.app.services.pollers)
        .await
        .unwrap();
    t.advance(61 * MIN, 10 * MIN).await;
    for _ in 0..3 {
        pollers::poll_tiktok_orders(&t.app.services.pollers)
            .await
            .unwrap();
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
    let id = t.place_past_hold(&[("A", 2)]).await;
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
    // The second re-read comes within the first's coalescing window: it waits for
    // the window's end and lists every fulfillment changed meanwhile.
    t.settle().await;
    t.advance(
        t.app.services.settings.katana.coalesce_fulfillment_reads,
        MIN,
    )
    .await;
    wait_for("the second shipment", 20, || {
        t.tiktok.shipments().len() == 2
    })
    .await;
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

fn exceptions(t: &TestApp) -> Vec<(String, String)> {
    t.store()
        .lookup_all(tks::names::lookup::EXCEPTION)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

pub fn tracking(number: Option<&str>, carrier: &str) -> Tracking {
    Tracking {
        tracking_number: number.map(str::to_string),
        tracking_url: None,
        tracking_carrier: Some(carrier.into()),
    }
}

#[actix::test]
async fn edits_in_the_hold_are_what_reaches_katana() {
    let t = spawn_app(|_| {}).await;
    let id = t.place(&[("A", 2), ("B", 1)]);
    t.settle().await;
    t.advance(20 * MIN, 10 * MIN).await;
    let unit = t
        .tiktok
        .order(&id)
        .unwrap()
        .units
        .iter()
        .find(|u| u.seller_sku == "A")
        .unwrap()
        .id
        .clone();
    t.tiktok.cancel_order(&id, Some(vec![unit])).unwrap();
    t.settle().await;
    assert!(t
        .events(&format!("order-{id}"))
        .contains(&"OrderEdited".to_string()));
    t.advance(41 * MIN, 10 * MIN).await;
    let so = t.sales_orders().pop().expect("SO created");
    assert_eq!(
        t.rows(&so),
        vec![("A".to_string(), 1.0), ("B".to_string(), 1.0)]
    );
    t.stop().await;
}

#[actix::test]
async fn an_order_cancelled_in_the_hold_is_never_pushed_and_releases_its_stock() {
    let t = spawn_app(|s| s.sync.inventory_buffer = Duration::from_secs(5 * 60)).await;
    let id = t.place(&[("A", 4)]);
    t.settle().await;
    t.advance(10 * MIN, MIN).await;
    t.tiktok.cancel_order(&id, None).unwrap();
    t.settle().await;
    t.advance(60 * MIN, 10 * MIN).await;
    assert!(t.sales_orders().is_empty());
    assert!(t
        .events(&format!("order-{id}"))
        .contains(&"OrderCancelled".to_string()));
    let pushes: Vec<i64> = t
        .tiktok
        .inventory_pushes()
        .into_iter()
        .filter(|p| p.sku_id == "1729100000000000101")
        .map(|p| p.quantity)
        .collect();
    assert_eq!(
        pushes.last(),
        Some(&10),
        "the 4 held units are released: {pushes:?}"
    );
    t.stop().await;
}

#[actix::test]
async fn an_unmatched_sku_is_an_exception_until_the_variant_appears_then_pushes_by_itself() {
    let t = spawn_app(|_| {}).await;
    let id = t.place_past_hold(&[("C", 1), ("A", 1)]).await;
    assert!(t.sales_orders().is_empty());
    let open = exceptions(&t);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].0, format!("order-{id}#unmatched-sku"));
    assert!(open[0].1.contains('C'), "{}", open[0].1);

    let c = t.katana.add_product("Gamma", &[("C", "7.00")]).unwrap()[0];
    t.katana
        .set_stock(c, t.main_location, Quantity::from_units(3))
        .unwrap();
    pollers::refresh_catalogue(&t.app.services.pollers)
        .await
        .unwrap();
    t.settle().await;
    let so = t
        .sales_orders()
        .pop()
        .expect("pushed once the variant exists");
    assert_eq!(so["ecommerce_order_id"], id.as_str());
    assert!(exceptions(&t).is_empty(), "resolved by itself");
    t.stop().await;
}

#[actix::test]
async fn fulfilled_by_tiktok_orders_are_skipped() {
    let t = spawn_app(|_| {}).await;
    let mut order = NewOrder::of(&[("A", 1)], TikTokOrderStatus::AwaitingShipment);
    order.fulfillment_type = Some(tks::domain::observed::FulfillmentType::FulfillmentByTiktok);
    let id = t.tiktok.create_order(order).unwrap().id;
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    assert!(t.sales_orders().is_empty());
    assert!(t
        .events(&format!("order-{id}"))
        .contains(&"OrderSkipped".to_string()));
    t.stop().await;
}

#[actix::test]
async fn fulfilled_by_tiktok_orders_can_be_recorded_as_done_from_the_fbt_location() {
    let t = spawn_app(|s| s.sync.fbt_orders = tks::config::FbtMode::RecordAsDone).await;
    let mut order = NewOrder::of(&[("B", 2)], TikTokOrderStatus::AwaitingShipment);
    order.fulfillment_type = Some(tks::domain::observed::FulfillmentType::FulfillmentByTiktok);
    let id = t.tiktok.create_order(order).unwrap().id;
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    assert!(t.sales_orders().is_empty(), "not before TikTok ships it");
    t.tiktok
        .set_order_status(&id, TikTokOrderStatus::InTransit)
        .unwrap();
    t.settle().await;
    let so = t.sales_orders().pop().expect("recorded as done");
    assert_eq!(so["status"], "DELIVERED");
    assert_eq!(
        so["location_id"],
        t.app.services.settings.warehouses.fbt_location_id
    );
    let (main_in_stock, _) = t.katana.stock(t.variants["B"], t.main_location);
    assert_eq!(
        main_in_stock,
        Quantity::from_units(5),
        "main location untouched"
    );
    t.stop().await;
}

#[actix::test]
async fn a_cancellation_after_the_push_deletes_a_not_shipped_so() {
    let t = spawn_app(|_| {}).await;
    let id = t.place_past_hold(&[("A", 1)]).await;
    assert_eq!(t.sales_orders().len(), 1);
    t.tiktok.cancel_order(&id, None).unwrap();
    t.settle().await;
    assert!(t.sales_orders().is_empty(), "deleted");
    let (_, committed) = t.katana.stock(t.variants["A"], t.main_location);
    assert_eq!(committed, Quantity(0), "commitment released");
    assert!(t
        .events(&format!("order-{id}"))
        .contains(&"SoDeleted".to_string()));
    t.stop().await;
}

#[actix::test]
async fn with_on_cancel_flag_a_late_cancellation_is_an_exception_and_the_so_stays() {
    let t = spawn_app(|s| s.katana.on_cancel = tks::config::OnCancel::Flag).await;
    let id = t.place_past_hold(&[("A", 1)]).await;
    t.tiktok.cancel_order(&id, None).unwrap();
    t.settle().await;
    assert_eq!(t.sales_orders().len(), 1);
    let open = exceptions(&t);
    assert!(
        open.iter()
            .any(|(k, _)| k == &format!("order-{id}#cancelled-after-push")),
        "{open:?}"
    );
    t.stop().await;
}

#[actix::test]
async fn tracking_waits_while_tiktok_shows_the_order_on_hold() {
    let t = spawn_app(|_| {}).await;
    let id = t.place_past_hold(&[("A", 1)]).await;
    let so_id = t.sales_orders()[0]["id"].as_i64().unwrap();
    t.tiktok
        .set_order_status(&id, TikTokOrderStatus::OnHold)
        .unwrap();
    t.settle().await;
    t.katana
        .deliver(so_id, None, tracking(Some("1Z900"), "UPS"))
        .unwrap();
    t.settle().await;
    assert!(t.tiktok.shipments().is_empty(), "sent while ON_HOLD");
    t.tiktok
        .set_order_status(&id, TikTokOrderStatus::AwaitingShipment)
        .unwrap();
    t.settle().await;
    assert_eq!(t.tiktok.shipments().len(), 1);
    t.stop().await;
}

#[actix::test]
async fn missing_tracking_and_unknown_carriers_are_exceptions_not_silent_skips() {
    let t = spawn_app(|_| {}).await;
    let first = t.place(&[("A", 1)]);
    let second = t.place(&[("B", 1)]);
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    let so_of = |id: &str| {
        t.sales_orders()
            .into_iter()
            .find(|so| so["ecommerce_order_id"] == id)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    t.katana
        .deliver(so_of(&first), None, tracking(None, "UPS"))
        .unwrap();
    t.katana
        .deliver(so_of(&second), None, tracking(Some("ZZ1"), "Pigeon Post"))
        .unwrap();
    t.settle().await;
    assert!(t.tiktok.shipments().is_empty());
    let open: Vec<String> = exceptions(&t).into_iter().map(|(k, _)| k).collect();
    assert!(
        open.iter()
            .any(|k| k.starts_with(&format!("order-{first}#missing-tracking-"))),
        "{open:?}"
    );
    assert!(
        open.iter()
            .any(|k| k.starts_with(&format!("order-{second}#fulfillment-rejected-"))),
        "{open:?}"
    );
    t.stop().await;
}

#[actix::test]
async fn a_bad_signature_is_refused_with_nothing_recorded_and_a_malformed_body_is_400() {
    let t = spawn_app(|_| {}).await;
    let head = t.store().head();
    let http = reqwest::Client::new();
    let body = r#"{"type":1,"tts_notification_id":"n-1","shop_id":"1","timestamp":1,"data":{"order_id":"999","order_status":"AWAITING_SHIPMENT","update_time":1}}"#;
    let url = format!("{}/webhooks/tiktok", t.app.base_url());
    let r = http
        .post(&url)
        .header("Authorization", "00".repeat(32))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http.post(&url).body(body).send().await.unwrap();
    assert_eq!(r.status(), 401, "no signature at all");
    let garbage = b"{not json";
    let demo = SimConfig::demo();
    let sig =
        tks::connectors::tiktok::sign::webhook_signature(&demo.app_key, &demo.app_secret, garbage);
    let r = http
        .post(&url)
        .header("Authorization", sig)
        .body(&garbage[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let kurl = format!("{}/webhooks/katana", t.app.base_url());
    let kbody = br#"{"resource_type":"sales_order","action":"sales_order.delivered","webhook_id":1,"object":{"id":"1","status":"DELIVERED"}}"#;
    let r = http
        .post(&kurl)
        .header("x-sha2-signature", "ab".repeat(32))
        .body(&kbody[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(t.store().head(), head, "nothing recorded");
    assert!(!t.store().inbox_contains("tiktok", "n-1").unwrap());
    let good = tks::connectors::katana::webhook::sign(KATANA_WEBHOOK_TOKEN, &kbody[..]);
    let r = http
        .post(&kurl)
        .header("x-sha2-signature", good)
        .body(&kbody[..])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "a valid delivery for an unknown SO is accepted and kept"
    );
    t.stop().await;
}

#[actix::test]
async fn orders_whose_webhooks_were_lost_are_found_by_the_poll() {
    let t = spawn_app(|_| {}).await;
    let mut faults = t.tiktok.faults();
    faults.drop_webhooks = 10;
    t.tiktok.set_faults(faults);
    let id = t.place(&[("B", 1)]);
    t.settle().await;
    assert!(t.events(&format!("order-{id}")).is_empty());
    pollers::poll_tiktok_orders(&t.app.services.pollers)
        .await
        .unwrap();
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    assert_eq!(t.sales_orders().len(), 1);
    t.stop().await;
}

#[actix::test]
async fn a_burst_of_orders_is_paced_under_katanas_limit_without_a_429() {
    let t = spawn_app(|_| {}).await;
    let ids: Vec<String> = (0..90)
        .map(|i| t.place(&[(if i % 2 == 0 { "A" } else { "B" }, 1)]))
        .collect();
    t.settle().await;
    t.advance(59 * MIN, 10 * MIN).await;
    let mut minutes = 0;
    while t.sales_orders().len() < ids.len() {
        t.clock.advance(MIN);
        t.quiet().await;
        minutes += 1;
        assert!(
            minutes < 30,
            "only {} of {} SOs after {minutes} min",
            t.sales_orders().len(),
            ids.len()
        );
    }
    let stats = t.katana.stats();
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert!(t.katana.max_requests_in_any_window() <= 60);
    assert_eq!(t.sales_orders().len(), ids.len(), "no duplicates");
    t.stop().await;
}

/// The service as a child process on the real clock, configured through `TKS_*`
/// environment variables as an operator would.
pub fn spawn_service(env: &[(String, String)]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tks"))
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("tks serving on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, url)
}

pub async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Both simulators on the real clock, SKU A stocked, TikTok connected, and the
/// `TKS_*` environment that runs `tks serve` against them: for tests that kill the
/// service as a child process.
pub struct CrashWorld {
    pub tiktok: TikTokSim,
    pub katana: KatanaSim,
    pub env: Vec<(String, String)>,
    pub _dir: tempfile::TempDir,
}

pub async fn crash_world() -> CrashWorld {
    let clock = tks::clock::Clock::real();
    let tiktok = TikTokSim::start(SimConfig::demo(), clock.clone()).unwrap();
    tiktok
        .set_catalogue(vec![product(
            "1729000000000000101",
            "1729100000000000101",
            "A",
            "10.00",
        )])
        .unwrap();
    let katana = KatanaSim::start(KatanaSimConfig::default(), clock.clone()).unwrap();
    // A generous limit, still announced in Katana's headers, which the client obeys.
    katana.set_rate_limit(true, Some(100_000));
    let main = katana.add_location("Main warehouse", true);
    let a = katana.add_product("Alpha", &[("A", "10.00")]).unwrap()[0];
    katana
        .set_stock(a, main, Quantity::from_units(500))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tks.db");
    let settings = settings_for(&tiktok, &katana, &db, main, main);
    harness::connect_tiktok(&settings, &clock, &tiktok)
        .await
        .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env: Vec<(String, String)> = [
        ("TKS_STORE__PATH", settings.store.path.clone()),
        ("TKS_SERVER__BIND", format!("127.0.0.1:{port}")),
        ("TKS_TIKTOK__API_BASE", settings.tiktok.api_base.clone()),
        ("TKS_TIKTOK__AUTH_BASE", settings.tiktok.auth_base.clone()),
        ("TKS_TIKTOK__APP_KEY", settings.tiktok.app_key.clone()),
        (
            "TKS_TIKTOK__APP_SECRET",
            settings.tiktok.app_secret.expose().to_string(),
        ),
        ("TKS_TIKTOK__SHOP_ID", settings.tiktok.shop_id.clone()),
        (
            "TKS_TIKTOK__SHOP_CIPHER",
            settings.tiktok.shop_cipher.clone(),
        ),
        ("TKS_KATANA__API_BASE", settings.katana.api_base.clone()),
        (
            "TKS_KATANA__API_KEY",
            settings.katana.api_key.expose().to_string(),
        ),
        (
            "TKS_KATANA__WEBHOOK_TOKEN",
            KATANA_WEBHOOK_TOKEN.to_string(),
        ),
        ("TKS_KATANA__REQUESTS_PER_MINUTE", "100000".to_string()),
        // Creates here take 150 ms: one cut short by the kill cannot commit later
        // than this.
        ("TKS_KATANA__CREATE_SETTLE", "1s".to_string()),
        ("TKS_SYNC__ORDER_HOLD", "1s".to_string()),
        (
            "TKS_WAREHOUSES__PICKUP_WAREHOUSE_ID",
            MAIN_WAREHOUSE.to_string(),
        ),
        ("TKS_WAREHOUSES__PICKUP_LOCATION_ID", main.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    CrashWorld {
        tiktok,
        katana,
        env,
        _dir: dir,
    }
}

#[actix::test]
async fn sigkill_between_hold_expiry_and_so_creation_loses_and_duplicates_nothing() {
    let CrashWorld {
        tiktok,
        katana,
        env,
        _dir,
    } = crash_world().await;

    let (mut child, url) = spawn_service(&env);
    tiktok.set_webhook_url(Some(format!("{url}/webhooks/tiktok")));
    katana.add_webhook(
        &format!("{url}/webhooks/katana"),
        WEBHOOK_EVENTS,
        Some(KATANA_WEBHOOK_TOKEN),
    );
    // Every create takes a while, so the kill lands with creates still to do.
    katana.delay_next_method(Some("POST"), 1000, Duration::from_millis(150));
    let ids: Vec<String> = (0..50)
        .map(|_| {
            tiktok
                .create_order(NewOrder::of(
                    &[("A", 1)],
                    TikTokOrderStatus::AwaitingShipment,
                ))
                .unwrap()
                .id
        })
        .collect();
    let live = |k: &KatanaSim| {
        k.sales_orders()
            .into_iter()
            .filter(|so| so["deleted_at"].is_null())
            .count()
    };
    wait_for("the first SOs", 60, || live(&katana) >= 5).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = live(&katana);
    assert!(
        at_kill < 50,
        "the kill came too late to prove anything ({at_kill} SOs)"
    );

    let (mut child, _) = spawn_service(&env);
    wait_for("50 SOs after the restart", 120, || live(&katana) >= 50).await;
    // Give a duplicate every chance to appear before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sos: Vec<Value> = katana
        .sales_orders()
        .into_iter()
        .filter(|so| so["deleted_at"].is_null())
        .collect();
    let mut seen: Vec<String> = sos
        .iter()
        .map(|so| so["ecommerce_order_id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected, "exactly one SO per order");

    for so in &sos {
        katana
            .deliver(
                so["id"].as_i64().unwrap(),
                None,
                tracking(Some("1Z77"), "UPS"),
            )
            .unwrap();
    }
    wait_for("50 shipments", 120, || tiktok.shipments().len() >= 50).await;
    let mut shipped: Vec<String> = tiktok.shipments().into_iter().map(|s| s.order_id).collect();
    shipped.sort();
    assert_eq!(shipped, expected, "every fulfilment pushed once");
    child.kill().unwrap();
    child.wait().unwrap();
    tiktok.stop().await;
    katana.stop().await;
}

#[actix::test]
async fn the_timeline_tells_an_orders_whole_story_in_order() {
    let t = spawn_app(|_| {}).await;
    let id = t.place_past_hold(&[("A", 1)]).await;
    let so_id = t.sales_orders()[0]["id"].as_i64().unwrap();
    t.katana
        .deliver(so_id, None, tracking(Some("1Z5"), "UPS"))
        .unwrap();
    t.settle().await;
    let timeline =
        tks::replay::timeline::timeline(t.store().as_ref(), &format!("order-{id}"), &mut |_| {})
            .unwrap();
    let types: Vec<&str> = timeline
        .entries
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    let position = |ty: &str| {
        types
            .iter()
            .position(|t| *t == ty)
            .unwrap_or_else(|| panic!("{ty} missing from {types:?}"))
    };
    let story = [
        "OrderPlaced",
        "HoldExpired",
        "SoCreated",
        "SoDelivered",
        "FulfillmentPushed",
    ]
    .map(position);
    assert!(story.windows(2).all(|w| w[0] < w[1]), "{types:?}");
    // Each step carries its causation back to what triggered it.
    let pushed = &timeline.entries[story[4]];
    assert!(pushed.causation_id.is_some());
    t.stop().await;
}

#[actix::test]
async fn with_a_public_url_the_service_registers_its_katana_webhook_and_trusts_its_token() {
    let t = spawn_app(|s| {
        s.server.public_url = format!("http://{}", s.server.bind);
        s.katana.webhook_token = Secret::default();
    })
    .await;
    let id = t.place_past_hold(&[("A", 1)]).await;
    let so_id = t.sales_orders()[0]["id"].as_i64().unwrap();
    t.katana
        .deliver(so_id, None, tracking(Some("1Z42"), "UPS"))
        .unwrap();
    t.settle().await;
    let shipments = t.tiktok.shipments();
    assert_eq!(shipments.len(), 1, "Katana's signed webhook was accepted");
    assert_eq!(shipments[0].order_id, id);
    t.stop().await;
}

#[actix::test]
async fn the_reconciliation_poll_does_not_reread_a_delivery_it_already_has() {
    let t = spawn_app(|_| {}).await;
    t.place(&[("A", 1)]);
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    let so_id = t.sales_orders()[0]["id"].as_i64().unwrap();
    t.katana
        .deliver(so_id, None, tracking(Some("1Z8"), "UPS"))
        .unwrap();
    // The simulator's webhook may reach the service after a settle on a busy machine.
    wait_for("the delivery to ship", 20, || {
        t.tiktok.shipments().len() == 1
    })
    .await;
    t.settle().await;
    let before = t.katana.stats().requests;
    for _ in 0..2 {
        pollers::poll_katana_orders(&t.app.services.pollers)
            .await
            .unwrap();
        t.settle().await;
    }
    assert_eq!(
        t.katana.stats().requests - before,
        2,
        "only the two list calls"
    );
    assert_eq!(t.tiktok.shipments().len(), 1);
    t.stop().await;
}
