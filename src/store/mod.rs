//! The append-only event log and its companions (timers, inbox, checkpoints,
//! snapshots), behind one trait with a SQLite and an in-memory implementation.
//!
//! Every write is a [`UnitOfWork`]: appends to any number of streams, timer changes,
//! an inbox record, a subscriber checkpoint and a snapshot, all committed in one
//! transaction or not at all. That is what lets a timer be armed "with" the event
//! that arms it, and a subscriber's checkpoint move "with" its effects.

pub mod memory;
mod migrations;
pub mod private_file;
pub mod sqlite;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// The database schema version this build writes (the last migration's number):
/// captured logs carry it so a reader knows which build produced them.
pub const SCHEMA_VERSION: i64 = migrations::LATEST;

/// Who caused an event and in which conversation, for the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    pub event_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

impl EventMeta {
    /// A new root event: it starts its own correlation.
    pub fn root(recorded_at: DateTime<Utc>) -> Self {
        let id = Uuid::new_v4();
        EventMeta {
            event_id: id,
            correlation_id: id,
            causation_id: None,
            recorded_at,
        }
    }

    /// An event caused by `cause`, in the same correlation.
    pub fn caused_by(cause: &EventMeta, recorded_at: DateTime<Utc>) -> Self {
        EventMeta {
            event_id: Uuid::new_v4(),
            correlation_id: cause.correlation_id,
            causation_id: Some(cause.event_id),
            recorded_at,
        }
    }
}

/// An event ready to be appended: already encoded by the domain codec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub event_type: String,
    pub version: u32,
    pub payload: String,
    pub meta: EventMeta,
}

/// An event as stored, with its place in its stream and in the global log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: u64,
    pub stream: String,
    pub seq: u64,
    pub event_type: String,
    pub version: u32,
    pub payload: String,
    pub meta: EventMeta,
}

/// A borrowed view of one stored event, for scans that must not allocate per event.
#[derive(Clone, Copy, Debug)]
pub struct RawEvent<'a> {
    pub position: u64,
    pub stream: &'a str,
    pub seq: u64,
    pub event_type: &'a str,
    pub version: u32,
    pub payload: &'a str,
    pub recorded_at_ms: i64,
}

impl RecordedEvent {
    pub fn raw(&self) -> RawEvent<'_> {
        RawEvent {
            position: self.position,
            stream: &self.stream,
            seq: self.seq,
            event_type: &self.event_type,
            version: self.version,
            payload: &self.payload,
            recorded_at_ms: self.meta.recorded_at.timestamp_millis(),
        }
    }
}

/// The optimistic-concurrency expectation of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The stream's last sequence number must be exactly this (0: the stream is new).
    Seq(u64),
    /// Append whatever the stream holds (used only by tools and benchmarks).
    Any,
}

#[derive(Clone, Debug)]
pub struct StreamAppend {
    pub stream: String,
    pub expected: Expected,
    pub events: Vec<NewEvent>,
}

/// A durable timer: fires a command at `due_at` to the aggregate of `stream`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub stream: String,
    pub kind: String,
    pub due_at: DateTime<Utc>,
}

impl Timer {
    /// Deterministic: one timer of a kind per stream, so arming again replaces it.
    pub fn id(&self) -> String {
        timer_id(&self.stream, &self.kind)
    }
}

pub fn timer_id(stream: &str, kind: &str) -> String {
    format!("{stream}#{kind}")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxEntry {
    pub source: String,
    pub delivery_id: String,
    pub received_at: DateTime<Utc>,
    pub payload: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub stream: String,
    pub seq: u64,
    pub state_version: u32,
    pub state: String,
}

/// Everything one transaction writes. Empty parts are skipped.
#[derive(Clone, Debug, Default)]
pub struct UnitOfWork {
    pub appends: Vec<StreamAppend>,
    pub arm_timers: Vec<Timer>,
    pub disarm_timers: Vec<String>,
    /// Recorded first; if this delivery was already recorded the whole unit is
    /// refused with [`StoreError::Duplicate`] and nothing else is written.
    pub inbox: Option<InboxEntry>,
    /// (subscriber, position): only ever moves forward.
    pub checkpoint: Option<(String, u64)>,
    pub snapshot: Option<Snapshot>,
    /// Lookup entries to write (replacing any with the same kind and key).
    pub lookup_put: Vec<LookupEntry>,
    /// (kind, key) lookup entries to remove.
    pub lookup_delete: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupEntry {
    pub kind: String,
    pub key: String,
    pub value: String,
}

impl UnitOfWork {
    pub fn append(stream: impl Into<String>, expected: Expected, events: Vec<NewEvent>) -> Self {
        UnitOfWork {
            appends: vec![StreamAppend {
                stream: stream.into(),
                expected,
                events,
            }],
            ..Default::default()
        }
    }

    pub fn event_count(&self) -> usize {
        self.appends.iter().map(|a| a.events.len()).sum()
    }
}

/// One stored event as folding sees it: no metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub event_type: String,
    pub version: u32,
    pub payload: String,
}

/// A stream's snapshot (of the asked state version) and the events after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamLoad {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<StoredEvent>,
}

/// What a committed unit got: the recorded events in append order.
#[derive(Clone, Debug, Default)]
pub struct Committed {
    pub events: Vec<RecordedEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("concurrency conflict on stream {stream}: expected seq {expected}, found {actual}")]
    Conflict {
        stream: String,
        expected: u64,
        actual: u64,
    },
    #[error("delivery {source_name}/{delivery_id} was already recorded")]
    Duplicate {
        source_name: String,
        delivery_id: String,
    },
    #[error("database written by schema version {found}, this build knows up to {supported}: upgrade tks to open it")]
    NewerSchema { found: i64, supported: i64 },
    #[error("the store is closed")]
    Closed,
    #[error("storage: {0}")]
    Storage(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

/// The event store. Writes are asynchronous (they wait for the group commit);
/// reads are synchronous and cheap (WAL readers never wait for the writer).
pub trait EventStore: Send + Sync + 'static {
    /// Commits `unit` atomically; resolves only once it is durable.
    fn commit(&self, unit: UnitOfWork) -> BoxFuture<'static, Result<Committed, StoreError>>;

    /// Commits every unit in one transaction where the store can, each validated
    /// on its own (a conflict refuses that unit only); resolves once all are
    /// durable, with one result per unit in order. Batch paths (timers fired by
    /// the thousand) use it so a batch costs one fsync however many streams it
    /// touches.
    fn commit_all(
        &self,
        units: Vec<UnitOfWork>,
    ) -> BoxFuture<'static, Vec<Result<Committed, StoreError>>> {
        let commits: Vec<_> = units.into_iter().map(|u| self.commit(u)).collect();
        Box::pin(futures::future::join_all(commits))
    }

    /// Events of one stream with `seq > after_seq`, in order.
    fn read_stream(&self, stream: &str, after_seq: u64) -> Result<Vec<RecordedEvent>, StoreError>;

    /// What rehydrating many streams needs, read in one go: for each stream its
    /// snapshot (when `snapshot_version` matches) and the events after it. The
    /// events' metadata is not decoded: folding does not need it.
    fn load_streams(
        &self,
        streams: &[String],
        snapshot_version: u32,
    ) -> Result<Vec<StreamLoad>, StoreError> {
        streams
            .iter()
            .map(|stream| {
                let snapshot = self
                    .load_snapshot(stream)?
                    .filter(|s| s.state_version == snapshot_version);
                let after = snapshot.as_ref().map_or(0, |s| s.seq);
                let events = self
                    .read_stream(stream, after)?
                    .into_iter()
                    .map(|e| StoredEvent {
                        seq: e.seq,
                        event_type: e.event_type,
                        version: e.version,
                        payload: e.payload,
                    })
                    .collect();
                Ok(StreamLoad { snapshot, events })
            })
            .collect()
    }

    /// Up to `limit` events of the global log with `position > after`, in order.
    fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Visits every event with `position > after` in order until `visit` returns
    /// false; returns how many were visited. The fast path of replay.
    fn scan(
        &self,
        after: u64,
        visit: &mut dyn FnMut(RawEvent<'_>) -> bool,
    ) -> Result<u64, StoreError>;

    /// The last committed position (0 for an empty log).
    fn head(&self) -> u64;

    /// Watch the head: changes after every commit that appended events.
    fn watch_head(&self) -> watch::Receiver<u64>;

    /// The last sequence number of a stream (0 if it has none).
    fn stream_seq(&self, stream: &str) -> Result<u64, StoreError>;

    /// Timers due at or before `until`, earliest first.
    fn due_timers(&self, until: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>, StoreError>;

    /// The earliest armed timer's due time.
    fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Changes whenever timers are armed, so a sleeping timer service can re-plan.
    fn watch_timers(&self) -> watch::Receiver<u64>;

    fn timer_count(&self) -> Result<u64, StoreError>;

    fn checkpoint(&self, subscriber: &str) -> Result<u64, StoreError>;

    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError>;

    fn all_snapshots(&self) -> Result<Vec<Snapshot>, StoreError>;

    fn inbox_contains(&self, source: &str, delivery_id: &str) -> Result<bool, StoreError>;

    fn lookup(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError>;

    /// Every entry of one lookup kind, sorted by key.
    fn lookup_all(&self, kind: &str) -> Result<Vec<LookupEntry>, StoreError>;

    /// Distinct stream names, sorted.
    fn streams(&self) -> Result<Vec<String>, StoreError>;
}

pub type SharedStore = Arc<dyn EventStore>;

pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
