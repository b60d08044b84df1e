//! Katana connector against the Katana simulator, over HTTP, with a ManualClock.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use parking_lot::Mutex;
use serde_json::{json, Value};

use tks::clock::ManualClock;
use tks::config::Secret;
use tks::connectors::katana::mapping::{self, SalesOrderContext};
use tks::connectors::katana::model::{
    CreateFulfillment, CreateFulfillmentRow, CreateSalesOrder, SoStatus,
};
use tks::connectors::katana::webhook::{self, WebhookError};
use tks::connectors::katana::{CreateOutcome, KatanaClient, KatanaConfig};
use tks::connectors::{Backoff, Classify, RetryClass};
use tks::domain::observed::{
    Address, FulfillmentType, LineUnit, OrderSnapshot, Quantity, TikTokOrderStatus,
};
use tks::sandbox::katana::{DemoCatalogue, KatanaSim, KatanaSimConfig, Tracking};

struct Env {
    manual: ManualClock,
    sim: KatanaSim,
    client: KatanaClient,
    cat: DemoCatalogue,
}

fn config(sim: &KatanaSim) -> KatanaConfig {
    KatanaConfig {
        timeout: Duration::from_millis(400),
        backoff: Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
            max_attempts: 5,
        },
        ..KatanaConfig::new(sim.base_url(), Secret::new(sim.api_key()))
    }
}

fn env_with(sim_cfg: KatanaSimConfig, tweak: impl FnOnce(&mut KatanaConfig)) -> Env {
    let manual = ManualClock::at_epoch();
    let sim = KatanaSim::start(sim_cfg, manual.clock()).expect("sim starts");
    let cat = sim.seed_demo_catalogue();
    let mut cfg = config(&sim);
    tweak(&mut cfg);
    let client = KatanaClient::new(cfg, manual.clock()).expect("client");
    Env {
        manual,
        sim,
        client,
        cat,
    }
}

fn env() -> Env {
    env_with(KatanaSimConfig::default(), |_| {})
}

impl Env {
    fn variant(&self, sku: &str) -> i64 {
        self.cat
            .variants
            .iter()
            .find(|(s, _)| s == sku)
            .map(|(_, id)| *id)
            .expect("demo sku")
    }

    /// Sets a SKU's stock at the main location: one inventory webhook.
    fn restock_main(&self, sku: &str, units: i64) {
        self.sim
            .set_stock(
                self.variant(sku),
                self.cat.main_location_id,
                Quantity::from_units(units),
            )
            .unwrap();
    }

    /// Runs `fut` while moving the manual clock forward `step` at a time, so budget
    /// waits and back-offs elapse without real sleeping.
    async fn drive<T: Send + 'static>(
        &self,
        step: Duration,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> T {
        drive(&self.manual, step, fut).await
    }
}

async fn drive<T: Send + 'static>(
    manual: &ManualClock,
    step: Duration,
    fut: impl Future<Output = T> + Send + 'static,
) -> T {
    let task = tokio::spawn(fut);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    while !task.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "driven task did not finish"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
        manual.advance(step);
    }
    task.await.expect("task")
}

fn unit(id: &str, sku: &str, price: &str) -> LineUnit {
    LineUnit {
        line_item_id: id.into(),
        sku_id: format!("sku-{sku}"),
        seller_sku: sku.into(),
        sale_price: price.into(),
        cancelled: false,
        shipped: false,
    }
}

fn tiktok_order(id: &str, units: Vec<LineUnit>) -> OrderSnapshot {
    let t = chrono::Utc
        .with_ymd_and_hms(2025, 12, 31, 23, 0, 0)
        .unwrap();
    OrderSnapshot {
        shop_id: String::new(),
        order_id: id.into(),
        status: TikTokOrderStatus::AwaitingShipment,
        fulfillment_type: FulfillmentType::FulfillmentBySeller,
        shipping_type: Default::default(),
        create_time: t,
        update_time: t,
        currency: "USD".into(),
        warehouse_id: Some("WH1".into()),
        recipient: Some(Address {
            name: "Grace Hopper".into(),
            phone: "+1 555 0100".into(),
            line_1: "1 Navy Way".into(),
            city: "Arlington".into(),
            state: "VA".into(),
            zip: "22202".into(),
            country: "US".into(),
            ..Address::default()
        }),
        buyer_email: None,
        units,
    }
}

async fn so_request(e: &Env, order_id: &str, units: Vec<LineUnit>) -> CreateSalesOrder {
    let customer = e.client.ensure_generic_customer("acme-shop").await.unwrap();
    let ctx = SalesOrderContext {
        store_name: "acme-shop".into(),
        order_no_prefix: "TT-".into(),
        location_id: e.cat.main_location_id,
        customer_id: customer,
        variant_by_sku: e.cat.variants.iter().cloned().collect(),
        status: "NOT_SHIPPED".into(),
    };
    mapping::sales_order_request(&tiktok_order(order_id, units), &ctx).unwrap()
}

fn sim_sos_for(sim: &KatanaSim, ext: &str) -> Vec<Value> {
    sim.sales_orders()
        .into_iter()
        .filter(|s| s["ecommerce_order_id"] == ext)
        .collect()
}

#[tokio::test]
async fn create_once_creates_one_complete_so_and_commits_stock() {
    let e = env();
    let mug = e.variant("MUG-WHITE");
    let tote = e.variant("TOTE-NAT");
    let req = so_request(
        &e,
        "5761001",
        vec![
            unit("1", "MUG-WHITE", "12.50"),
            unit("2", "MUG-WHITE", "12.50"),
            unit("3", "TOTE-NAT", "18.00"),
        ],
    )
    .await;
    let first = e.client.create_sales_order_once(&req).await.unwrap();
    assert!(first.was_created());
    let so = first.sales_order().clone();
    assert_eq!(so.status, "NOT_SHIPPED");
    assert_eq!(so.order_no.as_deref(), Some("TT-5761001"));

    let again = e.client.create_sales_order_once(&req).await.unwrap();
    assert_eq!(again, CreateOutcome::Existing(again.sales_order().clone()));
    assert_eq!(again.sales_order().id, so.id);

    let stored = sim_sos_for(&e.sim, "5761001");
    assert_eq!(stored.len(), 1, "exactly one SO");
    let s = &stored[0];
    assert_eq!(s["ecommerce_order_type"], "tiktok");
    assert_eq!(s["ecommerce_store_name"], "acme-shop");
    assert_eq!(s["location_id"], e.cat.main_location_id);
    assert_eq!(s["sales_order_rows"][0]["variant_id"], mug);
    assert_eq!(s["sales_order_rows"][0]["quantity"], 2);
    assert_eq!(s["sales_order_rows"][0]["price_per_unit"], "12.5000000000");
    assert_eq!(s["sales_order_rows"][1]["variant_id"], tote);
    let addr = &s["addresses"][0];
    assert_eq!(addr["entity_type"], "shipping");
    assert_eq!(addr["first_name"], "Grace");
    assert_eq!(addr["zip"], "22202");

    assert_eq!(
        e.sim.stock(mug, e.cat.main_location_id),
        (Quantity::from_units(40), Quantity::from_units(2))
    );
    let read = e.client.get_sales_order(so.id).await.unwrap();
    assert_eq!(read.sales_order_rows.len(), 2);
    assert_eq!(read.sales_order_rows[0].quantity, Quantity::from_units(2));
    e.sim.stop().await;
}

#[tokio::test]
async fn a_create_whose_response_times_out_is_not_repeated_and_its_outcome_is_unknown() {
    let e = env();
    let req = so_request(&e, "5762002", vec![unit("1", "CANDLE-FIG", "22.00")]).await;
    // The POST is applied but answered after the client's 400 ms timeout.
    e.sim
        .delay_next_method(Some("POST"), 1, Duration::from_millis(1500));
    let client = e.client.clone();
    let err = e
        .drive(Duration::from_millis(500), async move {
            client.create_sales_order_once(&req).await
        })
        .await
        .unwrap_err();
    assert!(err.outcome_unknown(), "{err}");
    let posts = e
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/sales_orders")
        .count();
    assert_eq!(posts, 1, "no second POST while the first may still commit");
    // Whoever waits out the create's lifetime then finds it.
    let client = e.client.clone();
    let found = e
        .drive(Duration::from_millis(500), async move {
            client.find_sales_order_by_ecommerce_id("5762002").await
        })
        .await
        .unwrap();
    assert!(found.is_some());
    assert_eq!(sim_sos_for(&e.sim, "5762002").len(), 1);
    e.sim.stop().await;
}

#[tokio::test]
async fn a_refused_create_is_retried_but_a_server_error_is_not() {
    let e = env();
    let req = so_request(&e, "5762003", vec![unit("1", "CANDLE-FIG", "22.00")]).await;
    // A 500 may hide a commit (a gateway in front of Katana): unknown, not retried.
    e.sim.fail_next(1);
    let client = e.client.clone();
    let r = req.clone();
    let err = e
        .drive(Duration::from_millis(500), async move {
            client.create_sales_order_first_attempt(&r).await
        })
        .await
        .unwrap_err();
    assert!(err.outcome_unknown(), "{err}");
    assert!(sim_sos_for(&e.sim, "5762003").is_empty());
    // A 429 certainly left nothing behind: retried after Retry-After, one SO.
    e.sim.exhaust_rate_limit();
    let client = e.client.clone();
    let outcome = e
        .drive(Duration::from_millis(500), async move {
            client.create_sales_order_first_attempt(&req).await
        })
        .await
        .unwrap();
    assert!(outcome.was_created());
    let statuses: Vec<u16> = e
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/sales_orders")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![500, 429, 200]);
    assert_eq!(sim_sos_for(&e.sim, "5762003").len(), 1);
    e.sim.stop().await;
}

#[tokio::test]
async fn two_hundred_creates_are_paced_under_the_limit_without_429() {
    let e = env();
    let customer = e.client.ensure_generic_customer("acme-shop").await.unwrap();
    let variant = e.variant("TOTE-NAT");
    let start = e.manual.now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = e.client.clone();
        let req = CreateSalesOrder {
            customer_id: customer,
            sales_order_rows: vec![tks::connectors::katana::model::CreateSalesOrderRow {
                variant_id: variant,
                quantity: 1.into(),
                price_per_unit: Some(18.into()),
                location_id: None,
            }],
            order_no: Some(format!("TT-B{i}")),
            location_id: Some(e.cat.main_location_id),
            status: None,
            currency: None,
            order_created_date: None,
            additional_info: None,
            ecommerce_order_type: Some("tiktok".into()),
            ecommerce_store_name: Some("acme-shop".into()),
            ecommerce_order_id: Some(format!("B{i}")),
            addresses: Vec::new(),
        };
        tasks.push(async move { client.create_sales_order_once(&req).await });
    }
    let results = e
        .drive(Duration::from_millis(500), async move {
            futures::future::join_all(tasks).await
        })
        .await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(CreateOutcome::Created(_)))));
    let stats = e.sim.stats();
    assert_eq!(stats.rate_limited, 0, "no 429 in steady state");
    assert!(
        e.sim.max_requests_in_any_window() <= 60,
        "at most 60 per 60 s, saw {}",
        e.sim.max_requests_in_any_window()
    );
    // 400+ calls at 60/min cannot take less than ~6 minutes.
    assert!(e.manual.now() - start >= chrono::Duration::minutes(6));
    let ids: std::collections::BTreeSet<String> = e
        .sim
        .sales_orders()
        .iter()
        .filter_map(|s| s["ecommerce_order_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 200);
    e.sim.stop().await;
}

#[tokio::test]
async fn a_429_pauses_the_whole_budget_for_retry_after() {
    let e = env();
    // Another application on the same key used the window up.
    e.sim.exhaust_rate_limit();
    let low = {
        let c = e.client.clone();
        async move { c.inventory(&[], None).await }
    };
    let high = {
        let c = e.client.clone();
        async move { c.locations().await }
    };
    let (inv, locs) = e
        .drive(Duration::from_secs(1), async move {
            futures::future::join(low, high).await
        })
        .await;
    assert!(!inv.unwrap().is_empty());
    assert_eq!(locs.unwrap().len(), 3);
    let log = e.sim.requests();
    let limited: Vec<_> = log.iter().filter(|r| r.status == 429).collect();
    assert!(!limited.is_empty(), "a 429 was served");
    let first_429 = limited[0].at;
    let next_ok = log
        .iter()
        .find(|r| r.status == 200 && r.at >= first_429)
        .expect("served later")
        .at;
    let wait_of = |r: &&tks::sandbox::katana::RequestRecord| {
        chrono::Duration::seconds(r.retry_after.expect("Retry-After sent") as i64)
    };
    // Every 429 names the end of the same window: one that arrived after the clock
    // stepped (two callers' requests in flight together) says a little less.
    let window_end = first_429 + wait_of(&limited[0]);
    assert!(wait_of(&limited[0]) >= chrono::Duration::seconds(59));
    for r in &limited {
        let wait = wait_of(r);
        assert!(
            r.at + wait >= window_end - chrono::Duration::seconds(1),
            "a 429 at {} says {wait:?}, the window ends at {window_end}",
            r.at
        );
        assert!(
            next_ok - r.at >= wait,
            "waited {:?}, Retry-After was {wait:?}",
            next_ok - r.at
        );
    }
    // Both callers waited out the pause: nothing was sent in between.
    assert!(log
        .iter()
        .filter(|r| r.at > first_429 && r.at < next_ok)
        .all(|r| r.status == 429));
    e.sim.stop().await;
}

#[tokio::test]
async fn retry_after_error_is_classified_with_its_hint() {
    let e = env_with(KatanaSimConfig::default(), |c| {
        c.backoff.max_attempts = 1;
    });
    e.sim.exhaust_rate_limit();
    let err = e.client.locations().await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(
        err.retry_class(),
        RetryClass::Retry {
            after: Some(Duration::from_secs(60))
        }
    );
    assert!(
        e.client.budget().paused_until().unwrap() >= e.manual.now() + chrono::Duration::seconds(60)
    );
    e.sim.stop().await;
}

#[tokio::test]
async fn high_priority_is_served_before_waiting_low_priority() {
    let e = env_with(KatanaSimConfig::default(), |c| c.requests_per_minute = 2);
    e.client.locations().await.unwrap();
    e.manual.advance(Duration::from_secs(10));
    e.client.locations().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..2 {
        let c = e.client.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            c.inventory(&[], None).await.unwrap();
            order.lock().push(format!("low{i}"));
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = e.client.clone();
    let o = order.clone();
    tasks.push(tokio::spawn(async move {
        c.find_sales_order_by_ecommerce_id("nope").await.unwrap();
        o.lock().push("high".into());
    }));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(e.client.budget().waiting(), (1, 2));
    // One slot frees at a time (the two earlier requests finished 10 s apart).
    for _ in 0..4 {
        e.manual.advance(Duration::from_secs(50));
        tokio::time::sleep(Duration::from_millis(80)).await;
        e.manual.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(*order.lock(), vec!["high", "low0", "low1"]);
    let paths: Vec<String> = e.sim.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        vec![
            "/locations",
            "/locations",
            "/sales_orders",
            "/inventory",
            "/inventory"
        ]
    );
    e.sim.stop().await;
}

#[tokio::test]
async fn a_422_names_the_offending_field_and_is_permanent() {
    let e = env();
    let mut req = so_request(&e, "5763003", vec![unit("1", "MUG-BLACK", "12.50")]).await;
    req.currency = Some("EURO".into());
    let err = e.client.create_sales_order_once(&req).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.retry_class(), RetryClass::Permanent);
    assert_eq!(err.fields(), ["currency"]);
    let text = err.to_string();
    assert!(text.contains("currency"), "{text}");
    assert!(
        text.contains("should NOT be longer than 3 characters"),
        "{text}"
    );

    // A business-rule 422 carries Katana's plain message.
    req.currency = None;
    req.location_id = Some(e.cat.no_sales_location_id);
    let err = e.client.create_sales_order_once(&req).await.unwrap_err();
    assert!(
        err.to_string().contains("Location has selling disabled"),
        "{err}"
    );
    assert!(sim_sos_for(&e.sim, "5763003").is_empty());
    e.sim.stop().await;
}

#[tokio::test]
async fn a_bad_key_is_a_permanent_401() {
    let e = env();
    let mut cfg = config(&e.sim);
    cfg.api_key = Secret::new("wrong");
    let bad = KatanaClient::new(cfg, e.manual.clock()).unwrap();
    let err = bad.locations().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.retry_class(), RetryClass::Permanent);
    assert!(err.to_string().contains("UnauthorizedError"), "{err}");
    assert_eq!(e.sim.stats().unauthorized, 1, "not retried");
    e.sim.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let e = env();
    e.sim.fail_next(2);
    let c = e.client.clone();
    let locs = e
        .drive(
            Duration::from_millis(500),
            async move { c.locations().await },
        )
        .await
        .unwrap();
    assert_eq!(locs.len(), 3);
    let statuses: Vec<u16> = e.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 200]);
    e.sim.stop().await;
}

#[tokio::test]
async fn fulfillments_partial_then_full_move_status_and_stock() {
    let e = env();
    let mug = e.variant("MUG-WHITE");
    let candle = e.variant("CANDLE-FIG");
    let loc = e.cat.main_location_id;
    let req = so_request(
        &e,
        "5764004",
        vec![
            unit("1", "MUG-WHITE", "12.50"),
            unit("2", "MUG-WHITE", "12.50"),
            unit("3", "MUG-WHITE", "12.50"),
            unit("4", "CANDLE-FIG", "22.00"),
        ],
    )
    .await;
    let so = e
        .client
        .create_sales_order_once(&req)
        .await
        .unwrap()
        .sales_order()
        .clone();
    let mug_row = so
        .sales_order_rows
        .iter()
        .find(|r| r.variant_id == mug)
        .unwrap()
        .id;
    let candle_row = so
        .sales_order_rows
        .iter()
        .find(|r| r.variant_id == candle)
        .unwrap()
        .id;
    assert_eq!(e.sim.stock(mug, loc).1, Quantity::from_units(3));

    e.sim
        .deliver(
            so.id,
            Some(&[(mug_row, Quantity::from_units(1))]),
            Tracking {
                tracking_number: Some("1Z999".into()),
                tracking_url: Some("https://ups.example/1Z999".into()),
                tracking_carrier: Some("UPS".into()),
            },
        )
        .unwrap();
    let so1 = e.client.get_sales_order(so.id).await.unwrap();
    assert_eq!(so1.status, "PARTIALLY_DELIVERED");
    let fs = e.client.sales_order_fulfillments(&so1).await.unwrap();
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0].tracking_number.as_deref(), Some("1Z999"));
    assert_eq!(fs[0].tracking_carrier.as_deref(), Some("UPS"));
    assert_eq!(
        fs[0].tracking_url.as_deref(),
        Some("https://ups.example/1Z999")
    );
    assert_eq!(
        mapping::fulfillment_variant_quantities(&fs[0], &so1).unwrap(),
        vec![(mug, Quantity::from_units(1))]
    );
    assert_eq!(
        e.sim.stock(mug, loc),
        (Quantity::from_units(39), Quantity::from_units(2))
    );

    // Over-delivering a row is refused.
    let too_much = CreateFulfillment {
        sales_order_id: so.id,
        status: "DELIVERED".into(),
        sales_order_fulfillment_rows: vec![CreateFulfillmentRow {
            sales_order_row_id: mug_row,
            quantity: 3.into(),
        }],
        tracking_number: None,
        tracking_url: None,
        tracking_carrier: None,
    };
    let err = e.client.create_fulfillment(&too_much).await.unwrap_err();
    assert!(
        err.to_string().contains("exceeds the remaining quantity"),
        "{err}"
    );

    // The rest, through the connector's own fulfillment call.
    let rest = CreateFulfillment {
        sales_order_fulfillment_rows: vec![
            CreateFulfillmentRow {
                sales_order_row_id: mug_row,
                quantity: 2.into(),
            },
            CreateFulfillmentRow {
                sales_order_row_id: candle_row,
                quantity: 1.into(),
            },
        ],
        tracking_number: Some("1Z1000".into()),
        tracking_carrier: Some("UPS".into()),
        ..too_much
    };
    e.client.create_fulfillment(&rest).await.unwrap();
    let so2 = e.client.get_sales_order(so.id).await.unwrap();
    assert_eq!(so2.status, "DELIVERED");
    let fs = e.client.sales_order_fulfillments(&so2).await.unwrap();
    assert_eq!(fs.len(), 2);
    let mut moved: BTreeMap<i64, Quantity> = BTreeMap::new();
    for f in &fs {
        for (v, q) in mapping::fulfillment_variant_quantities(f, &so2).unwrap() {
            let e = moved.entry(v).or_default();
            *e = Quantity(e.0 + q.0);
        }
    }
    assert_eq!(moved[&mug], Quantity::from_units(3));
    assert_eq!(moved[&candle], Quantity::from_units(1));
    assert_eq!(
        e.sim.stock(mug, loc),
        (Quantity::from_units(37), Quantity(0))
    );
    assert_eq!(
        e.sim.stock(candle, loc),
        (Quantity::from_units(14), Quantity(0))
    );
    e.sim.stop().await;
}

#[tokio::test]
async fn patch_delivered_fulfils_the_remainder_and_delete_releases_commitment() {
    let e = env();
    let tote = e.variant("TOTE-NAT");
    let loc = e.cat.main_location_id;
    let a = so_request(&e, "5765005", vec![unit("1", "TOTE-NAT", "18.00")]).await;
    let b = so_request(
        &e,
        "5765006",
        vec![
            unit("1", "TOTE-NAT", "18.00"),
            unit("2", "TOTE-NAT", "18.00"),
        ],
    )
    .await;
    let so_a = e
        .client
        .create_sales_order_once(&a)
        .await
        .unwrap()
        .sales_order()
        .id;
    let so_b = e
        .client
        .create_sales_order_once(&b)
        .await
        .unwrap()
        .sales_order()
        .id;
    assert_eq!(e.sim.stock(tote, loc).1, Quantity::from_units(3));

    let done = e
        .client
        .update_sales_order_status(so_a, SoStatus::Delivered)
        .await
        .unwrap();
    assert_eq!(done.status, "DELIVERED");
    assert_eq!(e.client.list_fulfillments(so_a).await.unwrap().len(), 1);
    assert_eq!(
        e.sim.stock(tote, loc),
        (Quantity::from_units(59), Quantity::from_units(2))
    );

    e.client.delete_sales_order(so_b).await.unwrap();
    assert_eq!(
        e.sim.stock(tote, loc),
        (Quantity::from_units(59), Quantity(0))
    );
    assert!(e
        .client
        .find_sales_order_by_ecommerce_id("5765006")
        .await
        .unwrap()
        .is_none());
    let err = e.client.get_sales_order(so_b).await.unwrap_err();
    assert_eq!(err.status(), Some(404));

    // Updated-since polling sees both changes after the start, nothing before.
    let since = chrono::Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let updated = e
        .client
        .list_sales_orders_updated_since(since)
        .await
        .unwrap();
    assert_eq!(updated.len(), 1, "deleted SOs are not listed");
    let later = e.manual.now() + chrono::Duration::seconds(1);
    assert!(e
        .client
        .list_sales_orders_updated_since(later)
        .await
        .unwrap()
        .is_empty());
    e.sim.stop().await;
}

#[tokio::test]
async fn customers_are_found_before_being_created() {
    let e = env();
    let a = e.client.ensure_generic_customer("acme-shop").await.unwrap();
    let b = e.client.ensure_generic_customer("acme-shop").await.unwrap();
    let other = e
        .client
        .ensure_generic_customer("other-shop")
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, other);
    let buyer = e
        .client
        .find_or_create_customer("Ada L", Some("ada@example.com"), None)
        .await
        .unwrap();
    let again = e
        .client
        .find_or_create_customer("Ada Lovelace", Some("ADA@example.com"), None)
        .await
        .unwrap();
    assert_eq!(buyer, again, "email match wins over a changed name");
    let creates = e
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/customers")
        .count();
    assert_eq!(creates, 3);
    e.sim.stop().await;
}

#[tokio::test]
async fn catalogue_pages_are_followed_and_decimal_stock_is_exact() {
    let e = env();
    let skus: Vec<String> = (0..300).map(|i| format!("BULK-{i:03}")).collect();
    let variants: Vec<(&str, &str)> = skus.iter().map(|s| (s.as_str(), "1.00")).collect();
    let ids = e.sim.add_product("Bulk", &variants).unwrap();
    let all = e.client.all_variants().await.unwrap();
    assert_eq!(all.len(), 304);
    let pages = e
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/variants")
        .count();
    assert_eq!(pages, 2, "250 + 54 with limit=250");

    let wanted: Vec<String> = skus[..60].to_vec();
    let found = e.client.variants_by_sku(&wanted).await.unwrap();
    assert_eq!(found.len(), 60);
    assert!(found
        .iter()
        .all(|v| wanted.contains(v.sku.as_ref().unwrap())));

    e.sim
        .set_stock(ids[0], e.cat.main_location_id, "7.5".parse().unwrap())
        .unwrap();
    let levels = e
        .client
        .inventory(&[ids[0]], Some(e.cat.main_location_id))
        .await
        .unwrap();
    assert_eq!(levels.len(), 1);
    assert_eq!(levels[0].in_stock, Quantity(750_000));
    assert_eq!(levels[0].committed, Quantity(0));
    let locs = e.client.locations().await.unwrap();
    assert_eq!(locs.iter().filter(|l| l.sales_allowed).count(), 2);
    e.sim.stop().await;
}

/// (x-sha2-signature, x-katana-retry-num, raw body) of one received webhook.
type Received = (Option<String>, Option<String>, Vec<u8>);

/// A local webhook receiver that answers with the statuses it is given, then 200.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    _server: actix_web::dev::ServerHandle,
}

async fn receiver(fail_first: usize) -> Receiver {
    gated_receiver(fail_first, None).await
}

/// A [`receiver`] that, given a gate, holds each request until the test adds a
/// permit: a webhook kept on the wire.
async fn gated_receiver(fail_first: usize, gate: Option<Arc<tokio::sync::Semaphore>>) -> Receiver {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let g = got.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook",
        listener.local_addr().unwrap().port()
    );
    let server = HttpServer::new(move || {
        let (g, gate) = (g.clone(), gate.clone());
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let (g, gate) = (g.clone(), gate.clone());
            async move {
                if let Some(gate) = gate {
                    gate.acquire().await.unwrap().forget();
                }
                let h = |n: &str| {
                    req.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let mut got = g.lock();
                got.push((
                    h("x-sha2-signature"),
                    h("x-katana-retry-num"),
                    body.to_vec(),
                ));
                if got.len() <= fail_first {
                    HttpResponse::InternalServerError().finish()
                } else {
                    HttpResponse::Ok().finish()
                }
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Receiver {
        url,
        got,
        _server: handle,
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn webhooks_from_the_sim_verify_and_tampering_is_rejected() {
    let e = env();
    let rx = receiver(0).await;
    let events = [
        "sales_order.created",
        "sales_order.updated",
        "sales_order.delivered",
        "current_inventory.product_updated",
    ];
    let reg = e.client.register_webhook(&rx.url, &events).await.unwrap();
    assert_eq!(reg.token.len(), 16);
    assert!(reg
        .token
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    let again = e
        .client
        .register_webhook(&rx.url, &events[..2])
        .await
        .unwrap();
    assert_eq!(again, reg, "no duplicate registration");
    assert_eq!(e.client.list_webhooks().await.unwrap().len(), 1);

    let req = so_request(&e, "5766007", vec![unit("1", "MUG-BLACK", "12.50")]).await;
    let so = e
        .client
        .create_sales_order_once(&req)
        .await
        .unwrap()
        .sales_order()
        .clone();
    wait_for("created webhook", || !rx.got.lock().is_empty()).await;
    let (sig, retry, body) = rx.got.lock()[0].clone();
    assert_eq!(retry, None, "first attempt has no retry header");
    let ev = webhook::verify_and_parse(&reg.token, &body, sig.as_deref()).unwrap();
    assert_eq!(ev.event, "sales_order.created");
    assert_eq!(ev.resource_type, "sales_order");
    assert_eq!(ev.object_id_int(), Some(so.id));
    assert_eq!(ev.status.as_deref(), Some("NOT_SHIPPED"));
    assert!(ev
        .href
        .unwrap()
        .ends_with(&format!("/sales_orders/{}", so.id)));

    let mut tampered = body.clone();
    let text = String::from_utf8(tampered.clone())
        .unwrap()
        .replace("NOT_SHIPPED", "DELIVERED");
    tampered = text.into_bytes();
    let err = webhook::verify_and_parse(&reg.token, &tampered, sig.as_deref()).unwrap_err();
    assert!(matches!(err, WebhookError::BadSignature(_)));
    assert_eq!(err.http_status(), 401);
    assert!(webhook::verify("0000000000000000", &body, sig.as_deref()).is_err());

    // A delivery emits both .delivered and .updated, plus the stock change.
    rx.got.lock().clear();
    e.sim.deliver(so.id, None, Tracking::default()).unwrap();
    wait_for("delivery webhooks", || rx.got.lock().len() >= 3).await;
    let mut seen: Vec<(String, String)> = rx
        .got
        .lock()
        .iter()
        .map(|(sig, _, b)| {
            let ev = webhook::verify_and_parse(&reg.token, b, sig.as_deref()).unwrap();
            (ev.event, ev.object_id)
        })
        .collect();
    seen.sort();
    let mug = e.variant("MUG-BLACK").to_string();
    assert_eq!(
        seen,
        vec![
            ("current_inventory.product_updated".to_string(), mug),
            ("sales_order.delivered".to_string(), so.id.to_string()),
            ("sales_order.updated".to_string(), so.id.to_string()),
        ]
    );
    e.sim.stop().await;
}

#[tokio::test]
async fn failed_webhooks_are_retried_on_katanas_schedule() {
    let e = env();
    let rx = receiver(3).await;
    let (_, token) = e
        .sim
        .add_webhook(&rx.url, &["current_inventory.product_updated"], None);
    let start = e.manual.now();
    e.restock_main("TOTE-NAT", 1);
    wait_for("first attempt", || rx.got.lock().len() == 1).await;
    for (n, wait) in [(2, 30), (3, 120), (4, 900)] {
        e.manual.advance(Duration::from_secs(wait - 1));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(rx.got.lock().len(), n - 1, "retry {n} came early");
        e.manual.advance(Duration::from_secs(1));
        wait_for("retry", || rx.got.lock().len() == n).await;
    }
    let got = rx.got.lock().clone();
    let nums: Vec<Option<String>> = got.iter().map(|g| g.1.clone()).collect();
    assert_eq!(
        nums,
        vec![None, Some("1".into()), Some("2".into()), Some("3".into())]
    );
    for (sig, _, body) in &got {
        webhook::verify(&token, body, sig.as_deref()).unwrap();
    }
    let deliveries = e.sim.webhook_deliveries();
    assert_eq!(deliveries.len(), 4);
    assert_eq!(deliveries[3].status, Some(200));
    assert_eq!(
        deliveries[3].at - start,
        chrono::Duration::seconds(30 + 120 + 900)
    );
    e.sim.stop().await;
}

/// A harness that waits for "the log stopped growing" must also know that no
/// webhook is still being sent, or a slow delivery lands after it moved on.
#[tokio::test]
async fn a_webhook_counts_as_in_flight_until_answered_and_not_while_it_waits_to_retry() {
    let e = env();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let rx = gated_receiver(usize::MAX, Some(gate.clone())).await;
    e.sim
        .add_webhook(&rx.url, &["current_inventory.product_updated"], None);
    assert_eq!(e.sim.webhooks_in_flight(), 0);
    e.restock_main("TOTE-NAT", 1);
    assert_eq!(e.sim.webhooks_in_flight(), 1, "queued counts");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(e.sim.webhooks_in_flight(), 1, "held by the receiver");
    assert!(e.sim.webhook_deliveries().is_empty());
    gate.add_permits(1);
    wait_for("the refusal", || e.sim.webhook_deliveries().len() == 1).await;
    wait_for("nothing in flight", || e.sim.webhooks_in_flight() == 0).await;
    e.manual.advance(Duration::from_secs(30));
    wait_for("the retry on the wire", || e.sim.webhooks_in_flight() == 1).await;
    gate.add_permits(1);
    wait_for("the retry answered", || {
        e.sim.webhook_deliveries().len() == 2 && e.sim.webhooks_in_flight() == 0
    })
    .await;
    e.sim.stop().await;
}

#[tokio::test]
async fn webhook_faults_drop_and_duplicate() {
    let e = env();
    let rx = receiver(0).await;
    e.sim.add_webhook(
        &rx.url,
        &["current_inventory.product_updated"],
        Some("00112233aabbccdd"),
    );
    let v = e.variant("TOTE-NAT");
    e.sim.drop_next_webhooks(1);
    e.sim
        .set_stock(v, e.cat.main_location_id, Quantity::from_units(2))
        .unwrap();
    e.sim.duplicate_next_webhooks(1);
    e.sim
        .set_stock(v, e.cat.main_location_id, Quantity::from_units(3))
        .unwrap();
    wait_for("duplicates", || rx.got.lock().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(rx.got.lock().len(), 2);
    assert!(e.sim.webhook_deliveries().iter().any(|d| d.dropped));
    e.sim.stop().await;
}

// ---------------------------------------------------------------- simulator strictness

async fn raw(
    sim: &KatanaSim,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", sim.base_url()));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn simulator_is_strict_like_katana() {
    let e = env();
    let key = e.sim.api_key();
    let k = Some(key.as_str());
    let customer = e.client.ensure_generic_customer("s").await.unwrap();
    let mug = e.variant("MUG-WHITE");

    let (st, h, body) = raw(&e.sim, reqwest::Method::GET, "/locations", None, None).await;
    assert_eq!(st, 401);
    assert_eq!(body["error"]["name"], "UnauthorizedError");
    assert!(
        h.contains_key("x-ratelimit-remaining"),
        "rate headers on every response"
    );

    let (st, _, body) = raw(
        &e.sim,
        reqwest::Method::POST,
        "/sales_orders",
        k,
        Some(json!({"customer_id": customer, "sales_order_rows": [{"variant_id": mug, "quantity": 1, "colour": "red"}], "picked_date": "2026-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(st, 422);
    let details = body["error"]["details"].as_array().unwrap();
    let props: Vec<&str> = details
        .iter()
        .filter(|d| d["code"] == "additionalProperties")
        .map(|d| d["info"]["additionalProperty"].as_str().unwrap())
        .collect();
    assert_eq!(props, vec!["picked_date", "colour"]);
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED");

    let (st, _, body) = raw(
        &e.sim,
        reqwest::Method::POST,
        "/sales_orders",
        k,
        Some(json!({"sales_order_rows": [{"variant_id": "1", "quantity": "1"}], "status": "DELIVERED"})),
    )
    .await;
    assert_eq!(st, 422);
    let codes: Vec<String> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}{}",
                d["path"].as_str().unwrap(),
                d["code"].as_str().unwrap()
            )
        })
        .collect();
    assert!(codes.contains(&"required".to_string()), "{codes:?}");
    assert!(codes.contains(&".statusenum".to_string()), "{codes:?}");
    assert!(
        codes.contains(&".sales_order_rows[0].variant_idtype".to_string()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&".sales_order_rows[0].quantitytype".to_string()),
        "{codes:?}"
    );

    let (st, _, so) = raw(
        &e.sim,
        reqwest::Method::POST,
        "/sales_orders",
        k,
        Some(json!({"customer_id": customer, "sales_order_rows": [{"variant_id": mug, "quantity": 1}], "ecommerce_order_id": "X1"})),
    )
    .await;
    assert_eq!(st, 200, "create answers 200");
    assert_eq!(so["status"], "NOT_SHIPPED");
    assert!(so["order_no"].as_str().unwrap().starts_with("SO-"));
    let id = so["id"].as_i64().unwrap();

    let (st, _, body) = raw(
        &e.sim,
        reqwest::Method::PATCH,
        &format!("/sales_orders/{id}"),
        k,
        Some(json!({"ecommerce_order_id": "X2"})),
    )
    .await;
    assert_eq!(st, 422, "ecommerce fields are create-only");
    assert_eq!(
        body["error"]["details"][0]["info"]["additionalProperty"],
        "ecommerce_order_id"
    );

    let (st, h, body) = raw(
        &e.sim,
        reqwest::Method::GET,
        "/variants?limit=1000",
        k,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 4);
    let pg: Value = serde_json::from_str(h["x-pagination"].to_str().unwrap()).unwrap();
    assert_eq!(pg["total_records"], "4", "string values");
    assert_eq!(pg["last_page"], "true");

    let (st, _, _) = raw(
        &e.sim,
        reqwest::Method::GET,
        "/variants?per_page=5",
        k,
        None,
    )
    .await;
    assert_eq!(st, 422, "unknown query parameters are not ignored");

    let (st, _, inv) = raw(
        &e.sim,
        reqwest::Method::GET,
        &format!("/inventory?variant_id={mug}"),
        k,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(inv["data"][0]["quantity_in_stock"], "40.00000");

    let (st, _, _) = raw(
        &e.sim,
        reqwest::Method::DELETE,
        &format!("/sales_orders/{id}"),
        k,
        None,
    )
    .await;
    assert_eq!(st, 204);

    let (st, _, body) = raw(
        &e.sim,
        reqwest::Method::POST,
        "/webhooks",
        k,
        Some(
            json!({"url": "http://example.com/hook", "subscribed_events": ["sales_order.shipped"]}),
        ),
    )
    .await;
    assert_eq!(st, 422);
    assert_eq!(body["error"]["details"].as_array().unwrap().len(), 2);

    e.sim.exhaust_rate_limit();
    let (st, h, body) = raw(&e.sim, reqwest::Method::GET, "/locations", k, None).await;
    assert_eq!(st, 429);
    assert_eq!(
        body,
        json!({"statusCode":429,"name":"TooManyRequests","message":"Too Many Requests"})
    );
    assert_eq!(h["retry-after"], "60");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    e.sim.stop().await;
}

#[tokio::test]
async fn control_surface_over_http() {
    let e = env();
    let http = reqwest::Client::new();
    let ctl = |p: &str| format!("{}/_sim{p}", e.sim.base_url());
    let loc: Value = http
        .post(ctl("/locations"))
        .json(&json!({"name": "Annex", "sales_allowed": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prod: Value = http
        .post(ctl("/products"))
        .json(&json!({"name": "Lamp", "variants": [{"sku": "LAMP-1", "sales_price": "40"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (lid, vid) = (
        loc["id"].as_i64().unwrap(),
        prod["variant_ids"][0].as_i64().unwrap(),
    );
    let st = http
        .post(ctl("/stock"))
        .json(&json!({"variant_id": vid, "location_id": lid, "in_stock": "12.25000"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st.as_u16(), 204);
    assert_eq!(e.sim.stock(vid, lid).0, Quantity(1_225_000));
    let bad = http
        .post(ctl("/stock"))
        .json(&json!({"variant_id": vid, "location_id": lid, "in_stock": "lots"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(bad.as_u16(), 422);

    let req = so_request(&e, "5767008", vec![unit("1", "MUG-WHITE", "12.50")]).await;
    let so = e
        .client
        .create_sales_order_once(&req)
        .await
        .unwrap()
        .sales_order()
        .clone();
    let d: Value = http
        .post(ctl(&format!("/sales_orders/{}/deliver", so.id)))
        .json(&json!({"tracking_number": "T1", "tracking_carrier": "DHL"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(d["fulfillment_id"].as_i64().is_some());
    let sos: Value = http
        .get(ctl("/sales_orders"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sos["data"][0]["status"], "DELIVERED");
    let f: Value = http
        .post(ctl("/faults"))
        .json(&json!({"fail_next": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["fail_next"], 1);
    let stats: Value = http
        .get(ctl("/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["requests"]["total"].as_u64().unwrap() > 0);
    e.sim.stop().await;
}

#[tokio::test]
async fn fulfillment_patch_takes_update_fields_only_and_moves_packed_to_delivered() {
    let e = env();
    let key = e.sim.api_key();
    let k = Some(key.as_str());
    let mug = e.variant("MUG-WHITE");
    let loc = e.cat.main_location_id;
    let req = so_request(&e, "5768009", vec![unit("1", "MUG-WHITE", "12.50")]).await;
    let so = e
        .client
        .create_sales_order_once(&req)
        .await
        .unwrap()
        .sales_order()
        .clone();
    let (st, _, f) = raw(
        &e.sim,
        reqwest::Method::POST,
        "/sales_order_fulfillments",
        k,
        Some(json!({"sales_order_id": so.id, "status": "PACKED",
            "sales_order_fulfillment_rows": [{"sales_order_row_id": so.sales_order_rows[0].id, "quantity": 1}]})),
    )
    .await;
    assert_eq!(st, 200);
    let fid = f["id"].as_i64().unwrap();
    assert_eq!(f["updated_at"], f["created_at"]);
    let stock_packed = e.sim.stock(mug, loc);
    let so_packed = e.client.get_sales_order(so.id).await.unwrap();
    assert_eq!(so_packed.status, "PACKED");

    e.manual.advance(Duration::from_secs(60));
    // Nothing listens here: the attempts are still recorded with their event.
    e.sim.add_webhook(
        "http://127.0.0.1:9/hook",
        &["sales_order.updated", "sales_order.delivered"],
        None,
    );
    let path = format!("/sales_order_fulfillments/{fid}");
    let (st, _, body) = raw(
        &e.sim,
        reqwest::Method::PATCH,
        &path,
        k,
        Some(json!({"sales_order_fulfillment_rows": [], "colour": "red", "tracking_number": "x".repeat(257)})),
    )
    .await;
    assert_eq!(st, 422, "rows are not editable");
    let codes: Vec<String> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}{}",
                d["path"].as_str().unwrap(),
                d["code"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            "additionalProperties",
            "additionalProperties",
            ".tracking_numbermaxLength"
        ]
    );

    let (st, _, body) = raw(
        &e.sim,
        reqwest::Method::PATCH,
        &path,
        k,
        Some(json!({"status": "DELIVERED", "tracking_number": "1Z42", "tracking_carrier": "UPS",
            "tracking_url": "https://ups.example/1Z42", "tracking_method": "ground", "packer_id": 7})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["status"], "DELIVERED");
    assert_eq!(body["tracking_number"], "1Z42");
    assert_eq!(body["tracking_method"], "ground");
    assert_eq!(body["packer_id"], 7);
    assert_ne!(body["updated_at"], body["created_at"], "updated_at moves");
    assert_eq!(
        e.sim.stock(mug, loc),
        stock_packed,
        "no extra stock movement"
    );
    let so_done = e.client.get_sales_order(so.id).await.unwrap();
    assert_eq!(so_done.status, "DELIVERED");
    let so_json = e
        .sim
        .sales_orders()
        .into_iter()
        .find(|s| s["id"] == so.id)
        .unwrap();
    assert_ne!(so_json["updated_at"], so_json["created_at"]);
    let mut events: Vec<String> = Vec::new();
    for _ in 0..500 {
        events = e
            .sim
            .webhook_deliveries()
            .iter()
            .filter(|d| d.attempt == 0)
            .map(|d| d.event.clone())
            .collect();
        if events.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    events.sort();
    assert_eq!(events, vec!["sales_order.delivered", "sales_order.updated"]);

    let (st, _, body) = raw(
        &e.sim,
        reqwest::Method::PATCH,
        &path,
        k,
        Some(json!({"status": "PACKED"})),
    )
    .await;
    assert_eq!(st, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot go back"),
        "{body}"
    );
    let (st, _, _) = raw(
        &e.sim,
        reqwest::Method::PATCH,
        "/sales_order_fulfillments/999999",
        k,
        Some(json!({"tracking_number": "A"})),
    )
    .await;
    assert_eq!(st, 404);

    // A merchant correcting the tracking in Katana's UI.
    let edited = e
        .sim
        .edit_fulfillment_tracking(
            fid,
            Tracking {
                tracking_number: Some("1Z43".into()),
                tracking_url: None,
                tracking_carrier: Some("UPS".into()),
            },
        )
        .unwrap();
    assert_eq!(edited["tracking_number"], "1Z43");
    assert!(edited["tracking_url"].is_null());
    let fs = e.client.list_fulfillments(so.id).await.unwrap();
    assert_eq!(fs[0].tracking_number.as_deref(), Some("1Z43"));
    assert!(e
        .sim
        .edit_fulfillment_tracking(
            fid,
            Tracking {
                tracking_number: Some("y".repeat(257)),
                ..Tracking::default()
            },
        )
        .is_err());
    e.sim.stop().await;
}
