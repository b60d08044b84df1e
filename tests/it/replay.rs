//! Replay tools over logs written with the real aggregates: timeline, time travel,
//! JSONL captures (library and CLI), foreign files, what-if and the golden logs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use tks::config::{BufferMode, FbtMode};
use tks::domain::observed::{
    Address, FulfillmentType, KatanaFulfillment, LineUnit, OrderSnapshot, Quantity, StockLevel,
    TikTokOrderStatus,
};
use tks::domain::order::{CreatedRow, Order, OrderCommand, Source};
use tks::domain::sku::{Sku, SkuCommand};
use tks::domain::{Aggregate, Ctx, DomainEvent, Policy};
use tks::replay::capture::{self, CaptureError, Selection};
use tks::replay::source::{self, LogKind, SourceError};
use tks::replay::timeline::{self, Kind};
use tks::replay::travel::{self, At, TravelError};
use tks::replay::whatif::{self, Proposal};
use tks::replay::{order_stream, rebuild, sku_stream, Rebuilt, StreamState};
use tks::store::{
    EventMeta, EventStore, Expected, NewEvent, RecordedEvent, SqliteStore, UnitOfWork,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

/// `m` minutes (and `s` seconds) after t0.
fn at(m: i64, s: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(m) + chrono::Duration::seconds(s)
}

/// Writes a log the way the live actors do: `decide` on the current state, append
/// with the expected sequence number, then `apply`. Event ids are deterministic so
/// the golden logs are reproducible byte for byte.
struct LogBuilder {
    store: SqliteStore,
    path: PathBuf,
    _dir: tempfile::TempDir,
    policy: Policy,
    orders: HashMap<String, (Order, u64)>,
    skus: HashMap<String, (Sku, u64)>,
    others: HashMap<String, u64>,
    next_id: u128,
}

impl LogBuilder {
    fn new(policy: Policy) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tks.db");
        LogBuilder {
            store: SqliteStore::open(&path).unwrap(),
            path,
            _dir: dir,
            policy,
            orders: HashMap::new(),
            skus: HashMap::new(),
            others: HashMap::new(),
            next_id: 0,
        }
    }

    fn meta(&mut self, t: DateTime<Utc>, cause: Option<&EventMeta>) -> EventMeta {
        self.next_id += 1;
        let id = Uuid::from_u128(self.next_id);
        EventMeta {
            event_id: id,
            correlation_id: cause.map_or(id, |c| c.correlation_id),
            causation_id: cause.map(|c| c.event_id),
            recorded_at: t,
        }
    }

    async fn append(
        &mut self,
        stream: String,
        seq: u64,
        events: Vec<(String, u32, String)>,
        t: DateTime<Utc>,
        cause: Option<&EventMeta>,
    ) -> Vec<RecordedEvent> {
        if events.is_empty() {
            return vec![];
        }
        let new = events
            .into_iter()
            .map(|(event_type, version, payload)| NewEvent {
                event_type,
                version,
                payload,
                meta: self.meta(t, cause),
            })
            .collect();
        self.store
            .commit(UnitOfWork::append(stream, Expected::Seq(seq), new))
            .await
            .unwrap()
            .events
    }

    async fn order(
        &mut self,
        id: &str,
        cmd: OrderCommand,
        t: DateTime<Utc>,
        cause: Option<&EventMeta>,
    ) -> Vec<RecordedEvent> {
        let (state, seq) = self.orders.remove(id).unwrap_or_default();
        let events = state
            .decide(
                &cmd,
                &Ctx {
                    now: t,
                    policy: &self.policy,
                },
            )
            .unwrap();
        let mut next = state;
        for e in &events {
            next.apply(e);
        }
        let encoded = events
            .iter()
            .map(|e| (e.event_type().to_string(), e.version(), e.encode()))
            .collect();
        let recorded = self.append(order_stream(id), seq, encoded, t, cause).await;
        self.orders
            .insert(id.to_string(), (next, seq + recorded.len() as u64));
        recorded
    }

    async fn sku(
        &mut self,
        sku: &str,
        cmd: SkuCommand,
        t: DateTime<Utc>,
        cause: Option<&EventMeta>,
    ) -> Vec<RecordedEvent> {
        let (state, seq) = self.skus.remove(sku).unwrap_or_default();
        let events = state
            .decide(
                &cmd,
                &Ctx {
                    now: t,
                    policy: &self.policy,
                },
            )
            .unwrap();
        let mut next = state;
        for e in &events {
            next.apply(e);
        }
        let encoded = events
            .iter()
            .map(|e| (e.event_type().to_string(), e.version(), e.encode()))
            .collect();
        let recorded = self.append(sku_stream(sku), seq, encoded, t, cause).await;
        self.skus
            .insert(sku.to_string(), (next, seq + recorded.len() as u64));
        recorded
    }

    /// An event of a kind this build's aggregates do not know (a connector's call
    /// record, say), in a stream of its own.
    async fn other(
        &mut self,
        stream: &str,
        event_type: &str,
        payload: Value,
        t: DateTime<Utc>,
        cause: Option<&EventMeta>,
    ) -> RecordedEvent {
        let seq = self.others.get(stream).copied().unwrap_or(0);
        let rec = self
            .append(
                stream.to_string(),
                seq,
                vec![(event_type.to_string(), 1, payload.to_string())],
                t,
                cause,
            )
            .await;
        self.others.insert(stream.to_string(), seq + 1);
        rec.into_iter().next().unwrap()
    }

    /// The service's demand glue: units of `order` not yet in Katana, per SKU.
    async fn sync_demand(&mut self, order: &str, t: DateTime<Utc>, cause: &EventMeta) {
        let pending = self.orders[order].0.pending_units();
        for sku in ["A", "B"] {
            let units = pending.get(sku).copied().unwrap_or(0);
            self.sku(
                sku,
                SkuCommand::SetDemand {
                    order_id: order.into(),
                    units,
                    shop: String::new(),
                },
                t,
                Some(cause),
            )
            .await;
        }
    }

    /// The service's flush glue: flush when the window is due, then record the push.
    async fn flush(&mut self, sku: &str, t: DateTime<Utc>) {
        let flushed = self.sku(sku, SkuCommand::FlushBuffer, t, None).await;
        if let Some(f) = flushed.iter().find(|e| e.event_type == "BufferFlushed") {
            let atp = serde_json::from_str::<Value>(&f.payload).unwrap()["atp"]
                .as_i64()
                .unwrap();
            let meta = f.meta.clone();
            self.sku(
                sku,
                SkuCommand::RecordInventoryPushed {
                    quantity: atp,
                    shop: String::new(),
                },
                t + chrono::Duration::seconds(1),
                Some(&meta),
            )
            .await;
        }
    }

    async fn stock(
        &mut self,
        sku: &str,
        variant: i64,
        in_stock: i64,
        committed: i64,
        t: DateTime<Utc>,
    ) {
        self.sku(
            sku,
            SkuCommand::ObserveStock(vec![StockLevel {
                variant_id: variant,
                location_id: 1,
                in_stock: Quantity::from_units(in_stock),
                committed: Quantity::from_units(committed),
            }]),
            t,
            None,
        )
        .await;
    }

    /// Hold expiry as the service runs it: the timer's decision, a re-read of the
    /// order, then (when a sales order was requested) Katana's answer.
    /// With `connector`, the Katana call is recorded too and the creation is caused
    /// by it, as the connector will record it.
    async fn expire_and_push(
        &mut self,
        id: &str,
        snap: &OrderSnapshot,
        t: DateTime<Utc>,
        so_id: i64,
        connector: bool,
    ) -> Vec<RecordedEvent> {
        let placed = self.first_meta(id);
        let mut all = self
            .order(id, OrderCommand::ExpireHold, t, Some(&placed))
            .await;
        let expired = all.last().unwrap().meta.clone();
        let reread = self
            .order(
                id,
                OrderCommand::observe(snap.clone(), Source::Poll),
                t,
                Some(&expired),
            )
            .await;
        all.extend(reread.clone());
        if let Some(req) = reread.iter().find(|e| e.event_type == "SoRequested") {
            let mut req_meta = req.meta.clone();
            if connector {
                req_meta = self
                    .other(
                        "katana-calls",
                        "KatanaCallMade",
                        json!({"method": "POST", "path": "/sales_orders", "status": 200, "order_id": id}),
                        t + chrono::Duration::seconds(1),
                        Some(&req_meta),
                    )
                    .await
                    .meta;
            }
            let created = self
                .order(
                    id,
                    OrderCommand::RecordSoCreated {
                        so_id,
                        order_no: format!("TT-{id}"),
                        rows: snap.units.iter().filter(|u| !u.cancelled).fold(
                            Vec::<CreatedRow>::new(),
                            |mut rows, u| {
                                match rows.iter_mut().find(|r| r.seller_sku == u.seller_sku) {
                                    Some(r) => r.quantity += 1,
                                    None => rows.push(CreatedRow {
                                        row_id: so_id * 10 + rows.len() as i64,
                                        seller_sku: u.seller_sku.clone(),
                                        quantity: 1,
                                    }),
                                }
                                rows
                            },
                        ),
                    },
                    t + chrono::Duration::seconds(2),
                    Some(&req_meta),
                )
                .await;
            let created_meta = created[0].meta.clone();
            self.sync_demand(id, t + chrono::Duration::seconds(2), &created_meta)
                .await;
            all.extend(created);
        }
        all
    }

    fn first_meta(&self, id: &str) -> EventMeta {
        self.store.read_stream(&order_stream(id), 0).unwrap()[0]
            .meta
            .clone()
    }
}

fn unit(id: &str, sku: &str) -> LineUnit {
    LineUnit {
        line_item_id: id.into(),
        sku_id: format!("sku-id-{sku}"),
        seller_sku: sku.into(),
        sale_price: "12.50".into(),
        cancelled: false,
        shipped: false,
    }
}

fn snapshot(id: &str, units: &[(&str, &str)], created: DateTime<Utc>) -> OrderSnapshot {
    OrderSnapshot {
        shop_id: String::new(),
        order_id: id.into(),
        status: TikTokOrderStatus::AwaitingShipment,
        fulfillment_type: FulfillmentType::FulfillmentBySeller,
        shipping_type: Default::default(),
        create_time: created,
        update_time: created,
        currency: "USD".into(),
        warehouse_id: Some("WH1".into()),
        recipient: Some(Address {
            name: "Grace Hopper".into(),
            line_1: "2 Navy Way".into(),
            city: "Arlington".into(),
            zip: "22201".into(),
            country: "US".into(),
            ..Default::default()
        }),
        buyer_email: None,
        units: units.iter().map(|(u, s)| unit(u, s)).collect(),
    }
}

fn recorded_policy() -> Policy {
    Policy {
        order_hold: Duration::from_secs(3600),
        inventory_buffer: Duration::from_secs(3600),
        buffer_mode: BufferMode::All,
        safety_stock: 0,
        fbt_orders: FbtMode::Skip,
        ..Policy::default()
    }
}

/// Two SKUs, two orders. Order 1001 (A, A, B) is placed at 12:00, loses one A in
/// an edit at 12:20 and is pushed at hold expiry (13:00); order 1002 (A) is placed
/// at 12:05 and cancelled at 13:05. Stock of A falls from 10 to 4 at 13:10 while the
/// buffer holds TikTok at 8 until 14:00: an oversell window under these settings.
/// With `connector`, webhook deliveries and a Katana call are recorded too, in
/// streams of their own, as the service's connectors will.
async fn scenario(connector: bool) -> LogBuilder {
    let mut b = LogBuilder::new(recorded_policy());
    b.sku(
        "A",
        SkuCommand::MapVariant { variant_id: 11 },
        at(0, 0),
        None,
    )
    .await;
    b.stock("A", 11, 10, 0, at(0, 0)).await;
    b.sku(
        "B",
        SkuCommand::MapVariant { variant_id: 12 },
        at(0, 0),
        None,
    )
    .await;
    b.stock("B", 12, 5, 0, at(0, 0)).await;

    let placed = snapshot("1001", &[("1", "A"), ("2", "A"), ("3", "B")], at(0, 0));
    let webhook = if connector {
        Some(
            b.other(
                "tiktok-webhooks",
                "TikTokWebhookReceived",
                json!({"delivery_id": "d-1", "topic": "ORDER_STATUS_CHANGE"}),
                at(0, 30),
                None,
            )
            .await
            .meta,
        )
    } else {
        None
    };
    let e = b
        .order(
            "1001",
            OrderCommand::observe(placed.clone(), Source::Poll),
            at(0, 30),
            webhook.as_ref(),
        )
        .await;
    let m = e[0].meta.clone();
    b.sync_demand("1001", at(0, 30), &m).await;

    let other = snapshot("1002", &[("9", "A")], at(5, 0));
    let e = b
        .order(
            "1002",
            OrderCommand::observe(other.clone(), Source::Poll),
            at(5, 0),
            None,
        )
        .await;
    let m = e[0].meta.clone();
    b.sync_demand("1002", at(5, 0), &m).await;

    let mut edited = placed.clone();
    edited.update_time = at(20, 0);
    edited.units[1].cancelled = true;
    let e = b
        .order(
            "1001",
            OrderCommand::observe(edited.clone(), Source::Poll),
            at(20, 0),
            None,
        )
        .await;
    let m = e[0].meta.clone();
    b.sync_demand("1001", at(20, 0), &m).await;

    b.flush("A", at(60, 0)).await;
    b.flush("B", at(60, 0)).await;
    b.expire_and_push("1001", &edited, at(60, 0), 501, connector)
        .await;
    b.stock("A", 11, 10, 1, at(61, 0)).await;
    b.stock("B", 12, 5, 1, at(61, 0)).await;

    let mut cancelled = other.clone();
    cancelled.update_time = at(65, 0);
    cancelled.status = TikTokOrderStatus::Cancelled;
    let e = b
        .order(
            "1002",
            OrderCommand::observe(cancelled, Source::Poll),
            at(65, 0),
            None,
        )
        .await;
    let m = e[0].meta.clone();
    b.sync_demand("1002", at(65, 0), &m).await;

    b.stock("A", 11, 4, 1, at(70, 0)).await;
    b.flush("A", at(120, 30)).await;
    b.flush("B", at(120, 30)).await;
    b
}

/// Every event type of this build at least once: an FBT order skipped, an order
/// whose first create fails and which is then delivered in two parts and shipped
/// on TikTok, and a SKU taken out of inventory sync and back.
async fn every_event_type() -> LogBuilder {
    let mut b = LogBuilder::new(recorded_policy());
    b.sku(
        "A",
        SkuCommand::MapVariant { variant_id: 11 },
        at(0, 0),
        None,
    )
    .await;
    b.stock("A", 11, 20, 0, at(0, 0)).await;
    b.sku(
        "A",
        SkuCommand::ToggleSync { enabled: false },
        at(1, 0),
        None,
    )
    .await;
    b.sku(
        "A",
        SkuCommand::ToggleSync { enabled: true },
        at(2, 0),
        None,
    )
    .await;

    let mut fbt = snapshot("2001", &[("1", "A")], at(0, 0));
    fbt.fulfillment_type = FulfillmentType::FulfillmentByTiktok;
    b.order(
        "2001",
        OrderCommand::observe(fbt, Source::Poll),
        at(0, 0),
        None,
    )
    .await;

    let snap = snapshot("2002", &[("1", "A"), ("2", "A")], at(0, 0));
    b.order(
        "2002",
        OrderCommand::observe(snap.clone(), Source::Poll),
        at(0, 0),
        None,
    )
    .await;
    b.order("2002", OrderCommand::ExpireHold, at(60, 0), None)
        .await;
    b.order(
        "2002",
        OrderCommand::observe(snap.clone(), Source::Poll),
        at(60, 0),
        None,
    )
    .await;
    b.order(
        "2002",
        OrderCommand::RecordSoCreateFailed {
            reason: "HTTP 503 from Katana".into(),
            retryable: true,
        },
        at(60, 5),
        None,
    )
    .await;
    b.order(
        "2002",
        OrderCommand::RecordSoCreated {
            so_id: 77,
            order_no: "TT-2002".into(),
            rows: vec![CreatedRow {
                row_id: 770,
                seller_sku: "A".into(),
                quantity: 2,
            }],
        },
        at(61, 0),
        None,
    )
    .await;
    let delivery = |id: i64, units: i64| KatanaFulfillment {
        fulfillment_id: id,
        status: "DELIVERED".into(),
        tracking_number: Some(format!("1Z{id}")),
        tracking_url: None,
        tracking_carrier: Some("UPS".into()),
        rows: vec![(770, Quantity::from_units(units))],
    };
    b.order(
        "2002",
        OrderCommand::ObserveFulfillments(vec![delivery(1, 1)]),
        at(90, 0),
        None,
    )
    .await;
    b.order(
        "2002",
        OrderCommand::RecordFulfillmentPushed {
            with_fulfillment_ids: vec![],
            fulfillment_id: 1,
            package_id: "PKG-1".into(),
        },
        at(91, 0),
        None,
    )
    .await;
    b.order(
        "2002",
        OrderCommand::ObserveFulfillments(vec![delivery(1, 1), delivery(2, 1)]),
        at(120, 0),
        None,
    )
    .await;
    b.flush("A", at(62, 0)).await;
    b.stock("A", 11, 20, 2, at(63, 0)).await;
    b.flush("A", at(125, 0)).await;
    b
}

fn fold(store: &dyn EventStore) -> Rebuilt {
    rebuild(store, &[], |_| {}).unwrap()
}

fn snapshot_of(p: &travel::PointInTime) -> OrderSnapshot {
    match &p.state {
        StreamState::Order(o) => o.snapshot.clone().expect("placed"),
        StreamState::Sku(_) => panic!("not an order"),
    }
}

#[tokio::test]
async fn state_at_a_time_before_and_after_an_edit_differs_as_expected() {
    let b = scenario(false).await;
    let stream = order_stream("1001");
    let before = travel::state_at(&b.store, &stream, At::Time(at(10, 0))).unwrap();
    let after = travel::state_at(&b.store, &stream, At::Time(at(30, 0))).unwrap();
    let units = |p: &travel::PointInTime| -> Vec<bool> {
        snapshot_of(p).units.iter().map(|u| u.cancelled).collect()
    };
    assert_eq!(units(&before), vec![false, false, false]);
    assert_eq!(units(&after), vec![false, true, false]);
    assert_eq!((before.seq, after.seq), (1, 2));
    assert_ne!(before.hash, after.hash);

    // By log position: the edit's own position is the first to show it.
    let events = b.store.read_stream(&stream, 0).unwrap();
    let edit_pos = events[1].position;
    let just_before = travel::state_at(&b.store, &stream, At::Position(edit_pos - 1)).unwrap();
    let at_edit = travel::state_at(&b.store, &stream, At::Position(edit_pos)).unwrap();
    assert_eq!(just_before.hash, before.hash);
    assert_eq!(at_edit.hash, after.hash);

    // Before the order existed: the initial state, not an error.
    let earlier = travel::state_at(&b.store, &stream, At::Time(at(-5, 0))).unwrap();
    assert_eq!(earlier.seq, 0);
    assert_eq!(earlier.state, StreamState::Order(Box::default()));

    // At the end it is exactly what a full rebuild gives.
    let end = travel::state_at(&b.store, &stream, At::Position(u64::MAX)).unwrap();
    assert_eq!(fold(&b.store).streams[&stream].1, end.hash);

    // A SKU travels too: ATP inputs before and after the stock drop at 13:10.
    let sku = sku_stream("A");
    let stock = |m| match travel::state_at(&b.store, &sku, At::Time(at(m, 0)))
        .unwrap()
        .state
    {
        StreamState::Sku(s) => s.locations[&1].in_stock,
        StreamState::Order(_) => panic!("not a sku"),
    };
    assert_eq!(stock(69), Quantity::from_units(10));
    assert_eq!(stock(71), Quantity::from_units(4));

    assert!(matches!(
        travel::state_at(&b.store, &order_stream("nope"), At::Position(1)),
        Err(TravelError::NoSuchStream(_))
    ));
    assert!(matches!(
        travel::state_at(&b.store, "invoice-7", At::Position(1)),
        Err(TravelError::UnknownKind(_))
    ));
}

#[tokio::test]
async fn a_jsonl_capture_rebuilds_to_the_same_hashes_as_the_database() {
    let b = scenario(false).await;
    let db = fold(&b.store);
    assert!(db.problems.is_empty(), "{:?}", db.problems);
    let dir = tempfile::tempdir().unwrap();

    // Everything since the first event: the whole log, the same total hash.
    let all = dir.path().join("all.jsonl");
    let mut out = std::fs::File::create(&all).unwrap();
    let header = capture::write_capture(
        &b.store,
        &Selection::Since(at(-1, 0)),
        &mut out,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(header.events, b.store.head());
    let log = source::open(&all, &mut |_, _| {}).unwrap();
    assert_eq!(log.kind, LogKind::Capture);
    let replayed = fold(log.store());
    assert!(replayed.problems.is_empty(), "{:?}", replayed.problems);
    assert_eq!(replayed.total_hash, db.total_hash);
    assert_eq!(replayed.streams, db.streams);
    // Positions survive the trip, so time travel by position agrees too.
    let stream = order_stream("1001");
    let pos = b.store.read_stream(&stream, 0).unwrap()[1].position;
    assert_eq!(
        travel::state_at(log.store(), &stream, At::Position(pos))
            .unwrap()
            .hash,
        travel::state_at(&b.store, &stream, At::Position(pos))
            .unwrap()
            .hash
    );

    // One order: its stream and the SKU streams its story touches, each whole.
    let one = dir.path().join("order.jsonl");
    let mut out = std::fs::File::create(&one).unwrap();
    let header = capture::write_capture(
        &b.store,
        &Selection::Order("1001".into()),
        &mut out,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        header.streams,
        vec![order_stream("1001"), sku_stream("A"), sku_stream("B")]
    );
    let log = source::open(&one, &mut |_, _| {}).unwrap();
    let replayed = fold(log.store());
    assert!(replayed.problems.is_empty(), "{:?}", replayed.problems);
    for s in &header.streams {
        assert_eq!(replayed.streams[s], db.streams[s], "{s}");
    }
    assert!(!replayed.streams.contains_key(&order_stream("1002")));

    // The header carries the versions of the build that wrote it.
    let first_line = std::fs::read_to_string(&one).unwrap();
    let header_json: Value = serde_json::from_str(first_line.lines().next().unwrap()).unwrap();
    assert_eq!(header_json["format"], "tks-capture");
    assert_eq!(header_json["schema_version"], tks::store::SCHEMA_VERSION);
    assert_eq!(header_json["event_versions"]["OrderPlaced"], 2);
}

fn bin(name: &str) -> Command {
    let path = match name {
        "tks" => env!("CARGO_BIN_EXE_tks"),
        _ => env!("CARGO_BIN_EXE_tks-replay"),
    };
    let mut c = Command::new(path);
    c.env("RUST_LOG", "error");
    c
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn total_hash(rebuild_output: &str) -> String {
    rebuild_output
        .lines()
        .last()
        .and_then(|l| l.split("total_hash=").nth(1))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_cli_captures_and_replays_on_another_machine() {
    let b = scenario(false).await;
    drop(b.store);
    let dir = tempfile::tempdir().unwrap();
    // "Another machine": the capture is copied somewhere else and the database is
    // gone when it is replayed.
    let capture = dir.path().join("since.jsonl");
    run_ok(
        bin("tks")
            .args(["capture", "--since", "2026-01-01T11:00:00Z", "--db"])
            .arg(&b.path)
            .arg("--out")
            .arg(&capture),
    );
    let order = dir.path().join("order.jsonl");
    run_ok(
        bin("tks")
            .args(["capture", "order", "1001", "--db"])
            .arg(&b.path)
            .arg("--out")
            .arg(&order),
    );
    let from_db = run_ok(bin("tks-replay").args(["rebuild", "--db"]).arg(&b.path));
    std::fs::remove_file(&b.path).unwrap();

    let from_capture = run_ok(bin("tks-replay").args(["rebuild", "--log"]).arg(&capture));
    assert_eq!(total_hash(&from_capture), total_hash(&from_db));
    assert_eq!(from_capture, from_db);
    let verify = run_ok(bin("tks-replay").args(["verify", "--db"]).arg(&order));
    assert!(verify.contains("verified"), "{verify}");

    let state = run_ok(
        bin("tks-replay")
            .args([
                "state",
                "order",
                "1001",
                "--at",
                "2026-01-01T12:30:00Z",
                "--json",
                "--db",
            ])
            .arg(&order),
    );
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["seq"], 2);
    assert_eq!(state["state"]["snapshot"]["units"][1]["cancelled"], true);

    let timeline = run_ok(
        bin("tks-replay")
            .args(["timeline", "order", "1001", "--db"])
            .arg(&order),
    );
    assert!(timeline.contains("OrderPlaced v2"), "{timeline}");
    assert!(
        timeline.contains("sales order requested: A×1, B×1"),
        "{timeline}"
    );

    let what_if = run_ok(
        bin("tks-replay")
            .args([
                "what-if",
                "--order-hold",
                "0s",
                "--buffer-mode",
                "increases_only",
                "--db",
            ])
            .arg(&capture),
    );
    assert!(
        what_if.contains("1001: recorded 2026-01-01T13:00:00Z, proposed 2026-01-01T12:00:30Z"),
        "{what_if}"
    );

    // Errors are clear and exit non-zero.
    let out = bin("tks-replay")
        .args(["state", "order", "1001", "--at", "yesterday", "--db"])
        .arg(&order)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    let out = bin("tks")
        .args(["capture", "order", "1001", "--db"])
        .arg(dir.path().join("missing.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such database"));
}

#[tokio::test]
async fn the_timeline_tells_the_causal_story_of_an_order() {
    let b = scenario(true).await;
    let t = timeline::timeline(&b.store, &order_stream("1001"), &mut |_| {}).unwrap();
    let types: Vec<(&str, &str)> = t
        .entries
        .iter()
        .map(|e| (e.stream.as_str(), e.event_type.as_str()))
        .collect();
    // Oldest first, by log position.
    assert!(t.entries.windows(2).all(|w| w[0].position < w[1].position));
    // The webhook that caused the placement, found by walking causation back.
    assert_eq!(types[0], ("tiktok-webhooks", "TikTokWebhookReceived"));
    assert_eq!(types[1], ("order-1001", "OrderPlaced"));
    for expected in [
        ("sku-A", "DemandChanged"),
        ("order-1001", "OrderEdited"),
        ("order-1001", "HoldExpired"),
        ("order-1001", "SoRequested"),
        ("katana-calls", "KatanaCallMade"),
        ("order-1001", "SoCreated"),
    ] {
        assert!(
            types.contains(&expected),
            "{expected:?} missing from {types:?}"
        );
    }
    // Another order's events (even DemandChanged on the same SKU) are not its story.
    assert!(t
        .entries
        .iter()
        .all(|e| !e.payload.to_string().contains("\"1002\"") && e.stream != order_stream("1002")));

    let entry = |ty: &str| t.entries.iter().find(|e| e.event_type == ty).unwrap();
    assert_eq!(entry("OrderPlaced").kind, Kind::Observation);
    assert_eq!(entry("HoldExpired").kind, Kind::Decision);
    assert_eq!(entry("SoCreated").kind, Kind::Outbound);
    assert_eq!(entry("KatanaCallMade").kind, Kind::Outbound);
    assert_eq!(
        entry("OrderPlaced").summary,
        "placed, AWAITING_SHIPMENT, 3 unit(s) (A×2, B×1); hold until 2026-01-01T13:00:00Z"
    );
    assert!(entry("OrderEdited")
        .summary
        .contains("unit 2 (A) cancelled"));
    // An unknown type still gets a summary, generically from its payload.
    assert_eq!(
        entry("KatanaCallMade").summary,
        "method=POST, order_id=1001, path=/sales_orders, status=200"
    );
    // Causation is carried: the call was caused by the request, the creation by the call.
    assert_eq!(
        entry("KatanaCallMade").causation_id,
        Some(entry("SoRequested").event_id)
    );
    assert_eq!(
        entry("SoCreated").causation_id,
        Some(entry("KatanaCallMade").event_id)
    );
    assert_eq!(
        entry("OrderPlaced").correlation_id,
        entry("TikTokWebhookReceived").event_id
    );

    let text = t.to_string();
    assert!(text.starts_with("order-1001: "), "{text}");
    assert!(text.contains("caused by"), "{text}");
    let json = serde_json::to_value(&t).unwrap();
    let first = &json["entries"][1];
    for key in [
        "position",
        "recorded_at",
        "correlation_id",
        "causation_id",
        "kind",
        "summary",
        "payload",
    ] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }

    // A SKU's timeline: its observations, decisions and pushes.
    let t = timeline::timeline(&b.store, &sku_stream("A"), &mut |_| {}).unwrap();
    let summaries: Vec<&str> = t.entries.iter().map(|e| e.summary.as_str()).collect();
    assert!(
        summaries.contains(&"Katana location 1: in stock 4, committed 1"),
        "{summaries:?}"
    );
    assert!(
        summaries.contains(&"ATP 8 to push at the end of the buffer"),
        "{summaries:?}"
    );
    assert!(
        summaries.contains(&"TikTok inventory set to 3"),
        "{summaries:?}"
    );

    assert!(
        timeline::timeline(&b.store, &order_stream("404"), &mut |_| {})
            .unwrap()
            .entries
            .is_empty()
    );
}

fn write(path: &Path, content: &[u8]) {
    std::fs::write(path, content).unwrap();
}

#[tokio::test]
async fn unreadable_and_foreign_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let err = |p: &Path| source::open(p, &mut |_, _| {}).err().unwrap();

    assert!(matches!(
        err(&dir.path().join("none.db")),
        SourceError::NotFound(_)
    ));
    assert!(matches!(err(dir.path()), SourceError::Directory(_)));
    let empty = dir.path().join("empty.db");
    write(&empty, b"");
    assert!(matches!(err(&empty), SourceError::Empty(_)));

    let text = dir.path().join("notes.txt");
    write(&text, b"hello, this is not a log\n");
    let e = err(&text).to_string();
    assert!(e.contains("not a tks log") && e.contains("neither"), "{e}");

    let json = dir.path().join("other.jsonl");
    write(&json, b"{\"level\":\"info\",\"msg\":\"hi\"}\n");
    let e = err(&json).to_string();
    assert!(e.contains("not a tks capture"), "{e}");

    // Another program's SQLite database is refused and left untouched.
    let foreign = dir.path().join("app.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")
            .unwrap();
    }
    let before = std::fs::read(&foreign).unwrap();
    let e = err(&foreign).to_string();
    assert!(e.contains("without the tks event tables"), "{e}");
    assert_eq!(std::fs::read(&foreign).unwrap(), before);

    // A database from a newer tks.
    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(matches!(
        err(&newer),
        SourceError::NewerSchema { found: 99, .. }
    ));

    // A capture cut short, a newer capture format, a garbled line.
    let b = scenario(false).await;
    let mut full = Vec::new();
    capture::write_capture(
        &b.store,
        &Selection::Sku("B".into()),
        &mut full,
        &mut |_| {},
    )
    .unwrap();
    let text = String::from_utf8(full).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = dir.path().join("cut.jsonl");
    write(
        &cut,
        (lines[..lines.len() - 2].join("\n") + "\n").as_bytes(),
    );
    assert!(matches!(
        err(&cut),
        SourceError::Capture(_, CaptureError::Truncated { .. })
    ));
    let newer = dir.path().join("newer.jsonl");
    write(
        &newer,
        text.replacen("\"format_version\":1", "\"format_version\":7", 1)
            .as_bytes(),
    );
    let e = err(&newer).to_string();
    assert!(e.contains("newer") && e.contains("upgrade"), "{e}");
    let garbled = dir.path().join("garbled.jsonl");
    write(
        &garbled,
        text.replacen("\"seq\":2", "\"seq\":\"two\"", 1).as_bytes(),
    );
    let e = err(&garbled).to_string();
    assert!(e.contains("line 3"), "{e}");
}

fn push_of(report: &whatif::Report, order: &str) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let o = report.orders.iter().find(|o| o.order_id == order).unwrap();
    (o.recorded_push, o.proposed_push)
}

#[tokio::test]
async fn what_if_with_a_zero_hold_pushes_earlier_than_with_sixty_minutes() {
    let b = scenario(false).await;
    let run = |p: Proposal| whatif::what_if(&b.store, &p, &mut |_| {}).unwrap();
    let zero = run(Proposal {
        order_hold: Some(Duration::ZERO),
        ..Proposal::default()
    });
    let sixty = run(Proposal {
        order_hold: Some(Duration::from_secs(3600)),
        ..Proposal::default()
    });
    let (recorded, proposed_zero) = push_of(&zero, "1001");
    let (_, proposed_sixty) = push_of(&sixty, "1001");
    assert_eq!(recorded, Some(at(60, 0)));
    assert_eq!(
        proposed_sixty,
        Some(at(60, 0)),
        "same settings, same push time"
    );
    // With no hold the order goes out as soon as it is observed, before the edit:
    // Katana would have received both units of A.
    assert_eq!(proposed_zero, Some(at(0, 30)));
    assert!(proposed_zero < proposed_sixty);
    // Order 1002 was cancelled after its hold: with 60m it was never pushed; with
    // no hold it would have been pushed at once (and cancelled after the push).
    assert_eq!(push_of(&sixty, "1002"), (None, None));
    assert_eq!(push_of(&zero, "1002"), (None, Some(at(5, 0))));
    let note = &sixty.orders[1].proposed_note;
    assert_eq!(note.as_deref(), Some("cancelled before the push"));
    assert_eq!(zero.recorded_calls.katana(), 2);
    assert_eq!(zero.proposed_calls.katana(), 4);

    // The settings the log shows were used are read back from it.
    assert_eq!(
        sixty.recorded_settings.order_hold,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(
        sixty.recorded_settings.inventory_buffer,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(sixty.recorded_settings.buffer_mode, Some(BufferMode::All));
    assert_eq!(sixty.recorded_settings.safety_stock, Some(0));
}

#[tokio::test]
async fn what_if_reports_inventory_pushes_and_oversell_windows_under_both_settings() {
    let b = scenario(false).await;
    let same = whatif::what_if(&b.store, &Proposal::default(), &mut |_| {}).unwrap();
    let a = |r: &whatif::Report| r.skus.iter().find(|s| s.sku == "A").unwrap().clone();
    let values = |p: &[whatif::Push]| p.iter().map(|p| p.quantity).collect::<Vec<_>>();

    // Recorded: 8 at 13:00, then 3 only at 14:00:30 although stock fell at 13:10.
    let rec = a(&same);
    assert_eq!(values(&rec.recorded_pushes), vec![8, 3]);
    assert_eq!(rec.recorded_oversell.len(), 1);
    let w = &rec.recorded_oversell[0];
    assert_eq!(
        (w.from, w.until, w.max_excess),
        (at(70, 0), Some(at(120, 30)), 5)
    );
    // The same settings re-run to the same values (times within Katana's latency).
    assert_eq!(values(&rec.proposed_pushes), vec![8, 3]);
    assert_eq!(rec.proposed_oversell.len(), 1);

    // increases_only pushes the decrease at once: no oversell window at all.
    let safe = whatif::what_if(
        &b.store,
        &Proposal {
            buffer_mode: Some(BufferMode::IncreasesOnly),
            inventory_buffer: Some(Duration::from_secs(15 * 60)),
            safety_stock: Some(2),
            ..Proposal::default()
        },
        &mut |_| {},
    )
    .unwrap();
    let s = a(&safe);
    assert!(s.proposed_oversell.is_empty(), "{:?}", s.proposed_oversell);
    assert_eq!(s.recorded_oversell, rec.recorded_oversell);
    let decrease = s
        .proposed_pushes
        .iter()
        .find(|p| p.at == at(70, 0))
        .expect("the decrease goes out at 13:10");
    assert_eq!(
        (decrease.quantity, decrease.immediate),
        (1, true),
        "ATP 3 less safety stock 2"
    );
    assert!(safe.proposed_calls.tiktok_inventory > safe.recorded_calls.tiktok_inventory);
    assert_eq!(safe.proposed.safety_stock, 2);

    let text = safe.to_string();
    assert!(text.contains("oversell windows"), "{text}");
    assert!(
        text.contains("recorded: 1 window(s), 50m 30s in all, up to 5 unit(s) too many"),
        "{text}"
    );
    let json = serde_json::to_value(&safe).unwrap();
    assert_eq!(json["proposed"]["buffer_mode"], "increases_only");
    assert_eq!(json["recorded_settings"]["order_hold"], "1h");
}

#[tokio::test]
async fn what_if_records_fbt_orders_as_done_only_once_tiktok_ships_them() {
    let mut b = LogBuilder::new(recorded_policy());
    let mut fbt = snapshot("3001", &[("1", "A")], at(0, 0));
    fbt.fulfillment_type = FulfillmentType::FulfillmentByTiktok;
    b.order(
        "3001",
        OrderCommand::observe(fbt.clone(), Source::Poll),
        at(0, 0),
        None,
    )
    .await;
    b.order("3001", OrderCommand::ExpireHold, at(60, 0), None)
        .await;
    let mut shipped = fbt.clone();
    shipped.update_time = at(90, 0);
    shipped.status = TikTokOrderStatus::InTransit;
    b.order(
        "3001",
        OrderCommand::observe(shipped, Source::Poll),
        at(90, 0),
        None,
    )
    .await;
    let r = whatif::what_if(
        &b.store,
        &Proposal {
            fbt_orders: Some(FbtMode::RecordAsDone),
            ..Proposal::default()
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.recorded_settings.fbt_orders, Some(FbtMode::Skip));
    let o = &r.orders[0];
    assert_eq!(o.recorded_push, None);
    assert_eq!(
        o.recorded_note.as_deref(),
        Some("fulfilled by TikTok: skipped")
    );
    assert_eq!(o.proposed_push, Some(at(90, 0)));
}

/// Golden logs: captures recorded with an earlier build that must keep decoding
/// and rebuilding to the hashes recorded next to them (`<name>.hashes` holds the
/// output of `tks-replay rebuild` at recording time). If a state's shape changed on
/// purpose (and its STATE_VERSION was bumped), re-record the hashes; if an event
/// changed, add an upcaster and keep the old log.
#[test]
fn golden_logs_keep_decoding_and_rebuilding_to_their_recorded_hashes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("hashes"))
            .unwrap_or_else(|_| panic!("{} has no .hashes file", path.display()));
        let log = source::open(&path, &mut |_, _| {}).unwrap();
        let r = fold(log.store());
        assert!(
            r.problems.is_empty(),
            "{}: {:?}",
            path.display(),
            r.problems
        );
        assert_eq!(
            r.hash_listing(),
            expected,
            "{} no longer rebuilds to its recorded hashes",
            path.display()
        );
        // Every event decodes with this build's codec (upcast where it is older).
        for e in log.store().read_all(0, usize::MAX).unwrap() {
            let mut state = StreamState::for_stream(&e.stream).unwrap();
            state.apply_recorded(&e.raw()).unwrap();
        }
        checked += 1;
    }
    assert!(checked >= 1, "no golden logs in {}", dir.display());
}

/// Records the two scenarios as golden logs into `tests/golden/` when
/// `TKS_RECORD_GOLDEN=1` (only ever for a new event version: existing golden logs
/// are history and stay as they are); always checks that what would be recorded is
/// a clean, complete capture.
#[tokio::test]
async fn the_golden_scenarios_are_clean_captures() {
    let scenarios = [
        ("v1-orders-and-skus", scenario(false).await),
        ("v1-every-event-type", every_event_type().await),
    ];
    for (name, b) in scenarios {
        let mut bytes = Vec::new();
        let header = capture::write_capture(
            &b.store,
            &Selection::Since(at(-1, 0)),
            &mut bytes,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(header.events, b.store.head(), "{name}");
        let (_, events) = capture::read_capture(&bytes[..], &mut |_| {}).unwrap();
        let normalised: Vec<RecordedEvent> = b
            .store
            .read_all(0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|mut e| {
                // The capture normalises payload JSON (key order); the meaning is equal.
                e.payload = serde_json::from_str::<Value>(&e.payload)
                    .unwrap()
                    .to_string();
                e
            })
            .collect();
        assert_eq!(events, normalised, "{name}");
        let r = fold(&b.store);
        assert!(r.problems.is_empty(), "{name}: {:?}", r.problems);
        if std::env::var("TKS_RECORD_GOLDEN").as_deref() == Ok("1") {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden")
                .join(format!("{name}.jsonl"));
            std::fs::write(&path, &bytes).unwrap();
            std::fs::write(path.with_extension("hashes"), r.hash_listing()).unwrap();
        }
    }
}

/// The path an evolved event takes: a payload of an older version is lifted step
/// by step by upcasters, then decoded as the current version. (No event has a v2
/// yet, so the chain here is a stand-in shaped like a real one: a renamed field and
/// an added one.)
#[test]
fn an_older_event_version_is_upcast_step_by_step_before_decoding() {
    use tks::domain::codec::{upcast, DecodeError, Upcaster};
    use tks::domain::sku::SkuEvent;

    const CHAIN: &[Upcaster] = &[
        Upcaster {
            event_type: "StockChanged",
            from: 1,
            lift: |mut v| {
                let m = v.as_object_mut().ok_or("not an object")?;
                let qty = m.remove("quantity").ok_or("no quantity")?;
                m.insert("in_stock".into(), qty);
                Ok(v)
            },
        },
        Upcaster {
            event_type: "StockChanged",
            from: 2,
            lift: |mut v| {
                let m = v.as_object_mut().ok_or("not an object")?;
                m.entry("committed").or_insert(json!(0));
                Ok(v)
            },
        },
    ];
    let old = r#"{"location_id": 4, "quantity": 700000}"#;
    let lifted = upcast(CHAIN, "StockChanged", 1, 3, old).unwrap();
    let event = SkuEvent::decode("StockChanged", 1, &lifted).unwrap();
    let SkuEvent::StockChanged(s) = event else {
        panic!("decoded as {event:?}")
    };
    assert_eq!(
        (s.location_id, s.in_stock, s.committed),
        (4, Quantity::from_units(7), Quantity(0))
    );
    // A gap in the chain is named, not papered over.
    assert_eq!(
        upcast(&CHAIN[1..], "StockChanged", 1, 3, old).unwrap_err(),
        DecodeError::NoUpcaster {
            event_type: "StockChanged".into(),
            version: 1,
            supported: 3
        }
    );
}

/// A capture holding an event version this build cannot read rebuilds with a
/// clear problem for that stream, and the rest of the log still folds.
#[tokio::test]
async fn an_event_version_without_an_upcaster_is_reported_not_guessed() {
    let b = scenario(false).await;
    let mut bytes = Vec::new();
    capture::write_capture(
        &b.store,
        &Selection::Since(at(-1, 0)),
        &mut bytes,
        &mut |_| {},
    )
    .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let edited = text.replacen(
        "\"type\":\"OrderEdited\",\"version\":2",
        "\"type\":\"OrderEdited\",\"version\":0",
        1,
    );
    let newer = text.replacen(
        "\"type\":\"StockChanged\",\"version\":1",
        "\"type\":\"StockChanged\",\"version\":9",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, body, needle, broken) in [
        (
            "old.jsonl",
            edited,
            "OrderEdited v0 has no upcaster to v2",
            order_stream("1001"),
        ),
        (
            "new.jsonl",
            newer,
            "StockChanged v9 is newer than this build understands",
            sku_stream("A"),
        ),
    ] {
        let path = dir.path().join(name);
        write(&path, body.as_bytes());
        let log = source::open(&path, &mut |_, _| {}).unwrap();
        let r = fold(log.store());
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        let problem = r.problems[0].to_string();
        assert!(
            problem.contains(needle) && problem.starts_with(&broken),
            "{problem}"
        );
        assert_eq!(
            r.streams[&order_stream("1002")],
            fold(&b.store).streams[&order_stream("1002")]
        );
    }
}
