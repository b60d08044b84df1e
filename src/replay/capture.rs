//! Captured logs: part of the event log exported as JSON Lines, so an order's or a
//! SKU's story (or a time range) can be replayed, audited and re-simulated on
//! another machine without the service, the database or a network.
//!
//! Format (version 1): the first line is a [`CaptureHeader`]; every other line is
//! one recorded event with its original log position, stream sequence number, type,
//! version, payload (as a JSON value) and audit metadata. Aggregate streams are
//! always captured in full, so a capture folds to exactly the state the database
//! folds to; events of other streams (connector calls, for example) are carried as
//! context only.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{order_stream, sku_stream, timeline, StreamState};
use crate::domain::order::Order;
use crate::domain::sku::Sku;
use crate::domain::{Aggregate, DomainEvent};
use crate::store::{EventMeta, EventStore, RecordedEvent, StoreError, SCHEMA_VERSION};

/// The first line's `format` value: what tells a capture from any other JSONL.
pub const FORMAT: &str = "tks-capture";
/// Bumped when the line layout changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// What a capture holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// One TikTok order's stream and everything causally linked to it.
    Order(String),
    /// One seller SKU's stream and everything causally linked to it.
    Sku(String),
    /// Every stream with an event recorded at or after this time.
    Since(DateTime<Utc>),
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selection::Order(id) => write!(f, "order {id}"),
            Selection::Sku(sku) => write!(f, "sku {sku}"),
            Selection::Since(t) => write!(f, "since {}", super::timeline::fmt_time(*t)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureHeader {
    pub format: String,
    pub format_version: u32,
    /// The database schema version of the build that wrote the capture.
    pub schema_version: i64,
    /// Every event type the writing build knew, with its current version: a reader
    /// can tell at once whether it is older than the capture.
    pub event_versions: BTreeMap<String, u32>,
    pub selection: Selection,
    /// The source log's last position when the capture was taken.
    pub source_head: u64,
    /// Event lines that follow: a shorter file is reported as truncated.
    pub events: u64,
    /// Streams captured in full (the ones that rebuild to the database's hashes).
    pub streams: Vec<String>,
}

/// One event line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    position: u64,
    stream: String,
    seq: u64,
    #[serde(rename = "type")]
    event_type: String,
    version: u32,
    /// The payload as JSON, which keeps a capture readable by people and `jq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<serde_json::Value>,
    /// The payload verbatim, for the rare one that is not a JSON object or array:
    /// carried exactly, so decoding it on the other machine reports what the
    /// database would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_payload: Option<String>,
    event_id: Uuid,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    recorded_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("nothing to capture: {0}")]
    Nothing(String),
    #[error("not a tks capture: {0}")]
    NotACapture(String),
    #[error("capture format v{found} is newer than this build reads (v{supported}); upgrade tks")]
    NewerFormat { found: u32, supported: u32 },
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },
    #[error("truncated capture: the header announces {expected} events, the file holds {found}")]
    Truncated { expected: u64, found: u64 },
}

fn known_event_versions() -> BTreeMap<String, u32> {
    let order = <Order as Aggregate>::Event::known_types();
    let sku = <Sku as Aggregate>::Event::known_types();
    order
        .iter()
        .chain(sku.iter())
        .map(|(t, v)| (t.to_string(), *v))
        .collect()
}

/// The events a selection captures, in log order, and the streams held in full.
pub struct Selected {
    pub events: Vec<RecordedEvent>,
    pub full_streams: Vec<String>,
}

/// Picks the events of `selection`. Aggregate streams touched by the selection are
/// taken whole, so they fold to their true state; other streams only contribute
/// the events that are part of the story.
pub fn select(
    store: &dyn EventStore,
    selection: &Selection,
    progress: &mut dyn FnMut(u64),
) -> Result<Selected, CaptureError> {
    let (partial, touched): (Vec<RecordedEvent>, BTreeSet<String>) = match selection {
        Selection::Order(id) | Selection::Sku(id) => {
            let stream = match selection {
                Selection::Order(_) => order_stream(id),
                _ => sku_stream(id),
            };
            let story = timeline::story(store, &stream, progress)?;
            if story.is_empty() {
                return Err(CaptureError::Nothing(format!(
                    "the log has no stream {stream}"
                )));
            }
            let touched = story.iter().map(|e| e.stream.clone()).collect();
            (story, touched)
        }
        Selection::Since(since) => {
            let mut partial = Vec::new();
            let mut touched = BTreeSet::new();
            let mut after = 0;
            let mut seen = 0u64;
            loop {
                let batch = store.read_all(after, 8192)?;
                let Some(last) = batch.last() else { break };
                after = last.position;
                seen += batch.len() as u64;
                for e in batch {
                    if e.meta.recorded_at >= *since {
                        touched.insert(e.stream.clone());
                        partial.push(e);
                    }
                }
                progress(seen);
            }
            if touched.is_empty() {
                return Err(CaptureError::Nothing(format!(
                    "no event was recorded at or after {}",
                    since.to_rfc3339()
                )));
            }
            (partial, touched)
        }
    };
    let full_streams: Vec<String> = touched
        .into_iter()
        .filter(|s| StreamState::for_stream(s).is_some())
        .collect();
    let full: HashSet<&str> = full_streams.iter().map(String::as_str).collect();
    let mut events: Vec<RecordedEvent> = partial
        .into_iter()
        .filter(|e| !full.contains(e.stream.as_str()))
        .collect();
    for stream in &full_streams {
        events.extend(store.read_stream(stream, 0)?);
    }
    events.sort_by_key(|e| e.position);
    events.dedup_by_key(|e| e.position);
    Ok(Selected {
        events,
        full_streams,
    })
}

/// Writes the capture of `selection` to `out`; returns its header.
pub fn write_capture(
    store: &dyn EventStore,
    selection: &Selection,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<CaptureHeader, CaptureError> {
    let source_head = store.head();
    let selected = select(store, selection, progress)?;
    let header = CaptureHeader {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        schema_version: SCHEMA_VERSION,
        event_versions: known_event_versions(),
        selection: selection.clone(),
        source_head,
        events: selected.events.len() as u64,
        streams: selected.full_streams,
    };
    let to_io = |e: serde_json::Error| CaptureError::Io(std::io::Error::other(e));
    serde_json::to_writer(&mut *out, &header).map_err(to_io)?;
    out.write_all(b"\n")?;
    for e in &selected.events {
        let (payload, raw_payload) = match serde_json::from_str::<serde_json::Value>(&e.payload) {
            Ok(v) if v.is_object() || v.is_array() => (Some(v), None),
            _ => (None, Some(e.payload.clone())),
        };
        let line = Line {
            position: e.position,
            stream: e.stream.clone(),
            seq: e.seq,
            event_type: e.event_type.clone(),
            version: e.version,
            payload,
            raw_payload,
            event_id: e.meta.event_id,
            correlation_id: e.meta.correlation_id,
            causation_id: e.meta.causation_id,
            recorded_at: e.meta.recorded_at,
        };
        serde_json::to_writer(&mut *out, &line).map_err(to_io)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(header)
}

/// Checks that `first_line` is a capture header this build can read.
pub fn parse_header(first_line: &str) -> Result<CaptureHeader, CaptureError> {
    let value: serde_json::Value = serde_json::from_str(first_line).map_err(|e| {
        CaptureError::NotACapture(format!("the first line is not a JSON object ({e})"))
    })?;
    let format = value.get("format").and_then(|f| f.as_str());
    if format != Some(FORMAT) {
        return Err(CaptureError::NotACapture(format!(
            "the first line has no \"format\": \"{FORMAT}\""
        )));
    }
    let version = value
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| CaptureError::NotACapture("the header has no format_version".into()))?;
    if version > u64::from(FORMAT_VERSION) {
        return Err(CaptureError::NewerFormat {
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: FORMAT_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|e| CaptureError::BadLine {
        line: 1,
        reason: format!("capture header: {e}"),
    })
}

/// Reads a capture: its header and its events in log order. `progress` gets the
/// bytes read so far.
pub fn read_capture(
    mut reader: impl BufRead,
    progress: &mut dyn FnMut(u64),
) -> Result<(CaptureHeader, Vec<RecordedEvent>), CaptureError> {
    let mut buf = String::new();
    let mut bytes = reader.read_line(&mut buf)? as u64;
    if buf.trim().is_empty() {
        return Err(CaptureError::NotACapture("the file is empty".into()));
    }
    let header = parse_header(buf.trim_end())?;
    let mut events = Vec::with_capacity(usize::try_from(header.events).unwrap_or(0).min(1 << 20));
    let mut line_no = 1;
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        bytes += n as u64;
        if line_no % 4096 == 0 {
            progress(bytes);
        }
        let text = buf.trim_end();
        if text.is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(text).map_err(|e| CaptureError::BadLine {
            line: line_no,
            reason: e.to_string(),
        })?;
        let payload = match (line.payload, line.raw_payload) {
            (Some(v), None) => v.to_string(),
            (None, Some(raw)) => raw,
            _ => {
                return Err(CaptureError::BadLine {
                    line: line_no,
                    reason: "an event needs exactly one of payload and raw_payload".into(),
                })
            }
        };
        events.push(RecordedEvent {
            position: line.position,
            stream: line.stream,
            seq: line.seq,
            event_type: line.event_type,
            version: line.version,
            payload,
            meta: EventMeta {
                event_id: line.event_id,
                correlation_id: line.correlation_id,
                causation_id: line.causation_id,
                recorded_at: line.recorded_at,
            },
        });
    }
    progress(bytes);
    if events.len() as u64 != header.events {
        return Err(CaptureError::Truncated {
            expected: header.events,
            found: events.len() as u64,
        });
    }
    Ok((header, events))
}
