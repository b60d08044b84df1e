//! The durable timer service: sleeps (through the injected clock) until the earliest
//! armed timer, then fires every due timer as a command to its aggregate. The fired
//! timer is disarmed in the same transaction as the command's events, so a timer
//! fires exactly once however often the service restarts; overdue timers fire as
//! soon as it starts.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use tokio::sync::watch;

use super::aggregate::{CommandError, Execute};
use super::registry::Registry;
use crate::clock::Clock;
use crate::domain::Aggregate;
use crate::store::{SharedStore, Timer, UnitOfWork};

/// Delivers a fired timer to the right kind of aggregate.
pub trait TimerRoute {
    fn fire(&self, timer: Timer) -> LocalBoxFuture<'static, Result<(), CommandError>>;
}

impl<A: Aggregate> TimerRoute for Registry<A> {
    fn fire(&self, timer: Timer) -> LocalBoxFuture<'static, Result<(), CommandError>> {
        let registry = self.clone();
        Box::pin(async move {
            let Some(command) = A::timer_command(&timer.kind) else {
                return Err(CommandError::Rejected(format!(
                    "unknown timer kind {:?} on {}",
                    timer.kind, timer.stream
                )));
            };
            let mut msg = Execute::new(command);
            msg.fired_timer = Some(timer.id());
            registry
                .execute_on_stream(&timer.stream, msg)
                .await
                .map(|_| ())
        })
    }
}

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

    fn route_of(&self, stream: &str) -> Option<&dyn TimerRoute> {
        let prefix = stream.split_once('-').map(|(p, _)| p)?;
        self.routes.get(prefix).map(|r| r.as_ref())
    }

    /// Fires everything due now; returns how many timers fired.
    pub async fn fire_due(&self) -> Result<usize, CommandError> {
        let mut fired = 0;
        loop {
            let due = self.store.due_timers(self.clock.now(), 256)?;
            if due.is_empty() {
                return Ok(fired);
            }
            // Timers of one batch belong to different streams: firing them together
            // lets the store commit their events in shared transactions.
            let results = futures::future::join_all(due.into_iter().map(|timer| {
                let route = self.route_of(&timer.stream);
                async move {
                    let id = timer.id();
                    let result = match route {
                        Some(route) => route.fire(timer.clone()).await,
                        None => Err(CommandError::Rejected(format!(
                            "no aggregate handles timers of {}",
                            timer.stream
                        ))),
                    };
                    (id, result)
                }
            }))
            .await;
            let mut progressed = false;
            let mut failure = None;
            for (id, result) in results {
                match result {
                    Ok(()) => {
                        fired += 1;
                        progressed = true;
                    }
                    Err(CommandError::Rejected(reason))
                    | Err(CommandError::Undecodable {
                        source: _,
                        stream: reason,
                    }) => {
                        // Firing again cannot succeed: drop the timer, loudly, rather
                        // than spin on it.
                        tracing::error!(timer = %id, %reason, "timer refused; disarming it");
                        self.store
                            .commit(UnitOfWork {
                                disarm_timers: vec![id],
                                ..Default::default()
                            })
                            .await?;
                        progressed = true;
                    }
                    Err(e) => failure = Some(e),
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
            if !progressed {
                return Ok(fired);
            }
        }
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
            let next = self.store.next_timer_due().ok().flatten();
            armed.mark_unchanged();
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
