//! One contract for every EventStore implementation, run against the in-memory and
//! the SQLite store alike.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tks::store::{
    EventMeta, EventStore, Expected, InboxEntry, NewEvent, Snapshot, SqliteStore, StoreError,
    Timer, UnitOfWork,
};

pub fn ev(n: u32) -> NewEvent {
    NewEvent {
        event_type: "StockChanged".into(),
        version: 1,
        payload: format!("{{\"location_id\":1,\"in_stock\":{n},\"committed\":0}}"),
        meta: EventMeta::root(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
    }
}

fn at(min: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

async fn appends_are_read_back_in_order(store: Arc<dyn EventStore>) {
    let c = store
        .commit(UnitOfWork::append(
            "sku-a",
            Expected::Seq(0),
            vec![ev(1), ev(2)],
        ))
        .await
        .unwrap();
    assert_eq!(
        c.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    store
        .commit(UnitOfWork::append("sku-b", Expected::Seq(0), vec![ev(3)]))
        .await
        .unwrap();
    store
        .commit(UnitOfWork::append("sku-a", Expected::Seq(2), vec![ev(4)]))
        .await
        .unwrap();
    let a = store.read_stream("sku-a", 0).unwrap();
    assert_eq!(a.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(a[2].payload, ev(4).payload);
    assert_eq!(store.read_stream("sku-a", 2).unwrap().len(), 1);
    let all = store.read_all(0, 100).unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(all[2].stream, "sku-b");
    assert_eq!(store.read_all(2, 1).unwrap()[0].position, 3);
    assert_eq!(store.head(), 4);
    assert_eq!(store.stream_seq("sku-a").unwrap(), 3);
    assert_eq!(store.streams().unwrap(), vec!["sku-a", "sku-b"]);
    assert_eq!(
        all[0].meta, c.events[0].meta,
        "metadata survives the round trip"
    );
}

async fn a_stale_expectation_is_a_conflict(store: Arc<dyn EventStore>) {
    store
        .commit(UnitOfWork::append("sku-a", Expected::Seq(0), vec![ev(1)]))
        .await
        .unwrap();
    let err = store
        .commit(UnitOfWork::append("sku-a", Expected::Seq(0), vec![ev(2)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.stream_seq("sku-a").unwrap(), 1);
}

async fn a_unit_is_all_or_nothing(store: Arc<dyn EventStore>) {
    store
        .commit(UnitOfWork::append("sku-b", Expected::Seq(0), vec![ev(1)]))
        .await
        .unwrap();
    let mut unit = UnitOfWork::append("sku-a", Expected::Seq(0), vec![ev(1)]);
    unit.appends.push(tks::store::StreamAppend {
        stream: "sku-b".into(),
        expected: Expected::Seq(0),
        events: vec![ev(2)],
    });
    unit.arm_timers.push(Timer {
        stream: "sku-a".into(),
        kind: "flush".into(),
        due_at: at(60),
    });
    unit.checkpoint = Some(("sub".into(), 9));
    assert!(store.commit(unit).await.is_err());
    assert_eq!(store.stream_seq("sku-a").unwrap(), 0);
    assert_eq!(store.timer_count().unwrap(), 0);
    assert_eq!(store.checkpoint("sub").unwrap(), 0);
}

async fn a_duplicate_delivery_writes_nothing(store: Arc<dyn EventStore>) {
    let delivery = |n| {
        let mut u = UnitOfWork::append("order-1", Expected::Any, vec![ev(n)]);
        u.inbox = Some(InboxEntry {
            source: "tiktok".into(),
            delivery_id: "n-1".into(),
            received_at: at(0),
            payload: "{}".into(),
        });
        u
    };
    store.commit(delivery(1)).await.unwrap();
    let err = store.commit(delivery(2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err}");
    assert_eq!(store.stream_seq("order-1").unwrap(), 1);
    assert!(store.inbox_contains("tiktok", "n-1").unwrap());
    assert!(!store.inbox_contains("katana", "n-1").unwrap());
}

async fn timers_are_armed_replaced_and_disarmed(store: Arc<dyn EventStore>) {
    let arm = |stream: &str, kind: &str, min| UnitOfWork {
        arm_timers: vec![Timer {
            stream: stream.into(),
            kind: kind.into(),
            due_at: at(min),
        }],
        ..Default::default()
    };
    let watch = store.watch_timers();
    store.commit(arm("order-1", "hold", 60)).await.unwrap();
    assert!(watch.has_changed().unwrap());
    store.commit(arm("order-2", "hold", 30)).await.unwrap();
    // Arming the same timer again replaces it: still one row.
    store.commit(arm("order-1", "hold", 90)).await.unwrap();
    assert_eq!(store.timer_count().unwrap(), 2);
    assert_eq!(store.next_timer_due().unwrap(), Some(at(30)));
    assert!(store.due_timers(at(29), 10).unwrap().is_empty());
    let due = store.due_timers(at(90), 10).unwrap();
    assert_eq!(
        due.iter().map(|t| t.stream.as_str()).collect::<Vec<_>>(),
        vec!["order-2", "order-1"]
    );
    store
        .commit(UnitOfWork {
            disarm_timers: vec![due[0].id()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.timer_count().unwrap(), 1);
}

async fn checkpoints_only_move_forward_and_snapshots_are_replaced(store: Arc<dyn EventStore>) {
    for pos in [5, 3, 8] {
        store
            .commit(UnitOfWork {
                checkpoint: Some(("feed".into(), pos)),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    assert_eq!(store.checkpoint("feed").unwrap(), 8);
    for seq in [1, 2] {
        store
            .commit(UnitOfWork {
                snapshot: Some(Snapshot {
                    stream: "sku-a".into(),
                    seq,
                    state_version: 1,
                    state: format!("{{\"n\":{seq}}}"),
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    assert_eq!(store.load_snapshot("sku-a").unwrap().unwrap().seq, 2);
    assert_eq!(store.all_snapshots().unwrap().len(), 1);
}

async fn racing_writers_never_share_a_sequence_number(store: Arc<dyn EventStore>) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = 0;
            for _ in 0..20 {
                let seq = store.stream_seq("sku-hot").unwrap();
                if store
                    .commit(UnitOfWork::append(
                        "sku-hot",
                        Expected::Seq(seq),
                        vec![ev(1)],
                    ))
                    .await
                    .is_ok()
                {
                    won += 1;
                }
            }
            won
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += t.await.unwrap();
    }
    let events = store.read_stream("sku-hot", 0).unwrap();
    assert_eq!(events.len(), won);
    assert!(events
        .iter()
        .enumerate()
        .all(|(i, e)| e.seq == i as u64 + 1));
}

async fn the_head_watch_wakes_on_commit(store: Arc<dyn EventStore>) {
    let mut head = store.watch_head();
    let s = store.clone();
    tokio::spawn(async move {
        s.commit(UnitOfWork::append("sku-a", Expected::Seq(0), vec![ev(1)]))
            .await
            .unwrap();
    });
    tokio::time::timeout(std::time::Duration::from_secs(5), head.changed())
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(*head.borrow(), 1);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(std::sync::Arc::new(tks::store::MemoryStore::new())).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = tks::store::SqliteStore::open(dir.path().join("t.db")).unwrap();
                    super::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

contract!(
    appends_are_read_back_in_order,
    a_stale_expectation_is_a_conflict,
    a_unit_is_all_or_nothing,
    a_duplicate_delivery_writes_nothing,
    timers_are_armed_replaced_and_disarmed,
    checkpoints_only_move_forward_and_snapshots_are_replaced,
    racing_writers_never_share_a_sequence_number,
    the_head_watch_wakes_on_commit,
);

#[tokio::test]
async fn a_reopened_sqlite_store_has_everything_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        for i in 0..10 {
            store
                .commit(UnitOfWork::append(
                    "sku-a",
                    Expected::Seq(i),
                    vec![ev(i as u32)],
                ))
                .await
                .unwrap();
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.head(), 10);
    assert_eq!(store.stream_seq("sku-a").unwrap(), 10);
}
