//! The operator console over plain HTTP: login, sessions, CSRF, the closed
//! console, redaction, unconfigured connectors, the read model behind the pages;
//! and end to end in headless Chromium (`console_browser`).

use std::net::TcpListener;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::flows::{spawn_app, TestApp};
use tks::app::{start, AppHandle, StartOptions};
use tks::clock::ManualClock;
use tks::config::{Secret, Settings};

pub const ADMIN: &str = "test-admin-token";
const MIN: Duration = Duration::from_secs(60);

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in and returns the `Cookie` header value.
pub async fn login(base: &str) -> String {
    let r = http()
        .post(format!("{base}/login"))
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

pub async fn page(base: &str, cookie: &str, path: &str) -> (StatusCode, String) {
    let r = http()
        .get(format!("{base}{path}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Waits (real time, bounded) until the console's read model has folded the log.
pub async fn read_model_caught_up(app: &AppHandle) {
    let s = &app.services;
    for _ in 0..2000 {
        if s.console.read.position().unwrap() >= s.store.head() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the console read model never caught up with the log");
}

/// The CSRF token of a page's forms.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("no CSRF field") + 19;
    html[at..at + 64].to_string()
}

/// A service with no connector configured, only the admin token (or none).
async fn bare_service(admin_token: &str) -> (AppHandle, tempfile::TempDir, ManualClock) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::default();
    s.store.path = dir.path().join("tks.db").display().to_string();
    s.server.admin_token = Secret::new(admin_token);
    let clock = ManualClock::at_epoch();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let options = StartOptions {
        pollers: false,
        ..StartOptions::default()
    };
    let app = start(s, clock.clock(), listener, options).await.unwrap();
    (app, dir, clock)
}

const PAGES: [&str; 9] = [
    "/",
    "/orders",
    "/orders/576000000000000001",
    "/skus",
    "/skus/A",
    "/exceptions",
    "/what-if",
    "/setup",
    "/orders?state=held",
];

#[actix::test]
async fn a_console_page_without_a_session_redirects_to_login() {
    let (app, _dir, _clock) = bare_service(ADMIN).await;
    let base = app.base_url();
    for path in PAGES {
        let r = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()[LOCATION], "/login", "{path}");
    }
    // A made-up session cookie is no session.
    let (status, _) = page(&base, "tks_session=00ff", "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, body) = page(&base, "", "/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("name=\"token\""), "{body}");
    app.stop().await;
}

#[actix::test]
async fn a_wrong_token_is_refused_and_the_right_one_sets_a_strict_http_only_cookie() {
    let (app, _dir, clock) = bare_service(ADMIN).await;
    let base = app.base_url();
    let r = http()
        .post(format!("{base}/login"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert!(r.text().await.unwrap().contains("Wrong admin token"));
    let r = http()
        .post(format!("{base}/login"))
        .form(&[("nothing", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = http()
        .post(format!("{base}/login"))
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let (status, body) = page(&base, &cookie, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Orders by state"), "{body}");

    // Sessions expire after 12 hours of the clock.
    clock.advance(Duration::from_secs(12 * 3600 + 1));
    let (status, _) = page(&base, &cookie, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.stop().await;
}

#[actix::test]
async fn logout_ends_the_session() {
    let (app, _dir, _clock) = bare_service(ADMIN).await;
    let base = app.base_url();
    let cookie = login(&base).await;
    let r = http()
        .post(format!("{base}/logout"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login");
    let (status, _) = page(&base, &cookie, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.stop().await;
}

#[actix::test]
async fn the_console_is_closed_without_an_admin_token() {
    let (app, _dir, _clock) = bare_service("").await;
    let base = app.base_url();
    let r = http().get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.text().await.unwrap();
    assert!(body.contains("TKS_SERVER__ADMIN_TOKEN"), "{body}");
    assert!(!body.contains("name=\"token\""), "no login form: {body}");
    let r = http()
        .post(format!("{base}/login"))
        .form(&[("token", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(SET_COOKIE).is_none());
    for path in PAGES {
        let r = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    app.stop().await;
}

#[actix::test]
async fn unconfigured_connectors_are_named_on_health_the_overview_and_setup() {
    let (app, _dir, _clock) = bare_service(ADMIN).await;
    let base = app.base_url();
    let health: serde_json::Value = http()
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["connectors"]["tiktok"]["configured"], false);
    let missing: Vec<&str> = health["not_configured"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["connector"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["TikTok", "Katana"]);
    assert!(health["not_configured"][0]["meaning"]
        .as_str()
        .unwrap()
        .contains("no orders will be pulled"));
    let cookie = login(&base).await;
    for path in ["/", "/setup"] {
        let (status, body) = page(&base, &cookie, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.contains("TikTok not configured"), "{path}: {body}");
        assert!(body.contains("Katana not configured"), "{path}: {body}");
        assert!(body.contains("no orders will be pulled"), "{path}");
    }
    let (_, body) = page(&base, &cookie, "/setup").await;
    assert!(body.contains("Fix first: "), "{body}");
    app.stop().await;
}

#[actix::test]
async fn a_state_changing_form_without_its_csrf_token_is_forbidden() {
    let t = spawn_app(|_| {}).await;
    let base = t.app.base_url();
    let cookie = login(&base).await;
    t.settle().await;
    for form in [
        vec![("enabled", "false")],
        vec![("enabled", "false"), ("csrf", "0123")],
    ] {
        let r = http()
            .post(format!("{base}/skus/A/sync"))
            .header(COOKIE, &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{form:?}");
        assert!(r.text().await.unwrap().contains("CSRF"));
    }
    assert!(!t
        .events("sku-A")
        .contains(&"ChannelSyncToggled".to_string()));

    // With the page's token it is the same rule as the API's toggle.
    let (_, body) = page(&base, &cookie, "/skus/A").await;
    let csrf = csrf_of(&body);
    let r = http()
        .post(format!("{base}/skus/A/sync"))
        .header(COOKIE, &cookie)
        .form(&[("enabled", "false"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(t
        .events("sku-A")
        .contains(&"ChannelSyncToggled".to_string()));
    // Bad input is a clear 400 or 404, never a crash.
    let r = http()
        .post(format!("{base}/skus/A/sync"))
        .header(COOKIE, &cookie)
        .form(&[("enabled", "maybe"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = http()
        .post(format!("{base}/skus/NO-SUCH/sync"))
        .header(COOKIE, &cookie)
        .form(&[("enabled", "false"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    t.stop().await;
}

#[actix::test]
async fn setup_shows_the_check_report_with_secrets_redacted() {
    let t = spawn_app(|_| {}).await;
    let base = t.app.base_url();
    let cookie = login(&base).await;
    let (status, body) = page(&base, &cookie, "/setup").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("verdict:"), "{body}");
    // C is on TikTok only: a warning, the first thing to review.
    assert!(body.contains("Review first: </strong>sku_match"), "{body}");
    assert!(body.contains("redacted"), "{body}");
    let health: serde_json::Value = http()
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["not_configured"], serde_json::json!([]), "{health}");
    let s = &t.app.services.settings;
    for secret in [
        s.katana.api_key.expose(),
        s.tiktok.app_secret.expose(),
        s.server.admin_token.expose(),
        s.katana.webhook_token.expose(),
    ] {
        assert!(!secret.is_empty());
        assert!(!body.contains(secret), "secret {secret:?} rendered");
    }
    let tokens = t.app.services.tokens.load().unwrap().unwrap();
    assert!(!body.contains(tokens.access_token.expose()));
    t.stop().await;
}

/// Orders reach the read model and the pages that read it; filters work and a
/// bad filter is a 400 that says what is wrong.
#[actix::test]
async fn the_orders_list_reads_the_projection_with_its_filters() {
    let t: TestApp = spawn_app(|_| {}).await;
    let base = t.app.base_url();
    let cookie = login(&base).await;
    let released = t.place_past_hold(&[("A", 1)]).await;
    let held = t.place(&[("B", 2)]);
    t.settle().await;
    read_model_caught_up(&t.app).await;

    let (status, body) = page(&base, &cookie, "/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&released) && body.contains(&held), "{body}");
    let (_, body) = page(&base, &cookie, "/orders?state=held").await;
    assert!(body.contains(&held) && !body.contains(&released), "{body}");
    let (_, body) = page(&base, &cookie, "/orders?sku=A").await;
    assert!(body.contains(&released) && !body.contains(&held), "{body}");
    let (_, body) = page(
        &base,
        &cookie,
        &format!("/orders?q={}", &held[..held.len() - 1]),
    )
    .await;
    assert!(body.contains(&held), "{body}");
    let (_, body) = page(&base, &cookie, "/orders?from=2030-01-01").await;
    assert!(body.contains("0 orders"), "{body}");

    let (_, body) = page(&base, &cookie, "/").await;
    assert!(body.contains("orders-by-state"), "{body}");
    let rm = &t.app.services.console.read;
    let counts: std::collections::BTreeMap<String, u64> =
        rm.orders_by_state().unwrap().into_iter().collect();
    assert_eq!(counts.get("held"), Some(&1), "{counts:?}");
    assert_eq!(counts.values().sum::<u64>(), 2, "{counts:?}");
    assert_eq!(rm.order_count().unwrap(), 2);
    let per_hour = rm.orders_per_hour(t.clock.now()).unwrap();
    assert_eq!(per_hour.len(), 24);
    assert_eq!(
        per_hour.iter().map(|(_, n)| n).sum::<u64>(),
        2,
        "{per_hour:?}"
    );

    for bad in [
        "/orders?state=lost",
        "/orders?from=yesterday",
        "/orders?page=0",
    ] {
        let (status, body) = page(&base, &cookie, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            body.contains("expected") || body.contains("unknown"),
            "{bad}: {body}"
        );
    }
    let (status, _) = page(&base, &cookie, "/orders/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = page(&base, &cookie, "/skus/NO-SUCH").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in [
        "order_hold=soon",
        "inventory_buffer=-5m",
        "buffer_mode=sometimes",
        "fbt_orders=ship",
        "safety_stock=-1",
        "from=last+tuesday",
    ] {
        let (status, body) = page(&base, &cookie, &format!("/what-if?run=1&{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        let field = bad.split('=').next().unwrap();
        assert!(body.contains(field), "{bad}: {body}");
    }
    // A good what-if shows both sides.
    let (status, body) = page(&base, &cookie, "/what-if?run=1&order_hold=5m").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("what-if-result"), "{body}");

    // Rebuilt from the log, the projection says the same.
    let path = std::path::PathBuf::from(&t.app.services.settings.store.path);
    let folded = tks::console::readmodel::rebuild(t.store().as_ref(), &path).unwrap();
    assert_eq!(folded, t.store().head());
    let again: std::collections::BTreeMap<String, u64> =
        rm.orders_by_state().unwrap().into_iter().collect();
    assert_eq!(again, counts);
    assert_eq!(rm.orders_per_hour(t.clock.now()).unwrap(), per_hour);
    t.advance(MIN, MIN).await;
    t.stop().await;
}

#[actix::test]
async fn the_console_bench_prints_page_times() {
    let dir = tempfile::tempdir().unwrap();
    tks::console::bench::run(dir.path(), 2000).await.unwrap();
}

#[actix::test]
async fn exceptions_are_grouped_by_kind_with_their_resolution_and_link() {
    let t = spawn_app(|_| {}).await;
    let base = t.app.base_url();
    let cookie = login(&base).await;
    // C is sold on TikTok but has no Katana variant: the SO is blocked.
    let id = t.place_past_hold(&[("C", 1)]).await;
    read_model_caught_up(&t.app).await;
    let (status, body) = page(&base, &cookie, "/exceptions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("id=\"unmatched-sku\""), "{body}");
    assert!(body.contains("What resolves it"), "{body}");
    assert!(body.contains(&format!("href=\"/orders/{id}\"")), "{body}");
    let (_, body) = page(&base, &cookie, "/").await;
    assert!(body.contains("/exceptions#unmatched-sku"), "{body}");
    let counts: std::collections::BTreeMap<String, u64> = t
        .app
        .services
        .console
        .read
        .orders_by_state()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(counts.get("blocked"), Some(&1), "{counts:?}");
    let (_, body) = page(&base, &cookie, &format!("/orders/{id}")).await;
    assert!(body.contains("unmatched-sku"), "{body}");
    t.stop().await;
}
