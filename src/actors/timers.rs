//! The durable timer service: sleeps (through the injected clock) until the earliest
//! armed timer, then fires every due timer as a command to its aggregate. The fired
//! timer is disarmed in the same transaction as the command's events, so a timer
//! fires exactly once however often the service restarts; overdue timers fire as
//! soon as it starts.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::LocalBoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;

use super::aggregate::CommandError;
use super::registry::{Fired, Registry};
use crate::clock::Clock;
use crate::domain::Aggregate;
use crate::store::{SharedStore, Timer, UnitOfWork};

/// Delivers fired timers to the right kind of aggregate, many at a time.
pub trait TimerRoute {
    fn fire(&self, timers: Vec<Timer>) -> LocalBoxFuture<'static, Vec<Fired>>;
}

impl<A: Aggregate> TimerRoute for Registry<A> {
    fn fire(&self, timers: Vec<Timer>) -> LocalBoxFuture<'static, Vec<Fired>> {
        let registry = self.clone();
        Box::pin(async move { registry.fire_timers(timers).await })
    }
}

/// Timers read (and fired) per round: big enough that a round's commit amortises
/// its fsync over thousands of streams, small enough to keep a round's memory and
/// latency modest.
const ROUND: usize = 4096;

/// Rounds under way at once: one committing while the next is decided.
const ROUNDS_IN_FLIGHT: usize = 2;

pub struct TimerService {
    store: SharedStore,
    clock: Clock,
    routes: HashMap<String, Box<dyn TimerRoute>>,
}

impl TimerService {
    pub fn new(store: SharedStore, clock: Clock) -> Self {
        TimerService {
            store,
            clock,
            routes: HashMap::new(),
        }
    }

    /// Timers of streams named `<prefix>-...` go to `route`.
    pub fn route(mut self, prefix: &str, route: impl TimerRoute + 'static) -> Self {
        self.routes.insert(prefix.to_string(), Box::new(route));
        self
    }

    fn route_of(&self, stream: &str) -> Option<(&str, &dyn TimerRoute)> {
        self.route_of_prefix(stream.split_once('-').map(|(p, _)| p)?)
    }

    fn route_of_prefix(&self, prefix: &str) -> Option<(&str, &dyn TimerRoute)> {
        self.routes
            .get_key_value(prefix)
            .map(|(p, r)| (p.as_str(), r.as_ref()))
    }

    /// Fires everything due now; returns how many timers fired.
    ///
    /// Rounds overlap: while one round's unit of work waits for its commit, the
    /// next round's timers are read and decided, so loading and deciding run on one
    /// core while the writer commits on the other. A timer is in at most one round.
    pub async fn fire_due(&self) -> Result<usize, CommandError> {
        let mut fired = 0;
        let mut failure = None;
        let mut in_flight: HashSet<String> = HashSet::new();
        let mut rounds = FuturesUnordered::new();
        let mut exhausted = false;
        loop {
            if !exhausted && failure.is_none() && rounds.len() < ROUNDS_IN_FLIGHT {
                let due = self
                    .store
                    .due_timers(self.clock.now(), ROUND * (rounds.len() + 1))?;
                let fresh: Vec<Timer> = due
                    .into_iter()
                    .filter(|t| !in_flight.contains(&t.id()))
                    .take(ROUND)
                    .collect();
                if fresh.is_empty() {
                    exhausted = true;
                } else {
                    in_flight.extend(fresh.iter().map(Timer::id));
                    rounds.push(self.round(fresh));
                    continue;
                }
            }
            let Some(results) = rounds.next().await else {
                break;
            };
            let mut progressed = false;
            let mut refused = Vec::new();
            for (id, result) in results {
                in_flight.remove(&id);
                match result {
                    Ok(()) => {
                        fired += 1;
                        progressed = true;
                    }
                    Err(e @ CommandError::Rejected(_))
                    | Err(e @ CommandError::Unroutable(_))
                    | Err(e @ CommandError::Undecodable { .. }) => {
                        // Firing again cannot succeed: drop the timer, loudly, rather
                        // than spin on it.
                        tracing::error!(timer = %id, reason = %e, "timer refused; disarming it");
                        refused.push(id);
                    }
                    Err(e) => failure = Some(e),
                }
            }
            if !refused.is_empty() {
                self.store
                    .commit(UnitOfWork {
                        disarm_timers: refused,
                        ..Default::default()
                    })
                    .await?;
                progressed = true;
            }
            // What is due may have changed (a round armed or disarmed timers): look
            // again rather than trust an earlier empty read.
            if progressed {
                exhausted = false;
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(fired),
        }
    }

    /// One round: `due` split by aggregate type, each part fired as one batch.
    fn round(&self, due: Vec<Timer>) -> LocalBoxFuture<'static, Vec<Fired>> {
        let mut by_route: HashMap<&str, Vec<Timer>> = HashMap::new();
        let mut unrouted = Vec::new();
        for timer in due {
            match self.route_of(&timer.stream) {
                Some((prefix, _)) => by_route.entry(prefix).or_default().push(timer),
                None => {
                    let reason = format!("no aggregate handles timers of {}", timer.stream);
                    unrouted.push((timer.id(), Err(CommandError::Unroutable(reason))));
                }
            }
        }
        let parts: Vec<_> = by_route
            .into_iter()
            .filter_map(|(prefix, timers)| {
                let (_, route) = self.route_of_prefix(prefix)?;
                Some(route.fire(timers))
            })
            .collect();
        Box::pin(async move {
            let mut results = unrouted;
            results.extend(futures::future::join_all(parts).await.into_iter().flatten());
            results
        })
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut armed = self.store.watch_timers();
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = self.fire_due().await {
                tracing::warn!(error = %e, "timer firing failed; retrying shortly");
                tokio::select! {
                    _ = self.clock.sleep(Duration::from_secs(1)) => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            // Marked before the read, not after: a timer armed in between would
            // otherwise be neither in `next` nor a change, and with no other timer
            // armed the service would sleep through it.
            armed.mark_unchanged();
            let next = self.store.next_timer_due().ok().flatten();
            tokio::select! {
                _ = async {
                    match next {
                        Some(t) => self.clock.sleep_until(t).await,
                        None => futures::future::pending::<()>().await,
                    }
                } => {}
                _ = armed.changed() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
