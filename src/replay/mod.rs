//! Folding the log back into state with exactly the production `apply`: per-stream
//! and whole-log state hashes, and verification against the live snapshots.
//!
//! The offline tools built on that fold live in the submodules:
//! - `source`: open a database file or a JSONL capture as an [`EventStore`].
//! - `capture`: write and read JSONL captures (one order, one SKU, a time range).
//! - `timeline`: the causal story of one order or SKU, summarised generically.
//! - `travel`: the state of one stream at a past time or log position.
//! - `whatif`: re-run the recorded observations under other settings.

pub mod capture;
pub mod source;
pub mod timeline;
pub mod travel;
pub mod whatif;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};
use rustc_hash::FxHashMap;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::order::Order;
use crate::domain::sku::Sku;
use crate::domain::{Aggregate, DomainEvent};
use crate::store::{EventStore, RawEvent, Snapshot, StoreError};

/// The stream of TikTok order `id`: `order-<id>`.
pub fn order_stream(id: &str) -> String {
    Order::stream_id(id)
}

/// The stream of seller SKU `sku`: `sku-<sku>`.
pub fn sku_stream(sku: &str) -> String {
    Sku::stream_id(sku)
}

/// Parses a command-line time: RFC 3339 (`2026-01-01T12:00:00Z`, any offset). A
/// time without an offset is refused rather than guessed, because a log read on
/// another machine must not depend on that machine's time zone.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    if NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").is_ok() {
        return Err(format!(
            "{s:?} has no UTC offset: write it as {t}Z (UTC) or with an offset such as {t}+02:00"
        ));
    }
    Err(format!(
        "{s:?} is not an RFC 3339 time (for example 2026-01-01T12:00:00Z)"
    ))
}

/// The state of any stream, by its prefix.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StreamState {
    Order(Box<Order>),
    Sku(Box<Sku>),
}

impl StreamState {
    pub fn for_stream(stream: &str) -> Option<StreamState> {
        let prefix = stream.split_once('-').map(|(p, _)| p)?;
        if prefix == Order::STREAM_PREFIX {
            Some(StreamState::Order(Box::default()))
        } else if prefix == Sku::STREAM_PREFIX {
            Some(StreamState::Sku(Box::default()))
        } else {
            None
        }
    }

    /// Decodes `rec` and applies it.
    pub fn apply_recorded(&mut self, rec: &RawEvent<'_>) -> Result<(), String> {
        match self {
            StreamState::Order(s) => {
                let e =
                    <Order as Aggregate>::Event::decode(rec.event_type, rec.version, rec.payload)
                        .map_err(|e| e.to_string())?;
                s.apply_owned(e);
            }
            StreamState::Sku(s) => {
                let e = <Sku as Aggregate>::Event::decode(rec.event_type, rec.version, rec.payload)
                    .map_err(|e| e.to_string())?;
                s.apply_owned(e);
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Hex SHA-256 of the state's JSON: equal states hash equal.
    pub fn hash(&self) -> String {
        let mut hasher = HashWriter(Sha256::new());
        // Writing into a hasher cannot fail, and a state always serialises.
        let _ = serde_json::to_writer(&mut hasher, self);
        hex::encode(hasher.0.finalize())
    }

    fn state_version(&self) -> u32 {
        match self {
            StreamState::Order(_) => Order::STATE_VERSION,
            StreamState::Sku(_) => Sku::STATE_VERSION,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Problem {
    Gap {
        stream: String,
        expected: u64,
        found: u64,
    },
    Undecodable {
        stream: String,
        seq: u64,
        reason: String,
    },
    UnknownStream {
        stream: String,
    },
    SnapshotDiffers {
        stream: String,
        seq: u64,
    },
    SnapshotAhead {
        stream: String,
        snapshot_seq: u64,
        log_seq: u64,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Gap {
                stream,
                expected,
                found,
            } => {
                write!(
                    f,
                    "{stream}: gap in the log, expected seq {expected}, found {found}"
                )
            }
            Problem::Undecodable {
                stream,
                seq,
                reason,
            } => {
                write!(f, "{stream}: event seq {seq} cannot be decoded: {reason}")
            }
            Problem::UnknownStream { stream } => write!(f, "{stream}: unknown kind of stream"),
            Problem::SnapshotDiffers { stream, seq } => write!(
                f,
                "{stream}: live snapshot at seq {seq} differs from the state rebuilt from the log"
            ),
            Problem::SnapshotAhead {
                stream,
                snapshot_seq,
                log_seq,
            } => write!(
                f,
                "{stream}: snapshot at seq {snapshot_seq} but the log ends at seq {log_seq}"
            ),
        }
    }
}

/// Feeds serialised JSON straight into SHA-256, without an intermediate buffer.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Folding {
    state: StreamState,
    seq: u64,
    broken: bool,
}

#[derive(Debug, Default)]
pub struct Rebuilt {
    /// stream -> (last seq, state hash)
    pub streams: BTreeMap<String, (u64, String)>,
    pub states: BTreeMap<String, StreamState>,
    pub events: u64,
    pub total_hash: String,
    pub problems: Vec<Problem>,
    pub snapshots_checked: u64,
    /// Time spent decoding and applying events.
    pub fold_seconds: f64,
    /// Time spent hashing the final states.
    pub hash_seconds: f64,
}

impl Rebuilt {
    /// What `tks-replay rebuild` prints: a line per stream (last seq, state hash),
    /// then the totals; the golden logs' `.hashes` files hold exactly this.
    pub fn hash_listing(&self) -> String {
        let mut out = String::new();
        for (stream, (seq, hash)) in &self.streams {
            out += &format!("{stream} seq={seq} hash={hash}\n");
        }
        out + &self.totals_line()
    }

    /// The last line of [`Self::hash_listing`].
    pub fn totals_line(&self) -> String {
        format!(
            "events={} streams={} total_hash={}\n",
            self.events,
            self.streams.len(),
            self.total_hash
        )
    }
}

/// Folds the whole log. With `snapshots`, each live snapshot is compared with the
/// rebuilt state at the snapshot's sequence number.
pub fn rebuild(
    store: &dyn EventStore,
    snapshots: &[Snapshot],
    mut progress: impl FnMut(u64),
) -> Result<Rebuilt, StoreError> {
    let by_stream: HashMap<&str, &Snapshot> =
        snapshots.iter().map(|s| (s.stream.as_str(), s)).collect();
    let started = std::time::Instant::now();
    let mut out = Rebuilt::default();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let folding = if workers == 1 {
        fold_serial(store, &by_stream, &mut out, &mut progress)?
    } else {
        fold_parallel(store, &by_stream, &mut out, &mut progress, workers)?
    };
    // Workers report in their own order; sort so reports are stable.
    out.problems.sort_by_key(|p| p.to_string());
    progress(out.events);
    for (stream, snap) in &by_stream {
        let log_seq = folding.get(*stream).map_or(0, |f| f.seq);
        if snap.seq > log_seq {
            out.problems.push(Problem::SnapshotAhead {
                stream: stream.to_string(),
                snapshot_seq: snap.seq,
                log_seq,
            });
        }
    }
    out.fold_seconds = started.elapsed().as_secs_f64();
    let hashing = std::time::Instant::now();
    let mut entries: Vec<(String, Folding)> = folding.into_iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // Hashing is per stream and independent: spread it over the cores.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let chunk = entries.len().div_ceil(workers).max(1);
    let hashes: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|(_, f)| f.state.hash()).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut total = Sha256::new();
    for ((stream, f), hash) in entries.into_iter().zip(hashes) {
        total.update(stream.as_bytes());
        total.update(b":");
        total.update(hash.as_bytes());
        total.update(b"\n");
        out.streams.insert(stream.clone(), (f.seq, hash));
        out.states.insert(stream, f.state);
    }
    out.hash_seconds = hashing.elapsed().as_secs_f64();
    out.total_hash = hex::encode(total.finalize());
    Ok(out)
}

fn fold_serial(
    store: &dyn EventStore,
    snapshots: &HashMap<&str, &Snapshot>,
    out: &mut Rebuilt,
    progress: &mut dyn FnMut(u64),
) -> Result<FxHashMap<String, Folding>, StoreError> {
    let mut folding = FxHashMap::default();
    store.scan(0, &mut |rec| {
        fold_one(&mut folding, &rec, snapshots, out);
        out.events += 1;
        if out.events % 65_536 == 0 {
            progress(out.events);
        }
        true
    })?;
    Ok(folding)
}

/// Decoding and applying dominate a rebuild, and streams are independent: every
/// worker scans the log with its own read connection and folds only the streams
/// that hash to it, so each stream keeps its order and nothing is copied between
/// threads.
fn fold_parallel(
    store: &dyn EventStore,
    snapshots: &HashMap<&str, &Snapshot>,
    out: &mut Rebuilt,
    progress: &mut dyn FnMut(u64),
    workers: usize,
) -> Result<FxHashMap<String, Folding>, StoreError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..workers)
            .map(|me| {
                scope.spawn(move || {
                    let mut folding = FxHashMap::default();
                    let mut part = Rebuilt::default();
                    let scanned = store.scan(0, &mut |rec| {
                        if stream_worker(rec.stream, workers) == me {
                            fold_one(&mut folding, &rec, snapshots, &mut part);
                        }
                        true
                    });
                    scanned.map(|_| (folding, part))
                })
            })
            .collect();
        // This thread is worker 0 and reports progress for the whole scan.
        let mut folding = FxHashMap::default();
        let mut events = 0u64;
        store.scan(0, &mut |rec| {
            if stream_worker(rec.stream, workers) == 0 {
                fold_one(&mut folding, &rec, snapshots, out);
            }
            events += 1;
            if events % 65_536 == 0 {
                progress(events);
            }
            true
        })?;
        out.events = events;
        for h in handles {
            let (part_folding, part) = h
                .join()
                .map_err(|_| StoreError::Storage("a replay worker panicked".into()))??;
            folding.extend(part_folding);
            out.problems.extend(part.problems);
            out.snapshots_checked += part.snapshots_checked;
        }
        Ok(folding)
    })
}

/// FNV-1a of the stream name: cheap, and stable across runs.
fn stream_worker(stream: &str, workers: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stream.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % workers as u64) as usize
}

fn fold_one(
    folding: &mut FxHashMap<String, Folding>,
    rec: &RawEvent<'_>,
    snapshots: &HashMap<&str, &Snapshot>,
    out: &mut Rebuilt,
) {
    let f = match folding.get_mut(rec.stream) {
        Some(f) => f,
        None => {
            let Some(state) = StreamState::for_stream(rec.stream) else {
                out.problems.push(Problem::UnknownStream {
                    stream: rec.stream.to_string(),
                });
                folding.insert(
                    rec.stream.to_string(),
                    Folding {
                        state: StreamState::Sku(Box::default()),
                        seq: rec.seq,
                        broken: true,
                    },
                );
                return;
            };
            folding.entry(rec.stream.to_string()).or_insert(Folding {
                state,
                seq: 0,
                broken: false,
            })
        }
    };
    if f.broken {
        f.seq = rec.seq;
        return;
    }
    if rec.seq != f.seq + 1 {
        out.problems.push(Problem::Gap {
            stream: rec.stream.to_string(),
            expected: f.seq + 1,
            found: rec.seq,
        });
        f.broken = true;
        f.seq = rec.seq;
        return;
    }
    if let Err(reason) = f.state.apply_recorded(rec) {
        out.problems.push(Problem::Undecodable {
            stream: rec.stream.to_string(),
            seq: rec.seq,
            reason,
        });
        f.broken = true;
    }
    f.seq = rec.seq;
    if let Some(snap) = snapshots.get(rec.stream) {
        if snap.seq == rec.seq && snap.state_version == f.state.state_version() {
            out.snapshots_checked += 1;
            let live: serde_json::Value = serde_json::from_str(&snap.state).unwrap_or_default();
            if live != f.state.to_json() {
                out.problems.push(Problem::SnapshotDiffers {
                    stream: rec.stream.to_string(),
                    seq: rec.seq,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_with_an_offset() {
        let t = parse_time("2026-01-01T12:30:00Z").unwrap();
        assert_eq!(t, parse_time("2026-01-01T14:30:00+02:00").unwrap());
        assert_eq!(t.timestamp_millis() % 1000, 0);
        let e = parse_time("2026-01-01T12:30:00").unwrap_err();
        assert!(e.contains("no UTC offset"), "{e}");
        let e = parse_time("last tuesday").unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn streams_are_named_by_kind_and_id() {
        assert_eq!(order_stream("5770001"), "order-5770001");
        assert_eq!(sku_stream("MUG-RED"), "sku-MUG-RED");
        assert!(StreamState::for_stream(&sku_stream("MUG-RED")).is_some());
    }
}
