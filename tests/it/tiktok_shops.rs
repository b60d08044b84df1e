//! The TikTok simulator serving several shops of one app: shops listed per seller, orders
//! kept per shop, tokens of one seller refused on another's shop, over HTTP.

use std::sync::Arc;
use std::time::Duration;

use tks::clock::ManualClock;
use tks::config::{Secret, TikTokSettings};
use tks::connectors::tiktok::{ClientOptions, MemoryTokenStore, TikTokClient};
use tks::domain::observed::TikTokOrderStatus;
use tks::sandbox::tiktok::{
    NewOrder, NewProduct, NewSku, SimConfig, TikTokSim, DEMO_OTHER_SHOP_ID, DEMO_UK_SHOP_ID,
};

fn client_for(sim: &TikTokSim, manual: &ManualClock, shop_id: &str) -> TikTokClient {
    let cfg = sim.config();
    let settings = TikTokSettings {
        api_base: sim.base_url(),
        auth_base: sim.auth_base_url(),
        app_key: cfg.app_key.clone(),
        app_secret: Secret::new(cfg.app_secret.clone()),
        shop_id: shop_id.to_string(),
        requests_per_second: 0,
        ..TikTokSettings::default()
    };
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    TikTokClient::new(
        &settings,
        manual.clock(),
        Arc::new(MemoryTokenStore::default()),
        options,
    )
    .unwrap()
}

#[tokio::test]
async fn tiktok_shops_a_seller_lists_its_own_shops_and_orders_stay_in_their_shop() {
    let manual = ManualClock::at_epoch();
    let sim = TikTokSim::start(SimConfig::demo_multi(), manual.clock()).unwrap();
    let main_id = sim.config().shop_id.clone();
    sim.seed_demo_catalogue();
    let uk = sim.shop(DEMO_UK_SHOP_ID).unwrap();
    let uk_wh = uk.warehouses();
    uk.set_catalogue(vec![NewProduct {
        id: None,
        title: "Jug".into(),
        status: "ACTIVATE".into(),
        skus: vec![NewSku {
            id: None,
            seller_sku: "JUG-1".into(),
            price: "9.00".into(),
            inventory: vec![(uk_wh.main.clone(), 4)],
        }],
    }])
    .unwrap();
    assert_ne!(uk_wh.main, tks::sandbox::tiktok::MAIN_WAREHOUSE);

    let a = client_for(&sim, &manual, &main_id);
    a.exchange_auth_code(&sim.issue_auth_code()).await.unwrap();
    let b = client_for(&sim, &manual, DEMO_UK_SHOP_ID);
    b.exchange_auth_code(&sim.issue_auth_code()).await.unwrap();
    let mut listed: Vec<String> = a
        .authorized_shops()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    listed.sort();
    let mut want = vec![main_id.clone(), DEMO_UK_SHOP_ID.to_string()];
    want.sort();
    assert_eq!(listed, want, "not the other seller's shop");

    let order = uk
        .create_order(NewOrder::of(
            &[("JUG-1", 1)],
            TikTokOrderStatus::AwaitingShipment,
        ))
        .unwrap();
    assert!(sim.order(&order.id).is_none());
    let ids = vec![order.id.clone()];
    assert_eq!(b.get_orders(&ids).await.unwrap().len(), 1);
    assert!(a.get_orders(&ids).await.unwrap_or_default().is_empty());

    // An inventory update through shop B's cipher moves shop B's stock only.
    let main_stock = sim.stock();
    let jug = uk.products().pop().unwrap();
    let sku = jug.skus[0].id.clone();
    let out = b
        .update_inventory(&jug.id, &sku, &uk_wh.main, 7)
        .await
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(uk.stock()[&sku][&uk_wh.main], 7);
    assert_eq!(sim.stock(), main_stock);

    // A webhook about shop B's order names shop B.
    sim.set_webhook_url(Some("http://127.0.0.1:9/hooks".into()));
    uk.set_order_status(&order.id, TikTokOrderStatus::Cancelled)
        .unwrap();
    let mut attempt = None;
    for _ in 0..300 {
        attempt = sim.webhook_attempts().into_iter().next();
        if attempt.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(attempt.unwrap().shop_id, DEMO_UK_SHOP_ID);

    // Seller 2's token on its own shop works, then not after it revokes the app.
    let c = client_for(&sim, &manual, DEMO_OTHER_SHOP_ID);
    c.exchange_auth_code(&sim.issue_auth_code_for_seller(1))
        .await
        .unwrap();
    assert!(c.warehouses().await.is_ok());
    // Seller 2's token with seller 1's cipher is refused as an unknown cipher.
    let cfg = sim.config();
    let path = "/logistics/202309/warehouses";
    let mut q: Vec<(String, String)> = vec![
        ("app_key".into(), cfg.app_key.clone()),
        ("timestamp".into(), manual.now().timestamp().to_string()),
        ("shop_cipher".into(), cfg.shop_cipher.clone()),
    ];
    let signature = tks::connectors::tiktok::sign::sign(&cfg.app_secret, path, &q, None);
    q.push(("sign".into(), signature));
    let qs = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q.iter())
        .finish();
    let token = c.tokens().await.unwrap().access_token;
    let refused: serde_json::Value = reqwest::Client::new()
        .get(format!("{}{path}?{qs}", sim.base_url()))
        .header("x-tts-access-token", token.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refused["code"], 36009004, "{refused}");
    assert_eq!(refused["message"], "Invalid shop_cipher");
    sim.revoke_seller(1);
    assert!(c.warehouses().await.is_err());
    assert!(a.warehouses().await.is_ok());
    sim.stop().await;
}
