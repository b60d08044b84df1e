//! Several shops on one instance, over HTTP with a manual clock: what `/api/shops`
//! and `/api/skus/{sku}` say of each shop.

use serde_json::Value;

use super::flows::spawn_app;

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
