//! The console end to end in headless Chromium over chromedriver (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them): log in, find an
//! order placed in the TikTok simulator, open its timeline, stop a SKU's sync and
//! see the simulator receive no more pushes for it, run a what-if and see the
//! difference, log out and be refused. Screenshots of every page go to
//! `target/console-screenshots/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::console::{read_model_caught_up, ADMIN};
use crate::flows::spawn_app;
use tks::domain::observed::Quantity;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const MIN: Duration = Duration::from_secs(60);

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        for path in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: the browser tests need Debian's chromium and chromium-driver \
                 (apt-get install -y chromium chromium-driver; .ci/run installs them)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver");
        Driver {
            child,
            port,
            _profile: tempfile::tempdir().unwrap(),
        }
    }

    async fn client(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", self._profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{}", self.port);
        // chromedriver needs a moment to listen; this is real start-up time, not
        // business time.
        let mut last = String::new();
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => return c,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot open a Chromium session through chromedriver at {url}: {last}");
    }
}

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

/// How long the browser may take to load a page (real time: page loads, not
/// business time).
const LOAD: Duration = Duration::from_secs(20);

/// The text of the first element matching `css`, once the page has one.
async fn text_of(c: &Client, css: &str) -> String {
    let found = c.wait().at_most(LOAD).for_element(Locator::Css(css)).await;
    match found {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => panic!("no {css} on {:?}: {e}", c.current_url().await),
    }
}

/// Waits until the text of `css` satisfies `ok` (a click's page load has landed).
async fn text_until(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + LOAD;
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return t;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{css} still says {t:?}"
                );
            }
        }
        assert!(std::time::Instant::now() < deadline, "no {css} appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn path_of(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_string()
}

#[actix::test]
async fn console_browser_end_to_end() {
    let driver = Driver::start();
    let t = spawn_app(|_| {}).await;
    let base = t.app.base_url();
    let c = driver.client().await;

    // Refused without a session.
    c.goto(&format!("{base}/orders")).await.unwrap();
    assert_eq!(path_of(&c).await, "/login");
    shot(&c, "login").await;

    // A wrong token first, then the right one.
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys("wrong")
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_of(&c, "#login-message")
        .await
        .contains("Wrong admin token"));
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(ADMIN)
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_of(&c, "#orders-by-state").await;
    assert_eq!(path_of(&c).await, "/");

    // An order placed on TikTok, past its hold: it is in Katana.
    let id = t.place_past_hold(&[("A", 2), ("B", 1)]).await;
    let held = t.place(&[("B", 1)]);
    t.settle().await;
    read_model_caught_up(&t.app).await;
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(text_of(&c, "#orders-by-state").await.contains("In Katana"));
    shot(&c, "overview").await;

    c.goto(&format!("{base}/orders")).await.unwrap();
    let list = text_of(&c, "#orders").await;
    assert!(list.contains(&id) && list.contains(&held), "{list}");
    shot(&c, "orders").await;
    c.find(Locator::LinkText(&id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(&c, "#order-state").await, "In Katana");
    assert_eq!(path_of(&c).await, format!("/orders/{id}"));
    assert!(text_of(&c, "#katana-so").await.contains("Sales order"));
    // The timeline tells the story; an event opens to its JSON.
    let events = text_of(&c, "#events").await;
    for step in ["OrderPlaced", "HoldExpired", "SoRequested", "SoCreated"] {
        assert!(events.contains(step), "{step} missing from {events}");
    }
    let placed = c
        .find(Locator::Css("details.event[data-type=OrderPlaced]"))
        .await
        .unwrap();
    placed
        .find(Locator::Css("summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let json = placed
        .find(Locator::Css("pre"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        json.contains("\"hold_until\"") && json.contains(&id),
        "{json}"
    );
    shot(&c, "order").await;

    // Stop syncing A: a stock change in Katana no longer reaches TikTok.
    c.goto(&format!("{base}/skus")).await.unwrap();
    shot(&c, "skus").await;
    c.goto(&format!("{base}/skus/A")).await.unwrap();
    assert!(text_of(&c, "#sync-state").await.contains("on"));
    c.find(Locator::Css("button.sync-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_until(&c, "#sync-state", |t| t.contains("off")).await;
    assert_eq!(path_of(&c).await, "/skus/A");
    let a_sku = "1729100000000000101";
    let before = t
        .tiktok
        .inventory_pushes()
        .iter()
        .filter(|p| p.sku_id == a_sku)
        .count();
    t.katana
        .set_stock(t.variants["A"], t.main_location, Quantity::from_units(42))
        .unwrap();
    tks::connectors::pollers::poll_stock(&t.app.services.pollers)
        .await
        .unwrap();
    t.settle().await;
    t.advance(70 * MIN, 10 * MIN).await;
    let after = t
        .tiktok
        .inventory_pushes()
        .iter()
        .filter(|p| p.sku_id == a_sku)
        .count();
    assert_eq!(
        after, before,
        "pushes for A continued after its sync was stopped"
    );
    // B still syncs, so the quiet is A's alone.
    t.katana
        .set_stock(t.variants["B"], t.main_location, Quantity::from_units(30))
        .unwrap();
    tks::connectors::pollers::poll_stock(&t.app.services.pollers)
        .await
        .unwrap();
    t.settle().await;
    t.advance(70 * MIN, 10 * MIN).await;
    assert!(t
        .tiktok
        .inventory_pushes()
        .iter()
        .any(|p| p.sku_id == "1729100000000000102" && p.quantity > 0));
    read_model_caught_up(&t.app).await;
    c.goto(&format!("{base}/skus/A")).await.unwrap();
    assert!(text_of(&c, "#sync-state").await.contains("off"));
    shot(&c, "sku").await;

    // C has no Katana variant: its order waits as an exception.
    let blocked = t.place_past_hold(&[("C", 1)]).await;
    c.goto(&format!("{base}/exceptions")).await.unwrap();
    let group = text_of(&c, "#unmatched-sku").await;
    assert!(
        group.contains(&blocked) && group.contains("What resolves it"),
        "{group}"
    );
    shot(&c, "exceptions").await;

    // What-if: a 5 minute hold would have pushed the first order earlier.
    c.goto(&format!("{base}/what-if")).await.unwrap();
    c.find(Locator::Css("input[name=order_hold]"))
        .await
        .unwrap()
        .send_keys("5m")
        .await
        .unwrap();
    c.find(Locator::Id("run-what-if"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let diff = text_of(&c, "#pushed-diff").await;
    let earlier: usize = diff.split(" / ").next().unwrap().trim().parse().unwrap();
    assert!(
        earlier >= 1,
        "no order pushed earlier with a 5m hold: {diff}"
    );
    shot(&c, "what-if").await;

    c.goto(&format!("{base}/setup")).await.unwrap();
    assert!(text_of(&c, "#verdict").await.contains("verdict"));
    shot(&c, "setup").await;

    // Log out: the pages refuse again.
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_of(&c, "#token").await;
    assert_eq!(path_of(&c).await, "/login");
    c.goto(&format!("{base}/orders/{id}")).await.unwrap();
    text_of(&c, "#token").await;
    assert_eq!(path_of(&c).await, "/login");
    shot(&c, "logged-out").await;

    c.close().await.unwrap();
    t.stop().await;
}
