//! The SQLite event store: one writer thread owns the write connection and commits
//! whatever is queued as one transaction (group commit), acknowledging each unit of
//! work only after that transaction is durable (WAL, `synchronous=FULL`). Readers
//! use their own connections and never wait for the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::migrations;
use super::{
    from_millis, to_millis, Committed, EventMeta, EventStore, Expected, LookupEntry, RawEvent,
    RecordedEvent, Snapshot, StoreError, StoredEvent, StreamLoad, Timer, UnitOfWork,
};

/// Upper bound of units in one group commit: keeps a single transaction's latency
/// bounded when thousands of writers pile up.
const MAX_BATCH: usize = 4096;

/// Units queued for the writer: one from `commit`, many from `commit_all`.
struct Request {
    units: Vec<UnitOfWork>,
    reply: Reply,
}

enum Reply {
    One(oneshot::Sender<Result<Committed, StoreError>>),
    Many(oneshot::Sender<Vec<Result<Committed, StoreError>>>),
}

/// What the writer has committed since the store was opened: group commits and
/// the units they carried, so a benchmark can compare with SQLite alone at the
/// same batch size.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub transactions: AtomicU64,
    pub units: AtomicU64,
}

pub struct SqliteStore {
    path: PathBuf,
    stats: Arc<CommitStats>,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    head: watch::Sender<u64>,
    timers_changed: watch::Sender<u64>,
}

/// Page cache per connection, in KiB (negative: SQLite's unit for "KiB").
const CACHE_KIB: i64 = -32 * 1024;

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // SQLite's default 2 MiB page cache holds a sliver of a million streams'
    // index: every append would read its index pages back from the OS.
    conn.pragma_update(None, "cache_size", CACHE_KIB)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        // SQLite gives its WAL and shared-memory files the database file's mode.
        super::private_file::ensure_exists(&path)
            .map_err(|e| StoreError::Storage(format!("{}: {e}", path.display())))?;
        let mut conn = open_connection(&path)?;
        migrations::migrate(&mut conn)?;
        let head: u64 =
            conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })? as u64;
        let head_tx = watch::channel(head).0;
        let timers_tx = watch::channel(0).0;
        let (sender, receiver) = mpsc::channel::<Request>();
        let stats = Arc::new(CommitStats::default());
        let writer = {
            let head_tx = head_tx.clone();
            let timers_tx = timers_tx.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("tks-store-writer".into())
                .spawn(move || writer_loop(conn, receiver, head_tx, timers_tx, &stats))
                .map_err(|e| StoreError::Storage(format!("cannot start writer thread: {e}")))?
        };
        Ok(SqliteStore {
            path,
            stats,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            readers: Mutex::new(Vec::new()),
            head: head_tx,
            timers_changed: timers_tx,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (group commits, units committed) since the store was opened.
    pub fn commit_stats(&self) -> (u64, u64) {
        (
            self.stats.transactions.load(Ordering::Relaxed),
            self.stats.units.load(Ordering::Relaxed),
        )
    }

    fn send(&self, request: Request) -> bool {
        match self.sender.lock().as_ref() {
            Some(s) => s.send(request).is_ok(),
            None => false,
        }
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match self.readers.lock().pop() {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let result = f(&conn);
        let mut pool = self.readers.lock();
        if pool.len() < 8 {
            pool.push(conn);
        }
        result
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once queued units are committed.
        self.sender.lock().take();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    receiver: mpsc::Receiver<Request>,
    head: watch::Sender<u64>,
    timers_changed: watch::Sender<u64>,
    stats: &CommitStats,
) {
    let mut seqs = SeqCache::default();
    while let Ok(first) = receiver.recv() {
        let mut queued = first.units.len();
        let mut batch = vec![first];
        while queued < MAX_BATCH {
            match receiver.try_recv() {
                Ok(r) => {
                    queued += r.units.len();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let armed = batch
            .iter()
            .any(|r| r.units.iter().any(|u| !u.arm_timers.is_empty()));
        let mut units = Vec::with_capacity(queued);
        let mut replies = Vec::with_capacity(batch.len());
        for r in batch {
            replies.push((r.units.len(), r.reply));
            units.extend(r.units);
        }
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        stats.units.fetch_add(units.len() as u64, Ordering::Relaxed);
        let results = commit_batch(&mut conn, &mut seqs, units);
        let last_position = results
            .iter()
            .flatten()
            .filter_map(|c| c.events.last().map(|e| e.position))
            .max();
        if let Some(p) = last_position {
            head.send_replace(p);
        }
        if armed && results.iter().any(|r| r.is_ok()) {
            timers_changed.send_modify(|v| *v += 1);
        }
        let mut results = results.into_iter();
        for (n, reply) in replies {
            match reply {
                Reply::One(tx) => {
                    let _ = tx.send(results.next().unwrap_or(Err(StoreError::Closed)));
                }
                Reply::Many(tx) => {
                    let _ = tx.send(results.by_ref().take(n).collect());
                }
            }
        }
    }
}

/// Last sequence number per stream, so an append does not have to ask SQLite.
/// Bounded: past the limit it is simply emptied and refilled on demand.
#[derive(Default)]
struct SeqCache {
    seqs: HashMap<String, u64>,
}

const SEQ_CACHE_LIMIT: usize = 200_000;

impl SeqCache {
    fn current(&mut self, st: &mut Statements<'_>, stream: &str) -> Result<u64, StoreError> {
        if let Some(s) = self.seqs.get(stream) {
            return Ok(*s);
        }
        let v: i64 = st.stream_seq.query_row([stream], |r| r.get(0))?;
        Ok(v as u64)
    }

    fn set(&mut self, stream: &str, seq: u64) {
        if self.seqs.len() >= SEQ_CACHE_LIMIT {
            self.seqs.clear();
        }
        match self.seqs.get_mut(stream) {
            Some(s) => *s = seq,
            None => {
                self.seqs.insert(stream.to_string(), seq);
            }
        }
    }
}

/// Every statement a unit of work may run, prepared once per transaction: looked
/// up per unit, the statement cache's hashing of the SQL text costs more than
/// some of the statements themselves.
struct Statements<'c> {
    inbox_seen: rusqlite::CachedStatement<'c>,
    inbox_insert: rusqlite::CachedStatement<'c>,
    stream_seq: rusqlite::CachedStatement<'c>,
    insert_event: rusqlite::CachedStatement<'c>,
    disarm: rusqlite::CachedStatement<'c>,
    arm: rusqlite::CachedStatement<'c>,
    checkpoint: rusqlite::CachedStatement<'c>,
    lookup_delete: rusqlite::CachedStatement<'c>,
    lookup_put: rusqlite::CachedStatement<'c>,
    snapshot: rusqlite::CachedStatement<'c>,
}

impl<'c> Statements<'c> {
    fn prepare(c: &'c Connection) -> Result<Self, StoreError> {
        Ok(Statements {
            inbox_seen: c
                .prepare_cached("SELECT 1 FROM inbox WHERE source = ?1 AND delivery_id = ?2")?,
            inbox_insert: c.prepare_cached(
                "INSERT INTO inbox (source, delivery_id, received_at, payload)
                 VALUES (?1, ?2, ?3, ?4)",
            )?,
            stream_seq: c
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE stream = ?1")?,
            insert_event: c.prepare_cached(
                "INSERT INTO events (stream, seq, event_type, event_version, payload,
                                     event_id, correlation_id, causation_id, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?,
            disarm: c.prepare_cached("DELETE FROM timers WHERE id = ?1")?,
            arm: c.prepare_cached(
                "INSERT INTO timers (id, stream, kind, due_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at",
            )?,
            checkpoint: c.prepare_cached(
                "INSERT INTO checkpoints (subscriber, position) VALUES (?1, ?2)
                 ON CONFLICT (subscriber) DO UPDATE SET position = MAX(position, excluded.position)",
            )?,
            lookup_delete: c.prepare_cached("DELETE FROM lookup WHERE kind = ?1 AND key = ?2")?,
            lookup_put: c.prepare_cached(
                "INSERT INTO lookup (kind, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
            )?,
            snapshot: c.prepare_cached(
                "INSERT INTO snapshots (stream, seq, state_version, state) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq,
                     state_version = excluded.state_version, state = excluded.state",
            )?,
        })
    }
}

/// Commits every unit in one transaction (one fsync for the whole batch). A unit
/// that fails validation (conflict, duplicate delivery) is refused alone; if
/// SQLite itself fails, the batch is retried one unit per transaction so one bad
/// unit cannot take the others down with it.
fn commit_batch(
    conn: &mut Connection,
    seqs: &mut SeqCache,
    units: Vec<UnitOfWork>,
) -> Vec<Result<Committed, StoreError>> {
    let count = units.len();
    match try_batch(conn, seqs, &units) {
        Ok(results) => results,
        Err(e) => {
            // The cache may hold sequence numbers of the rolled-back transaction.
            seqs.seqs.clear();
            if count == 1 {
                return vec![Err(e)];
            }
            units
                .into_iter()
                .map(|u| match try_batch(conn, seqs, std::slice::from_ref(&u)) {
                    Ok(mut r) => r.pop().unwrap_or(Err(StoreError::Closed)),
                    Err(e) => {
                        seqs.seqs.clear();
                        Err(e)
                    }
                })
                .collect()
        }
    }
}

fn try_batch(
    conn: &mut Connection,
    seqs: &mut SeqCache,
    units: &[UnitOfWork],
) -> Result<Vec<Result<Committed, StoreError>>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(units.len());
    {
        let mut st = Statements::prepare(&tx)?;
        for unit in units {
            match validate_unit(&mut st, seqs, unit) {
                Ok(bases) => results.push(Ok(write_unit(&mut st, seqs, unit, &bases)?)),
                Err(e @ (StoreError::Conflict { .. } | StoreError::Duplicate { .. })) => {
                    results.push(Err(e))
                }
                Err(e) => return Err(e),
            }
        }
    }
    tx.commit()?;
    Ok(results)
}

/// Checks a unit against the log without writing: returns each append's base seq.
fn validate_unit(
    st: &mut Statements<'_>,
    seqs: &mut SeqCache,
    unit: &UnitOfWork,
) -> Result<Vec<u64>, StoreError> {
    if let Some(entry) = &unit.inbox {
        let seen = st
            .inbox_seen
            .query_row([&entry.source, &entry.delivery_id], |_| Ok(()))
            .optional()?
            .is_some();
        if seen {
            return Err(StoreError::Duplicate {
                source_name: entry.source.clone(),
                delivery_id: entry.delivery_id.clone(),
            });
        }
    }
    let mut bases = Vec::with_capacity(unit.appends.len());
    for (i, append) in unit.appends.iter().enumerate() {
        // Earlier appends of this same unit to the same stream count too.
        let earlier: u64 = unit.appends[..i]
            .iter()
            .filter(|a| a.stream == append.stream)
            .map(|a| a.events.len() as u64)
            .sum();
        let current = seqs.current(st, &append.stream)? + earlier;
        if let Expected::Seq(expected) = append.expected {
            if expected != current {
                return Err(StoreError::Conflict {
                    stream: append.stream.clone(),
                    expected,
                    actual: current,
                });
            }
        }
        bases.push(current);
    }
    Ok(bases)
}

fn write_unit(
    st: &mut Statements<'_>,
    seqs: &mut SeqCache,
    unit: &UnitOfWork,
    bases: &[u64],
) -> Result<Committed, StoreError> {
    if let Some(entry) = &unit.inbox {
        st.inbox_insert.execute(params![
            entry.source,
            entry.delivery_id,
            to_millis(entry.received_at),
            entry.payload
        ])?;
    }
    let mut committed = Committed {
        events: Vec::with_capacity(unit.event_count()),
    };
    for (append, base) in unit.appends.iter().zip(bases) {
        for (i, e) in append.events.iter().enumerate() {
            let seq = base + 1 + i as u64;
            let position = st.insert_event.insert(params![
                append.stream,
                seq as i64,
                e.event_type,
                e.version,
                e.payload,
                e.meta.event_id.to_string(),
                e.meta.correlation_id.to_string(),
                e.meta.causation_id.map(|c| c.to_string()),
                to_millis(e.meta.recorded_at),
            ])?;
            committed.events.push(RecordedEvent {
                position: position as u64,
                stream: append.stream.clone(),
                seq,
                event_type: e.event_type.clone(),
                version: e.version,
                payload: e.payload.clone(),
                meta: e.meta.clone(),
            });
        }
        seqs.set(&append.stream, base + append.events.len() as u64);
    }
    for id in &unit.disarm_timers {
        st.disarm.execute([id])?;
    }
    for t in &unit.arm_timers {
        st.arm
            .execute(params![t.id(), t.stream, t.kind, due_millis(t.due_at)])?;
    }
    if let Some((name, pos)) = &unit.checkpoint {
        st.checkpoint.execute(params![name, *pos as i64])?;
    }
    for (kind, key) in &unit.lookup_delete {
        st.lookup_delete.execute([kind, key])?;
    }
    for e in &unit.lookup_put {
        st.lookup_put.execute([&e.kind, &e.key, &e.value])?;
    }
    if let Some(s) = &unit.snapshot {
        st.snapshot
            .execute(params![s.stream, s.seq as i64, s.state_version, s.state])?;
    }
    Ok(committed)
}

const EVENT_COLUMNS: &str = "position, stream, seq, event_type, event_version, payload, \
                             event_id, correlation_id, causation_id, recorded_at";

fn parse_uuid(s: &str, idx: usize) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let causation: Option<String> = r.get(8)?;
    Ok(RecordedEvent {
        position: r.get::<_, i64>(0)? as u64,
        stream: r.get(1)?,
        seq: r.get::<_, i64>(2)? as u64,
        event_type: r.get(3)?,
        version: r.get(4)?,
        payload: r.get(5)?,
        meta: EventMeta {
            event_id: parse_uuid(&r.get::<_, String>(6)?, 6)?,
            correlation_id: parse_uuid(&r.get::<_, String>(7)?, 7)?,
            causation_id: causation.as_deref().map(|c| parse_uuid(c, 8)).transpose()?,
            recorded_at: from_millis(r.get(9)?),
        },
    })
}

fn row_to_timer(r: &rusqlite::Row<'_>) -> rusqlite::Result<Timer> {
    Ok(Timer {
        stream: r.get(0)?,
        kind: r.get(1)?,
        due_at: from_millis(r.get(2)?),
    })
}

impl EventStore for SqliteStore {
    fn commit(&self, unit: UnitOfWork) -> BoxFuture<'static, Result<Committed, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.send(Request {
            units: vec![unit],
            reply: Reply::One(reply),
        });
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.unwrap_or(Err(StoreError::Closed))
        })
    }

    fn commit_all(
        &self,
        units: Vec<UnitOfWork>,
    ) -> BoxFuture<'static, Vec<Result<Committed, StoreError>>> {
        let n = units.len();
        let (reply, rx) = oneshot::channel();
        let sent = self.send(Request {
            units,
            reply: Reply::Many(reply),
        });
        let closed = move || (0..n).map(|_| Err(StoreError::Closed)).collect();
        Box::pin(async move {
            if !sent {
                return closed();
            }
            rx.await.unwrap_or_else(|_| closed())
        })
    }

    fn load_streams(
        &self,
        streams: &[String],
        snapshot_version: u32,
    ) -> Result<Vec<StreamLoad>, StoreError> {
        self.with_reader(|c| {
            // One read transaction for the whole set, so every stream is read at
            // the same point of the log.
            c.execute_batch("BEGIN")?;
            let result = (|| {
                let mut snap = c.prepare_cached(
                    "SELECT stream, seq, state_version, state FROM snapshots WHERE stream = ?1",
                )?;
                let mut events = c.prepare_cached(
                    "SELECT seq, event_type, event_version, payload FROM events
                     WHERE stream = ?1 AND seq > ?2 ORDER BY seq",
                )?;
                let mut loads = Vec::with_capacity(streams.len());
                for stream in streams {
                    let snapshot = snap
                        .query_row([stream], row_to_snapshot)
                        .optional()?
                        .filter(|s| s.state_version == snapshot_version);
                    let after = snapshot.as_ref().map_or(0, |s| s.seq);
                    let rows = events.query_map(params![stream, after as i64], |r| {
                        Ok(StoredEvent {
                            seq: r.get::<_, i64>(0)? as u64,
                            event_type: r.get(1)?,
                            version: r.get(2)?,
                            payload: r.get(3)?,
                        })
                    })?;
                    loads.push(StreamLoad {
                        snapshot,
                        events: rows.collect::<Result<Vec<_>, _>>()?,
                    });
                }
                Ok(loads)
            })();
            c.execute_batch("COMMIT")?;
            result
        })
    }

    fn read_stream(&self, stream: &str, after_seq: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream = ?1 AND seq > ?2 ORDER BY seq"
            ))?;
            let rows = stmt.query_map(params![stream, after_seq as i64], row_to_event)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![after as i64, limit as i64], row_to_event)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn scan(
        &self,
        after: u64,
        visit: &mut dyn FnMut(RawEvent<'_>) -> bool,
    ) -> Result<u64, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT position, stream, seq, event_type, event_version, payload, recorded_at
                 FROM events WHERE position > ?1 ORDER BY position",
            )?;
            let mut rows = stmt.query([after as i64])?;
            let mut n = 0;
            while let Some(r) = rows.next()? {
                n += 1;
                let text = |i: usize| -> Result<&str, StoreError> {
                    r.get_ref(i)?
                        .as_str()
                        .map_err(|e| StoreError::Storage(e.to_string()))
                };
                let go_on = visit(RawEvent {
                    position: r.get::<_, i64>(0)? as u64,
                    stream: text(1)?,
                    seq: r.get::<_, i64>(2)? as u64,
                    event_type: text(3)?,
                    version: r.get(4)?,
                    payload: text(5)?,
                    recorded_at_ms: r.get(6)?,
                });
                if !go_on {
                    break;
                }
            }
            Ok(n)
        })
    }

    fn head(&self) -> u64 {
        *self.head.borrow()
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    fn stream_seq(&self, stream: &str) -> Result<u64, StoreError> {
        self.with_reader(|c| {
            let v: i64 = c
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE stream = ?1")?
                .query_row([stream], |r| r.get(0))?;
            Ok(v as u64)
        })
    }

    fn due_timers(&self, until: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(
                // Index order (due time, then arming order): a tie-break on id would
                // sort every overdue row before the first could be returned.
                "SELECT stream, kind, due_at FROM timers WHERE due_at <= ?1
                 ORDER BY due_at LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![to_millis(until), limit as i64], row_to_timer)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with_reader(|c| {
            let v: Option<i64> = c
                .prepare_cached("SELECT MIN(due_at) FROM timers")?
                .query_row([], |r| r.get(0))?;
            Ok(v.map(from_millis))
        })
    }

    fn watch_timers(&self) -> watch::Receiver<u64> {
        self.timers_changed.subscribe()
    }

    fn timer_count(&self) -> Result<u64, StoreError> {
        self.with_reader(|c| {
            let v: i64 = c.query_row("SELECT COUNT(*) FROM timers", [], |r| r.get(0))?;
            Ok(v as u64)
        })
    }

    fn checkpoint(&self, subscriber: &str) -> Result<u64, StoreError> {
        self.with_reader(|c| {
            let v: Option<i64> = c
                .prepare_cached("SELECT position FROM checkpoints WHERE subscriber = ?1")?
                .query_row([subscriber], |r| r.get(0))
                .optional()?;
            Ok(v.unwrap_or(0) as u64)
        })
    }

    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        self.with_reader(|c| {
            Ok(c.prepare_cached(
                "SELECT stream, seq, state_version, state FROM snapshots WHERE stream = ?1",
            )?
            .query_row([stream], row_to_snapshot)
            .optional()?)
        })
    }

    fn all_snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT stream, seq, state_version, state FROM snapshots ORDER BY stream",
            )?;
            let rows = stmt.query_map([], row_to_snapshot)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn inbox_contains(&self, source: &str, delivery_id: &str) -> Result<bool, StoreError> {
        self.with_reader(|c| {
            Ok(
                c.prepare_cached("SELECT 1 FROM inbox WHERE source = ?1 AND delivery_id = ?2")?
                    .query_row([source, delivery_id], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })
    }

    fn lookup(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.with_reader(|c| {
            Ok(
                c.prepare_cached("SELECT value FROM lookup WHERE kind = ?1 AND key = ?2")?
                    .query_row([kind, key], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn lookup_all(&self, kind: &str) -> Result<Vec<LookupEntry>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT kind, key, value FROM lookup WHERE kind = ?1 ORDER BY key",
            )?;
            let rows = stmt.query_map([kind], |r| {
                Ok(LookupEntry {
                    kind: r.get(0)?,
                    key: r.get(1)?,
                    value: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn streams(&self) -> Result<Vec<String>, StoreError> {
        self.with_reader(|c| {
            let mut stmt =
                c.prepare_cached("SELECT DISTINCT stream FROM events ORDER BY stream")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}

fn row_to_snapshot(r: &rusqlite::Row<'_>) -> rusqlite::Result<Snapshot> {
    Ok(Snapshot {
        stream: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        state_version: r.get(2)?,
        state: r.get(3)?,
    })
}

/// A timer's due time in whole milliseconds, rounded up. Events keep nanoseconds;
/// rounding down would let a timer fire just before the instant its aggregate
/// accepts (a buffer flush deciding "not yet"), and a fired timer is disarmed.
fn due_millis(t: DateTime<Utc>) -> i64 {
    let ms = to_millis(t);
    if t.timestamp_subsec_nanos() % 1_000_000 == 0 {
        ms
    } else {
        ms + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewEvent;

    #[tokio::test]
    async fn a_timer_is_never_due_before_its_exact_instant() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
        let due = from_millis(1_700_000_000_000) + chrono::Duration::nanoseconds(400_000);
        let unit = UnitOfWork {
            arm_timers: vec![Timer {
                stream: "sku-A".into(),
                kind: "flush".into(),
                due_at: due,
            }],
            ..Default::default()
        };
        store.commit(unit).await.unwrap();
        let just_before = from_millis(1_700_000_000_000);
        assert!(store.due_timers(just_before, 10).unwrap().is_empty());
        assert!(store.next_timer_due().unwrap().unwrap() >= due);
        let at_next = store.next_timer_due().unwrap().unwrap();
        assert_eq!(store.due_timers(at_next, 10).unwrap().len(), 1);
    }

    fn ev(n: u32) -> NewEvent {
        NewEvent {
            event_type: "Test".into(),
            version: 1,
            payload: format!("{{\"n\":{n}}}"),
            meta: EventMeta::root(from_millis(1_700_000_000_000)),
        }
    }

    #[tokio::test]
    async fn events_cannot_be_updated_or_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .commit(UnitOfWork::append("s", Expected::Seq(0), vec![ev(1)]))
            .await
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        let upd = conn.execute("UPDATE events SET payload = '{}'", []);
        assert!(upd.unwrap_err().to_string().contains("append-only"));
        let del = conn.execute("DELETE FROM events", []);
        assert!(del.unwrap_err().to_string().contains("append-only"));
    }

    #[tokio::test]
    async fn newer_schema_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = SqliteStore::open(&path).err().unwrap().to_string();
        assert!(err.contains("schema version 99"), "{err}");
        assert!(err.contains("upgrade"), "{err}");
    }
}
