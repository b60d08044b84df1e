//! The console's read model: a projection of the log into the `console_*` tables
//! (schema/0003_console.sql, 0004_console_shop.sql) that the overview, the orders list and the SKU list
//! read, so those pages answer from indexes instead of scanning the log.
//!
//! The projection folds each order and SKU with the production `apply` (the same
//! fold time travel uses) and keeps the folded state beside the derived columns.
//! It writes through its own rusqlite connection to the service's database file:
//! the store's unit of work cannot carry rows of arbitrary tables, and the
//! projection's checkpoint must commit in the same transaction as its rows, so a
//! crash can never leave rows ahead of or behind the checkpoint. It batches a feed
//! read (up to [`BATCH`] events) into one transaction, which keeps it off the
//! log writer's back. Emptying the tables rebuilds it from the log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::watch;

use crate::domain::order::{Order, SoState};
use crate::domain::sku::Sku;
use crate::domain::Aggregate;
use crate::replay::StreamState;
use crate::store::{from_millis, EventStore, SharedStore};

/// The checkpoint row's name.
const CHECKPOINT: &str = crate::names::subscriber::CONSOLE;
/// Bumped when what the projection derives changes (states, stages, counts), so
/// a new build folds the log again instead of mixing two derivations.
const PROJECTION_VERSION: i64 = 3;
/// The row recording which projection and state versions the tables hold.
const STATE_SHAPES: &str = "console-state-versions";
pub const BATCH: usize = 2048;

/// Where an order stands, coarsely, for counting and filtering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderState {
    /// Inside the hold: the buyer may still edit or cancel.
    Held,
    /// Hold over, the sales order requested and not yet confirmed.
    Released,
    Blocked,
    InKatana,
    PartiallyShipped,
    Shipped,
    Cancelled,
    Skipped,
}

impl OrderState {
    pub const ALL: [OrderState; 8] = [
        OrderState::Held,
        OrderState::Released,
        OrderState::InKatana,
        OrderState::PartiallyShipped,
        OrderState::Shipped,
        OrderState::Cancelled,
        OrderState::Skipped,
        OrderState::Blocked,
    ];

    pub fn key(self) -> &'static str {
        match self {
            OrderState::Held => "held",
            OrderState::Released => "released",
            OrderState::Blocked => "blocked",
            OrderState::InKatana => "in_katana",
            OrderState::PartiallyShipped => "partially_shipped",
            OrderState::Shipped => "shipped",
            OrderState::Cancelled => "cancelled",
            OrderState::Skipped => "skipped",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            OrderState::Held => "Held",
            OrderState::Released => "Hold released, SO pending",
            OrderState::Blocked => "Blocked",
            OrderState::InKatana => "In Katana",
            OrderState::PartiallyShipped => "Partially shipped",
            OrderState::Shipped => "Shipped",
            OrderState::Cancelled => "Cancelled",
            OrderState::Skipped => "Skipped (FBT)",
        }
    }

    pub fn parse(s: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|k| k.key() == s)
    }
}

/// The progress bar's steps, in order.
pub const STAGES: [&str; 5] = [
    "Placed",
    "Hold released",
    "In Katana",
    "Delivered",
    "Shipped on TikTok",
];

/// The derived columns of one order.
pub fn classify(o: &Order) -> (OrderState, u8) {
    let live_units: Vec<&crate::domain::observed::LineUnit> = o
        .snapshot
        .iter()
        .flat_map(|s| s.units.iter())
        .filter(|u| !u.cancelled)
        .collect();
    // Shipped by our push, or (fulfilled by TikTok, shipped by hand) as TikTok
    // last showed it.
    let mut shipped: std::collections::BTreeSet<&str> = o
        .deliveries
        .values()
        .filter(|d| d.package_id.is_some())
        .flat_map(|d| d.line_item_ids.iter().map(String::as_str))
        .collect();
    shipped.extend(
        live_units
            .iter()
            .filter(|u| u.shipped)
            .map(|u| u.line_item_id.as_str()),
    );
    let all_shipped = !live_units.is_empty()
        && live_units
            .iter()
            .all(|u| shipped.contains(u.line_item_id.as_str()));
    let mut stage = u8::from(o.snapshot.is_some());
    if o.hold_expired {
        stage = 2;
    }
    if matches!(o.so, SoState::Created { .. }) {
        stage = 3;
    }
    if !o.deliveries.is_empty() {
        stage = 4;
    }
    if all_shipped {
        stage = 5;
    }
    let state = if o.cancelled {
        OrderState::Cancelled
    } else if o.skipped.is_some() {
        OrderState::Skipped
    } else if all_shipped {
        OrderState::Shipped
    } else if !shipped.is_empty() {
        OrderState::PartiallyShipped
    } else {
        match &o.so {
            SoState::Blocked { .. } => OrderState::Blocked,
            SoState::Created { .. } => OrderState::InKatana,
            SoState::Deleted { .. } => OrderState::Cancelled,
            SoState::Requested { .. } => OrderState::Released,
            SoState::None if o.hold_expired => OrderState::Released,
            SoState::None => OrderState::Held,
        }
    };
    (state, stage)
}

/// A row of the orders list.
#[derive(Clone, Debug)]
pub struct OrderRow {
    pub order_id: String,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub state: String,
    pub stage: u8,
    pub so_id: Option<i64>,
    pub skus: String,
    /// The shop it was placed in, by its event key (empty: the primary shop).
    pub shop: String,
}

/// What the orders list filters on; all optional.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub state: Option<OrderState>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub sku: Option<String>,
    /// A prefix of the order id.
    pub id: Option<String>,
    /// The shop's event key (empty: the primary shop).
    pub shop: Option<String>,
}

/// The folded state the projection keeps per stream, with its last position.
struct Row {
    state: StreamState,
    updated_at: i64,
    position: u64,
    /// What the counts hold for this order now: its state and placement hour.
    counted: Option<(OrderState, i64)>,
    /// How many of the order's SKUs `console_order_sku` lists already: SKUs are
    /// only ever added, so an unchanged count means nothing to insert.
    skus_listed: usize,
}

const HOUR_MS: i64 = 3_600_000;

/// The counts an order contributes to: its state and the hour it was placed.
fn counted(state: &StreamState) -> Option<(OrderState, i64)> {
    match state {
        StreamState::Order(o) => o.snapshot.as_ref().map(|s| {
            (
                classify(o).0,
                s.create_time.timestamp_millis().div_euclid(HOUR_MS),
            )
        }),
        StreamState::Sku(_) => None,
    }
}

/// Opens a connection to the service's database for the read model. The store
/// already ran the migrations, so the tables exist.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // The log writer takes the write lock for its group commits; waiting for it is
    // normal, failing is not.
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// The reading side, shared by the page handlers.
pub struct ReadModel {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

#[derive(Debug, thiserror::Error)]
#[error("read model: {0}")]
pub struct ReadError(String);

impl From<rusqlite::Error> for ReadError {
    fn from(e: rusqlite::Error) -> Self {
        ReadError(e.to_string())
    }
}

impl ReadModel {
    pub fn new(path: impl Into<PathBuf>) -> ReadModel {
        ReadModel {
            path: path.into(),
            conn: Mutex::new(None),
        }
    }

    /// Runs `f` on the (lazily opened, then reused) reader connection.
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, ReadError> {
        let mut guard = self.conn.lock();
        if guard.is_none() {
            *guard = Some(connect(&self.path)?);
        }
        match guard.as_ref() {
            Some(c) => Ok(f(c)?),
            None => Err(ReadError("no connection".into())),
        }
    }

    /// The log position the tables reflect.
    pub fn position(&self) -> Result<u64, ReadError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT position FROM console_checkpoint WHERE name = ?1",
                [CHECKPOINT],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .unwrap_or(0) as u64)
        })
    }

    pub fn orders_by_state(&self) -> Result<Vec<(String, u64)>, ReadError> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT state, n FROM console_state_count WHERE n > 0 ORDER BY state",
            )?;
            let rows = st
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Orders placed per hour over the 24 hours before `now`, oldest hour first.
    pub fn orders_per_hour(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, u64)>, ReadError> {
        let end = now.timestamp_millis().div_euclid(HOUR_MS) + 1;
        let start = end - 24;
        let counts: HashMap<i64, u64> = self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT hour, n FROM console_hour_count WHERE hour >= ?1 AND hour < ?2",
            )?;
            let rows = st
                .query_map(params![start, end], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                })?
                .collect::<Result<HashMap<_, _>, _>>()?;
            Ok(rows)
        })?;
        Ok((start..end)
            .map(|h| {
                (
                    from_millis(h * HOUR_MS),
                    counts.get(&h).copied().unwrap_or(0),
                )
            })
            .collect())
    }

    /// One page of orders matching `filter`, newest first, and the total matching.
    pub fn orders(
        &self,
        filter: &OrderFilter,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<OrderRow>, u64), ReadError> {
        let mut clauses: Vec<&str> = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        use rusqlite::types::Value as V;
        if let Some(s) = filter.state {
            clauses.push("o.state = ?");
            args.push(V::Text(s.key().into()));
        }
        if let Some(t) = filter.from {
            clauses.push("o.placed_at >= ?");
            args.push(V::Integer(t.timestamp_millis()));
        }
        if let Some(t) = filter.until {
            clauses.push("o.placed_at < ?");
            args.push(V::Integer(t.timestamp_millis()));
        }
        // With a SKU the SKU's orders are the outer loop (CROSS JOIN fixes the
        // order in SQLite): a few thousand rows, not every order of a state.
        let from = if let Some(sku) = &filter.sku {
            clauses.push("s.sku = ?");
            args.push(V::Text(sku.clone()));
            "console_order_sku s CROSS JOIN console_order o ON o.order_id = s.order_id"
        } else {
            "console_order o"
        };
        if let Some(shop) = &filter.shop {
            clauses.push("o.shop = ?");
            args.push(V::Text(shop.clone()));
        }
        if let Some(id) = &filter.id {
            // A range instead of LIKE: ids may hold `%` or `_`, and the range uses
            // the primary key.
            clauses.push("o.order_id >= ? AND o.order_id < ?");
            args.push(V::Text(id.clone()));
            args.push(V::Text(format!("{id}\u{10FFFF}")));
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        self.with(|c| {
            let total: i64 = c.query_row(
                &format!("SELECT count(*) FROM {from} {filter_sql}"),
                rusqlite::params_from_iter(args.iter()),
                |r| r.get(0),
            )?;
            let mut page_args = args.clone();
            page_args.push(V::Integer(limit as i64));
            page_args.push(V::Integer(offset as i64));
            let mut st = c.prepare_cached(&format!(
                "SELECT o.order_id, o.placed_at, o.updated_at, o.state, o.stage, o.so_id, o.skus,
                        o.shop
                 FROM {from} {filter_sql}
                 ORDER BY o.placed_at DESC, o.order_id DESC LIMIT ? OFFSET ?"
            ))?;
            let rows = st
                .query_map(rusqlite::params_from_iter(page_args.iter()), |r| {
                    Ok(OrderRow {
                        order_id: r.get(0)?,
                        placed_at: from_millis(r.get(1)?),
                        updated_at: from_millis(r.get(2)?),
                        state: r.get(3)?,
                        stage: r.get::<_, i64>(4)?.clamp(0, 5) as u8,
                        so_id: r.get(5)?,
                        skus: r.get(6)?,
                        shop: r.get(7)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((rows, total as u64))
        })
    }

    /// The folded order, as of the read model's position.
    pub fn order(&self, order_id: &str) -> Result<Option<Order>, ReadError> {
        let json: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT state_json FROM console_order WHERE order_id = ?1",
                [order_id],
                |r| r.get(0),
            )
            .optional()
        })?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| ReadError(e.to_string())))
            .transpose()
    }

    /// Every SKU with its folded state, sorted by SKU.
    pub fn skus(&self) -> Result<Vec<(String, Sku, DateTime<Utc>)>, ReadError> {
        let rows: Vec<(String, String, i64)> = self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT sku, state_json, updated_at FROM console_sku ORDER BY sku",
            )?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(sku, json, at)| {
                serde_json::from_str(&json)
                    .map(|s| (sku, s, from_millis(at)))
                    .map_err(|e| ReadError(e.to_string()))
            })
            .collect()
    }

    pub fn order_count(&self) -> Result<u64, ReadError> {
        Ok(self.orders_by_state()?.iter().map(|(_, n)| n).sum())
    }
}

/// The writing side: folds batches of the log into the tables.
pub struct Projection {
    conn: Connection,
    position: u64,
}

impl Projection {
    pub fn open(path: &Path) -> Result<Projection, ReadError> {
        let conn = connect(path)?;
        // Folded states are kept as JSON: a build whose states have another shape
        // cannot read them, so it starts the projection over instead.
        let shapes = PROJECTION_VERSION * 1_000_000_000_000
            + i64::from(Order::STATE_VERSION) * 1_000_000
            + i64::from(Sku::STATE_VERSION);
        let stored: Option<i64> = conn
            .query_row(
                "SELECT position FROM console_checkpoint WHERE name = ?1",
                [STATE_SHAPES],
                |r| r.get(0),
            )
            .optional()?;
        if stored != Some(shapes) {
            let mut fresh = Projection { conn, position: 0 };
            fresh.reset()?;
            fresh.conn.execute(
                "INSERT INTO console_checkpoint (name, position) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET position = ?2",
                params![STATE_SHAPES, shapes],
            )?;
            return Ok(fresh);
        }
        let position = conn
            .query_row(
                "SELECT position FROM console_checkpoint WHERE name = ?1",
                [CHECKPOINT],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .unwrap_or(0) as u64;
        Ok(Projection { conn, position })
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// Forgets everything: the next [`Projection::catch_up`] replays the log.
    pub fn reset(&mut self) -> Result<(), ReadError> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "DELETE FROM console_order; DELETE FROM console_order_sku; DELETE FROM console_sku;
             DELETE FROM console_state_count; DELETE FROM console_hour_count;",
        )?;
        tx.execute(
            "DELETE FROM console_checkpoint WHERE name = ?1",
            [CHECKPOINT],
        )?;
        tx.commit()?;
        self.position = 0;
        Ok(())
    }

    fn load(&self, stream: &str) -> Result<Option<Row>, ReadError> {
        let Some(mut state) = StreamState::for_stream(stream) else {
            return Ok(None);
        };
        // Fixed SQL per table, so the statement is parsed once, not per stream.
        let (sql, key) = match stream.split_once('-') {
            Some((p, id)) if p == Order::STREAM_PREFIX => (
                "SELECT state_json, updated_at, position FROM console_order WHERE order_id = ?1",
                id,
            ),
            Some((_, id)) => (
                "SELECT state_json, updated_at, position FROM console_sku WHERE sku = ?1",
                id,
            ),
            None => return Ok(None),
        };
        let found: Option<(String, i64, i64)> = self
            .conn
            .prepare_cached(sql)?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let (updated_at, position) = match found {
            Some((json, at, pos)) => {
                state = match &state {
                    StreamState::Order(_) => StreamState::Order(Box::new(
                        serde_json::from_str(&json).map_err(|e| ReadError(e.to_string()))?,
                    )),
                    StreamState::Sku(_) => StreamState::Sku(Box::new(
                        serde_json::from_str(&json).map_err(|e| ReadError(e.to_string()))?,
                    )),
                };
                (at, pos as u64)
            }
            None => (0, 0),
        };
        let skus_listed = match &state {
            StreamState::Order(o) if position > 0 => o.skus_seen.len(),
            _ => 0,
        };
        Ok(Some(Row {
            counted: if position > 0 { counted(&state) } else { None },
            skus_listed,
            state,
            updated_at,
            position,
        }))
    }

    /// Folds every event after the checkpoint, `batch` at a time, each batch in
    /// one transaction with the checkpoint. Returns the events folded.
    pub fn catch_up(&mut self, store: &dyn EventStore, batch: usize) -> Result<u64, ReadError> {
        let mut folded = 0;
        loop {
            let events = store
                .read_all(self.position, batch)
                .map_err(|e| ReadError(e.to_string()))?;
            let Some(last) = events.last().map(|e| e.position) else {
                return Ok(folded);
            };
            let mut dirty: HashMap<String, Row> = HashMap::new();
            for e in &events {
                if !dirty.contains_key(&e.stream) {
                    match self.load(&e.stream)? {
                        Some(row) => {
                            dirty.insert(e.stream.clone(), row);
                        }
                        None => continue,
                    }
                }
                let Some(row) = dirty.get_mut(&e.stream) else {
                    continue;
                };
                // An event this build cannot decode leaves the row as it was; the
                // order page still shows the raw event from the log.
                if let Err(reason) = row.state.apply_recorded(&e.raw()) {
                    tracing::warn!(stream = %e.stream, seq = e.seq, %reason, "console read model skipped an event");
                }
                row.updated_at = e.meta.recorded_at.timestamp_millis();
                row.position = e.position;
            }
            self.write(dirty, last)?;
            folded += events.len() as u64;
            self.position = last;
        }
    }

    fn write(&mut self, dirty: HashMap<String, Row>, position: u64) -> Result<(), ReadError> {
        let tx = self.conn.transaction()?;
        {
            let mut put_order = tx.prepare_cached(
                "INSERT INTO console_order
                   (order_id, placed_at, updated_at, state, stage, so_id, skus, position, state_json,
                    shop)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (order_id) DO UPDATE SET placed_at = ?2, updated_at = ?3,
                   state = ?4, stage = ?5, so_id = ?6, skus = ?7, position = ?8, state_json = ?9,
                   shop = ?10",
            )?;
            let mut put_order_sku = tx.prepare_cached(
                "INSERT OR IGNORE INTO console_order_sku (sku, order_id) VALUES (?1, ?2)",
            )?;
            let mut add_state = tx.prepare_cached(
                "INSERT INTO console_state_count (state, n) VALUES (?1, ?2)
                 ON CONFLICT (state) DO UPDATE SET n = n + ?2",
            )?;
            let mut add_hour = tx.prepare_cached(
                "INSERT INTO console_hour_count (hour, n) VALUES (?1, ?2)
                 ON CONFLICT (hour) DO UPDATE SET n = n + ?2",
            )?;
            let mut put_sku = tx.prepare_cached(
                "INSERT INTO console_sku (sku, updated_at, position, state_json)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sku) DO UPDATE SET updated_at = ?2, position = ?3, state_json = ?4",
            )?;
            // Summed over the batch and written once per key: most orders of a
            // batch move between the same few states within the same hours.
            let mut by_state: HashMap<&'static str, i64> = HashMap::new();
            let mut by_hour: HashMap<i64, i64> = HashMap::new();
            for (stream, row) in dirty {
                let Some((_, id)) = stream.split_once('-') else {
                    continue;
                };
                let json =
                    serde_json::to_string(&row.state).map_err(|e| ReadError(e.to_string()))?;
                match &row.state {
                    StreamState::Order(o) => {
                        // Only placed orders are listed: a stray signal for an
                        // order never seen is not an order yet.
                        let Some(snapshot) = &o.snapshot else {
                            continue;
                        };
                        let (state, stage) = classify(o);
                        let now = counted(&row.state);
                        if now != row.counted {
                            if let Some((old_state, old_hour)) = row.counted {
                                *by_state.entry(old_state.key()).or_default() -= 1;
                                *by_hour.entry(old_hour).or_default() -= 1;
                            }
                            if let Some((new_state, new_hour)) = now {
                                *by_state.entry(new_state.key()).or_default() += 1;
                                *by_hour.entry(new_hour).or_default() += 1;
                            }
                        }
                        let skus: Vec<&str> = o.skus_seen.iter().map(String::as_str).collect();
                        put_order.execute(params![
                            id,
                            snapshot.create_time.timestamp_millis(),
                            row.updated_at,
                            state.key(),
                            stage,
                            o.so_id(),
                            skus.join(", "),
                            row.position as i64,
                            json,
                            snapshot.shop_id
                        ])?;
                        if o.skus_seen.len() != row.skus_listed {
                            for sku in &o.skus_seen {
                                put_order_sku.execute(params![sku, id])?;
                            }
                        }
                    }
                    StreamState::Sku(_) => {
                        put_sku.execute(params![id, row.updated_at, row.position as i64, json])?;
                    }
                }
            }
            // A key whose moves cancel out within the batch is left alone.
            for (state, n) in by_state.into_iter().filter(|(_, n)| *n != 0) {
                add_state.execute(params![state, n])?;
            }
            for (hour, n) in by_hour.into_iter().filter(|(_, n)| *n != 0) {
                add_hour.execute(params![hour, n])?;
            }
            tx.execute(
                "INSERT INTO console_checkpoint (name, position) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET position = ?2",
                params![CHECKPOINT, position as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Keeps the read model up to date with the log until `shutdown`.
pub fn spawn(
    store: SharedStore,
    path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    actix::spawn(async move {
        let mut projection = match Projection::open(&path) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "console read model unavailable");
                return;
            }
        };
        let mut head = store.watch_head();
        let mut wait = Duration::from_millis(50);
        loop {
            if *shutdown.borrow() {
                return;
            }
            head.mark_unchanged();
            // Off the actix thread: the actors share it, and a large batch takes
            // a while to fold.
            let s = store.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let r = projection.catch_up(s.as_ref(), BATCH);
                (projection, r)
            })
            .await;
            let result;
            (projection, result) = match outcome {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(error = %e, "console read model stopped");
                    return;
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "console read model behind; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
                wait = (wait * 2).min(Duration::from_secs(30));
                continue;
            }
            wait = Duration::from_millis(50);
            if store.head() > projection.position() {
                continue;
            }
            tokio::select! {
                _ = head.changed() => {}
                _ = shutdown.changed() => {}
            }
        }
    })
}

/// Replays the whole log into empty tables (for `tks bench console` and repairs).
pub fn rebuild(store: &dyn EventStore, path: &Path) -> Result<u64, ReadError> {
    let mut p = Projection::open(path)?;
    p.reset()?;
    p.catch_up(store, 8192)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_projection_of_states_with_another_shape_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tks.db");
        drop(crate::store::SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO console_checkpoint (name, position) VALUES ('console', 42);
             INSERT INTO console_checkpoint (name, position) VALUES ('console-state-versions', 1);
             INSERT INTO console_sku (sku, updated_at, position, state_json) VALUES ('A', 0, 42, '{\"old\":1}');",
        )
        .unwrap();
        let p = Projection::open(&path).unwrap();
        assert_eq!(p.position(), 0);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM console_sku", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        drop(p);
        // Same shapes now: the checkpoint is kept across opens.
        conn.execute(
            "INSERT OR REPLACE INTO console_checkpoint (name, position) VALUES ('console', 7)",
            [],
        )
        .unwrap();
        assert_eq!(Projection::open(&path).unwrap().position(), 7);
    }

    #[test]
    fn orders_are_classified_by_how_far_they_got() {
        let mut o = Order::default();
        assert_eq!(classify(&o), (OrderState::Held, 0));
        o.hold_expired = true;
        assert_eq!(classify(&o), (OrderState::Released, 2));
        o.so = SoState::Blocked {
            reason: "unmatched".into(),
        };
        assert_eq!(classify(&o).0, OrderState::Blocked);
        o.cancelled = true;
        assert_eq!(classify(&o).0, OrderState::Cancelled);
    }

    #[test]
    fn an_order_tiktok_shows_shipped_in_full_is_shipped() {
        use crate::domain::observed::{
            FulfillmentType, LineUnit, OrderSnapshot, TikTokOrderStatus,
        };
        let t = from_millis(1_777_777_777_000);
        let unit = |id: &str, shipped: bool| LineUnit {
            line_item_id: id.into(),
            sku_id: "1".into(),
            seller_sku: "A".into(),
            sale_price: "1.00".into(),
            cancelled: false,
            shipped,
        };
        let mut o = Order {
            snapshot: Some(OrderSnapshot {
                shop_id: String::new(),
                order_id: "1".into(),
                status: TikTokOrderStatus::AwaitingShipment,
                fulfillment_type: FulfillmentType::FulfillmentByTiktok,
                shipping_type: Default::default(),
                create_time: t,
                update_time: t,
                currency: "USD".into(),
                warehouse_id: None,
                recipient: None,
                buyer_email: None,
                units: vec![unit("a", true), unit("b", false)],
            }),
            hold_expired: true,
            so: SoState::Created {
                so_id: 1,
                order_no: "TT-1".into(),
                rows: vec![],
            },
            ..Order::default()
        };
        assert_eq!(classify(&o), (OrderState::PartiallyShipped, 3));
        if let Some(s) = o.snapshot.as_mut() {
            s.units[1].shipped = true;
        }
        assert_eq!(classify(&o), (OrderState::Shipped, 5));
    }
}
