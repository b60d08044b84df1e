//! Shipping as real shops do it, over HTTP with a manual clock: TikTok's label and
//! tracking for TikTok-shipping orders, Ship Package outside the Mark Package As
//! Shipped markets (splitting a partial delivery, or waiting when TikTok will not),
//! and tracking corrections within TikTok's 72 hours.

use std::time::Duration;

use serde_json::Value;

use tks::config::{ArrangeShipmentOn, HandoverMethod};
use tks::domain::observed::{Quantity, TikTokOrderStatus};
use tks::sandbox::katana::Tracking;
use tks::sandbox::tiktok::{NewOrder, SimConfig};

use crate::flows::{spawn_app, spawn_app_for, tracking, wait_for, TestApp};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const MARK_SHIPPED: &str = "/fulfillment/202309/orders/{}/packages";
const SHIP_PACKAGE: &str = "/fulfillment/202309/packages/{}/ship";

fn no_tracking() -> Tracking {
    Tracking {
        tracking_number: None,
        tracking_url: None,
        tracking_carrier: None,
    }
}

async fn api(t: &TestApp, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", t.app.base_url()))
        .header("Authorization", "Bearer test-admin-token")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn katana_fulfillment(t: &TestApp, id: i64) -> Value {
    reqwest::Client::new()
        .get(format!(
            "{}/sales_order_fulfillments/{id}",
            t.katana.base_url()
        ))
        .bearer_auth(t.katana.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn status_of(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

/// Places an order and runs it past its hold into Katana.
async fn placed(t: &TestApp, new: NewOrder) -> (String, i64) {
    let id = t.tiktok.create_order(new).unwrap().id;
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    let so = t.sales_orders().pop().expect("the SO was created");
    (id, so["id"].as_i64().unwrap())
}

fn order_of(items: &[(&str, u32)], shipping_type: &str, splittable: bool) -> NewOrder {
    let mut o = NewOrder::of(items, TikTokOrderStatus::AwaitingShipment);
    o.shipping_type = Some(shipping_type.into());
    o.splittable = Some(splittable);
    o
}

fn exception_keys(t: &TestApp) -> Vec<String> {
    t.app
        .services
        .store
        .lookup_all(tks::names::lookup::EXCEPTION)
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect()
}

#[actix::test]
async fn a_tiktok_shipping_order_gets_tiktoks_label_and_its_tracking_reaches_katana() {
    let t = spawn_app_for(
        SimConfig::demo(),
        |s| {
            s.tiktok.arrange_shipment_on = ArrangeShipmentOn::Packed;
            s.tiktok.handover_method = HandoverMethod::Pickup;
        },
        |_| {},
    )
    .await;
    let (id, so_id) = placed(&t, order_of(&[("A", 2)], "TIKTOK", true)).await;
    let fulfillment = t.katana.pack(so_id, None, no_tracking()).unwrap();
    wait_for("the shipment to be arranged", 20, || {
        !t.tiktok.shipments().is_empty()
    })
    .await;
    t.settle().await;

    let shipments = t.tiktok.shipments();
    assert_eq!(shipments.len(), 1, "{shipments:?}");
    assert_eq!(shipments[0].method, "tiktok_label");
    assert_eq!(shipments[0].handover_method.as_deref(), Some("PICKUP"));
    assert_eq!(shipments[0].line_item_ids.len(), 2);
    assert_eq!(
        t.tiktok.calls("POST", MARK_SHIPPED),
        0,
        "never Mark Package As Shipped"
    );
    let tiktok_tracking = shipments[0].tracking_number.clone();
    assert!(!tiktok_tracking.is_empty());

    let f = katana_fulfillment(&t, fulfillment).await;
    assert_eq!(f["tracking_number"], Value::String(tiktok_tracking.clone()));
    assert_eq!(f["status"], "PACKED");
    let events = t.events(&format!("order-{id}"));
    for e in [
        "ShipmentArranged",
        "FulfillmentPushed",
        "TrackingWrittenToKatana",
    ] {
        assert!(events.iter().any(|x| x == e), "{e} missing from {events:?}");
    }
    assert_eq!(
        t.tiktok.order(&id).unwrap().status,
        TikTokOrderStatus::AwaitingCollection
    );

    // The label: fresh on demand, TikTok's URL expiring after 24 h.
    let (status, body) = api(&t, &format!("/api/orders/{id}/label")).await;
    assert_eq!(status, 200, "{body}");
    let first = body["labels"][0]["label_url"].as_str().unwrap().to_string();
    assert_eq!(
        body["labels"][0]["tracking_number"],
        Value::String(tiktok_tracking)
    );
    assert_eq!(status_of(&first).await, 200);
    t.clock.advance(Duration::from_secs(25 * 3600));
    assert_eq!(status_of(&first).await, 410, "TikTok's label URL expired");
    let (_, again) = api(&t, &format!("/api/orders/{id}/label")).await;
    let fresh = again["labels"][0]["label_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, first);
    assert_eq!(status_of(&fresh).await, 200);

    // Delivering it in Katana afterwards ships nothing twice.
    t.katana
        .deliver(so_id, None, tracking(None, "TikTok Shipping"))
        .ok();
    t.settle().await;
    assert_eq!(t.tiktok.shipments().len(), 1);
    t.stop().await;
}

#[actix::test]
async fn a_label_is_only_for_orders_tiktok_ships() {
    let t = spawn_app(|_| {}).await;
    let id = t.place_past_hold(&[("A", 1)]).await;
    let (status, body) = api(&t, &format!("/api/orders/{id}/label")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("TikTok's label"));
    t.stop().await;
}

#[actix::test]
async fn outside_the_mark_shipped_markets_a_partial_delivery_is_split_and_self_shipped() {
    let t = spawn_app_for(SimConfig::demo().with_region("MY"), |_| {}, |_| {}).await;
    let (id, so_id) = placed(&t, order_of(&[("A", 2)], "SELLER", true)).await;
    let so = t.sales_orders().pop().unwrap();
    let row = so["sales_order_rows"][0]["id"].as_i64().unwrap();
    t.katana
        .deliver(
            so_id,
            Some(&[(row, Quantity::from_units(1))]),
            tracking(Some("MY001"), "UPS"),
        )
        .unwrap();
    wait_for("the first unit to ship", 20, || {
        t.tiktok.shipments().len() == 1
    })
    .await;
    t.settle().await;
    assert_eq!(
        t.tiktok.order(&id).unwrap().status,
        TikTokOrderStatus::PartiallyShipping
    );
    t.katana
        .deliver(so_id, None, tracking(Some("MY002"), "UPS"))
        .unwrap();
    // Deliveries close together share one read of Katana, at the end of its window.
    t.advance(3 * MIN, MIN).await;
    wait_for("the second unit to ship", 20, || {
        t.tiktok.shipments().len() == 2
    })
    .await;
    t.settle().await;

    let shipments = t.tiktok.shipments();
    assert!(
        shipments.iter().all(|s| s.method == "self_shipment"),
        "{shipments:?}"
    );
    assert_eq!(
        shipments
            .iter()
            .map(|s| s.tracking_number.as_str())
            .collect::<Vec<_>>(),
        ["MY001", "MY002"]
    );
    assert_ne!(shipments[0].package_id, shipments[1].package_id);
    assert_eq!(shipments[0].line_item_ids.len(), 1);
    assert_eq!(t.tiktok.calls("POST", MARK_SHIPPED), 0);
    assert_eq!(t.tiktok.calls("POST", SHIP_PACKAGE), 2);
    assert_eq!(t.tiktok.order_packages(&id).len(), 2, "split in two");
    assert_eq!(
        t.tiktok.order(&id).unwrap().status,
        TikTokOrderStatus::AwaitingCollection
    );
    t.stop().await;
}

#[actix::test]
async fn a_partial_delivery_tiktok_will_not_split_waits_and_leaves_with_the_rest() {
    let t = spawn_app_for(SimConfig::demo().with_region("TH"), |_| {}, |_| {}).await;
    let (id, so_id) = placed(&t, order_of(&[("A", 2)], "SELLER", false)).await;
    let so = t.sales_orders().pop().unwrap();
    let row = so["sales_order_rows"][0]["id"].as_i64().unwrap();
    let first = t
        .katana
        .deliver(
            so_id,
            Some(&[(row, Quantity::from_units(1))]),
            tracking(Some("TH001"), "UPS"),
        )
        .unwrap();
    let deferred = format!("order-{id}#shipment-deferred-{first}");
    wait_for("the deferral to be raised", 20, || {
        exception_keys(&t).contains(&deferred)
    })
    .await;
    t.settle().await;
    assert!(t.tiktok.shipments().is_empty());
    let events = t.events(&format!("order-{id}"));
    assert!(events.iter().any(|e| e == "ShipmentDeferred"), "{events:?}");

    t.katana
        .deliver(so_id, None, tracking(Some("TH002"), "UPS"))
        .unwrap();
    t.advance(3 * MIN, MIN).await;
    wait_for("the whole package to ship", 20, || {
        t.tiktok.shipments().len() == 1
    })
    .await;
    t.settle().await;
    let shipments = t.tiktok.shipments();
    assert_eq!(shipments[0].line_item_ids.len(), 2, "{shipments:?}");
    assert_eq!(shipments[0].tracking_number, "TH002");
    assert!(
        !exception_keys(&t).contains(&deferred),
        "the deferral resolved"
    );
    t.stop().await;
}

#[actix::test]
async fn changed_tracking_is_corrected_on_tiktok_within_72_hours_and_raised_after() {
    let t = spawn_app(|_| {}).await;
    let id = t.place_past_hold(&[("A", 1)]).await;
    let so_id = t.sales_orders()[0]["id"].as_i64().unwrap();
    let fulfillment = t
        .katana
        .deliver(so_id, None, tracking(Some("1ZWRONG"), "UPS"))
        .unwrap();
    wait_for("the delivery to ship", 20, || {
        t.tiktok.shipments().len() == 1
    })
    .await;
    t.settle().await;

    // The merchant notices the typo a few minutes later.
    t.advance(5 * MIN, 5 * MIN).await;
    t.katana
        .edit_fulfillment_tracking(fulfillment, tracking(Some("1ZRIGHT"), "UPS"))
        .unwrap();
    wait_for("the correction to reach TikTok", 20, || {
        t.tiktok.tracking_updates().len() == 1
    })
    .await;
    t.settle().await;
    let updates = t.tiktok.tracking_updates();
    assert_eq!(updates[0].tracking_number, "1ZRIGHT");
    assert_eq!(updates[0].order_id, id);
    assert_eq!(
        t.tiktok.shipments().len(),
        1,
        "a correction, not a second shipment"
    );
    let events = t.events(&format!("order-{id}"));
    assert!(
        events.iter().any(|e| e == "TrackingCorrected"),
        "{events:?}"
    );

    t.clock.advance(73 * HOUR);
    t.katana
        .edit_fulfillment_tracking(fulfillment, tracking(Some("1ZLATE"), "UPS"))
        .unwrap();
    let key = format!("order-{id}#tracking-correction-{fulfillment}");
    wait_for("the late correction to be raised", 20, || {
        exception_keys(&t).contains(&key)
    })
    .await;
    assert_eq!(
        t.tiktok.tracking_updates().len(),
        1,
        "TikTok is not asked after 72 h"
    );
    t.stop().await;
}

#[actix::test]
async fn tks_check_says_how_the_shops_market_ships() {
    use tks::check::{CheckOptions, Status};
    for (region, expect) in [
        ("US", "Mark Package As Shipped"),
        ("MY", "no Mark Package As Shipped"),
    ] {
        let t = spawn_app_for(SimConfig::demo().with_region(region), |_| {}, |_| {}).await;
        let settings = (*t.app.services.settings).clone();
        let report = tks::check::run(&settings, t.clock.clock(), &CheckOptions::default()).await;
        let line = report
            .find("tiktok.market")
            .unwrap_or_else(|| panic!("no tiktok.market line:\n{}", report.render()));
        assert_eq!(line.status, Status::Ok);
        assert!(
            line.detail.contains(&format!("market {region}")),
            "{}",
            line.detail
        );
        assert!(line.detail.contains(expect), "{}", line.detail);
        assert_eq!(
            line.detail.contains("self_shipment"),
            region == "MY",
            "{}",
            line.detail
        );
        t.stop().await;
    }
}

#[actix::test]
async fn a_partial_delivery_of_a_tiktok_label_order_gets_a_package_and_label_of_its_own() {
    let t = spawn_app(|_| {}).await;
    let (id, so_id) = placed(&t, order_of(&[("A", 2)], "TIKTOK", true)).await;
    let so = t.sales_orders().pop().unwrap();
    let row = so["sales_order_rows"][0]["id"].as_i64().unwrap();
    let first = t
        .katana
        .deliver(
            so_id,
            Some(&[(row, Quantity::from_units(1))]),
            no_tracking(),
        )
        .unwrap();
    wait_for("the first parcel to be arranged", 20, || {
        t.tiktok.shipments().len() == 1
    })
    .await;
    t.advance(3 * MIN, MIN).await;
    let second = t.katana.deliver(so_id, None, no_tracking()).unwrap();
    t.advance(3 * MIN, MIN).await;
    wait_for("the second parcel to be arranged", 20, || {
        t.tiktok.shipments().len() == 2
    })
    .await;
    t.settle().await;

    let shipments = t.tiktok.shipments();
    assert!(
        shipments.iter().all(|s| s.method == "tiktok_label"),
        "{shipments:?}"
    );
    assert!(shipments.iter().all(|s| s.line_item_ids.len() == 1));
    assert_ne!(shipments[0].package_id, shipments[1].package_id);
    assert_ne!(shipments[0].tracking_number, shipments[1].tracking_number);
    assert_eq!(t.tiktok.calls("POST", MARK_SHIPPED), 0);
    for (fulfillment, shipment) in [(first, &shipments[0]), (second, &shipments[1])] {
        let f = katana_fulfillment(&t, fulfillment).await;
        assert_eq!(
            f["tracking_number"],
            Value::String(shipment.tracking_number.clone())
        );
    }
    let (status, body) = api(&t, &format!("/api/orders/{id}/label")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["labels"].as_array().unwrap().len(), 2, "{body}");
    t.stop().await;
}
