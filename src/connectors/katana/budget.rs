//! The Katana request budget: one shared, priority-ordered pacer for every request a
//! client makes, so order creation never starves behind catalogue polls and a burst
//! is slowed down instead of hitting 429.
//!
//! # Why a sliding window keyed on completion time
//!
//! Katana allows N requests per 60 seconds. A token bucket of capacity N refilling at
//! N/60 s can let almost 2N requests into one 60-second window (a full bucket, then
//! the refill), so it cannot promise "never more than N in any window". A sliding
//! window log can: a new request starts only while fewer than N requests occupy the
//! last 60 s.
//!
//! A request occupies the window from the moment it is granted until 60 s after its
//! response arrived (in flight counts as occupied). The server stamps a request
//! somewhere between those two instants, so every request the server still counts
//! is also counted here, whatever the network delay or window alignment on the
//! server side. That is what lets 500 creates run at full speed with zero 429s.
//!
//! The server's own view (`X-Ratelimit-Remaining`/`Reset`) and a 429's `Retry-After`
//! pause the whole budget, since another client may share the key and the window.
//!
//! # Priorities under a saturated window
//!
//! During a live sale creates alone can fill the window. A stock read that waits
//! behind them is an oversell on TikTok, a fulfillment read that waits is a late
//! shipment; an order reaching Katana a minute later costs nobody anything. So
//! [`Priority::Urgent`] reads go first, but while creates wait they may hold at most
//! half of the window: a storm of reads (their callers coalesce them, so this is the
//! pathological case) can slow creates to half speed, never stop them.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clock::Clock;

/// Who is asking. A waiting `High` request is always granted before any waiting
/// `Low` one; within a priority, first come first served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Reads whose delay TikTok's buyers see: stock after Katana said it changed (an
    /// oversell), fulfillments (a late shipment). Capped while `High` waits.
    Urgent,
    /// Sales-order creation and lookup: an order reaching Katana later.
    High,
    /// Inventory and catalogue polls: can wait.
    Low,
}

/// A clone-able handle; all clones share one window.
#[derive(Clone)]
pub struct RequestBudget {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    window: Duration,
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    limit: usize,
    /// The configured limit: the server's headers move `limit` below it and back,
    /// never above.
    ceiling: usize,
    /// Completion instants of finished requests still inside the window, oldest first.
    done: VecDeque<(DateTime<Utc>, Priority)>,
    in_flight: usize,
    in_flight_urgent: usize,
    /// Nobody is granted before this instant (429 / server says nothing remains).
    paused_until: Option<DateTime<Utc>>,
    /// Waiting requests, ordered by (priority, ticket): the first one is next.
    queue: BTreeSet<(Priority, u64)>,
    next_ticket: u64,
    granted_total: u64,
}

impl std::fmt::Debug for RequestBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.state.lock();
        f.debug_struct("RequestBudget")
            .field("limit", &s.limit)
            .field("in_window", &(s.done.len() + s.in_flight))
            .field("waiting", &s.queue.len())
            .field("paused_until", &s.paused_until)
            .finish()
    }
}

/// Held while a request is in flight; dropping it records the completion time, which
/// starts that request's 60 s in the window.
pub struct Permit {
    budget: RequestBudget,
    priority: Priority,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let now = self.budget.inner.clock.now();
        {
            let mut s = self.budget.inner.state.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
            if self.priority == Priority::Urgent {
                s.in_flight_urgent = s.in_flight_urgent.saturating_sub(1);
            }
            s.done.push_back((now, self.priority));
        }
        self.budget.inner.changed.notify_waiters();
    }
}

/// Removes a waiter's ticket if its future is dropped before being granted, so a
/// cancelled request cannot block the queue.
struct Ticket<'a> {
    budget: &'a RequestBudget,
    key: (Priority, u64),
    armed: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.budget.inner.state.lock().queue.remove(&self.key);
            self.budget.inner.changed.notify_waiters();
        }
    }
}

impl RequestBudget {
    /// `per_minute` requests per 60 s (0 is treated as 1: a budget that never grants
    /// would hang every caller).
    pub fn new(per_minute: u32, clock: Clock) -> Self {
        Self::with_window(per_minute, Duration::from_secs(60), clock)
    }

    pub fn with_window(limit: u32, window: Duration, clock: Clock) -> Self {
        RequestBudget {
            inner: Arc::new(Inner {
                clock,
                window,
                state: Mutex::new(State {
                    limit: limit.max(1) as usize,
                    ceiling: limit.max(1) as usize,
                    done: VecDeque::new(),
                    in_flight: 0,
                    in_flight_urgent: 0,
                    paused_until: None,
                    queue: BTreeSet::new(),
                    next_ticket: 0,
                    granted_total: 0,
                }),
                changed: Notify::new(),
            }),
        }
    }

    pub fn limit(&self) -> usize {
        self.inner.state.lock().limit
    }

    /// Requests finished or in flight within the current window: the part of the
    /// limit used.
    pub fn used(&self) -> usize {
        let now = self.inner.clock.now();
        let window = chrono::Duration::from_std(self.inner.window).unwrap_or(chrono::Duration::MAX);
        let s = self.inner.state.lock();
        s.done.iter().filter(|(t, _)| *t > now - window).count() + s.in_flight
    }

    /// Requests granted and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.inner.state.lock().in_flight
    }

    /// Requests granted since creation (for metrics and tests).
    pub fn granted_total(&self) -> u64 {
        self.inner.state.lock().granted_total
    }

    /// How many requests are waiting: urgent and high together, then low.
    pub fn waiting(&self) -> (usize, usize) {
        let s = self.inner.state.lock();
        let low = s.queue.iter().filter(|(p, _)| *p == Priority::Low).count();
        (s.queue.len() - low, low)
    }

    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        self.inner.state.lock().paused_until
    }

    /// Waits (on the clock) until this request may be sent.
    pub async fn acquire(&self, priority: Priority) -> Permit {
        let key = {
            let mut s = self.inner.state.lock();
            let t = s.next_ticket;
            s.next_ticket += 1;
            s.queue.insert((priority, t));
            (priority, t)
        };
        let mut ticket = Ticket {
            budget: self,
            key,
            armed: true,
        };
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake_at = {
                let now = self.inner.clock.now();
                let mut s = self.inner.state.lock();
                self.try_grant(&mut s, key, now).err()
            };
            match wake_at {
                None => {
                    ticket.armed = false;
                    // Another waiter may now be at the head of the queue.
                    self.inner.changed.notify_waiters();
                    return Permit {
                        budget: self.clone(),
                        priority,
                    };
                }
                Some(Some(at)) => {
                    tokio::select! {
                        _ = self.inner.clock.sleep_until(at) => {}
                        _ = notified => {}
                    }
                }
                Some(None) => notified.await,
            }
        }
    }

    /// Grants `key` if it heads the queue and the window has room; otherwise says when
    /// to look again (`None` = when something changes).
    fn try_grant(
        &self,
        s: &mut State,
        key: (Priority, u64),
        now: DateTime<Utc>,
    ) -> Result<(), Option<DateTime<Utc>>> {
        let window = chrono::Duration::from_std(self.inner.window).unwrap_or(chrono::Duration::MAX);
        while s.done.front().is_some_and(|(t, _)| *t + window <= now) {
            s.done.pop_front();
        }
        if let Some(p) = s.paused_until {
            if p > now {
                return Err(Some(p));
            }
            s.paused_until = None;
        }
        if Self::next_in_line(s) != Some(key) {
            return Err(None);
        }
        if s.done.len() + s.in_flight < s.limit {
            s.queue.remove(&key);
            s.in_flight += 1;
            if key.0 == Priority::Urgent {
                s.in_flight_urgent += 1;
            }
            s.granted_total += 1;
            return Ok(());
        }
        // Full: the oldest finished request leaving the window frees a slot; if all
        // slots are in flight, a completion will notify us.
        Err(s.done.front().map(|(t, _)| *t + window))
    }

    /// The waiter to grant next: the first by (priority, ticket), except that urgent
    /// ones step aside for waiting creates once they hold their share of the window.
    fn next_in_line(s: &State) -> Option<(Priority, u64)> {
        let urgent_in_window = s
            .done
            .iter()
            .filter(|(_, p)| *p == Priority::Urgent)
            .count()
            + s.in_flight_urgent;
        let capped = urgent_in_window >= Self::urgent_share(s.limit)
            && s.queue.iter().any(|(p, _)| *p == Priority::High);
        s.queue
            .iter()
            .find(|(p, _)| !(capped && *p == Priority::Urgent))
            .copied()
    }

    /// How much of the window urgent reads may hold while creates wait: half.
    fn urgent_share(limit: usize) -> usize {
        limit.div_ceil(2).max(1)
    }

    /// Stops every grant until `until` (a 429's `Retry-After`, or the server saying
    /// nothing remains before its reset).
    pub fn pause_until(&self, until: DateTime<Utc>) {
        {
            let mut s = self.inner.state.lock();
            if s.paused_until.map_or(true, |p| p < until) {
                s.paused_until = Some(until);
            }
        }
        self.inner.changed.notify_waiters();
    }

    /// Pauses for `d` from now.
    pub fn pause_for(&self, d: Duration) {
        let until =
            self.inner.clock.now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        self.pause_until(until);
    }

    /// Takes the server's view into account: with nothing remaining, pause until the
    /// reset; the server's limit is ours while it is below the configured one, both
    /// down (another client may share the key, a plan may be throttled) and back up.
    pub fn observe_headers(
        &self,
        limit: Option<u64>,
        remaining: Option<u64>,
        reset: Option<DateTime<Utc>>,
    ) {
        if let Some(l) = limit {
            let raised = {
                let mut s = self.inner.state.lock();
                let l = (l.min(usize::MAX as u64) as usize).clamp(1, s.ceiling);
                let raised = l > s.limit;
                s.limit = l;
                raised
            };
            if raised {
                // Waiters may fit in the larger window now.
                self.inner.changed.notify_waiters();
            }
        }
        if remaining == Some(0) {
            let now = self.inner.clock.now();
            // A reset in the past or missing still means "wait a moment": one second
            // is the server's own granularity.
            let until = match reset {
                Some(r) if r > now => r,
                _ => now + chrono::Duration::seconds(1),
            };
            self.pause_until(until);
        }
    }
}

/// Reads `X-Ratelimit-Reset`, documented as epoch milliseconds but shown in seconds in
/// Katana's own example: values above 1e12 are milliseconds, others seconds.
pub fn parse_reset(raw: &str) -> Option<DateTime<Utc>> {
    let v: f64 = raw.trim().parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    if v > 1e12 {
        Utc.timestamp_millis_opt(v as i64).single()
    } else {
        Utc.timestamp_opt(v as i64, 0).single()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn reset_accepts_seconds_and_millis() {
        let s = parse_reset("1640995199").unwrap();
        let ms = parse_reset("1640995199000").unwrap();
        assert_eq!(s, ms);
        assert!(parse_reset("soon").is_none());
        assert!(parse_reset("-5").is_none());
    }

    #[test]
    fn the_server_limit_lowers_and_raises_ours_but_never_above_the_configured_one() {
        let manual = ManualClock::at_epoch();
        let b = RequestBudget::new(60, manual.clock());
        b.observe_headers(Some(5), None, None);
        assert_eq!(b.limit(), 5);
        b.observe_headers(Some(40), None, None);
        assert_eq!(b.limit(), 40, "the limit comes back up with the header");
        b.observe_headers(Some(1000), None, None);
        assert_eq!(b.limit(), 60, "never above the configured limit");
        b.observe_headers(Some(0), None, None);
        assert_eq!(b.limit(), 1, "a zero header still lets one through");
    }

    #[tokio::test]
    async fn window_blocks_until_oldest_completion_leaves() {
        let manual = ManualClock::at_epoch();
        let b = RequestBudget::new(2, manual.clock());
        drop(b.acquire(Priority::Low).await);
        manual.advance(Duration::from_secs(10));
        drop(b.acquire(Priority::Low).await);
        let b2 = b.clone();
        let third = tokio::spawn(async move { b2.acquire(Priority::Low).await });
        tokio::task::yield_now().await;
        manual.advance(Duration::from_secs(49));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !third.is_finished(),
            "granted before the first request left the window"
        );
        manual.advance(Duration::from_secs(1));
        let permit = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .unwrap()
            .unwrap();
        drop(permit);
        assert_eq!(b.granted_total(), 3);
    }

    #[tokio::test]
    async fn in_flight_requests_occupy_the_window() {
        let manual = ManualClock::at_epoch();
        let b = RequestBudget::new(1, manual.clock());
        let held = b.acquire(Priority::High).await;
        let b2 = b.clone();
        let next = tokio::spawn(async move { b2.acquire(Priority::High).await });
        manual.advance(Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!next.is_finished());
        drop(held);
        manual.advance(Duration::from_secs(59));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!next.is_finished(), "must wait 60 s after the completion");
        manual.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn high_priority_overtakes_waiting_low() {
        let manual = ManualClock::at_epoch();
        let b = RequestBudget::new(1, manual.clock());
        drop(b.acquire(Priority::Low).await);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, p) in [(0, Priority::Low), (1, Priority::Low), (2, Priority::High)] {
            let b = b.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let permit = b.acquire(p).await;
                order.lock().push(i);
                drop(permit);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(b.waiting(), (1, 2));
        for _ in 0..3 {
            manual.advance(Duration::from_secs(60));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(*order.lock(), vec![2, 0, 1]);
    }

    #[tokio::test]
    async fn pause_stops_everyone_and_cancelled_waiters_leave_the_queue() {
        let manual = ManualClock::at_epoch();
        let b = RequestBudget::new(10, manual.clock());
        b.pause_for(Duration::from_secs(30));
        let b2 = b.clone();
        let cancelled = tokio::spawn(async move { b2.acquire(Priority::High).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        cancelled.abort();
        let _ = cancelled.await;
        assert_eq!(b.waiting(), (0, 0));
        let b3 = b.clone();
        let low = tokio::spawn(async move { b3.acquire(Priority::Low).await });
        manual.advance(Duration::from_secs(29));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!low.is_finished());
        manual.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), low)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn urgent_reads_go_first_but_leave_creates_half_the_window() {
        let manual = ManualClock::at_epoch();
        let b = RequestBudget::new(4, manual.clock());
        // The window is full: everything below waits for it to roll over.
        for _ in 0..4 {
            drop(b.acquire(Priority::High).await);
        }
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let asks = [
            ("create-1", Priority::High),
            ("create-2", Priority::High),
            ("read-1", Priority::Urgent),
            ("read-2", Priority::Urgent),
            ("read-3", Priority::Urgent),
            ("read-4", Priority::Urgent),
        ];
        for (name, p) in asks {
            let b = b.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let permit = b.acquire(p).await;
                order.lock().push(name);
                drop(permit);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..3 {
            manual.advance(Duration::from_secs(60));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(
            *order.lock(),
            vec!["read-1", "read-2", "create-1", "create-2", "read-3", "read-4"],
            "two urgent reads (half of 4) first, then the creates get their half"
        );
    }
}
