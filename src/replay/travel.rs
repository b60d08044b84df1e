//! Time travel: the state of one order or SKU as it was at a past time or log
//! position, folded with the production `apply` from the stream's events up to
//! that point. Generic over event types: it decodes through the domain codec (with
//! its upcasters), so it knows every event the build knows.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::timeline::fmt_time;
use super::StreamState;
use crate::store::{EventStore, StoreError};

/// A moment in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum At {
    /// Everything recorded at or before this time.
    Time(DateTime<Utc>),
    /// Everything at or before this global log position.
    Position(u64),
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Time(t) => write!(f, "time {}", fmt_time(*t)),
            At::Position(p) => write!(f, "position {p}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TravelError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}: not an order or SKU stream (expected order-<id> or sku-<seller sku>)")]
    UnknownKind(String),
    #[error("the log has no stream {0}")]
    NoSuchStream(String),
    #[error("{stream}: event seq {seq} cannot be decoded: {reason}")]
    Undecodable {
        stream: String,
        seq: u64,
        reason: String,
    },
}

/// A stream's state at a moment.
#[derive(Clone, Debug, Serialize)]
pub struct PointInTime {
    pub stream: String,
    pub at: At,
    /// Events of the stream folded in (its sequence number at that moment; 0: the
    /// stream did not exist yet).
    pub seq: u64,
    /// The last folded event's log position and time.
    pub position: Option<u64>,
    pub recorded_at: Option<DateTime<Utc>>,
    /// Events the stream holds in all.
    pub stream_events: u64,
    pub hash: String,
    pub state: StreamState,
}

/// The state of `stream` at `at`. Within a stream, events are taken while they are
/// at or before the moment, so the result is always a prefix of the stream: the
/// state the live actor really had.
pub fn state_at(store: &dyn EventStore, stream: &str, at: At) -> Result<PointInTime, TravelError> {
    let mut state =
        StreamState::for_stream(stream).ok_or_else(|| TravelError::UnknownKind(stream.into()))?;
    let events = store.read_stream(stream, 0)?;
    if events.is_empty() {
        return Err(TravelError::NoSuchStream(stream.into()));
    }
    let mut seq = 0;
    let mut position = None;
    let mut recorded_at = None;
    for e in &events {
        let included = match at {
            At::Time(t) => e.meta.recorded_at <= t,
            At::Position(p) => e.position <= p,
        };
        if !included {
            break;
        }
        state
            .apply_recorded(&e.raw())
            .map_err(|reason| TravelError::Undecodable {
                stream: stream.into(),
                seq: e.seq,
                reason,
            })?;
        seq = e.seq;
        position = Some(e.position);
        recorded_at = Some(e.meta.recorded_at);
    }
    Ok(PointInTime {
        stream: stream.into(),
        at,
        seq,
        position,
        recorded_at,
        stream_events: events.len() as u64,
        hash: state.hash(),
        state,
    })
}

impl std::fmt::Display for PointInTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.position, self.recorded_at) {
            (Some(p), Some(t)) => writeln!(
                f,
                "{} at {}: seq {} of {} (last event: position {p}, recorded {})",
                self.stream,
                self.at,
                self.seq,
                self.stream_events,
                fmt_time(t)
            )?,
            _ => writeln!(
                f,
                "{} at {}: no event yet (the stream's first event comes later); initial state",
                self.stream, self.at
            )?,
        }
        writeln!(f, "hash {}", self.hash)?;
        let json = serde_json::to_string_pretty(&self.state).map_err(|_| std::fmt::Error)?;
        writeln!(f, "{json}")
    }
}
