//! A live sale on Katana's 60 requests a minute: reads in lists and coalesced,
//! urgent reads ahead of creates, and the fulfillment that moves no SO.

use std::time::Duration;

use serde_json::Value;

use tks::connectors::pollers;
use tks::domain::observed::Quantity;
use tks::domain::observed::TikTokOrderStatus;
use tks::sandbox::katana::{KatanaSim, RequestRecord, Tracking};

use crate::flows::{spawn_app, tracking, wait_for, TestApp};

const MIN: Duration = Duration::from_secs(60);
const SKU_ID_A: &str = "1729100000000000101";
const SKU_ID_B: &str = "1729100000000000102";

fn requests_to(t: &TestApp, method: &str, path: &str) -> Vec<RequestRecord> {
    t.katana
        .requests()
        .into_iter()
        .filter(|r| r.method == method && r.path == path)
        .collect()
}

fn query_values(r: &RequestRecord, key: &str) -> Vec<String> {
    r.query
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn last_push(t: &TestApp, sku_id: &str) -> Option<i64> {
    t.tiktok
        .inventory_pushes()
        .into_iter()
        .rev()
        .find(|p| p.sku_id == sku_id)
        .map(|p| p.quantity)
}

/// Places one order per SKU and lets the hold run out: their SO ids.
async fn sos_past_hold(t: &TestApp, skus: &[&str]) -> Vec<i64> {
    for sku in skus {
        t.place(&[(sku, 1)]);
    }
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    let sos = t.sales_orders();
    assert_eq!(sos.len(), skus.len());
    sos.iter().map(|so| so["id"].as_i64().unwrap()).collect()
}

#[actix::test]
async fn stock_changes_of_many_skus_within_a_window_are_read_in_one_inventory_call() {
    let t = spawn_app(|_| {}).await;
    let (a, b) = (t.variants["A"], t.variants["B"]);
    let before = requests_to(&t, "GET", "/inventory").len();

    // The first change after a quiet window is read at once.
    t.katana
        .set_stock(a, t.main_location, Quantity::from_units(9))
        .unwrap();
    wait_for("the first stock read", 20, || {
        requests_to(&t, "GET", "/inventory").len() == before + 1
    })
    .await;
    t.settle().await;

    // Within the window: both SKUs wait for one read at its end.
    t.katana
        .set_stock(a, t.main_location, Quantity::from_units(8))
        .unwrap();
    t.katana
        .set_stock(b, t.main_location, Quantity::from_units(4))
        .unwrap();
    t.settle().await;
    assert_eq!(
        requests_to(&t, "GET", "/inventory").len(),
        before + 1,
        "read again inside the coalescing window"
    );
    t.advance(t.app.services.settings.katana.coalesce_stock_reads, MIN)
        .await;
    wait_for("the coalesced stock read", 20, || {
        requests_to(&t, "GET", "/inventory").len() == before + 2
    })
    .await;
    let reads = requests_to(&t, "GET", "/inventory");
    let mut variants = query_values(&reads[before + 1], "variant_id");
    variants.sort();
    let mut want = vec![a.to_string(), b.to_string()];
    want.sort();
    assert_eq!(variants, want, "one call names both variants");

    // What was read reaches TikTok after the buffer.
    t.advance(61 * MIN, 10 * MIN).await;
    assert_eq!(last_push(&t, SKU_ID_A), Some(8));
    assert_eq!(last_push(&t, SKU_ID_B), Some(4));
    assert_eq!(
        requests_to(&t, "GET", "/inventory").len(),
        before + 2,
        "three changes, two reads"
    );
    t.stop().await;
}

#[actix::test]
async fn deliveries_of_many_sos_within_a_window_are_one_list_of_changed_fulfillments() {
    let t = spawn_app(|_| {}).await;
    let sos = sos_past_hold(&t, &["A", "A", "B", "B"]).await;
    let lists_before = requests_to(&t, "GET", "/sales_order_fulfillments").len();
    let ups = || tracking(Some("1Z1"), "UPS");

    t.katana.deliver(sos[0], None, ups()).unwrap();
    wait_for("the first shipment", 20, || t.tiktok.shipments().len() == 1).await;
    t.settle().await;

    for so in &sos[1..] {
        t.katana.deliver(*so, None, ups()).unwrap();
    }
    t.settle().await;
    assert_eq!(
        t.tiktok.shipments().len(),
        1,
        "read inside the coalescing window"
    );
    t.advance(
        t.app.services.settings.katana.coalesce_fulfillment_reads,
        MIN,
    )
    .await;
    wait_for("every shipment", 20, || t.tiktok.shipments().len() == 4).await;
    t.settle().await;
    assert_eq!(t.tiktok.shipments().len(), 4, "each delivery shipped once");

    let lists = requests_to(&t, "GET", "/sales_order_fulfillments");
    assert_eq!(lists.len(), lists_before + 2, "four deliveries, two lists");
    for list in &lists[lists_before..] {
        assert_eq!(query_values(list, "updated_at_min").len(), 1, "{list:?}");
        assert!(query_values(list, "sales_order_id").is_empty());
    }
    let so_reads = t
        .katana
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/sales_orders/"))
        .count();
    assert_eq!(so_reads, 0, "no SO is read one by one");
    t.stop().await;
}

fn so_updated_at(katana: &KatanaSim, so_id: i64) -> Value {
    katana
        .sales_orders()
        .into_iter()
        .find(|so| so["id"].as_i64() == Some(so_id))
        .map(|so| so["updated_at"].clone())
        .unwrap()
}

#[actix::test]
async fn a_second_partial_fulfillment_that_moves_no_so_and_fires_no_webhook_is_found_by_the_poll() {
    let t = spawn_app(|_| {}).await;
    let id = t.place_past_hold(&[("A", 2)]).await;
    let so = t.sales_orders().pop().unwrap();
    let so_id = so["id"].as_i64().unwrap();
    let row = so["sales_order_rows"][0]["id"].as_i64().unwrap();
    let ups = |n: &str| Tracking {
        tracking_number: Some(n.into()),
        tracking_url: None,
        tracking_carrier: Some("UPS".into()),
    };
    t.katana
        .deliver(so_id, Some(&[(row, Quantity::from_units(1))]), ups("1Z001"))
        .unwrap();
    wait_for("the first shipment", 20, || t.tiktok.shipments().len() == 1).await;
    t.settle().await;

    // A poll later, the first fulfillment is older than the next list looks back:
    // the order will be given a list holding only the second one.
    t.advance(t.app.services.settings.katana.poll_interval, MIN)
        .await;
    pollers::poll_katana_orders(&t.app.services.pollers)
        .await
        .unwrap();
    t.settle().await;
    assert_eq!(t.tiktok.shipments().len(), 1);

    t.katana.set_fulfillment_touches_so(false);
    let updated_before = so_updated_at(&t.katana, so_id);
    let so_webhooks = |k: &KatanaSim| {
        k.webhook_deliveries()
            .iter()
            .filter(|d| d.event.starts_with("sales_order."))
            .count()
    };
    let webhooks_before = so_webhooks(&t.katana);
    t.advance(MIN, MIN).await;
    t.katana.deliver(so_id, None, ups("1Z002")).unwrap();
    t.settle().await;
    assert_eq!(so_updated_at(&t.katana, so_id), updated_before);
    assert_eq!(so_webhooks(&t.katana), webhooks_before, "no SO webhook");
    t.advance(t.app.services.settings.katana.poll_interval, MIN)
        .await;
    assert_eq!(
        t.tiktok.shipments().len(),
        1,
        "nothing told the service yet"
    );

    let lists_before = requests_to(&t, "GET", "/sales_order_fulfillments").len();
    pollers::poll_katana_orders(&t.app.services.pollers)
        .await
        .unwrap();
    wait_for("the second shipment", 20, || {
        t.tiktok.shipments().len() == 2
    })
    .await;
    let list = requests_to(&t, "GET", "/sales_order_fulfillments")[lists_before].clone();
    let since = query_values(&list, "updated_at_min")[0].clone();
    let first_list = requests_to(&t, "GET", "/sales_order_fulfillments")[0].at;
    assert!(
        chrono::DateTime::parse_from_rfc3339(&since).unwrap() > first_list,
        "the list looked back to the first fulfillment ({since})"
    );
    let shipments = t.tiktok.shipments();
    assert_eq!(shipments[1].tracking_number, "1Z002");
    assert_ne!(shipments[0].line_item_ids, shipments[1].line_item_ids);
    t.settle().await;
    assert_eq!(t.tiktok.shipments().len(), 2, "each delivery shipped once");
    assert_eq!(
        t.tiktok.order(&id).unwrap().status,
        TikTokOrderStatus::AwaitingCollection
    );
    t.stop().await;
}

#[actix::test]
async fn with_creates_saturating_katanas_budget_a_stock_decrease_reaches_tiktok_within_the_buffer_and_a_minute(
) {
    let buffer = 10 * MIN;
    let t = spawn_app(|s| s.sync.inventory_buffer = buffer).await;
    let (a, b) = (t.variants["A"], t.variants["B"]);
    t.katana
        .set_stock(a, t.main_location, Quantity::from_units(1000))
        .unwrap();
    const ORDERS: usize = 150;
    for _ in 0..ORDERS {
        t.place(&[("A", 1)]);
    }
    t.settle().await;
    t.advance(59 * MIN, 10 * MIN).await;
    assert_eq!(last_push(&t, SKU_ID_B), Some(5), "B's stock is on TikTok");
    // The holds end: 150 creates against 60 a minute.
    let mut steps = 0;
    while t.sales_orders().len() < 20 {
        steps += 1;
        assert!(steps < 30, "the holds did not end");
        t.clock.advance(Duration::from_secs(10));
        t.quiet().await;
    }
    let budget = t.app.services.katana.as_ref().unwrap().budget().clone();
    assert!(budget.used() >= 55, "the window is full of creates");

    let decreased_at = t.clock.now();
    t.katana
        .set_stock(b, t.main_location, Quantity::from_units(2))
        .unwrap();
    let reads_before = requests_to(&t, "GET", "/inventory").len();
    let log_at_decrease = t.katana.requests().len();
    let deadline = decreased_at + chrono::Duration::from_std(buffer + MIN).unwrap();
    while last_push(&t, SKU_ID_B) != Some(2) {
        assert!(
            t.clock.now() <= deadline,
            "the decrease did not reach TikTok within the buffer and a minute"
        );
        t.clock.advance(Duration::from_secs(10));
        t.quiet().await;
    }
    // The read went out ahead of creates that were already waiting for the window.
    let log = t.katana.requests();
    let read_index = log
        .iter()
        .enumerate()
        .filter(|(_, r)| r.method == "GET" && r.path == "/inventory")
        .nth(reads_before)
        .map(|(i, _)| i)
        .unwrap();
    assert_eq!(
        query_values(&log[read_index], "variant_id"),
        vec![b.to_string()]
    );
    assert!(log[read_index].at <= decreased_at + chrono::Duration::from_std(MIN).unwrap());
    // The window was full: the first slot to free went to the read, not to the
    // create that had been waiting longer.
    assert!(
        !log[log_at_decrease..read_index]
            .iter()
            .any(|r| r.method == "POST" && r.path == "/sales_orders"),
        "a create went before the stock read"
    );
    let creates_after_read = log[read_index..]
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/sales_orders")
        .count();
    assert!(
        creates_after_read > 0,
        "no create was waiting when the stock was read"
    );
    let mut steps = 0;
    while t.sales_orders().len() < ORDERS {
        steps += 1;
        assert!(steps < 60, "only {} SOs", t.sales_orders().len());
        t.clock.advance(Duration::from_secs(10));
        t.quiet().await;
    }
    assert_eq!(t.katana.stats().rate_limited, 0);
    t.stop().await;
}

#[actix::test]
async fn katanas_list_filters_are_strict() {
    let t = spawn_app(|_| {}).await;
    let get = |path: String| {
        let req = reqwest::Client::new()
            .get(format!("{}{path}", t.katana.base_url()))
            .bearer_auth(t.katana.api_key());
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (st, body) =
        get("/sales_order_fulfillments?updated_since=2026-05-04T09:00:00Z".into()).await;
    assert_eq!(st, 422, "{body}");
    assert_eq!(
        body["error"]["details"][0]["info"]["additionalProperty"],
        "updated_since"
    );
    let (st, _) = get("/inventory?variant_ids=1".into()).await;
    assert_eq!(st, 422, "the inventory filter is `variant_id`");
    let (st, _) = get("/sales_order_fulfillments?updated_at_min=yesterday".into()).await;
    assert_eq!(st, 422, "not ISO-8601");
    let (st, _) = get("/sales_orders?updated_at_min=2026-05-04".into()).await;
    assert_eq!(st, 422, "a date without a time is not a date-time");

    let so = sos_past_hold(&t, &["A"]).await[0];
    let delivered_at = t.clock.now();
    t.katana
        .deliver(so, None, tracking(Some("1Z1"), "UPS"))
        .unwrap();
    let iso =
        |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (st, body) = get(format!(
        "/sales_order_fulfillments?updated_at_min={}",
        iso(delivered_at)
    ))
    .await;
    assert_eq!(st, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let (_, body) = get(format!(
        "/sales_order_fulfillments?updated_at_min={}",
        iso(delivered_at + chrono::Duration::seconds(1))
    ))
    .await;
    assert!(body["data"].as_array().unwrap().is_empty());
    t.stop().await;
}

/// `tks bench flow` once stopped at "only 55 of 60 SOs after 1800s of clock time"
/// on a heavily loaded machine: its steps ended after two seconds of real time
/// whether or not the service was done, so the clock moved on under a Katana
/// request still in flight, and a create that then hit its real-time timeout
/// waited `katana.create_settle` of clock time, which the bench burnt through in
/// seconds. A step now ends when the service is done or waits for the clock only.
#[actix::test]
async fn a_bench_step_on_a_slow_machine_ends_only_after_the_katana_request_in_flight() {
    use tks::clock::ManualClock;
    use tks::domain::observed::FulfillmentType;
    use tks::sandbox::run::{World, WorldOptions};

    let dir = tempfile::tempdir().unwrap();
    let manual = ManualClock::new(
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 5, 4, 9, 0, 0).unwrap(),
    );
    let world = World::start(
        manual.clock(),
        WorldOptions {
            shops: 1,
            db_path: dir.path().join("slow.db"),
            katana_requests_per_minute: Some(60),
            pollers: false,
        },
        |s| {
            s.sync.order_hold = Duration::ZERO;
            s.tiktok.requests_per_second = 0;
        },
    )
    .await
    .unwrap();
    assert!(world.settle_on_clock(Duration::from_secs(20)).await);
    let created = |w: &World| {
        w.store()
            .read_all(0, 100_000)
            .unwrap()
            .iter()
            .filter(|e| e.event_type == "SoCreated")
            .count()
    };
    // A loaded machine: Katana answers the customer and the SO create late.
    world
        .katana
        .delay_next_method(Some("POST"), 2, Duration::from_millis(1500));
    world
        .place(&[("MUG-WHITE", 1)], FulfillmentType::FulfillmentBySeller)
        .unwrap();
    assert!(
        !world.settle(Duration::from_millis(500)).await,
        "a step bounded in real time ends with the create in flight"
    );
    assert_eq!(created(&world), 0);
    assert!(world.settle_on_clock(Duration::from_secs(20)).await);
    assert_eq!(created(&world), 1, "the step ended with the SO created");
    world.stop().await;
}
