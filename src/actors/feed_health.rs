//! What each feed subscriber is doing right now: caught up, or retrying one event
//! (which, since when, how often, why), or stopped on an event it cannot handle,
//! for `/health` and `/metrics`. A stall is visible while it lasts instead of only
//! in a log line.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

#[derive(Default)]
pub struct FeedHealth {
    stalls: Mutex<BTreeMap<String, Stall>>,
    retries_total: Mutex<BTreeMap<String, u64>>,
    stopped: Mutex<BTreeMap<String, StopReport>>,
}

struct Stall {
    position: u64,
    attempts: u32,
    error: String,
    since: Instant,
}

/// One subscriber retrying an event, as reported.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StallReport {
    pub subscriber: String,
    pub position: u64,
    pub attempts: u32,
    pub error: String,
    pub seconds: f64,
}

/// One subscriber stopped on an event it cannot handle (until a build that can).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StopReport {
    pub subscriber: String,
    pub position: u64,
    pub stream: String,
    pub event_type: String,
    pub version: u32,
    pub error: String,
}

impl FeedHealth {
    /// `subscriber` failed on the event at `position` and will retry it.
    pub fn failing(&self, subscriber: &str, position: u64, error: &str) {
        *self
            .retries_total
            .lock()
            .entry(subscriber.to_string())
            .or_insert(0) += 1;
        let mut stalls = self.stalls.lock();
        let stall = stalls.entry(subscriber.to_string()).or_insert(Stall {
            position,
            attempts: 0,
            error: String::new(),
            since: Instant::now(),
        });
        if stall.position != position {
            stall.position = position;
            stall.attempts = 0;
            stall.since = Instant::now();
        }
        stall.attempts += 1;
        stall.error = error.to_string();
    }

    /// `subscriber` got past the event it was retrying.
    pub fn recovered(&self, subscriber: &str) {
        self.stalls.lock().remove(subscriber);
    }

    /// `subscriber` stopped on `event` and will not go past it.
    pub fn stopped(&self, subscriber: &str, event: &crate::store::RecordedEvent, error: &str) {
        self.stalls.lock().remove(subscriber);
        self.stopped.lock().insert(
            subscriber.to_string(),
            StopReport {
                subscriber: subscriber.to_string(),
                position: event.position,
                stream: event.stream.clone(),
                event_type: event.event_type.clone(),
                version: event.version,
                error: error.to_string(),
            },
        );
    }

    pub fn stops(&self) -> Vec<StopReport> {
        self.stopped.lock().values().cloned().collect()
    }

    pub fn stalls(&self) -> Vec<StallReport> {
        self.stalls
            .lock()
            .iter()
            .map(|(name, s)| StallReport {
                subscriber: name.clone(),
                position: s.position,
                attempts: s.attempts,
                error: s.error.clone(),
                seconds: s.since.elapsed().as_secs_f64(),
            })
            .collect()
    }

    /// Prometheus lines: which subscribers retry now, and retries ever.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tks_subscriber_retrying 1 while the subscriber retries an event it failed on"
        );
        let _ = writeln!(out, "# TYPE tks_subscriber_retrying gauge");
        for s in self.stalls() {
            let _ = writeln!(
                out,
                "tks_subscriber_retrying{{subscriber=\"{}\"}} 1",
                s.subscriber
            );
        }
        let _ = writeln!(
            out,
            "# HELP tks_subscriber_stopped 1 while the subscriber is stopped on an event it cannot handle"
        );
        let _ = writeln!(out, "# TYPE tks_subscriber_stopped gauge");
        for s in self.stops() {
            let _ = writeln!(
                out,
                "tks_subscriber_stopped{{subscriber=\"{}\",event_type=\"{}\"}} 1",
                s.subscriber, s.event_type
            );
        }
        let _ = writeln!(
            out,
            "# HELP tks_subscriber_retries_total failed attempts to handle an event, per subscriber"
        );
        let _ = writeln!(out, "# TYPE tks_subscriber_retries_total counter");
        for (name, n) in self.retries_total.lock().iter() {
            let _ = writeln!(
                out,
                "tks_subscriber_retries_total{{subscriber=\"{name}\"}} {n}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_counts_attempts_on_one_event_and_clears_on_recovery() {
        let writer = crate::names::subscriber::KATANA_WRITER;
        let h = FeedHealth::default();
        h.failing(writer, 7, "timeout");
        h.failing(writer, 7, "500");
        let s = h.stalls();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].position, s[0].attempts), (7, 2));
        assert_eq!(s[0].error, "500");
        assert!(h
            .render()
            .contains("tks_subscriber_retrying{subscriber=\"katana-writer\"} 1"));
        h.recovered(writer);
        assert!(h.stalls().is_empty());
        assert!(h
            .render()
            .contains("tks_subscriber_retries_total{subscriber=\"katana-writer\"} 2"));
    }
}
