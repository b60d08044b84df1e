//! The core under real conditions: the aggregate actors and durable timers over
//! SQLite with a manual clock, restarts, and a process killed mid-write.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::watch;

use tks::actors::aggregate::Env;
use tks::actors::{Execute, Registry, TimerService};
use tks::clock::ManualClock;
use tks::config::ActorSettings;
use tks::domain::observed::{
    FulfillmentType, LineUnit, OrderSnapshot, Quantity, StockLevel, TikTokOrderStatus,
};
use tks::domain::order::{Order, OrderCommand, Source};
use tks::domain::sku::{Sku, SkuCommand};
use tks::domain::Policy;
use tks::store::{EventStore, SharedStore, SqliteStore};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

fn snapshot(order_id: &str, created: DateTime<Utc>) -> OrderSnapshot {
    OrderSnapshot {
        shop_id: String::new(),
        order_id: order_id.into(),
        status: TikTokOrderStatus::AwaitingShipment,
        fulfillment_type: FulfillmentType::FulfillmentBySeller,
        shipping_type: Default::default(),
        create_time: created,
        update_time: created,
        currency: "USD".into(),
        warehouse_id: None,
        recipient: None,
        buyer_email: None,
        units: vec![LineUnit {
            line_item_id: format!("{order_id}-1"),
            sku_id: "1".into(),
            seller_sku: "MUG".into(),
            sale_price: "12.00".into(),
            cancelled: false,
            shipped: false,
        }],
    }
}

struct Core {
    store: SharedStore,
    orders: Registry<Order>,
    skus: Registry<Sku>,
    timers: TimerService,
}

fn start_core(path: &std::path::Path, clock: &ManualClock, idle: Duration) -> Core {
    let store: SharedStore = Arc::new(SqliteStore::open(path).unwrap());
    let env = Env {
        store: store.clone(),
        clock: clock.clock(),
        policy: Arc::new(Policy::default()),
        settings: ActorSettings {
            idle_timeout: idle,
            snapshot_every: 3,
        },
    };
    let orders = Registry::<Order>::start(env.clone());
    let skus = Registry::<Sku>::start(env);
    let timers = TimerService::new(store.clone(), clock.clock())
        .route("order", orders.clone())
        .route("sku", skus.clone());
    Core {
        store,
        orders,
        skus,
        timers,
    }
}

fn count(store: &SharedStore, stream: &str, event_type: &str) -> usize {
    store
        .read_stream(stream, 0)
        .unwrap()
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

async fn place(core: &Core, id: &str, created: DateTime<Utc>) {
    core.orders
        .execute(
            id,
            Execute::new(OrderCommand::observe(snapshot(id, created), Source::Poll)),
        )
        .await
        .unwrap();
}

#[actix::test]
async fn the_hold_expires_at_sixty_minutes_and_fires_exactly_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tks.db");
    let clock = ManualClock::new(t0());
    {
        let core = start_core(&path, &clock, Duration::from_secs(300));
        place(&core, "A", t0()).await;
        place(&core, "B", t0() + chrono::Duration::minutes(30)).await;
        clock.set(t0() + chrono::Duration::seconds(59 * 60 + 59));
        assert_eq!(core.timers.fire_due().await.unwrap(), 0);
        assert_eq!(count(&core.store, "order-A", "HoldExpired"), 0);
        clock.set(t0() + chrono::Duration::minutes(60));
        assert_eq!(core.timers.fire_due().await.unwrap(), 1);
        assert_eq!(count(&core.store, "order-A", "HoldExpired"), 1);
        assert_eq!(count(&core.store, "order-B", "HoldExpired"), 0);
        assert_eq!(core.store.timer_count().unwrap(), 1);
    }
    // The service was down from T+60m to T+2h: B's hold (due T+90m) is overdue.
    clock.set(t0() + chrono::Duration::hours(2));
    for _ in 0..2 {
        let core = start_core(&path, &clock, Duration::from_secs(300));
        let (stop, stopped) = watch::channel(false);
        let service = actix::spawn(core.timers.run(stopped));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while count(&core.store, "order-B", "HoldExpired") == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "overdue timer never fired"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        service.await.unwrap();
        assert_eq!(count(&core.store, "order-B", "HoldExpired"), 1);
        assert_eq!(count(&core.store, "order-A", "HoldExpired"), 1);
        assert_eq!(core.store.timer_count().unwrap(), 0);
    }
}

#[actix::test]
async fn thousands_of_overdue_holds_fire_exactly_once_each_after_a_restart() {
    const ORDERS: usize = 2500;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tks.db");
    let clock = ManualClock::new(t0());
    let ids: Vec<String> = (0..ORDERS).map(|n| format!("M{n}")).collect();
    {
        let core = start_core(&path, &clock, Duration::from_secs(300));
        for chunk in ids.chunks(500) {
            futures::future::join_all(chunk.iter().map(|id| place(&core, id, t0()))).await;
        }
    }
    // Down for two hours: every hold is overdue at the restart.
    clock.set(t0() + chrono::Duration::hours(2));
    let core = start_core(&path, &clock, Duration::from_secs(300));
    // Some orders have a resident actor when the timers fire, and some get
    // commands while the batch that fires theirs is deciding: none may fire
    // twice, none may lose a command to a conflict, and every actor must end
    // up holding the log's state.
    for id in ids.iter().step_by(97) {
        core.orders.state(id).await.unwrap();
    }
    let edits = async {
        futures::future::join_all(ids.iter().skip(5).step_by(89).map(|id| async {
            let mut s = snapshot(id, t0());
            s.update_time = t0() + chrono::Duration::minutes(90);
            core.orders
                .execute(id, Execute::new(OrderCommand::observe(s, Source::Poll)))
                .await
        }))
        .await
    };
    let (fired, edited) = futures::future::join(core.timers.fire_due(), edits).await;
    assert_eq!(fired.unwrap(), ORDERS);
    for result in edited {
        result.unwrap();
    }
    assert_eq!(core.store.timer_count().unwrap(), 0);
    for id in &ids {
        let stream = format!("order-{id}");
        assert_eq!(count(&core.store, &stream, "HoldExpired"), 1, "{stream}");
        let (state, seq) = core.orders.state(id).await.unwrap();
        assert!(state.hold_expired, "{stream}");
        assert_eq!(seq, core.store.stream_seq(&stream).unwrap(), "{stream}");
    }
    drop(core);
    let core = start_core(&path, &clock, Duration::from_secs(300));
    assert_eq!(core.timers.fire_due().await.unwrap(), 0);
    let rebuilt = tks::replay::rebuild(core.store.as_ref(), &[], |_| {}).unwrap();
    assert!(rebuilt.problems.is_empty(), "{:?}", rebuilt.problems);
}

#[actix::test]
async fn the_timer_service_wakes_when_the_clock_reaches_a_buffer_window_end() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let core = start_core(&dir.path().join("tks.db"), &clock, Duration::from_secs(300));
    let (stop, stopped) = watch::channel(false);
    let service = actix::spawn(core.timers.run(stopped));
    for (minute, stock) in [(0, 10), (1, 9), (2, 7)] {
        clock.set(t0() + chrono::Duration::minutes(minute));
        core.skus
            .execute(
                "MUG",
                Execute::new(SkuCommand::ObserveStock(vec![StockLevel {
                    variant_id: 5,
                    location_id: 1,
                    in_stock: Quantity::from_units(stock),
                    committed: Quantity(0),
                }])),
            )
            .await
            .unwrap();
    }
    clock.set(t0() + chrono::Duration::minutes(60));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count(&core.store, "sku-MUG", "BufferFlushed") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "flush never fired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flushed = core
        .store
        .read_stream("sku-MUG", 0)
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "BufferFlushed")
        .unwrap();
    assert!(flushed.payload.contains("\"atp\":7"), "{}", flushed.payload);
    assert_eq!(count(&core.store, "sku-MUG", "BufferOpened"), 1);
    stop.send(true).unwrap();
    service.await.unwrap();
}

#[actix::test]
async fn idle_actors_passivate_and_rehydrate_from_snapshot_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let core = start_core(
        &dir.path().join("tks.db"),
        &clock,
        Duration::from_millis(50),
    );
    place(&core, "A", t0()).await;
    for minute in [60, 61] {
        clock.set(t0() + chrono::Duration::minutes(minute));
        core.timers.fire_due().await.unwrap();
        let mut s = snapshot("A", t0());
        s.update_time = clock.now();
        core.orders
            .execute("A", Execute::new(OrderCommand::observe(s, Source::Poll)))
            .await
            .unwrap();
    }
    let (before, seq) = core.orders.state("A").await.unwrap();
    assert_eq!(seq, 3, "placed, hold expired, SO requested");
    assert!(core.store.load_snapshot("order-A").unwrap().is_some());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while core.orders.live().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "actor never passivated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (after, seq_after) = core.orders.state("A").await.unwrap();
    assert_eq!((after, seq_after), (before, seq));
}

#[test]
fn acknowledged_appends_survive_sigkill_with_no_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut acked: Vec<(String, u64)> = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tks"))
            .args(["debug", "append-load", "--writers", "32", "--db"])
            .arg(&db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let target = 1500 * (round + 1);
        let mut seen = 0;
        while seen < target {
            let Some(Ok(line)) = lines.next() else { break };
            let (stream, seq) = line.split_once(' ').unwrap();
            acked.push((stream.to_string(), seq.parse().unwrap()));
            seen += 1;
        }
        // SIGKILL: no destructor, no flush, no graceful shutdown.
        child.kill().unwrap();
        child.wait().unwrap();
        // Lines already in the pipe were acknowledged before the kill.
        for line in lines.map_while(Result::ok) {
            let (stream, seq) = line.split_once(' ').unwrap();
            acked.push((stream.to_string(), seq.parse().unwrap()));
        }
        assert!(
            seen >= target,
            "round {round}: the child acknowledged only {seen} appends"
        );
    }
    let store = SqliteStore::open(&db).unwrap();
    for (stream, seq) in &acked {
        assert!(
            store.stream_seq(stream).unwrap() >= *seq,
            "acknowledged {stream} seq {seq} is missing"
        );
    }
    let rebuilt = tks::replay::rebuild(&store, &[], |_| {}).unwrap();
    assert!(rebuilt.problems.is_empty(), "{:?}", rebuilt.problems);
    assert!(rebuilt.events >= acked.len() as u64);
}
