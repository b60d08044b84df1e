//! `/health` tells the truth: degraded (503) while the store cannot write, with the
//! subscribers that are retrying an event listed.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::watch;

use tks::app::{self, StartOptions};
use tks::clock::ManualClock;
use tks::config::Settings;
use tks::store::{
    Committed, EventStore, LookupEntry, RawEvent, RecordedEvent, SharedStore, Snapshot,
    SqliteStore, StoreError, Timer, UnitOfWork,
};

/// A real store whose writes fail while `full` is set, as on a full disk.
struct FillableDisk {
    inner: SharedStore,
    full: Arc<AtomicBool>,
}

impl EventStore for FillableDisk {
    fn commit(&self, unit: UnitOfWork) -> BoxFuture<'static, Result<Committed, StoreError>> {
        if self.full.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Storage("database or disk is full".into())) });
        }
        self.inner.commit(unit)
    }
    fn read_stream(&self, stream: &str, after_seq: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, after_seq)
    }
    fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit)
    }
    fn scan(
        &self,
        after: u64,
        visit: &mut dyn FnMut(RawEvent<'_>) -> bool,
    ) -> Result<u64, StoreError> {
        self.inner.scan(after, visit)
    }
    fn head(&self) -> u64 {
        self.inner.head()
    }
    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.watch_head()
    }
    fn stream_seq(&self, stream: &str) -> Result<u64, StoreError> {
        self.inner.stream_seq(stream)
    }
    fn due_timers(&self, until: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>, StoreError> {
        self.inner.due_timers(until, limit)
    }
    fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.next_timer_due()
    }
    fn watch_timers(&self) -> watch::Receiver<u64> {
        self.inner.watch_timers()
    }
    fn timer_count(&self) -> Result<u64, StoreError> {
        self.inner.timer_count()
    }
    fn checkpoint(&self, subscriber: &str) -> Result<u64, StoreError> {
        self.inner.checkpoint(subscriber)
    }
    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream)
    }
    fn all_snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        self.inner.all_snapshots()
    }
    fn inbox_contains(&self, source: &str, delivery_id: &str) -> Result<bool, StoreError> {
        self.inner.inbox_contains(source, delivery_id)
    }
    fn lookup(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.lookup(kind, key)
    }
    fn lookup_all(&self, kind: &str) -> Result<Vec<LookupEntry>, StoreError> {
        self.inner.lookup_all(kind)
    }
    fn streams(&self) -> Result<Vec<String>, StoreError> {
        self.inner.streams()
    }
}

#[actix::test]
async fn health_is_degraded_while_the_store_cannot_write_and_recovers_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.store.path = dir.path().join("tks.db").to_string_lossy().into_owned();
    let full = Arc::new(AtomicBool::new(false));
    let store: SharedStore = Arc::new(FillableDisk {
        inner: Arc::new(SqliteStore::open(&settings.store.path).unwrap()),
        full: full.clone(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let clock = ManualClock::at_epoch();
    let app = app::start_on(
        store,
        settings,
        clock.clock(),
        listener,
        StartOptions {
            pollers: false,
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    let health = || async {
        let r = reqwest::get(format!("{}/health", app.base_url()))
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    let (status, body) = health().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store"]["writable"], true);
    full.store(true, Ordering::SeqCst);
    let (status, body) = health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded");
    assert!(body["store"]["error"].as_str().unwrap().contains("full"));
    full.store(false, Ordering::SeqCst);
    let (status, _) = health().await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// An order event no build of ours could read (a corrupt payload) must stop every
/// subscriber that acts on orders right there: passing over it would lose the SO,
/// shipment or demand it stands for without a trace. Events of streams a
/// subscriber does not read are still passed over.
#[actix::test]
async fn an_order_event_that_cannot_be_decoded_stops_its_subscribers_loudly() {
    use tks::store::{EventMeta, Expected, NewEvent};
    let t = crate::flows::spawn_app(|_| {}).await;
    let append = |stream: &str, event_type: &str, payload: &str| {
        UnitOfWork::append(
            stream,
            Expected::Seq(0),
            vec![NewEvent {
                event_type: event_type.into(),
                version: 1,
                payload: payload.into(),
                meta: EventMeta::root(t.clock.now()),
            }],
        )
    };
    t.store()
        .commit(append("elsewhere-1", "SomethingElse", "{}"))
        .await
        .unwrap();
    let passed = t.store().head();
    t.store()
        .commit(append(
            "order-577000000000000999",
            "OrderPlaced",
            "{not json",
        ))
        .await
        .unwrap();
    let corrupt = t.store().head();
    // Every subscriber that acts on an `OrderPlaced` stops there; the TikTok writer
    // acts on none, so it reads it by type alone and goes on.
    let writer = tks::names::subscriber::TIKTOK_WRITER;
    let order_subscribers: Vec<&str> = tks::names::subscriber::EFFECTS
        .into_iter()
        .filter(|s| *s != writer)
        .collect();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        let r = reqwest::get(format!("{}/health", t.app.base_url()))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "webhooks are still accepted");
        let body: serde_json::Value = r.json().await.unwrap();
        if body["stopped"].as_array().map(Vec::len) == Some(order_subscribers.len()) {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscribers did not stop: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(body["status"], "degraded", "{body}");
    for stop in body["stopped"].as_array().unwrap() {
        assert_eq!(stop["position"], corrupt, "{stop}");
        assert_eq!(stop["event_type"], "OrderPlaced", "{stop}");
        assert!(
            stop["error"].as_str().unwrap().contains("malformed"),
            "{stop}"
        );
    }
    for name in &order_subscribers {
        assert_eq!(
            t.store().checkpoint(name).unwrap(),
            passed,
            "{name} stops before the undecodable event, past the foreign one"
        );
    }
    assert!(
        body["stopped"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["subscriber"] != writer),
        "{body}"
    );
    let metrics = reqwest::get(format!("{}/metrics", t.app.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "tks_subscriber_stopped{subscriber=\"katana-writer\",event_type=\"OrderPlaced\"} 1"
        ),
        "{metrics}"
    );
    t.stop().await;
}
