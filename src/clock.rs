//! The injected clock: the only place in the service that reads wall time.
//!
//! Production passes `Clock::real()`; tests pass a [`ManualClock`] and move time by
//! hand, so a 60-minute hold is exercised in milliseconds and never by sleeping.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use tokio::sync::watch;

#[derive(Clone)]
pub struct Clock {
    source: Arc<Source>,
}

enum Source {
    Real,
    Manual(ManualState),
}

struct ManualState {
    now: Mutex<DateTime<Utc>>,
    ticks: watch::Sender<DateTime<Utc>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.source {
            Source::Real => f.write_str("Clock::Real"),
            Source::Manual(m) => write!(f, "Clock::Manual({})", *m.now.lock()),
        }
    }
}

impl Clock {
    pub fn real() -> Self {
        Clock {
            source: Arc::new(Source::Real),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &*self.source {
            #[allow(clippy::disallowed_methods)]
            Source::Real => Utc::now(),
            Source::Manual(m) => *m.now.lock(),
        }
    }

    /// Unix seconds, the unit both external APIs use for timestamps.
    pub fn unix(&self) -> i64 {
        self.now().timestamp()
    }

    pub fn is_manual(&self) -> bool {
        matches!(&*self.source, Source::Manual(_))
    }

    /// Resolves once the clock reads `deadline` or later. With a manual clock this
    /// waits for someone to advance it, however long that takes in real time.
    pub async fn sleep_until(&self, deadline: DateTime<Utc>) {
        match &*self.source {
            Source::Real => {
                #[allow(clippy::disallowed_methods)]
                let remaining = deadline - Utc::now();
                if let Ok(d) = remaining.to_std() {
                    tokio::time::sleep(d).await;
                }
            }
            Source::Manual(m) => {
                let mut rx = m.ticks.subscribe();
                loop {
                    if *rx.borrow_and_update() >= deadline {
                        return;
                    }
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    pub async fn sleep(&self, d: Duration) {
        let deadline = self.now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        self.sleep_until(deadline).await;
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    clock: Clock,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        let (ticks, _) = watch::channel(start);
        ManualClock {
            clock: Clock {
                source: Arc::new(Source::Manual(ManualState {
                    now: Mutex::new(start),
                    ticks,
                })),
            },
        }
    }

    /// A fixed, readable starting point for tests: 2026-01-01T00:00:00Z.
    pub fn at_epoch() -> Self {
        Self::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
    }

    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn advance(&self, d: Duration) {
        let step = chrono::Duration::from_std(d).expect("advance by a sane duration");
        self.set(self.now() + step);
    }

    /// Moves the clock to `t`; moving backwards is refused because nothing in the
    /// service is written to cope with time running backwards.
    pub fn set(&self, t: DateTime<Utc>) {
        if let Source::Manual(m) = &*self.clock.source {
            let mut now = m.now.lock();
            if t > *now {
                *now = t;
                m.ticks.send_replace(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleep_wakes_only_when_advanced_past_deadline() {
        let manual = ManualClock::at_epoch();
        let clock = manual.clock();
        let deadline = clock.now() + chrono::Duration::minutes(60);
        let waiter = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(deadline).await }
        });
        manual.advance(Duration::from_secs(59 * 60 + 59));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        manual.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
    }

    #[test]
    fn manual_clock_never_runs_backwards() {
        let manual = ManualClock::at_epoch();
        let start = manual.now();
        manual.set(start - chrono::Duration::seconds(10));
        assert_eq!(manual.now(), start);
    }
}
