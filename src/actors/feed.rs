//! The feed: hands committed events to a subscriber strictly in log order, from its
//! saved checkpoint. A subscriber that fails on an event is retried on that same
//! event (with back-off) so nothing is skipped; the checkpoint only moves after the
//! subscriber succeeded, and a subscriber can move it inside its own commit.

use std::time::Duration;

use futures::future::LocalBoxFuture;
use tokio::sync::watch;

use super::feed_health::FeedHealth;
use crate::store::{RecordedEvent, SharedStore, UnitOfWork};

pub trait Subscriber: 'static {
    /// The checkpoint's name: stable across releases.
    fn name(&self) -> &str;

    /// A durable subscriber resumes from its saved checkpoint; a projection kept
    /// only in memory starts from the beginning of the log on every start.
    fn durable(&self) -> bool {
        true
    }

    /// Handles one event. An error means "not done": the same event comes again.
    fn handle<'a>(&'a mut self, event: &'a RecordedEvent)
        -> LocalBoxFuture<'a, Result<(), String>>;
}

const BATCH: usize = 512;

/// Spawns the subscriber's loop on the current local task set.
pub fn spawn_feed(
    store: SharedStore,
    mut subscriber: impl Subscriber,
    health: std::sync::Arc<FeedHealth>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    actix::spawn(async move {
        let name = subscriber.name().to_string();
        let mut head = store.watch_head();
        let durable = subscriber.durable();
        let mut position = if durable {
            match store.checkpoint(&name) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(subscriber = %name, error = %e, "cannot read checkpoint");
                    return;
                }
            }
        } else {
            0
        };
        loop {
            if *shutdown.borrow() {
                return;
            }
            head.mark_unchanged();
            let batch = match store.read_all(position, BATCH) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(subscriber = %name, error = %e, "feed read failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = head.changed() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            for event in &batch {
                let mut wait = Duration::from_millis(50);
                let mut failed = false;
                while let Err(e) = subscriber.handle(event).await {
                    tracing::warn!(subscriber = %name, position = event.position, error = %e, "subscriber failed; retrying");
                    health.failing(&name, event.position, &e);
                    failed = true;
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return,
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                if failed {
                    health.recovered(&name);
                }
                position = event.position;
            }
            // A subscriber whose handler never waits (a projection) would otherwise
            // run its whole catch-up without yielding, and every actor, the timer
            // service and the webhooks on this thread would wait for it.
            tokio::task::yield_now().await;
            if !durable {
                continue;
            }
            let unit = UnitOfWork {
                checkpoint: Some((name.clone(), position)),
                ..Default::default()
            };
            if let Err(e) = store.commit(unit).await {
                tracing::warn!(subscriber = %name, error = %e, "checkpoint not saved");
            }
        }
    })
}
