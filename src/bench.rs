//! `tks bench`: measurements of this machine, printed as `key=value` lines so they
//! can be pasted into the README's table or compared by a script.

pub mod append_load;
mod command;
pub mod fuzz;
pub mod peak;
pub mod sim;

pub use command::{dir, run, Options, Target};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};

use crate::clock::{Clock, ManualClock};
use crate::sandbox::run::{World, WorldOptions};

use crate::domain::observed::{
    FulfillmentType, LineUnit, OrderSnapshot, Quantity, TikTokOrderStatus,
};
use crate::domain::order::{HoldExpired, OrderEvent, OrderPlaced, Source};
use crate::domain::sku::{SkuEvent, StockChanged};
use crate::domain::DomainEvent;
use crate::store::{EventMeta, EventStore, Expected, NewEvent, SqliteStore, UnitOfWork};

pub fn print(key: &str, value: impl std::fmt::Display) {
    println!("{key}={value}");
}

/// Peak resident set size of this process, in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn bench_meta() -> EventMeta {
    EventMeta::root(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
}

fn small_event(n: u64) -> NewEvent {
    let e = SkuEvent::StockChanged(StockChanged {
        location_id: 1,
        in_stock: Quantity::from_units(n as i64 % 1000),
        committed: Quantity(0),
    });
    NewEvent {
        event_type: e.event_type().into(),
        version: e.version(),
        payload: e.encode(),
        meta: bench_meta(),
    }
}

/// Durable appends per second with `writers` concurrent writers, each appending
/// one event per unit of work to its own stream (named after `round`, so rounds on
/// one store do not collide), for `duration`.
pub async fn appends_per_second(
    store: Arc<SqliteStore>,
    writers: usize,
    duration: Duration,
    round: u64,
) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("sku-bench-w{writers}-r{round}-{w}");
            let mut seq = 0u64;
            while start.elapsed() < duration {
                let unit =
                    UnitOfWork::append(stream.clone(), Expected::Seq(seq), vec![small_event(seq)]);
                if store.commit(unit).await.is_err() {
                    break;
                }
                seq += 1;
            }
            seq
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Ack latencies (p50, p99, achieved rate) at a fixed offered load.
pub async fn ack_latency(
    store: Arc<SqliteStore>,
    per_second: u64,
    duration: Duration,
) -> (f64, f64, f64) {
    let interval = Duration::from_secs_f64(1.0 / per_second as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut n = 0u64;
    while start.elapsed() < duration {
        ticker.tick().await;
        let store = store.clone();
        let stream = format!("sku-lat-{}", n % 1024);
        n += 1;
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let unit = UnitOfWork::append(stream, Expected::Any, vec![small_event(n)]);
            store.commit(unit).await.ok();
            t.elapsed()
        }));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(d) = t.await {
            lat.push(d.as_secs_f64() * 1000.0);
        }
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (pct(0.50), pct(0.99), rate)
}

/// Writes a realistic log of `events` events: orders placed and expired, and
/// stock changes, spread over many streams.
pub async fn write_log(store: &SqliteStore, events: u64) -> Result<(), crate::store::StoreError> {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut written = 0u64;
    let mut order = 0u64;
    while written < events {
        let mut unit = UnitOfWork::default();
        while unit.event_count() < 1000 && written + (unit.event_count() as u64) < events {
            order += 1;
            if order % 4 == 0 {
                let e = SkuEvent::StockChanged(StockChanged {
                    location_id: 1,
                    in_stock: Quantity::from_units((order % 500) as i64),
                    committed: Quantity::from_units((order % 7) as i64),
                });
                unit.appends.push(crate::store::StreamAppend {
                    stream: format!("sku-SKU-{}", order % 2000),
                    expected: Expected::Any,
                    events: vec![NewEvent {
                        event_type: e.event_type().into(),
                        version: e.version(),
                        payload: e.encode(),
                        meta: bench_meta(),
                    }],
                });
                continue;
            }
            let id = format!("57700{order:012}");
            let snapshot = OrderSnapshot {
                shop_id: String::new(),
                order_id: id.clone(),
                status: TikTokOrderStatus::AwaitingShipment,
                fulfillment_type: FulfillmentType::FulfillmentBySeller,
                shipping_type: Default::default(),
                create_time: t0,
                update_time: t0,
                currency: "USD".into(),
                warehouse_id: Some("7000001".into()),
                recipient: None,
                buyer_email: None,
                units: (0..2)
                    .map(|u| LineUnit {
                        line_item_id: format!("{id}{u}"),
                        sku_id: format!("{}", order % 2000),
                        seller_sku: format!("SKU-{}", order % 2000),
                        sale_price: "19.99".into(),
                        cancelled: false,
                        shipped: false,
                    })
                    .collect(),
            };
            let evs = [
                OrderEvent::OrderPlaced(OrderPlaced {
                    snapshot,
                    hold_until: t0 + chrono::Duration::hours(1),
                    source: Source::Poll,
                }),
                OrderEvent::HoldExpired(HoldExpired {
                    at: t0 + chrono::Duration::hours(1),
                }),
            ];
            unit.appends.push(crate::store::StreamAppend {
                stream: format!("order-{id}"),
                expected: Expected::Seq(0),
                events: evs
                    .iter()
                    .map(|e| NewEvent {
                        event_type: e.event_type().into(),
                        version: e.version(),
                        payload: e.encode(),
                        meta: bench_meta(),
                    })
                    .collect(),
            });
        }
        written += unit.event_count() as u64;
        store.commit(unit).await?;
    }
    Ok(())
}

/// The physical limit a rebuild is measured against: every core scans its own
/// slice of the log (by position, so no row is read twice) and decodes each event
/// with the production codec, folding nothing. Returns (events, seconds).
pub fn raw_scan_decode(store: &SqliteStore) -> anyhow::Result<(u64, f64)> {
    use crate::domain::order::OrderEvent;
    let head = store.head();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slice = head.div_ceil(workers as u64).max(1);
    let start = Instant::now();
    let counts: Vec<anyhow::Result<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers as u64)
            .map(|w| {
                let path = store.path().to_path_buf();
                scope.spawn(move || -> anyhow::Result<u64> {
                    // Its own connection per worker, as the rebuild's workers have.
                    let reader = SqliteStore::open(&path)?;
                    let (from, to) = (w * slice, (w + 1) * slice);
                    let mut decoded = 0u64;
                    reader.scan(from, &mut |rec| {
                        if rec.position > to {
                            return false;
                        }
                        let ok = if rec.stream.starts_with("order-") {
                            OrderEvent::decode(rec.event_type, rec.version, rec.payload).is_ok()
                        } else {
                            SkuEvent::decode(rec.event_type, rec.version, rec.payload).is_ok()
                        };
                        decoded += u64::from(ok);
                        true
                    })?;
                    Ok(decoded)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| anyhow::bail!("a scan worker panicked"))
            })
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut events = 0;
    for c in counts {
        events += c?;
    }
    Ok((events, seconds))
}

/// Rebuild over the log in `store`.
pub fn rebuild_rate(
    store: &dyn EventStore,
) -> Result<crate::replay::Rebuilt, crate::store::StoreError> {
    crate::replay::rebuild(store, &[], |_| {})
}

/// Point-in-time query latency (p50, p99 in milliseconds): `queries` state
/// queries of order and SKU streams, each at the moment of a random event of the
/// log, alternately by log position and by time. Only the query is timed, not the
/// pick of the event.
pub fn state_at_latency(
    store: &dyn EventStore,
    queries: usize,
) -> Result<(f64, f64), crate::replay::travel::TravelError> {
    use crate::replay::travel::{state_at, At};
    use rand::{Rng, SeedableRng};

    let head = store.head();
    let mut lat = Vec::with_capacity(queries);
    if head == 0 {
        return Ok((0.0, 0.0));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..queries {
        let position = rng.gen_range(1..=head);
        let Some(event) = store.read_all(position - 1, 1)?.into_iter().next() else {
            continue;
        };
        let at = if i % 2 == 0 {
            At::Position(event.position)
        } else {
            At::Time(event.meta.recorded_at)
        };
        let start = Instant::now();
        let point = state_at(store, &event.stream, at)?;
        lat.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(point);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok((pct(0.50), pct(0.99)))
}

/// The physical limit the group commit is measured against: SQLite alone on the
/// same disk, same settings (WAL, `synchronous=FULL`), inserting rows shaped like
/// the events table's in transactions of `rows_per_commit`, one after another,
/// for `duration`. No actors, no codec, no validation, no channel: rows/s.
pub fn raw_sqlite_rate(
    path: &Path,
    rows_per_commit: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
            position INTEGER PRIMARY KEY, stream TEXT NOT NULL, seq INTEGER NOT NULL,
            event_type TEXT NOT NULL, event_version INTEGER NOT NULL, payload TEXT NOT NULL,
            event_id TEXT NOT NULL, correlation_id TEXT NOT NULL, causation_id TEXT,
            recorded_at INTEGER NOT NULL, UNIQUE (stream, seq));
         CREATE INDEX IF NOT EXISTS events_recorded_at ON events (recorded_at);",
    )?;
    let sample = small_event(7);
    let id = sample.meta.event_id.to_string();
    // Called again on the same file: new stream names, so sequence numbers start over.
    let call: i64 = conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
        r.get(0)
    })?;
    let streams: Vec<String> = (0..256).map(|w| format!("sku-raw-{call}-{w}")).collect();
    let rows_per_commit = rows_per_commit.max(1);
    let start = Instant::now();
    let mut rows = 0u64;
    while start.elapsed() < duration {
        let tx = conn.unchecked_transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (stream, seq, event_type, event_version, payload,
                                     event_id, correlation_id, causation_id, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8)",
            )?;
            for _ in 0..rows_per_commit {
                let stream = &streams[(rows % 256) as usize];
                insert.execute(rusqlite::params![
                    stream,
                    (rows / 256 + 1) as i64,
                    sample.event_type,
                    sample.version,
                    sample.payload,
                    id,
                    id,
                    1_767_225_600_000i64,
                ])?;
                rows += 1;
            }
        }
        tx.commit()?;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}

pub async fn store(dir: &std::path::Path, seconds: u64, log_events: u64) -> anyhow::Result<()> {
    print(
        "machine.cores",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    // tks and SQLite alone take turns, one second each, so a disk whose speed
    // drifts (other tenants, write-back) weighs on both alike.
    for writers in [1usize, 16, 256] {
        let store = Arc::new(SqliteStore::open(
            dir.join(format!("appends-{writers}.db")),
        )?);
        let raw_path = dir.join(format!("raw-{writers}.db"));
        let slice = Duration::from_secs(1);
        let (mut tks_total, mut raw_total) = (0.0, 0.0);
        for round in 0..seconds.max(1) {
            let before = store.commit_stats();
            tks_total += appends_per_second(store.clone(), writers, slice, round).await;
            let after = store.commit_stats();
            // The batch size SQLite alone gets is the one tks just achieved.
            let per_commit = (after.1 - before.1) as f64 / (after.0 - before.0).max(1) as f64;
            raw_total += raw_sqlite_rate(&raw_path, per_commit.round() as usize, slice)?;
        }
        let (transactions, units) = store.commit_stats();
        drop(store);
        let rounds = seconds.max(1) as f64;
        let (rate, raw) = (tks_total / rounds, raw_total / rounds);
        let mean_per_commit = units as f64 / transactions.max(1) as f64;
        print(
            &format!("store.appends_per_sec.writers_{writers}"),
            format!("{rate:.0}"),
        );
        print(
            &format!("store.units_per_group_commit.writers_{writers}"),
            format!("{mean_per_commit:.1}"),
        );
        print(
            &format!("store.raw_sqlite_rows_per_sec.writers_{writers}"),
            format!("{raw:.0}"),
        );
        print(
            &format!("store.fraction_of_raw_sqlite.writers_{writers}"),
            format!("{:.2}", rate / raw),
        );
    }
    let store = Arc::new(SqliteStore::open(dir.join("latency.db"))?);
    let (p50, p99, rate) = ack_latency(store, 5000, Duration::from_secs(seconds)).await;
    print(
        "store.ack_latency_ms.offered_5000_per_sec.p50",
        format!("{p50:.2}"),
    );
    print(
        "store.ack_latency_ms.offered_5000_per_sec.p99",
        format!("{p99:.2}"),
    );
    print("store.ack_latency.achieved_per_sec", format!("{rate:.0}"));
    replay(dir, log_events).await?;
    Ok(())
}

pub async fn replay(dir: &std::path::Path, log_events: u64) -> anyhow::Result<()> {
    let path = dir.join("rebuild.db");
    let store = SqliteStore::open(&path)?;
    let start = Instant::now();
    write_log(&store, log_events).await?;
    print(
        "replay.log_write_events_per_sec",
        format!("{:.0}", log_events as f64 / start.elapsed().as_secs_f64()),
    );
    let (raw_events, raw_seconds) = raw_scan_decode(&store)?;
    let raw_rate = raw_events as f64 / raw_seconds;
    let r = rebuild_rate(&store)?;
    let rebuild_rate = r.events as f64 / r.fold_seconds;
    print(
        "replay.raw_scan_decode_events_per_sec",
        format!("{raw_rate:.0}"),
    );
    print(
        "replay.rebuild_fraction_of_raw",
        format!("{:.2}", rebuild_rate / raw_rate),
    );
    print("replay.rebuild_events", r.events);
    print("replay.rebuild_streams", r.streams.len());
    print(
        "replay.rebuild_events_per_sec",
        format!("{rebuild_rate:.0}"),
    );
    print(
        "replay.rebuild_hash_seconds",
        format!("{:.2}", r.hash_seconds),
    );
    print(
        "replay.rebuild_total_events_per_sec",
        format!("{:.0}", r.events as f64 / (r.fold_seconds + r.hash_seconds)),
    );
    let (p50, p99) = state_at_latency(&store, 1000)?;
    print("replay.state_at_p50_ms", format!("{p50:.3}"));
    print("replay.state_at_p99_ms", format!("{p99:.3}"));
    print("process.peak_rss_mib", format!("{:.0}", peak_rss_mib()));
    Ok(())
}

// ------------------------------------------------------------------ flow

/// Baskets of the bench orders: two or three units over one or two SKUs, like
/// the sandbox's normal orders.
const FLOW_BASKETS: &[&[(&str, u32)]] = &[
    &[("MUG-WHITE", 2), ("TOTE-NAT", 1)],
    &[("MUG-BLACK", 2)],
    &[("TOTE-NAT", 1), ("MUG-BLACK", 1)],
];

/// What one flow run measured.
pub struct FlowRun {
    pub orders: usize,
    pub seconds: f64,
}

/// Katana requests of a measured phase.
pub struct KatanaCalls {
    pub orders: usize,
    pub requests: usize,
    pub rate_limited: usize,
    /// `method_path` (ids replaced by `id`) -> requests.
    pub by_endpoint: BTreeMap<String, usize>,
}

/// `POST /sales_orders/42/x` -> `post_sales_orders_id_x`.
fn endpoint_key(method: &str, path: &str) -> String {
    let mut key = method.to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        key.push('_');
        if seg.chars().all(|c| c.is_ascii_digit()) {
            key.push_str("id");
        } else {
            key.push_str(seg);
        }
    }
    key
}

/// Reads the log from `position` and counts `SoCreated` events; returns the new
/// position and the count.
fn count_created(
    store: &dyn EventStore,
    mut position: u64,
) -> Result<(u64, usize), crate::store::StoreError> {
    let mut created = 0;
    loop {
        let batch = store.read_all(position, 1024)?;
        if batch.is_empty() {
            return Ok((position, created));
        }
        for e in &batch {
            if e.event_type == "SoCreated" {
                created += 1;
            }
            position = e.position;
        }
    }
}

/// Orders per second through the whole pipeline: the TikTok simulator takes
/// `orders` orders at once and sends its webhooks; the service re-reads each, holds
/// it (0 s), re-reads it at hold expiry and creates its SO in the Katana simulator.
/// Timed from the first order to the last `SoCreated`.
///
/// The real clock, because with a 0 s hold and Katana's limit lifted (simulator and
/// client budget) nothing in this path waits on time; a manual clock would only add
/// the stepping. Pollers are off so only the pipeline is measured.
pub async fn flow_throughput(db: &Path, orders: usize, shops: usize) -> anyhow::Result<FlowRun> {
    let world = World::start(
        Clock::real(),
        WorldOptions {
            shops,
            db_path: db.to_path_buf(),
            katana_requests_per_minute: None,
            pollers: false,
        },
        |s| {
            s.sync.order_hold = Duration::ZERO;
            s.tiktok.requests_per_second = 0;
        },
    )
    .await?;
    world.settle(Duration::from_secs(10)).await;
    let store = world.store().clone();
    let mut position = store.head();
    let started = Instant::now();
    for i in 0..orders {
        world.place(
            FLOW_BASKETS[i % FLOW_BASKETS.len()],
            FulfillmentType::FulfillmentBySeller,
        )?;
    }
    let mut created = 0;
    let mut head = store.watch_head();
    let limit = Duration::from_secs(120) + Duration::from_millis(200) * orders as u32;
    while created < orders {
        head.mark_unchanged();
        let (p, n) = count_created(store.as_ref(), position)?;
        position = p;
        created += n;
        if created >= orders {
            break;
        }
        if started.elapsed() > limit {
            world.stop().await;
            anyhow::bail!("only {created} of {orders} SOs were created within {limit:?}");
        }
        tokio::select! {
            _ = head.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let in_katana = world
        .katana
        .sales_orders()
        .iter()
        .filter(|so| so["deleted_at"].is_null())
        .count();
    world.stop().await;
    if in_katana != orders {
        anyhow::bail!("{orders} orders made {in_katana} SOs in Katana");
    }
    Ok(FlowRun { orders, seconds })
}

/// Katana requests per imported order with Katana's limit on (60 per 60 s in the
/// simulator and in the client's budget), one order a minute, on a manual clock
/// stepped 20 s at a time so an hour and more of shop time takes seconds. A
/// warm-up order first makes the one-off reads (catalogue, stock, the generic
/// customer) happen before counting starts; reconciliation polls are off (they
/// cost a few calls per poll interval whatever the order volume). The hold is
/// 10 minutes: its length changes when an order is pushed, not what it costs,
/// and a shorter one needs fewer clock steps.
pub async fn katana_calls_per_order(
    db: &Path,
    orders: usize,
    shops: usize,
) -> anyhow::Result<KatanaCalls> {
    const STEP: Duration = Duration::from_secs(20);
    // A step ends when the service is done at this instant, however long a loaded
    // machine takes: the clock must not move on under a request still in flight.
    const STEP_LIMIT: Duration = Duration::from_secs(30);
    let manual = ManualClock::new(Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap());
    let world = World::start(
        manual.clock(),
        WorldOptions {
            shops,
            db_path: db.to_path_buf(),
            katana_requests_per_minute: Some(60),
            pollers: false,
        },
        |s| {
            s.tiktok.requests_per_second = 0;
            s.sync.order_hold = Duration::from_secs(600);
        },
    )
    .await?;
    let hold = world.services().settings.sync.order_hold;
    world.settle_on_clock(STEP_LIMIT).await;
    let store = world.store().clone();

    // Advances the clock until `want` SOs were created since `position`; if they
    // are not, says which of `placed` are missing and where each stands.
    async fn run_until(
        world: &World,
        manual: &ManualClock,
        position: &mut u64,
        created: &mut usize,
        want: usize,
        budget: Duration,
        placed: &[String],
    ) -> anyhow::Result<()> {
        let mut moved = Duration::ZERO;
        while *created < want {
            if moved > budget {
                let report = stuck_report(world, placed).await;
                for line in &report {
                    print("flow.stuck", line);
                }
                anyhow::bail!(
                    "only {created} of {want} SOs after {budget:?} of clock time; {} orders without an SO:\n{}",
                    report.len().saturating_sub(1),
                    report.join("\n")
                );
            }
            manual.advance(STEP);
            moved += STEP;
            world.settle_on_clock(STEP_LIMIT).await;
            let (p, n) = count_created(world.store().as_ref(), *position)?;
            *position = p;
            *created += n;
        }
        Ok(())
    }

    let mut position = store.head();
    let mut created = 0;
    // One warm-up order per shop: each shop's first SO also creates its generic
    // customer.
    let mut placed = Vec::new();
    for _ in 0..shops.max(1) {
        let warm_up = world.place(FLOW_BASKETS[0], FulfillmentType::FulfillmentBySeller)?;
        placed.push(warm_up.id);
    }
    world.settle_on_clock(STEP_LIMIT).await;
    let budget = hold * 2 + Duration::from_secs(600) + STEP * placed.len() as u32;
    run_until(
        &world,
        &manual,
        &mut position,
        &mut created,
        placed.len(),
        budget,
        &placed,
    )
    .await?;
    // The warm-up order's own aftermath (webhooks, stock re-reads) is not counted.
    for _ in 0..3 {
        manual.advance(STEP);
        world.settle_on_clock(STEP_LIMIT).await;
    }
    let (p, _) = count_created(store.as_ref(), position)?;
    position = p;
    let counted_from = world.katana.requests().len();

    created = 0;
    let mut placed = Vec::with_capacity(orders);
    for i in 0..orders {
        let order = world.place(
            FLOW_BASKETS[(i + 1) % FLOW_BASKETS.len()],
            FulfillmentType::FulfillmentBySeller,
        )?;
        placed.push(order.id);
        world.settle_on_clock(STEP_LIMIT).await;
        for _ in 0..3 {
            manual.advance(STEP);
            world.settle_on_clock(STEP_LIMIT).await;
        }
        let (p, n) = count_created(store.as_ref(), position)?;
        position = p;
        created += n;
    }
    run_until(
        &world,
        &manual,
        &mut position,
        &mut created,
        orders,
        budget,
        &placed,
    )
    .await?;
    // Let the last orders' webhooks and their re-reads finish.
    for _ in 0..6 {
        manual.advance(STEP);
        world.settle_on_clock(STEP_LIMIT).await;
    }
    let requests = world.katana.requests();
    world.stop().await;
    let measured = &requests[counted_from.min(requests.len())..];
    let mut by_endpoint = BTreeMap::new();
    for r in measured {
        *by_endpoint
            .entry(endpoint_key(&r.method, &r.path))
            .or_default() += 1;
    }
    Ok(KatanaCalls {
        orders: created,
        requests: measured.len(),
        rate_limited: measured.iter().filter(|r| r.status == 429).count(),
        by_endpoint,
    })
}

/// Where the orders of `placed` that have no SO yet stand: one line per order
/// (its state as the service holds it, its last event and when it was recorded),
/// then one line with each subscriber's distance from the head of the log and the
/// last Katana answers, so a stall shows whether the order, a subscriber or the
/// budget is waiting.
pub async fn stuck_report(world: &World, placed: &[String]) -> Vec<String> {
    use crate::domain::order::{Order, SoState};
    let store = world.store();
    let mut lines = Vec::new();
    for id in placed {
        let stream = <Order as crate::domain::Aggregate>::stream_id(id);
        let events = store.read_stream(&stream, 0).unwrap_or_default();
        if events.iter().any(|e| e.event_type == "SoCreated") {
            continue;
        }
        let last = events.last().map_or("no events".to_string(), |e| {
            format!(
                "last {} (seq {}) at {}",
                e.event_type, e.seq, e.meta.recorded_at
            )
        });
        let state = match world.services().commands.orders.state(id).await {
            Ok((o, _)) => {
                let so = match &o.so {
                    SoState::None => "none".to_string(),
                    SoState::Requested { last_error, .. } => match last_error {
                        Some(e) => format!("requested, last error {e:?}"),
                        None => "requested".to_string(),
                    },
                    SoState::Blocked { reason } => format!("blocked: {reason}"),
                    SoState::Created { so_id, .. } => format!("created {so_id}"),
                    SoState::Deleted { so_id } => format!("deleted {so_id}"),
                };
                format!(
                    "hold_expired={} cancelled={} so={so} attempts={} exceptions={:?}",
                    o.hold_expired,
                    o.cancelled,
                    o.so_attempts,
                    o.exceptions.keys().collect::<Vec<_>>()
                )
            }
            Err(e) => format!("state unavailable: {e}"),
        };
        lines.push(format!("order {id}: {state}; {last}"));
    }
    let head = store.head();
    let lag: Vec<String> = crate::names::subscriber::EFFECTS
        .iter()
        .map(|n| {
            format!(
                "{n}={}",
                head.saturating_sub(store.checkpoint(n).unwrap_or(0))
            )
        })
        .collect();
    let requests = world.katana.requests();
    let recent: Vec<String> = requests
        .iter()
        .rev()
        .take(5)
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    lines.push(format!(
        "events behind the head: {}; clock {}; last Katana requests (newest first): {}",
        lag.join(" "),
        world.clock.now(),
        recent.join(", ")
    ));
    lines
}

/// `tks bench flow`.
pub async fn flow(orders: usize, limited_orders: usize, shops: usize) -> anyhow::Result<()> {
    if orders == 0 || limited_orders == 0 || shops == 0 {
        anyhow::bail!("--orders, --limited-orders and --shops must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("tks-bench-flow-")
        .tempdir()?;
    let run = flow_throughput(&dir.path().join("flow.db"), orders, shops).await?;
    print("flow.shops", shops);
    print("flow.orders", run.orders);
    print("flow.seconds", format!("{:.2}", run.seconds));
    print(
        "flow.orders_per_sec",
        format!("{:.0}", run.orders as f64 / run.seconds),
    );
    let calls =
        katana_calls_per_order(&dir.path().join("limited.db"), limited_orders, shops).await?;
    let per = |n: usize| format!("{:.2}", n as f64 / calls.orders.max(1) as f64);
    print("flow.limited_orders", calls.orders);
    print("flow.katana_calls_per_order", per(calls.requests));
    for (endpoint, n) in &calls.by_endpoint {
        print(&format!("flow.katana_calls_per_order.{endpoint}"), per(*n));
    }
    print("flow.katana_429", calls.rate_limited);
    print("process.peak_rss_mib", format!("{:.0}", peak_rss_mib()));
    Ok(())
}

/// Keeps one core busy until dropped: a thread spinning on arithmetic, the load
/// `bench webhooks` measures acceptance under.
struct BusyCore {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BusyCore {
    fn start() -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut x = 1u64;
            while !flag.load(Ordering::Relaxed) {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) + 1);
                }
            }
        });
        BusyCore {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Latencies of one offered load: (p50, p99, achieved per second, not accepted).
async fn offer_webhooks(
    url: &str,
    per_second: u64,
    seconds: u64,
    first: u64,
) -> (f64, f64, f64, usize) {
    let http = reqwest::Client::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut n = first;
    while start.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        n += 1;
        let (body, signature) = bench_webhook(n);
        let (http, url) = (http.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = http
                .post(&url)
                .header("Authorization", signature)
                .body(body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            (t.elapsed(), ok)
        }));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    for t in tasks {
        if let Ok((d, ok)) = t.await {
            lat.push(d.as_secs_f64() * 1000.0);
            if !ok {
                failed += 1;
            }
        }
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (pct(0.50), pct(0.99), rate, failed)
}

/// Webhook acceptance: signed TikTok webhooks offered at 1,000/s to a running
/// service; each answer comes only after the delivery is durable (inbox row and
/// signal in one group-committed transaction). Measured twice, as the sender saw
/// it: with the machine otherwise idle, then with one core kept busy by a
/// spinning thread of this process (on a 2-core machine, "the other core").
pub async fn webhooks(dir: &std::path::Path, seconds: u64) -> anyhow::Result<()> {
    use crate::app::{self, StartOptions};
    let settings = bench_service_settings(&dir.join("webhooks.db"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let options = StartOptions {
        pollers: false,
        ..StartOptions::default()
    };
    let service = app::start(settings, crate::clock::Clock::real(), listener, options).await?;
    let url = format!("{}/webhooks/tiktok", service.base_url());
    let per_second = 1000u64;
    print("webhooks.offered_per_sec", per_second);
    let first = per_second * seconds * 2;
    for (load, busy) in [("idle", false), ("other_core_busy", true)] {
        let spinner = busy.then(BusyCore::start);
        let offset = if busy { first } else { 0 };
        // The sender is another machine in real life: its own thread and runtime,
        // so its tasks do not queue behind the service's actors.
        let sender_url = url.clone();
        let sender = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(offer_webhooks(&sender_url, per_second, seconds, offset)))
        });
        let (p50, p99, rate, failed) = loop {
            if sender.is_finished() {
                break sender
                    .join()
                    .map_err(|_| anyhow::anyhow!("the webhook sender panicked"))??;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        drop(spinner);
        print(
            &format!("webhooks.{load}.achieved_per_sec"),
            format!("{rate:.0}"),
        );
        print(
            &format!("webhooks.{load}.accepted_p50_ms"),
            format!("{p50:.2}"),
        );
        print(
            &format!("webhooks.{load}.accepted_p99_ms"),
            format!("{p99:.2}"),
        );
        print(&format!("webhooks.{load}.not_accepted"), failed);
    }
    print("process.peak_rss_mib", format!("{:.0}", peak_rss_mib()));
    service.stop().await;
    Ok(())
}

/// CPU seconds (user + system) this process has used, all threads.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut u = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Resets the peak RSS (`VmHWM`) to the current RSS, so a later
/// [`peak_rss_mib`] measures only what follows. Linux only; elsewhere a no-op.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A signed TikTok order-status webhook body and its signature, as the bench
/// service (app key `bench_app_key`, secret `bench_app_secret`) verifies it.
fn bench_webhook(n: u64) -> (String, String) {
    let body = format!(
        "{{\"type\":1,\"tts_notification_id\":\"bench-{n}\",\"shop_id\":\"1\",\"timestamp\":1,\"data\":{{\"order_id\":\"57700{:08}\",\"order_status\":\"AWAITING_SHIPMENT\",\"update_time\":1}}}}",
        n % 2000
    );
    let signature = crate::connectors::tiktok::sign::webhook_signature(
        "bench_app_key",
        "bench_app_secret",
        body.as_bytes(),
    );
    (body, signature)
}

/// Settings of a bench service that takes signed TikTok webhooks but whose
/// re-reads go nowhere: they wait in their back-off and do not compete with
/// what is measured.
fn bench_service_settings(db: &Path) -> crate::config::Settings {
    use crate::config::{Secret, Settings};
    let mut settings = Settings::default();
    settings.store.path = db.to_string_lossy().into_owned();
    settings.tiktok.app_key = "bench_app_key".into();
    settings.tiktok.app_secret = Secret::new("bench_app_secret");
    settings.tiktok.api_base = "http://127.0.0.1:9".into();
    settings.tiktok.auth_base = "http://127.0.0.1:9".into();
    settings
}

/// Restart: a log of `orders` placed orders whose hold timers are all overdue;
/// measures how long until the restarted service answers `/health` and accepts a
/// webhook, how long until every overdue timer has fired, and the service's peak
/// RSS meanwhile.
///
/// The subscribers' checkpoints stand at the head of the log and the console's
/// read model reflects it, as they would after a service that ran before the
/// stop: what is measured is the restart, not a first catch-up of a log written
/// behind the service's back.
pub async fn restart(dir: &std::path::Path, orders: u64) -> anyhow::Result<()> {
    use crate::app::{self, StartOptions};
    use crate::store::{StreamAppend, Timer};
    let path = dir.join("restart.db");
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let written = Instant::now();
    {
        let store = SqliteStore::open(&path)?;
        let mut unit = UnitOfWork::default();
        for n in 0..orders {
            let id = format!("57700{n:012}");
            let placed = OrderEvent::OrderPlaced(OrderPlaced {
                snapshot: OrderSnapshot {
                    shop_id: String::new(),
                    order_id: id.clone(),
                    status: TikTokOrderStatus::AwaitingShipment,
                    fulfillment_type: FulfillmentType::FulfillmentBySeller,
                    shipping_type: Default::default(),
                    create_time: t0,
                    update_time: t0,
                    currency: "USD".into(),
                    warehouse_id: None,
                    recipient: None,
                    buyer_email: None,
                    units: vec![LineUnit {
                        line_item_id: format!("{id}1"),
                        sku_id: "1".into(),
                        seller_sku: "SKU-1".into(),
                        sale_price: "9.99".into(),
                        cancelled: false,
                        shipped: false,
                    }],
                },
                hold_until: t0 + chrono::Duration::hours(1),
                source: Source::Poll,
            });
            let stream = format!("order-{id}");
            unit.arm_timers.push(Timer {
                stream: stream.clone(),
                kind: crate::domain::order::HOLD_TIMER.into(),
                due_at: t0 + chrono::Duration::hours(1),
            });
            unit.appends.push(StreamAppend {
                stream,
                expected: Expected::Seq(0),
                events: vec![NewEvent {
                    event_type: placed.event_type().into(),
                    version: placed.version(),
                    payload: placed.encode(),
                    meta: bench_meta(),
                }],
            });
            if unit.appends.len() == 1000 {
                store.commit(std::mem::take(&mut unit)).await?;
            }
        }
        if !unit.appends.is_empty() {
            store.commit(unit).await?;
        }
        let head = store.head();
        use crate::names::subscriber::{DEMAND_POLICY, TIKTOK_READER, TIKTOK_WRITER};
        for subscriber in [DEMAND_POLICY, TIKTOK_READER, TIKTOK_WRITER] {
            store
                .commit(UnitOfWork {
                    checkpoint: Some((subscriber.into(), head)),
                    ..Default::default()
                })
                .await?;
        }
        // The console's read model too: its tables already reflect the log.
        crate::console::readmodel::rebuild(&store, &path)
            .map_err(|e| anyhow::anyhow!("console read model: {e}"))?;
    }
    print(
        "restart.log_written_s",
        format!("{:.1}", written.elapsed().as_secs_f64()),
    );
    let settings = bench_service_settings(&path);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let options = StartOptions {
        pollers: false,
        ..StartOptions::default()
    };
    // The clock stands two hours after placement: every hold is overdue.
    let clock = crate::clock::ManualClock::new(t0 + chrono::Duration::hours(2));
    reset_peak_rss();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let service = app::start(settings, clock.clock(), listener, options).await?;
    let health = format!("{}/health", service.base_url());
    let webhook = format!("{}/webhooks/tiktok", service.base_url());
    let http = reqwest::Client::new();
    while !http
        .get(&health)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let healthy = started.elapsed();
    let (body, signature) = bench_webhook(0);
    let accepted = http
        .post(&webhook)
        .header("Authorization", signature)
        .body(body)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    if !accepted {
        anyhow::bail!("the restarted service refused a webhook");
    }
    let serving = started.elapsed();
    // Firing them arms other timers (SKU buffer windows) that are not due yet.
    while !service
        .services
        .store
        .due_timers(clock.now(), 1)?
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fired = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let left = service.services.store.timer_count()?;
    print("restart.orders", orders);
    print("restart.health_ms", healthy.as_millis());
    print("restart.serving_ms", serving.as_millis());
    print("restart.overdue_timers_fired_ms", fired.as_millis());
    print(
        "restart.timers_fired_per_sec",
        format!("{:.0}", orders as f64 / fired.as_secs_f64()),
    );
    print("restart.timers_left_armed", left);
    // On a shared machine the wall time depends on who else runs; the CPU the
    // service spent on it does not.
    print("restart.cpu_seconds_until_fired", format!("{cpu:.2}"));
    print(
        "restart.resident_order_actors",
        service.services.commands.orders.live().await,
    );
    print("restart.peak_rss_mib", format!("{:.0}", peak_rss_mib()));
    service.stop().await;
    Ok(())
}
