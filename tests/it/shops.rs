//! Several shops on one instance, over HTTP with a manual clock: what `/api/shops`
//! and `/api/skus/{sku}` say of each shop.

use std::time::Duration;

use serde_json::Value;

use tks::check::{CheckOptions, Status};
use tks::config::{ArrangeShipmentOn, Settings, ShopSettings};
use tks::connectors::pollers;
use tks::domain::allocation::Allocation;
use tks::domain::observed::{Quantity, TikTokOrderStatus};
use tks::sandbox::katana::Tracking;
use tks::sandbox::tiktok::shop::ShopSim;
use tks::sandbox::tiktok::state::InventoryPush;
use tks::sandbox::tiktok::{
    NewOrder, NewProduct, NewSku, SimConfig, DEMO_OTHER_SHOP_ID, DEMO_UK_SHOP_CIPHER,
    DEMO_UK_SHOP_ID, DEMO_UK_SHOP_NAME, MAIN_WAREHOUSE, RETURN_WAREHOUSE,
};

use super::flows::{spawn_app, spawn_app_for, wait_for, TestApp};
use super::listings::finding;

const MIN: Duration = Duration::from_secs(60);

async fn admin_get(base: &str, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

#[actix::test]
async fn a_single_shop_instance_lists_its_one_authorised_shop_and_its_offer() {
    let t = spawn_app(|_| {}).await;
    let base = t.app.base_url();
    let shops = admin_get(&base, "/api/shops").await;
    let list = shops["shops"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{shops}");
    let shop = &list[0];
    assert_eq!(shop["primary"], true);
    assert_eq!(shop["name"], t.tiktok.config().shop_name.as_str());
    assert_eq!(shop["region"], "US");
    assert_eq!(shop["authorised"], true);
    assert_eq!(shop["allocation"]["share"], 100);
    assert_eq!(
        shop["stock_locations"],
        serde_json::json!([t.main_location])
    );

    let sku = admin_get(&base, "/api/skus/A").await;
    let offers = sku["shops"].as_array().unwrap();
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0]["offered"], sku["atp"], "{sku}");
    assert_eq!(offers[0]["pool"], 10);
}

/// Shop A is the demo US shop, B the same seller's UK shop, C another seller's.
const A_SKU_ID: &str = "1729100000000000101";
const B_SKU_ID: &str = "1729100000000000201";

/// Two shops of one seller, both selling seller SKUs A and B; `b_apart` gives shop
/// B a Katana location of its own (the FBT location, stocked here) instead of A's.
fn two_shops(s: &mut Settings, rule_a: Allocation, rule_b: Allocation, b_apart: bool) {
    let demo = SimConfig::demo();
    let multi = SimConfig::demo_multi();
    let b_warehouses = multi.warehouses_of(DEMO_UK_SHOP_ID).unwrap();
    let main = s.warehouses.pickup_location_id;
    let b_location = if b_apart {
        s.warehouses.fbt_location_id
    } else {
        main
    };
    s.shops = vec![
        ShopSettings {
            id: demo.shop_id,
            cipher: demo.shop_cipher,
            pickup_warehouse_id: MAIN_WAREHOUSE.into(),
            pickup_location_id: main,
            return_warehouse_id: RETURN_WAREHOUSE.into(),
            return_location_id: main,
            order_no_prefix: "US-".into(),
            allocation: rule_a,
            ..ShopSettings::default()
        },
        ShopSettings {
            id: DEMO_UK_SHOP_ID.into(),
            cipher: DEMO_UK_SHOP_CIPHER.into(),
            pickup_warehouse_id: b_warehouses.main,
            pickup_location_id: b_location,
            return_warehouse_id: b_warehouses.return_,
            return_location_id: b_location,
            order_no_prefix: "UK-".into(),
            allocation: rule_b,
            ..ShopSettings::default()
        },
    ];
}

fn listing(shop: &ShopSim<'_>, product_id: &str, sku_id: &str, seller_sku: &str) -> NewProduct {
    NewProduct {
        id: Some(product_id.into()),
        title: format!("Product {seller_sku}"),
        status: "ACTIVATE".into(),
        skus: vec![NewSku {
            id: Some(sku_id.into()),
            seller_sku: seller_sku.into(),
            price: "10.00".into(),
            inventory: vec![(shop.warehouses().main, 0)],
        }],
    }
}

async fn spawn_two_shops(rule_a: Allocation, rule_b: Allocation, b_apart: bool) -> TestApp {
    let t = spawn_app_for(
        SimConfig::demo_multi(),
        |s| two_shops(s, rule_a, rule_b, b_apart),
        |_| {},
    )
    .await;
    let b = t.tiktok.shop(DEMO_UK_SHOP_ID).unwrap();
    b.set_catalogue(vec![
        listing(&b, "1729000000000000201", B_SKU_ID, "A"),
        listing(&b, "1729000000000000202", "1729100000000000202", "B"),
    ])
    .unwrap();
    if b_apart {
        let fbt = t.app.services.settings.warehouses.fbt_location_id;
        t.katana
            .set_stock(t.variants["A"], fbt, Quantity::from_units(10))
            .unwrap();
    }
    // What the pollers do every cycle: shop B's listings and name are read too.
    pollers::refresh_catalogue(&t.app.services.pollers)
        .await
        .unwrap();
    pollers::poll_stock(&t.app.services.pollers).await.unwrap();
    t.settle().await;
    t
}

fn last_push(pushes: &[InventoryPush], sku_id: &str) -> Option<i64> {
    pushes
        .iter()
        .filter(|p| p.sku_id == sku_id)
        .map(|p| p.quantity)
        .next_back()
}

fn rule(share: u32, max: u32, reserve: u32) -> Allocation {
    Allocation {
        share,
        max,
        reserve,
    }
}

#[actix::test]
async fn one_stock_read_pushes_each_shop_its_allocated_value() {
    // Katana has 10 of A at the shared location.
    for (rule_a, rule_b, want_a, want_b) in [
        (rule(50, 0, 0), rule(50, 0, 0), 5, 5),
        (rule(100, 0, 0), rule(100, 3, 0), 10, 3),
        (rule(100, 0, 0), rule(0, 0, 4), 6, 4),
    ] {
        let t = spawn_two_shops(rule_a, rule_b, false).await;
        t.advance(61 * MIN, 10 * MIN).await;
        let a = last_push(&t.tiktok.inventory_pushes(), A_SKU_ID);
        let b = last_push(
            &t.tiktok.shop(DEMO_UK_SHOP_ID).unwrap().inventory_pushes(),
            B_SKU_ID,
        );
        assert_eq!(
            (a, b),
            (Some(want_a), Some(want_b)),
            "A {rule_a:?}, B {rule_b:?}"
        );
        t.stop().await;
    }
}

#[actix::test]
async fn an_order_held_in_one_shop_lowers_the_other_only_when_they_share_a_location() {
    for (b_apart, want_a) in [(false, 8), (true, 10)] {
        let t = spawn_two_shops(rule(100, 0, 0), rule(100, 0, 0), b_apart).await;
        // Half-way through the first window, a buyer orders 2 of A in shop B; its
        // hold outlasts the window.
        t.advance(30 * MIN, 10 * MIN).await;
        t.tiktok
            .shop(DEMO_UK_SHOP_ID)
            .unwrap()
            .create_order(NewOrder::of(
                &[("A", 2)],
                TikTokOrderStatus::AwaitingShipment,
            ))
            .unwrap();
        t.settle().await;
        t.advance(31 * MIN, 10 * MIN).await;
        assert!(t.sales_orders().is_empty(), "the order is still held");
        let a = last_push(&t.tiktok.inventory_pushes(), A_SKU_ID);
        let b = last_push(
            &t.tiktok.shop(DEMO_UK_SHOP_ID).unwrap().inventory_pushes(),
            B_SKU_ID,
        );
        assert_eq!(a, Some(want_a), "shop B apart: {b_apart}");
        assert_eq!(b, Some(8), "shop B's own order lowers shop B");
        t.stop().await;
    }
}

#[actix::test]
async fn orders_of_each_shop_land_once_with_their_shops_name_prefix_and_location() {
    let t = spawn_two_shops(rule(100, 0, 0), rule(100, 0, 0), true).await;
    let a_id = t.place(&[("A", 1)]);
    let b_id = t
        .tiktok
        .shop(DEMO_UK_SHOP_ID)
        .unwrap()
        .create_order(NewOrder::of(
            &[("A", 1)],
            TikTokOrderStatus::AwaitingShipment,
        ))
        .unwrap()
        .id;
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    let sos = t.sales_orders();
    assert_eq!(sos.len(), 2, "{sos:#?}");
    let so_of = |no: &str| {
        sos.iter()
            .find(|so| so["order_no"] == no)
            .unwrap_or_else(|| panic!("no SO {no} in {sos:#?}"))
    };
    let a = so_of(&format!("US-{a_id}"));
    let b = so_of(&format!("UK-{b_id}"));
    assert_eq!(a["ecommerce_store_name"], "Sim Pottery");
    assert_eq!(b["ecommerce_store_name"], DEMO_UK_SHOP_NAME);
    assert_eq!(a["location_id"], t.main_location);
    let fbt = t.app.services.settings.warehouses.fbt_location_id;
    assert_eq!(b["location_id"], fbt);
    // One generic customer per shop.
    assert_ne!(a["customer_id"], b["customer_id"]);

    let shops = admin_get(&t.app.base_url(), "/api/shops").await;
    let names: Vec<&str> = shops["shops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["Sim Pottery", DEMO_UK_SHOP_NAME]);
    assert!(shops["shops"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["authorised"] == true));
    t.stop().await;
}

#[actix::test]
async fn a_webhook_for_a_shop_not_served_is_answered_and_touches_no_order() {
    let t = spawn_two_shops(rule(100, 0, 0), rule(100, 0, 0), false).await;
    let c = t.tiktok.shop(DEMO_OTHER_SHOP_ID).unwrap();
    c.set_catalogue(vec![listing(
        &c,
        "1729000000000000301",
        "1729100000000000301",
        "A",
    )])
    .unwrap();
    let order = c
        .create_order(NewOrder::of(
            &[("A", 1)],
            TikTokOrderStatus::AwaitingShipment,
        ))
        .unwrap();
    t.settle().await;
    let attempts: Vec<_> = t
        .tiktok
        .webhook_attempts()
        .into_iter()
        .filter(|a| a.order_id.as_deref() == Some(order.id.as_str()))
        .collect();
    assert!(!attempts.is_empty());
    assert!(attempts.iter().all(|a| a.status == 200), "{attempts:?}");
    assert!(t.events(&format!("order-{}", order.id)).is_empty());
    t.advance(61 * MIN, 10 * MIN).await;
    assert!(t.sales_orders().is_empty());
    t.stop().await;
}

/// Shop C: the other seller's shop, sharing shop A's Katana location.
fn three_shops(s: &mut Settings) {
    two_shops(s, rule(100, 0, 0), rule(100, 0, 0), true);
    let c = SimConfig::demo_multi()
        .warehouses_of(DEMO_OTHER_SHOP_ID)
        .unwrap();
    let main = s.warehouses.pickup_location_id;
    s.shops.push(ShopSettings {
        id: DEMO_OTHER_SHOP_ID.into(),
        pickup_warehouse_id: c.main,
        pickup_location_id: main,
        return_warehouse_id: c.return_,
        return_location_id: main,
        order_no_prefix: "CW-".into(),
        ..ShopSettings::default()
    });
}

async fn oauth_callback(base: &str, code: &str) -> (u16, String) {
    let resp = reqwest::get(format!("{base}/oauth/tiktok/callback?code={code}"))
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn order_in(t: &TestApp, shop: &str, sku: &str) -> String {
    t.tiktok
        .shop(shop)
        .unwrap()
        .create_order(NewOrder::of(
            &[(sku, 1)],
            TikTokOrderStatus::AwaitingShipment,
        ))
        .unwrap()
        .id
}

#[actix::test]
async fn a_revoked_seller_stalls_only_its_own_shop_with_an_exception_naming_it() {
    let t = spawn_app_for(SimConfig::demo_multi(), three_shops, |_| {}).await;
    let base = t.app.base_url();
    let c = t.tiktok.shop(DEMO_OTHER_SHOP_ID).unwrap();
    c.set_catalogue(vec![listing(
        &c,
        "1729000000000000301",
        "1729100000000000301",
        "A",
    )])
    .unwrap();
    let b = t.tiktok.shop(DEMO_UK_SHOP_ID).unwrap();
    b.set_catalogue(vec![listing(&b, "1729000000000000201", B_SKU_ID, "A")])
        .unwrap();
    let authorised = |shops: &Value| -> Vec<bool> {
        shops["shops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["authorised"] == true)
            .collect()
    };
    // Seller 1's code (the harness's) covers A and B, not C.
    assert_eq!(
        authorised(&admin_get(&base, "/api/shops").await),
        [true, true, false]
    );

    // Seller 2 connects through the OAuth callback: its tokens go to a file of
    // their own, and shop C is served from now on.
    let (status, page) = oauth_callback(&base, &t.tiktok.issue_auth_code_for_seller(1)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Clay Works US"), "{page}");
    let db = std::path::PathBuf::from(&t.app.services.settings.store.path);
    let seller_files: Vec<_> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tks.tokens.seller-") && n.ends_with(".json"))
        .collect();
    assert_eq!(seller_files.len(), 1, "{seller_files:?}");
    assert_eq!(
        authorised(&admin_get(&base, "/api/shops").await),
        [true, true, true]
    );
    pollers::refresh_catalogue(&t.app.services.pollers)
        .await
        .unwrap();
    pollers::poll_stock(&t.app.services.pollers).await.unwrap();
    t.settle().await;

    // Both sellers' access tokens expire: each pair is refreshed on its own.
    t.tiktok.expire_access_tokens();
    let first = [
        order_in(&t, &t.tiktok.config().shop_id, "A"),
        order_in(&t, DEMO_UK_SHOP_ID, "A"),
        order_in(&t, DEMO_OTHER_SHOP_ID, "A"),
    ];
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    let numbers = |t: &TestApp| -> Vec<String> {
        let mut n: Vec<String> = t
            .sales_orders()
            .iter()
            .map(|so| so["order_no"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let mut want = vec![
        format!("US-{}", first[0]),
        format!("UK-{}", first[1]),
        format!("CW-{}", first[2]),
    ];
    want.sort();
    assert_eq!(numbers(&t), want);
    let cw = t
        .sales_orders()
        .into_iter()
        .find(|so| so["order_no"] == format!("CW-{}", first[2]))
        .unwrap();
    assert_eq!(cw["ecommerce_store_name"], "Clay Works US");
    assert_eq!(cw["location_id"], t.main_location);

    // Seller 2 revokes the app. New orders in all three shops, and a stock change.
    t.tiktok.revoke_seller(1);
    let second = [
        order_in(&t, &t.tiktok.config().shop_id, "A"),
        order_in(&t, DEMO_UK_SHOP_ID, "A"),
        order_in(&t, DEMO_OTHER_SHOP_ID, "A"),
    ];
    t.settle().await;
    let fbt = t.app.services.settings.warehouses.fbt_location_id;
    t.katana
        .set_stock(t.variants["A"], fbt, Quantity::from_units(30))
        .unwrap();
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    let numbers_now = numbers(&t);
    assert!(
        numbers_now.contains(&format!("US-{}", second[0])),
        "{numbers_now:?}"
    );
    assert!(
        numbers_now.contains(&format!("UK-{}", second[1])),
        "{numbers_now:?}"
    );
    assert!(
        !numbers_now.iter().any(|n| n.ends_with(&second[2])),
        "{numbers_now:?}"
    );
    // Shop B still receives its stock (its own location's 30, less its held
    // and pushed orders), shop C's push is refused and says so.
    let b_push = last_push(&b.inventory_pushes(), B_SKU_ID);
    assert_eq!(b_push, Some(28), "{:?}", b.inventory_pushes());
    let exceptions = admin_get(&base, "/api/exceptions").await;
    let list = exceptions["exceptions"].as_array().unwrap();
    let of_order = list
        .iter()
        .find(|e| e["id"] == second[2].as_str())
        .unwrap_or_else(|| panic!("no exception for C's order: {exceptions}"));
    let message = of_order["message"].as_str().unwrap();
    assert!(
        message.contains(DEMO_OTHER_SHOP_ID) && message.contains("revoked"),
        "{message}"
    );
    let of_sku = list
        .iter()
        .find(|e| e["key"] == format!("inventory-rejected:{DEMO_OTHER_SHOP_ID}"))
        .unwrap_or_else(|| panic!("no inventory exception for shop C: {exceptions}"));
    assert!(of_sku["message"]
        .as_str()
        .unwrap()
        .contains(DEMO_OTHER_SHOP_ID));
    assert!(
        list.iter()
            .all(|e| e["id"] != second[0].as_str() && e["id"] != second[1].as_str()),
        "{exceptions}"
    );
    // The operator sees the same per shop: A and B have two orders each, C the
    // one it could read and its two exceptions. B and C do not list SKU B: not
    // theirs to offer, and no exception for it.
    let shops = admin_get(&base, "/api/shops").await;
    let counts: Vec<(i64, i64)> = shops["shops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["orders"].as_i64().unwrap(),
                s["open_exceptions"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [(2, 0), (2, 0), (1, 2)], "{exceptions}");
    assert_eq!(shops["shops"][1]["warehouses"]["pickup"]["valid"], true);
    assert_eq!(
        shops["shops"][2]["warehouses"]["pickup"]["valid"],
        Value::Null,
        "C's warehouses cannot be read while its seller is revoked: {shops}"
    );
    assert!(
        shops["shops"][2]["tiktok_calls"]["failed"]
            .as_u64()
            .unwrap()
            > 0
    );
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "tks_shop_open_exceptions{{shop=\"{DEMO_OTHER_SHOP_ID}\"}} 2"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "tks_shop_orders{{shop=\"{DEMO_UK_SHOP_ID}\",state=\"in_katana\"}} 2"
        )),
        "{metrics}"
    );

    // The console's overview has a line per shop.
    let cookie = super::console::login(&base).await;
    let (_, overview) = super::console::page(&base, &cookie, "/").await;
    let card = overview
        .split_once("<table id=\"shops\">")
        .map(|(_, rest)| rest.split_once("</table>").unwrap().0.to_string())
        .unwrap_or_else(|| panic!("no shops card: {overview}"));
    for (id, name) in [
        (DEMO_UK_SHOP_ID, DEMO_UK_SHOP_NAME),
        (DEMO_OTHER_SHOP_ID, "Clay Works US"),
    ] {
        assert!(card.contains(id) && card.contains(name), "{card}");
    }
    assert_eq!(
        card.matches("<tr>").count(),
        4,
        "a header and three shops: {card}"
    );

    // Seller 2 authorises again; the next poll of shop C finds the order it missed.
    let (status, page) = oauth_callback(&base, &t.tiktok.issue_auth_code_for_seller(1)).await;
    assert_eq!(status, 200, "{page}");
    pollers::poll_tiktok_orders(&t.app.services.pollers)
        .await
        .unwrap();
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    assert!(numbers(&t).contains(&format!("CW-{}", second[2])));
    let exceptions = admin_get(&base, "/api/exceptions").await;
    assert!(
        exceptions["exceptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"] != second[2].as_str()),
        "{exceptions}"
    );
    t.stop().await;
}

#[actix::test]
async fn check_reports_each_shop_its_seller_warehouses_and_locations() {
    let t = spawn_app_for(SimConfig::demo_multi(), three_shops, |_| {}).await;
    let base = t.app.base_url();
    let mut settings = (*t.app.services.settings).clone();
    // Shop B's return warehouse is mistyped and shop C counts stock at a location
    // Katana does not have.
    settings.shops[1].return_warehouse_id = "7300000000000000999".into();
    settings.shops[2].locations = vec![t.main_location, 999];
    let check = |settings: Settings| {
        let clock = t.clock.clock();
        async move { tks::check::run(&settings, clock, &CheckOptions::default()).await }
    };
    let b = |line: &str| format!("shops.{DEMO_UK_SHOP_ID}.{line}");
    let c = |line: &str| format!("shops.{DEMO_OTHER_SHOP_ID}.{line}");

    let report = check(settings.clone()).await;
    // The primary shop keeps the lines a single-shop check has.
    assert_eq!(finding(&report, "tiktok.pickup_warehouse").0, Status::Ok);
    assert_eq!(finding(&report, "katana.pickup_location").0, Status::Ok);
    let (status, detail) = finding(&report, &b("tiktok.shop"));
    assert_eq!(status, Status::Ok, "{detail}");
    assert!(detail.contains(DEMO_UK_SHOP_NAME), "{detail}");
    assert_eq!(finding(&report, &b("tiktok.token")).0, Status::Ok);
    assert_eq!(
        finding(&report, &b("tiktok.pickup_warehouse")).0,
        Status::Ok
    );
    let (status, detail) = finding(&report, &b("tiktok.return_warehouse"));
    assert_eq!(status, Status::Fail, "{detail}");
    assert!(detail.contains("shops[1].return_warehouse_id"), "{detail}");
    assert_eq!(finding(&report, &b("katana.pickup_location")).0, Status::Ok);
    // Seller 2 has not connected: shop C says so and how to fix it.
    let (status, detail) = finding(&report, &c("tiktok.shop"));
    assert_eq!(status, Status::Fail, "{detail}");
    assert!(detail.contains("tks connect tiktok"), "{detail}");
    let (status, detail) = finding(&report, &c("katana.stock_locations"));
    assert_eq!(status, Status::Fail, "{detail}");
    assert!(detail.contains("[999]"), "{detail}");
    assert_eq!(report.verdict(), Status::Fail);

    let (status, page) = oauth_callback(&base, &t.tiktok.issue_auth_code_for_seller(1)).await;
    assert_eq!(status, 200, "{page}");
    settings.shops[1].return_warehouse_id = SimConfig::demo_multi()
        .warehouses_of(DEMO_UK_SHOP_ID)
        .unwrap()
        .return_;
    settings.shops[2].locations = vec![];
    let report = check(settings).await;
    let (status, detail) = finding(&report, &c("tiktok.shop"));
    assert_eq!(status, Status::Ok, "{detail}");
    assert!(detail.contains("Clay Works US"), "{detail}");
    assert_eq!(
        finding(&report, &c("tiktok.pickup_warehouse")).0,
        Status::Ok
    );
    assert_eq!(
        finding(&report, &b("tiktok.return_warehouse")).0,
        Status::Ok
    );
    assert!(
        report
            .findings
            .iter()
            .all(|f| !f.check.starts_with("shops.") || f.status != Status::Fail),
        "{}",
        report.render()
    );
    t.stop().await;
}

#[actix::test]
async fn a_label_is_fetched_from_the_shop_the_order_was_placed_in() {
    let t = spawn_app_for(
        SimConfig::demo_multi(),
        |s| {
            two_shops(s, rule(100, 0, 0), rule(100, 0, 0), false);
            s.tiktok.arrange_shipment_on = ArrangeShipmentOn::Packed;
        },
        |_| {},
    )
    .await;
    let b = t.tiktok.shop(DEMO_UK_SHOP_ID).unwrap();
    b.set_catalogue(vec![listing(&b, "1729000000000000201", B_SKU_ID, "A")])
        .unwrap();
    pollers::refresh_catalogue(&t.app.services.pollers)
        .await
        .unwrap();
    let mut new = NewOrder::of(&[("A", 1)], TikTokOrderStatus::AwaitingShipment);
    new.shipping_type = Some("TIKTOK".into());
    let id = b.create_order(new).unwrap().id;
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    let so = t.sales_orders().pop().expect("the SO was created");
    t.katana
        .pack(
            so["id"].as_i64().unwrap(),
            None,
            Tracking {
                tracking_number: None,
                tracking_url: None,
                tracking_carrier: None,
            },
        )
        .unwrap();
    wait_for("shop B's shipment", 20, || !b.shipments().is_empty()).await;
    t.settle().await;

    let resp = reqwest::Client::new()
        .get(format!("{}/api/orders/{id}/label", t.app.base_url()))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["labels"][0]["tracking_number"],
        Value::String(b.shipments()[0].tracking_number.clone()),
        "{body}"
    );
    t.stop().await;
}

/// `tests/golden/pre-shops-sandbox.db`: a database the last build before several
/// shops wrote (a `tks sandbox --orders 6` day, its subscribers a few events short
/// of the head), and the state hashes that build's `tks-replay rebuild` printed.
fn pre_shops_database(into: &std::path::Path) -> std::path::PathBuf {
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pre-shops-sandbox.db");
    let copy = into.join("old.db");
    std::fs::copy(golden, &copy).unwrap();
    copy
}

#[actix::test]
async fn a_database_written_before_several_shops_serves_on_with_the_single_shop_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = pre_shops_database(dir.path());
    // The harness's settings are the single-shop keys (`tiktok.shop_id`,
    // `[warehouses]`), as every tks.toml before `[[shops]]` was.
    let t = spawn_app_for(
        SimConfig::demo(),
        |s| s.store.path = db.to_string_lossy().into_owned(),
        |_| {},
    )
    .await;
    assert!(t.app.services.settings.shops.is_empty());
    let base = t.app.base_url();
    t.settle().await;

    // Its orders are the one shop's, with the state they had.
    let order = admin_get(&base, "/api/orders/576000000000000008").await;
    assert!(order["state"]["so"]["Created"].is_object(), "{order}");
    assert!(
        order["state"]["snapshot"]["shop_id"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{order}"
    );
    let shops = admin_get(&base, "/api/shops").await;
    assert_eq!(shops["shops"].as_array().unwrap().len(), 1, "{shops}");
    assert_eq!(shops["shops"][0]["orders"], 6, "{shops}");
    let sku = admin_get(&base, "/api/skus/MUG-BLACK").await;
    assert_eq!(sku["shops"].as_array().unwrap().len(), 1, "{sku}");

    // And a new order still lands once.
    let id = t.place(&[("A", 1)]);
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    let sos: Vec<Value> = t
        .sales_orders()
        .into_iter()
        .filter(|so| so["order_no"].as_str().unwrap_or("").ends_with(&id))
        .collect();
    assert_eq!(sos.len(), 1, "{sos:#?}");
    t.stop().await;

    // The old streams still rebuild to the hashes the old build recorded.
    let expected = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/pre-shops-sandbox.hashes"),
    )
    .unwrap();
    let pristine = tempfile::tempdir().unwrap();
    let log =
        tks::replay::source::open(&pre_shops_database(pristine.path()), &mut |_, _| {}).unwrap();
    let rebuilt = tks::replay::rebuild(log.store(), &[], |_| {}).unwrap();
    assert!(rebuilt.problems.is_empty(), "{:?}", rebuilt.problems);
    assert_eq!(rebuilt.hash_listing(), expected);
}

#[actix::test]
async fn what_if_replays_each_shops_pushes_and_tries_another_allocation_for_one() {
    use tks::replay::whatif::{what_if, Proposal};
    let t = spawn_two_shops(rule(50, 0, 0), rule(50, 0, 0), false).await;
    t.advance(61 * MIN, 10 * MIN).await;
    let store = t.app.services.store.clone();
    let settings = t.app.services.settings.clone();
    t.stop().await;
    let pushes_of = |report: &tks::replay::whatif::Report, shop: &str| -> Vec<i64> {
        report
            .skus
            .iter()
            .find(|s| s.sku == "A")
            .unwrap()
            .proposed_pushes
            .iter()
            .filter(|p| p.shop == shop)
            .map(|p| p.quantity)
            .collect()
    };

    // With the instance's shops and nothing changed, nothing differs.
    let same = Proposal {
        shops: Some(settings.shop_stock()),
        ..Proposal::default()
    };
    let report = what_if(store.as_ref(), &same, &mut |_| {}).unwrap();
    assert!(
        report.differences().is_empty(),
        "{:?}",
        report.differences()
    );
    assert_eq!(pushes_of(&report, ""), [5]);
    assert_eq!(pushes_of(&report, DEMO_UK_SHOP_ID), [5]);

    // Shop B capped at 3: only B's pushes change.
    let capped = Proposal {
        shops: Some(
            settings
                .shop_stock()
                .with_allocation(DEMO_UK_SHOP_ID, "max=3")
                .unwrap(),
        ),
        ..Proposal::default()
    };
    let report = what_if(store.as_ref(), &capped, &mut |_| {}).unwrap();
    assert_eq!(pushes_of(&report, ""), [5]);
    assert_eq!(pushes_of(&report, DEMO_UK_SHOP_ID), [3]);
    let differences = report.differences();
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert!(report
        .to_string()
        .contains(&format!("shop {DEMO_UK_SHOP_ID} ")));

    // Without the shops' rules the report says what it cannot simulate.
    let report = what_if(store.as_ref(), &Proposal::default(), &mut |_| {}).unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains(DEMO_UK_SHOP_ID) && w.contains("--config")),
        "{:?}",
        report.warnings
    );
}

#[actix::test]
async fn the_consoles_orders_list_shows_each_orders_shop_and_filters_by_shop() {
    let t = spawn_two_shops(rule(100, 0, 0), rule(100, 0, 0), false).await;
    let base = t.app.base_url();
    let a_id = t.place(&[("A", 1)]);
    let b_id = order_in(&t, DEMO_UK_SHOP_ID, "A");
    t.settle().await;
    super::console::read_model_caught_up(&t.app).await;
    let cookie = super::console::login(&base).await;
    let primary = t.tiktok.config().shop_id.clone();

    let (_, all) = super::console::page(&base, &cookie, "/orders").await;
    assert!(all.contains(&a_id) && all.contains(&b_id), "{all}");
    assert!(
        all.contains(&format!("<td class=\"shop\">{DEMO_UK_SHOP_ID}</td>")),
        "{all}"
    );
    for (shop, shown, hidden) in [
        (DEMO_UK_SHOP_ID, &b_id, &a_id),
        (primary.as_str(), &a_id, &b_id),
    ] {
        let (status, list) =
            super::console::page(&base, &cookie, &format!("/orders?shop={shop}")).await;
        assert_eq!(status, 200);
        assert!(list.contains(shown.as_str()), "{shop}: {list}");
        assert!(!list.contains(hidden.as_str()), "{shop}: {list}");
        assert!(list.contains("1 orders"), "{shop}: {list}");
    }
    let (status, body) = super::console::page(&base, &cookie, "/orders?shop=42").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a served shop"), "{body}");
    t.stop().await;
}
