//! The SQLite event store: one writer thread owns the write connection and commits
//! whatever is queued as one transaction (group commit), acknowledging each unit of
//! work only after that transaction is durable (WAL, `synchronous=FULL`). Readers
//! use their own connections and never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::migrations;
use super::{
    from_millis, to_millis, Committed, EventMeta, EventStore, Expected, RecordedEvent, Snapshot,
    StoreError, Timer, UnitOfWork,
};

/// Upper bound of units in one group commit: keeps a single transaction's latency
/// bounded when thousands of writers pile up.
const MAX_BATCH: usize = 4096;

struct Request {
    unit: UnitOfWork,
    reply: oneshot::Sender<Result<Committed, StoreError>>,
}

pub struct SqliteStore {
    path: PathBuf,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    head: watch::Sender<u64>,
    timers_changed: watch::Sender<u64>,
}

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
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_connection(&path)?;
        migrations::migrate(&mut conn)?;
        let head: u64 =
            conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })? as u64;
        let head_tx = watch::channel(head).0;
        let timers_tx = watch::channel(0).0;
        let (sender, receiver) = mpsc::channel::<Request>();
        let writer = {
            let head_tx = head_tx.clone();
            let timers_tx = timers_tx.clone();
            std::thread::Builder::new()
                .name("tks-store-writer".into())
                .spawn(move || writer_loop(conn, receiver, head_tx, timers_tx))
                .map_err(|e| StoreError::Storage(format!("cannot start writer thread: {e}")))?
        };
        Ok(SqliteStore {
            path,
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
) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let (results, armed) = commit_batch(&mut conn, &batch);
        let mut last_position = None;
        for r in results.iter().flatten() {
            if let Some(e) = r.events.last() {
                last_position = Some(e.position);
            }
        }
        if let Some(p) = last_position {
            head.send_replace(p);
        }
        if armed {
            timers_changed.send_modify(|v| *v += 1);
        }
        for (req, result) in batch.into_iter().zip(results) {
            let _ = req.reply.send(result);
        }
    }
}

/// Applies every unit inside one transaction, each in its own savepoint so a
/// refused unit (conflict, duplicate delivery) leaves the others intact.
fn commit_batch(
    conn: &mut Connection,
    batch: &[Request],
) -> (Vec<Result<Committed, StoreError>>, bool) {
    let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let msg = format!("cannot begin transaction: {e}");
            return (
                batch
                    .iter()
                    .map(|_| Err(StoreError::Storage(msg.clone())))
                    .collect(),
                false,
            );
        }
    };
    let mut results = Vec::with_capacity(batch.len());
    let mut armed = false;
    for req in batch {
        let outcome = (|| {
            let mut sp = tx.savepoint()?;
            sp.set_drop_behavior(rusqlite::DropBehavior::Rollback);
            let committed = apply_unit(&sp, &req.unit)?;
            sp.commit()?;
            Ok(committed)
        })();
        if outcome.is_ok() && !req.unit.arm_timers.is_empty() {
            armed = true;
        }
        results.push(outcome);
    }
    if let Err(e) = tx.commit() {
        let msg = format!("commit failed: {e}");
        return (
            batch
                .iter()
                .map(|_| Err(StoreError::Storage(msg.clone())))
                .collect(),
            false,
        );
    }
    (results, armed)
}

fn apply_unit(tx: &Connection, unit: &UnitOfWork) -> Result<Committed, StoreError> {
    if let Some(entry) = &unit.inbox {
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO inbox (source, delivery_id, received_at, payload)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                entry.source,
                entry.delivery_id,
                to_millis(entry.received_at),
                entry.payload
            ])?;
        if inserted == 0 {
            return Err(StoreError::Duplicate {
                source_name: entry.source.clone(),
                delivery_id: entry.delivery_id.clone(),
            });
        }
    }
    let mut committed = Committed::default();
    for append in &unit.appends {
        // The connection sees its own uncommitted writes, so two units of one batch
        // appending to the same stream are checked against each other correctly.
        let current: i64 = tx
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE stream = ?1")?
            .query_row([&append.stream], |r| r.get(0))?;
        let current = current as u64;
        if let Expected::Seq(expected) = append.expected {
            if expected != current {
                return Err(StoreError::Conflict {
                    stream: append.stream.clone(),
                    expected,
                    actual: current,
                });
            }
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (stream, seq, event_type, event_version, payload,
                                 event_id, correlation_id, causation_id, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for (i, e) in append.events.iter().enumerate() {
            let seq = current + 1 + i as u64;
            insert.execute(params![
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
                position: tx.last_insert_rowid() as u64,
                stream: append.stream.clone(),
                seq,
                event_type: e.event_type.clone(),
                version: e.version,
                payload: e.payload.clone(),
                meta: e.meta.clone(),
            });
        }
    }
    for id in &unit.disarm_timers {
        tx.prepare_cached("DELETE FROM timers WHERE id = ?1")?
            .execute([id])?;
    }
    for t in &unit.arm_timers {
        tx.prepare_cached(
            "INSERT INTO timers (id, stream, kind, due_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at",
        )?
        .execute(params![t.id(), t.stream, t.kind, to_millis(t.due_at)])?;
    }
    if let Some((name, pos)) = &unit.checkpoint {
        tx.prepare_cached(
            "INSERT INTO checkpoints (subscriber, position) VALUES (?1, ?2)
             ON CONFLICT (subscriber) DO UPDATE SET position = MAX(position, excluded.position)",
        )?
        .execute(params![name, *pos as i64])?;
    }
    if let Some(s) = &unit.snapshot {
        tx.prepare_cached(
            "INSERT INTO snapshots (stream, seq, state_version, state) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq,
                 state_version = excluded.state_version, state = excluded.state",
        )?
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
        let sent = match self.sender.lock().as_ref() {
            Some(s) => s.send(Request { unit, reply }).is_ok(),
            None => false,
        };
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.unwrap_or(Err(StoreError::Closed))
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
                "SELECT stream, kind, due_at FROM timers WHERE due_at <= ?1
                 ORDER BY due_at, id LIMIT ?2",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewEvent;

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
