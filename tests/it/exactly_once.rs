//! F5 under attack: creates that outlive the client, webhooks that could stall a
//! subscriber, secrets that must be checked, and stock that was never read.

use std::time::Duration;

use tks::config::Secret;
use tks::connectors::tiktok::sign::webhook_signature;
use tks::sandbox::tiktok::SimConfig;

use crate::flows::{spawn_app, KATANA_WEBHOOK_TOKEN};

const MIN: Duration = Duration::from_secs(60);

fn order_webhook(order_id: &str, notification: &str) -> String {
    format!(
        r#"{{"type":1,"tts_notification_id":"{notification}","shop_id":"7494726673780148744","timestamp":1,"data":{{"order_id":"{order_id}","order_status":"AWAITING_SHIPMENT","update_time":1}}}}"#
    )
}

async fn post_signed(url: &str, key: &str, secret: &str, body: &[u8]) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("Authorization", webhook_signature(key, secret, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

#[actix::test]
async fn a_signed_webhook_with_a_seventy_thousand_character_order_id_is_400_and_stalls_nothing() {
    let t = spawn_app(|_| {}).await;
    let demo = SimConfig::demo();
    let url = format!("{}/webhooks/tiktok", t.app.base_url());
    let head = t.store().head();
    let poison = order_webhook(&"7".repeat(70_000), "n-poison");
    let r = post_signed(&url, &demo.app_key, &demo.app_secret, poison.as_bytes()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(t.store().head(), head, "nothing recorded");
    // Orders after it still go all the way through.
    t.place_past_hold(&[("A", 1)]).await;
    assert_eq!(t.sales_orders().len(), 1);
    t.stop().await;
}

#[actix::test]
async fn without_an_app_secret_tiktok_webhooks_are_refused_not_accepted() {
    let t = spawn_app(|s| s.tiktok.app_secret = Secret::default()).await;
    let demo = SimConfig::demo();
    let url = format!("{}/webhooks/tiktok", t.app.base_url());
    let head = t.store().head();
    // Signed with an empty key: anyone can compute this.
    let body = order_webhook("576684019603311365", "n-empty");
    let r = post_signed(&url, &demo.app_key, "", body.as_bytes()).await;
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert!(text.contains("app_secret"), "{text}");
    assert_eq!(t.store().head(), head, "nothing recorded");
    t.stop().await;
}

#[actix::test]
async fn without_a_katana_token_katana_webhooks_are_refused_with_a_reason() {
    let t = spawn_app(|s| s.katana.webhook_token = Secret::default()).await;
    let body = br#"{"resource_type":"sales_order","action":"sales_order.delivered","webhook_id":1,"object":{"id":"1","status":"DELIVERED"}}"#;
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/katana", t.app.base_url()))
        .header(
            "x-sha2-signature",
            tks::connectors::katana::webhook::sign("", &body[..]),
        )
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("webhook_token"));
    t.stop().await;
}

#[actix::test]
async fn signed_bodies_that_are_not_utf8_are_refused_and_valid_ones_are_kept_byte_exact() {
    let t = spawn_app(|_| {}).await;
    let demo = SimConfig::demo();
    let url = format!("{}/webhooks/tiktok", t.app.base_url());
    let head = t.store().head();
    let mut bad = order_webhook("576684019603311365", "n-latin1").into_bytes();
    let at = bad.len() - 2;
    bad.insert(at, 0xE9);
    let r = post_signed(&url, &demo.app_key, &demo.app_secret, &bad).await;
    assert_eq!(r.status(), 400);
    assert_eq!(t.store().head(), head);

    let kbody = "{\"resource_type\":\"sales_order\",\"action\":\"sales_order.delivered\",\"webhook_id\":1,\"object\":{\"id\":\"1\",\"status\":\"DELIVERED\",\"note\":\"caf\u{e9} \u{1F600}\"}}";
    let sig = tks::connectors::katana::webhook::sign(KATANA_WEBHOOK_TOKEN, kbody.as_bytes());
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/katana", t.app.base_url()))
        .header("x-sha2-signature", sig)
        .body(kbody)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let db = rusqlite::Connection::open(&t.app.services.settings.store.path).unwrap();
    let kept: Vec<Vec<u8>> = db
        .prepare("SELECT CAST(payload AS BLOB) FROM inbox WHERE source = 'katana'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let kept: Vec<String> = kept
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    assert!(kept.iter().any(|p| p == kbody), "{kept:?}");
    t.advance(MIN, MIN).await;
    t.stop().await;
}
