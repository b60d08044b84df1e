//! An in-memory [`EventStore`] with the same semantics as the SQLite one: for unit
//! tests and what-if runs that must not touch a database.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{
    Committed, EventStore, Expected, LookupEntry, RawEvent, RecordedEvent, Snapshot, StoreError,
    Timer, UnitOfWork,
};

#[derive(Default)]
struct State {
    events: Vec<RecordedEvent>,
    streams: HashMap<String, Vec<usize>>,
    timers: BTreeMap<String, Timer>,
    inbox: HashSet<(String, String)>,
    checkpoints: HashMap<String, u64>,
    snapshots: BTreeMap<String, Snapshot>,
    lookup: BTreeMap<(String, String), String>,
}

impl State {
    fn last_seq(&self, stream: &str) -> u64 {
        self.streams
            .get(stream)
            .and_then(|idx| idx.last())
            .map_or(0, |&i| self.events[i].seq)
    }
}

pub struct MemoryStore {
    state: Mutex<State>,
    head: watch::Sender<u64>,
    timers_changed: watch::Sender<u64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            head: watch::channel(0).0,
            timers_changed: watch::channel(0).0,
        }
    }

    /// Loads already recorded events keeping their positions and sequence numbers,
    /// as a captured log carries them, so a replay of the capture reports the same
    /// places as the database it came from. Positions must increase and come after
    /// everything already in the store; within a stream, sequence numbers must
    /// increase (gaps are kept: rebuild reports them).
    pub fn import(&self, events: Vec<RecordedEvent>) -> Result<u64, StoreError> {
        let mut st = self.state.lock();
        let mut last_position = st.events.last().map_or(0, |l| l.position);
        let mut last_seqs: HashMap<String, u64> = HashMap::new();
        for e in &events {
            if e.position <= last_position {
                return Err(StoreError::Storage(format!(
                    "import: position {} does not follow position {last_position}",
                    e.position
                )));
            }
            last_position = e.position;
            let prev = match last_seqs.get(&e.stream) {
                Some(&s) => s,
                None => st.last_seq(&e.stream),
            };
            if e.seq <= prev {
                return Err(StoreError::Storage(format!(
                    "import: {} seq {} does not follow seq {prev}",
                    e.stream, e.seq
                )));
            }
            last_seqs.insert(e.stream.clone(), e.seq);
        }
        let n = events.len() as u64;
        for e in events {
            let idx = st.events.len();
            st.streams.entry(e.stream.clone()).or_default().push(idx);
            st.events.push(e);
        }
        drop(st);
        if n > 0 {
            self.head.send_replace(last_position);
        }
        Ok(n)
    }

    fn apply(&self, unit: UnitOfWork) -> Result<Committed, StoreError> {
        let mut st = self.state.lock();
        if let Some(entry) = &unit.inbox {
            if st
                .inbox
                .contains(&(entry.source.clone(), entry.delivery_id.clone()))
            {
                return Err(StoreError::Duplicate {
                    source_name: entry.source.clone(),
                    delivery_id: entry.delivery_id.clone(),
                });
            }
        }
        // Validate every expectation before touching anything: all or nothing.
        let mut pending: HashMap<&str, u64> = HashMap::new();
        for a in &unit.appends {
            let current = *pending
                .get(a.stream.as_str())
                .unwrap_or(&st.last_seq(&a.stream));
            if let Expected::Seq(expected) = a.expected {
                if expected != current {
                    return Err(StoreError::Conflict {
                        stream: a.stream.clone(),
                        expected,
                        actual: current,
                    });
                }
            }
            pending.insert(a.stream.as_str(), current + a.events.len() as u64);
        }
        if let Some(entry) = &unit.inbox {
            st.inbox
                .insert((entry.source.clone(), entry.delivery_id.clone()));
        }
        let mut committed = Committed::default();
        for a in unit.appends {
            for e in a.events {
                // Imported logs may have sparse positions and sequence numbers, so the
                // next ones follow the last recorded, not the count.
                let position = st.events.last().map_or(0, |l| l.position) + 1;
                let idx = st.events.len();
                let seq = st.last_seq(&a.stream) + 1;
                st.streams.entry(a.stream.clone()).or_default().push(idx);
                let rec = RecordedEvent {
                    position,
                    stream: a.stream.clone(),
                    seq,
                    event_type: e.event_type,
                    version: e.version,
                    payload: e.payload,
                    meta: e.meta,
                };
                st.events.push(rec.clone());
                committed.events.push(rec);
            }
        }
        for id in &unit.disarm_timers {
            st.timers.remove(id);
        }
        let armed = !unit.arm_timers.is_empty();
        for t in unit.arm_timers {
            st.timers.insert(t.id(), t);
        }
        if let Some((name, pos)) = unit.checkpoint {
            let cp = st.checkpoints.entry(name).or_insert(0);
            *cp = (*cp).max(pos);
        }
        for (kind, key) in unit.lookup_delete {
            st.lookup.remove(&(kind, key));
        }
        for e in unit.lookup_put {
            st.lookup.insert((e.kind, e.key), e.value);
        }
        if let Some(s) = unit.snapshot {
            st.snapshots.insert(s.stream.clone(), s);
        }
        let head = st.events.last().map_or(0, |l| l.position);
        drop(st);
        if !committed.events.is_empty() {
            self.head.send_replace(head);
        }
        if armed {
            self.timers_changed.send_modify(|v| *v += 1);
        }
        Ok(committed)
    }
}

impl EventStore for MemoryStore {
    fn commit(&self, unit: UnitOfWork) -> BoxFuture<'static, Result<Committed, StoreError>> {
        let result = self.apply(unit);
        Box::pin(async move { result })
    }

    fn read_stream(&self, stream: &str, after_seq: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let st = self.state.lock();
        Ok(st
            .streams
            .get(stream)
            .map(|idx| {
                let from = idx.partition_point(|&i| st.events[i].seq <= after_seq);
                idx[from..].iter().map(|&i| st.events[i].clone()).collect()
            })
            .unwrap_or_default())
    }

    fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let st = self.state.lock();
        let from = st.events.partition_point(|e| e.position <= after);
        Ok(st.events[from..].iter().take(limit).cloned().collect())
    }

    fn scan(
        &self,
        after: u64,
        visit: &mut dyn FnMut(RawEvent<'_>) -> bool,
    ) -> Result<u64, StoreError> {
        let st = self.state.lock();
        let mut n = 0;
        for e in st.events.iter().filter(|e| e.position > after) {
            n += 1;
            let go_on = visit(RawEvent {
                position: e.position,
                stream: &e.stream,
                seq: e.seq,
                event_type: &e.event_type,
                version: e.version,
                payload: &e.payload,
                recorded_at_ms: e.meta.recorded_at.timestamp_millis(),
            });
            if !go_on {
                break;
            }
        }
        Ok(n)
    }

    fn head(&self) -> u64 {
        *self.head.borrow()
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    fn stream_seq(&self, stream: &str) -> Result<u64, StoreError> {
        Ok(self.state.lock().last_seq(stream))
    }

    fn due_timers(&self, until: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>, StoreError> {
        let st = self.state.lock();
        let mut due: Vec<Timer> = st
            .timers
            .values()
            .filter(|t| t.due_at <= until)
            .cloned()
            .collect();
        due.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.id().cmp(&b.id())));
        due.truncate(limit);
        Ok(due)
    }

    fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.state.lock().timers.values().map(|t| t.due_at).min())
    }

    fn watch_timers(&self) -> watch::Receiver<u64> {
        self.timers_changed.subscribe()
    }

    fn timer_count(&self) -> Result<u64, StoreError> {
        Ok(self.state.lock().timers.len() as u64)
    }

    fn checkpoint(&self, subscriber: &str) -> Result<u64, StoreError> {
        Ok(*self.state.lock().checkpoints.get(subscriber).unwrap_or(&0))
    }

    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.state.lock().snapshots.get(stream).cloned())
    }

    fn all_snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        Ok(self.state.lock().snapshots.values().cloned().collect())
    }

    fn inbox_contains(&self, source: &str, delivery_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .state
            .lock()
            .inbox
            .contains(&(source.to_string(), delivery_id.to_string())))
    }

    fn lookup(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .state
            .lock()
            .lookup
            .get(&(kind.to_string(), key.to_string()))
            .cloned())
    }

    fn lookup_all(&self, kind: &str) -> Result<Vec<LookupEntry>, StoreError> {
        Ok(self
            .state
            .lock()
            .lookup
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((k, key), v)| LookupEntry {
                kind: k.clone(),
                key: key.clone(),
                value: v.clone(),
            })
            .collect())
    }

    fn streams(&self) -> Result<Vec<String>, StoreError> {
        let mut v: Vec<String> = self.state.lock().streams.keys().cloned().collect();
        v.sort();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventMeta, NewEvent};

    fn recorded(position: u64, stream: &str, seq: u64) -> RecordedEvent {
        RecordedEvent {
            position,
            stream: stream.into(),
            seq,
            event_type: "T".into(),
            version: 1,
            payload: "{}".into(),
            meta: EventMeta::root(chrono::DateTime::UNIX_EPOCH),
        }
    }

    #[tokio::test]
    async fn imported_events_keep_their_positions_and_appends_follow_them() {
        let store = MemoryStore::new();
        // A capture of one order: its stream whole, another stream's event as context.
        store
            .import(vec![
                recorded(3, "order-1", 1),
                recorded(7, "katana-calls", 40),
                recorded(9, "order-1", 2),
            ])
            .unwrap();
        assert_eq!(store.head(), 9);
        let after = |p| -> Vec<u64> {
            store
                .read_all(p, 10)
                .unwrap()
                .iter()
                .map(|e| e.position)
                .collect()
        };
        assert_eq!(after(0), vec![3, 7, 9]);
        assert_eq!(after(3), vec![7, 9]);
        assert_eq!(after(5), vec![7, 9]);
        assert_eq!(after(9), Vec::<u64>::new());
        let seqs: Vec<u64> = store
            .read_stream("katana-calls", 39)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![40]);
        assert_eq!(store.stream_seq("katana-calls").unwrap(), 40);

        let meta = EventMeta::root(chrono::DateTime::UNIX_EPOCH);
        let next = NewEvent {
            event_type: "T".into(),
            version: 1,
            payload: "{}".into(),
            meta,
        };
        let c = store
            .commit(UnitOfWork::append(
                "order-1",
                Expected::Seq(2),
                vec![next.clone()],
            ))
            .await
            .unwrap();
        assert_eq!((c.events[0].position, c.events[0].seq), (10, 3));
        assert!(store
            .commit(UnitOfWork::append("order-1", Expected::Seq(2), vec![next]))
            .await
            .is_err());
    }

    #[test]
    fn an_import_out_of_order_is_refused_whole() {
        let store = MemoryStore::new();
        assert!(store
            .import(vec![recorded(2, "s", 1), recorded(2, "t", 1)])
            .is_err());
        assert!(store
            .import(vec![recorded(1, "s", 2), recorded(2, "s", 1)])
            .is_err());
        assert_eq!(store.head(), 0);
        assert!(store.read_all(0, 10).unwrap().is_empty());
    }
}
