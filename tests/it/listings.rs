//! Live listings (F28), multi-warehouse SKUs (F29) and the shop's name on sales
//! orders (F1), through the whole service against both simulators on the manual clock.

use std::time::Duration;

use serde_json::{json, Value};

use tks::check::{CheckOptions, CheckReport, Status};
use tks::connectors::katana::client::KatanaClient;
use tks::connectors::pollers;
use tks::connectors::tiktok::auth::token_file_for;
use tks::connectors::tiktok::{FileTokenStore, TokenStore};
use tks::domain::observed::{Quantity, TikTokOrderStatus};
use tks::sandbox::tiktok::{
    sim_codes, NewOrder, NewProduct, NewSku, SimConfig, MAIN_WAREHOUSE, SECOND_WAREHOUSE,
};

use super::flows::{spawn_app, spawn_app_for, TestApp};

const MIN: Duration = Duration::from_secs(60);
const INVENTORY_SEARCH: &str = "/product/202309/inventory/search";

fn listing(
    product: &str,
    sku_id: &str,
    seller_sku: &str,
    status: &str,
    inventory: &[(&str, i64)],
) -> NewProduct {
    NewProduct {
        id: Some(product.into()),
        title: format!("{seller_sku} ({status})"),
        status: status.into(),
        skus: vec![NewSku {
            id: Some(sku_id.into()),
            seller_sku: seller_sku.into(),
            price: "10.00".into(),
            inventory: inventory.iter().map(|(w, q)| (w.to_string(), *q)).collect(),
        }],
    }
}

/// Replaces TikTok's catalogue and lets the service read it, as its catalogue poll does.
async fn relist(t: &TestApp, products: Vec<NewProduct>) {
    t.tiktok.set_catalogue(products).unwrap();
    pollers::refresh_catalogue(&t.app.services.pollers)
        .await
        .unwrap();
    t.settle().await;
}

/// What TikTok holds for a SKU: (available, committed) per warehouse.
fn held(t: &TestApp, sku_id: &str, warehouse: &str) -> (i64, i64) {
    let available = t.tiktok.stock()[sku_id][warehouse];
    let committed = t
        .tiktok
        .committed()
        .get(sku_id)
        .and_then(|c| c.get(warehouse).copied())
        .unwrap_or(0);
    (available, committed)
}

fn pushed_to(t: &TestApp, sku_id: &str) -> Vec<(String, i64)> {
    t.tiktok
        .inventory_pushes()
        .into_iter()
        .filter(|p| p.sku_id == sku_id)
        .map(|p| (p.warehouse_id, p.quantity))
        .collect()
}

fn open_exceptions(t: &TestApp) -> Vec<(String, String)> {
    t.store()
        .lookup_all(tks::names::lookup::EXCEPTION)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

async fn check(t: &TestApp) -> CheckReport {
    let settings = (*t.app.services.settings).clone();
    tks::check::run(&settings, t.clock.clock(), &CheckOptions::default()).await
}

pub fn finding<'a>(report: &'a CheckReport, name: &str) -> (Status, &'a str) {
    let f = report
        .find(name)
        .unwrap_or_else(|| panic!("no {name} line:\n{}", report.render()));
    (f.status, f.detail.as_str())
}

// ----- F28: live listings ------------------------------------------------------------

#[actix::test]
async fn a_deleted_listing_is_never_pushed_while_both_live_listings_of_its_sku_get_the_atp() {
    let t = spawn_app(|_| {}).await;
    let main = [(MAIN_WAREHOUSE, 0)];
    relist(
        &t,
        vec![
            listing(
                "1729000000000000201",
                "1729100000000000201",
                "A",
                "ACTIVATE",
                &main,
            ),
            listing(
                "1729000000000000202",
                "1729100000000000202",
                "A",
                "ACTIVATE",
                &main,
            ),
            listing(
                "1729000000000000203",
                "1729100000000000203",
                "A",
                "DELETED",
                &main,
            ),
            listing(
                "1729000000000000204",
                "1729100000000000204",
                "B",
                "ACTIVATE",
                &main,
            ),
        ],
    )
    .await;
    t.katana
        .set_stock(t.variants["A"], t.main_location, Quantity::from_units(7))
        .unwrap();
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;

    let main = MAIN_WAREHOUSE.to_string();
    assert_eq!(
        pushed_to(&t, "1729100000000000201"),
        vec![(main.clone(), 7)]
    );
    assert_eq!(pushed_to(&t, "1729100000000000202"), vec![(main, 7)]);
    assert!(pushed_to(&t, "1729100000000000203").is_empty());
    assert!(open_exceptions(&t).is_empty(), "{:?}", open_exceptions(&t));
    let events = t.events("sku-A");
    assert_eq!(
        events.iter().filter(|e| *e == "InventoryPushed").count(),
        1,
        "one push of the SKU, to both listings: {events:?}"
    );
    t.stop().await;
}

#[actix::test]
async fn a_listing_that_refuses_the_quantity_is_an_exception_naming_it_and_the_push_does_not_count()
{
    let t = spawn_app(|_| {}).await;
    let main = [(MAIN_WAREHOUSE, 0)];
    let live = |status: &str| {
        vec![
            listing(
                "1729000000000000211",
                "1729100000000000211",
                "A",
                "ACTIVATE",
                &main,
            ),
            listing(
                "1729000000000000212",
                "1729100000000000212",
                "A",
                status,
                &main,
            ),
            listing(
                "1729000000000000213",
                "1729100000000000213",
                "B",
                "ACTIVATE",
                &main,
            ),
        ]
    };
    relist(&t, live("ACTIVATE")).await;
    // The seller deactivates one listing; the service has not read the catalogue since.
    t.tiktok.set_catalogue(live("SELLER_DEACTIVATED")).unwrap();
    t.katana
        .set_stock(t.variants["A"], t.main_location, Quantity::from_units(6))
        .unwrap();
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;

    assert_eq!(
        pushed_to(&t, "1729100000000000211"),
        vec![(MAIN_WAREHOUSE.to_string(), 6)]
    );
    assert!(pushed_to(&t, "1729100000000000212").is_empty());
    let open = open_exceptions(&t);
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(
        open[0].1.contains("1729000000000000212")
            && open[0]
                .1
                .contains(&sim_codes::PRODUCT_NOT_ACTIVE.to_string()),
        "{open:?}"
    );
    assert!(
        !t.events("sku-A").contains(&"InventoryPushed".to_string()),
        "a push one listing refused is not recorded as done"
    );

    // The next catalogue read drops the deactivated listing; the next change reaches
    // the live one and resolves the exception.
    pollers::refresh_catalogue(&t.app.services.pollers)
        .await
        .unwrap();
    t.katana
        .set_stock(t.variants["A"], t.main_location, Quantity::from_units(5))
        .unwrap();
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    assert_eq!(
        pushed_to(&t, "1729100000000000211").last(),
        Some(&(MAIN_WAREHOUSE.to_string(), 5))
    );
    assert!(pushed_to(&t, "1729100000000000212").is_empty());
    assert!(open_exceptions(&t).is_empty(), "{:?}", open_exceptions(&t));
    t.stop().await;
}

#[actix::test]
async fn check_names_skus_without_a_live_listing_and_skus_listed_twice() {
    let t = spawn_app(|_| {}).await;
    let main = [(MAIN_WAREHOUSE, 0)];
    t.tiktok
        .set_catalogue(vec![
            listing(
                "1729000000000000221",
                "1729100000000000221",
                "A",
                "ACTIVATE",
                &main,
            ),
            listing(
                "1729000000000000222",
                "1729100000000000222",
                "A",
                "ACTIVATE",
                &main,
            ),
            listing(
                "1729000000000000223",
                "1729100000000000223",
                "B",
                "SELLER_DEACTIVATED",
                &main,
            ),
            listing(
                "1729000000000000224",
                "1729100000000000224",
                "B",
                "DELETED",
                &main,
            ),
            listing(
                "1729000000000000225",
                "1729100000000000225",
                "C",
                "DRAFT",
                &main,
            ),
        ])
        .unwrap();
    let report = check(&t).await;
    let text = report.render();

    let (status, detail) = finding(&report, "listings.no_live_listing");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        detail.contains(
            "B (product 1729000000000000223 SELLER_DEACTIVATED, product 1729000000000000224 DELETED)"
        ),
        "{text}"
    );
    let (status, detail) = finding(&report, "listings.several_live");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        detail.contains("A (products 1729000000000000221, 1729000000000000222)"),
        "{text}"
    );
    // A draft nobody sells in Katana is named, but nothing is wrong with it.
    let (status, detail) = finding(&report, "listings.not_live");
    assert_eq!(status, Status::Ok, "{text}");
    assert!(
        detail.contains("C (product 1729000000000000225 DRAFT)"),
        "{text}"
    );

    let m = report.sku_match.as_ref().unwrap();
    assert_eq!(m.matched, vec![("A".to_string(), t.variants["A"])]);
    assert_eq!(m.only_katana, vec!["B".to_string()]);
    assert!(
        m.only_tiktok.is_empty(),
        "inactive listings are not TikTok SKUs: {m:?}"
    );
    let json = report.to_json();
    assert_eq!(
        json["listings"]["several_live_listings"][0]["seller_sku"],
        "A"
    );
    assert_eq!(
        json["listings"]["no_live_listing"][0]["katana_variant"],
        true
    );
    t.stop().await;
}

// ----- F29: multi-warehouse SKUs -------------------------------------------------------

#[actix::test]
async fn a_two_warehouse_sku_keeps_the_other_warehouses_current_quantity_and_gets_the_atp_at_ours()
{
    let t = spawn_app(|_| {}).await;
    let (a, b) = ("1729100000000000231", "1729100000000000232");
    relist(
        &t,
        vec![
            listing(
                "1729000000000000231",
                a,
                "A",
                "ACTIVATE",
                &[(MAIN_WAREHOUSE, 0), (SECOND_WAREHOUSE, 6)],
            ),
            listing(
                "1729000000000000232",
                b,
                "B",
                "ACTIVATE",
                &[(MAIN_WAREHOUSE, 0)],
            ),
        ],
    )
    .await;

    // Behind the service's back, after its catalogue read: someone sets the other
    // warehouse through the simulator's JSON control.
    let moved = reqwest::Client::new()
        .post(format!("{}/_sim/stock", t.tiktok.base_url()))
        .json(&json!({"sku_id": a, "warehouse_id": SECOND_WAREHOUSE, "available_quantity": 3}))
        .send()
        .await
        .unwrap();
    assert!(moved.status().is_success(), "{:?}", moved.text().await);
    t.katana
        .set_stock(t.variants["A"], t.main_location, Quantity::from_units(9))
        .unwrap();
    t.katana
        .set_stock(t.variants["B"], t.main_location, Quantity::from_units(4))
        .unwrap();
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    assert_eq!(held(&t, a, MAIN_WAREHOUSE), (9, 0));
    assert_eq!(
        held(&t, a, SECOND_WAREHOUSE),
        (3, 0),
        "the other warehouse keeps its current quantity, not the 6 read with the catalogue"
    );
    assert_eq!(held(&t, b, MAIN_WAREHOUSE), (4, 0));
    assert_eq!(
        t.tiktok.requests_to(INVENTORY_SEARCH),
        1,
        "one read for the two-warehouse SKU, none for the single-warehouse one"
    );

    // A TikTok order from the other warehouse moves 1 there from available to committed.
    let mut order = NewOrder::of(&[("A", 1)], TikTokOrderStatus::AwaitingShipment);
    order.warehouse_id = Some(SECOND_WAREHOUSE.into());
    t.tiktok.create_order(order).unwrap();
    assert_eq!(held(&t, a, SECOND_WAREHOUSE), (2, 1));
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    // 9 in Katana, 1 unit ordered: ours gets 8, the other warehouse what it holds now.
    assert_eq!(held(&t, a, MAIN_WAREHOUSE), (8, 0));
    assert_eq!(held(&t, a, SECOND_WAREHOUSE), (2, 1));
    let last_two: Vec<(String, i64)> = pushed_to(&t, a).into_iter().rev().take(2).collect();
    assert!(
        last_two.contains(&(SECOND_WAREHOUSE.to_string(), 2)),
        "{last_two:?}"
    );
    assert!(open_exceptions(&t).is_empty(), "{:?}", open_exceptions(&t));
    t.stop().await;
}

// ----- F1: the shop's name -------------------------------------------------------------

async fn customer_name(t: &TestApp, so: &Value) -> String {
    let id = so["customer_id"].as_i64().unwrap();
    let body: Value = reqwest::Client::new()
        .get(format!("{}/customers?ids={id}", t.katana.base_url()))
        .bearer_auth(t.katana.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"][0]["name"].as_str().unwrap().to_string()
}

#[actix::test]
async fn the_sales_order_and_the_generic_customer_carry_the_shops_name() {
    let t = spawn_app(|_| {}).await;
    let shop = SimConfig::demo();
    assert_ne!(shop.shop_name, shop.shop_id);
    t.place_past_hold(&[("A", 1)]).await;
    let so = t.sales_orders().pop().expect("SO created");
    assert_eq!(so["ecommerce_store_name"], shop.shop_name.as_str());
    assert_eq!(
        customer_name(&t, &so).await,
        KatanaClient::generic_customer_name(&shop.shop_name)
    );
    let report = check(&t).await;
    let (status, detail) = finding(&report, "tiktok.shop_name");
    assert_eq!(status, Status::Ok);
    assert!(detail.contains("\"Sim Pottery\""), "{detail}");
    t.stop().await;
}

#[actix::test]
async fn a_shop_tiktok_lists_without_a_name_is_named_by_its_id_and_check_says_so() {
    let sim = SimConfig {
        shop_name: String::new(),
        ..SimConfig::demo()
    };
    let shop_id = sim.shop_id.clone();
    let t = spawn_app_for(sim, |_| {}, |_| {}).await;
    t.place_past_hold(&[("A", 1)]).await;
    let so = t.sales_orders().pop().expect("SO created");
    assert_eq!(so["ecommerce_store_name"], shop_id.as_str());
    assert_eq!(
        customer_name(&t, &so).await,
        KatanaClient::generic_customer_name(&shop_id)
    );
    let report = check(&t).await;
    let (status, detail) = finding(&report, "tiktok.shop_name");
    assert_eq!(status, Status::Warn, "{}", report.render());
    assert!(detail.contains(&shop_id), "{detail}");
    t.stop().await;
}

// ----- TikTok moves its own stock ------------------------------------------------------

#[actix::test]
async fn a_restock_that_brings_the_atp_back_after_an_order_still_reaches_tiktok() {
    let t = spawn_app(|_| {}).await;
    let a = "1729100000000000101";
    t.advance(61 * MIN, 10 * MIN).await;
    assert_eq!(held(&t, a, MAIN_WAREHOUSE), (10, 0));
    // The buyer's order makes TikTok show 7 by itself; the seller restocks 3 in
    // Katana before the window closes, so the ATP is 10 again, as last pushed.
    t.place(&[("A", 3)]);
    assert_eq!(held(&t, a, MAIN_WAREHOUSE), (7, 3));
    t.settle().await;
    t.katana
        .set_stock(t.variants["A"], t.main_location, Quantity::from_units(13))
        .unwrap();
    t.settle().await;
    t.advance(61 * MIN, 10 * MIN).await;
    assert_eq!(t.sales_orders().len(), 1);
    assert_eq!(
        held(&t, a, MAIN_WAREHOUSE),
        (10, 3),
        "TikTok shows Katana's free stock again: {:?}",
        t.events("sku-A")
    );
    t.stop().await;
}

#[actix::test]
async fn a_renamed_shop_names_the_next_sales_order_and_its_customer_after_the_catalogue_read() {
    let t = spawn_app(|_| {}).await;
    t.place_past_hold(&[("A", 1)]).await;
    let renamed = reqwest::Client::new()
        .post(format!("{}/_sim/shop", t.tiktok.base_url()))
        .json(&json!({"name": "Sim Ceramics"}))
        .send()
        .await
        .unwrap();
    assert!(renamed.status().is_success());
    pollers::refresh_catalogue(&t.app.services.pollers)
        .await
        .unwrap();
    t.place_past_hold(&[("B", 1)]).await;
    let sos = t.sales_orders();
    let names: Vec<&str> = sos
        .iter()
        .map(|so| so["ecommerce_store_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"Sim Pottery") && names.contains(&"Sim Ceramics"),
        "{names:?}"
    );
    let latest = sos
        .iter()
        .find(|so| so["ecommerce_store_name"] == "Sim Ceramics")
        .unwrap();
    assert_eq!(
        customer_name(&t, latest).await,
        KatanaClient::generic_customer_name("Sim Ceramics")
    );
    // The next start knows the new name before its first read of TikTok.
    let stored = FileTokenStore::new(token_file_for(&t.app.services.settings.store.path));
    let shop = stored.load().unwrap().unwrap().shop.unwrap();
    assert_eq!(shop.name, "Sim Ceramics");
    t.stop().await;
}
