//! The feed: hands committed events to a subscriber strictly in log order, from its
//! saved checkpoint. A subscriber that fails on an event is retried on that same
//! event (with back-off) so nothing is skipped; the checkpoint only moves after the
//! subscriber succeeded, and a subscriber can move it inside its own commit.
//!
//! What a failure means is the subscriber's to say ([`SeamError`]): a passing one
//! is retried on the same event, one refused for good is passed over, and a bug (an
//! event of its own kind it cannot decode) stops the subscriber on that event until
//! a build that can read it starts: retrying cannot fix it, and passing over it
//! would lose whatever the event asked for.

use std::time::Duration;

use futures::future::LocalBoxFuture;
use tokio::sync::watch;

use super::feed_health::FeedHealth;
use crate::seam::SeamError;
use crate::store::{RecordedEvent, SharedStore, UnitOfWork};

pub trait Subscriber: 'static {
    /// The checkpoint's name: stable across releases.
    fn name(&self) -> &str;

    /// A durable subscriber resumes from its saved checkpoint; a projection kept
    /// only in memory starts from the beginning of the log on every start.
    fn durable(&self) -> bool {
        true
    }

    /// Handles one event; the error says what the feed does next.
    fn handle<'a>(
        &'a mut self,
        event: &'a RecordedEvent,
    ) -> LocalBoxFuture<'a, Result<(), SeamError>>;
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
                loop {
                    match subscriber.handle(event).await {
                        Ok(()) => break,
                        Err(SeamError::Retry(e)) => {
                            tracing::warn!(subscriber = %name, position = event.position, error = %e, "subscriber failed; retrying");
                            health.failing(&name, event.position, &e);
                            failed = true;
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = shutdown.changed() => return,
                            }
                            wait = (wait * 2).min(Duration::from_secs(30));
                        }
                        Err(SeamError::Refused(e)) => {
                            tracing::warn!(subscriber = %name, position = event.position, error = %e, "refused for good; moving on");
                            break;
                        }
                        Err(SeamError::Bug(e)) => {
                            tracing::error!(
                                subscriber = %name,
                                position = event.position,
                                stream = %event.stream,
                                event_type = %event.event_type,
                                version = event.version,
                                error = %e,
                                "subscriber stopped: it cannot handle this event and will not pass over it"
                            );
                            health.stopped(&name, event, &e);
                            if durable {
                                save_checkpoint(&store, &name, position).await;
                            }
                            while !*shutdown.borrow() {
                                if shutdown.changed().await.is_err() {
                                    return;
                                }
                            }
                            return;
                        }
                    }
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
            save_checkpoint(&store, &name, position).await;
        }
    })
}

async fn save_checkpoint(store: &SharedStore, name: &str, position: u64) {
    let unit = UnitOfWork {
        checkpoint: Some((name.to_string(), position)),
        ..Default::default()
    };
    if let Err(e) = store.commit(unit).await {
        tracing::warn!(subscriber = %name, error = %e, "checkpoint not saved");
    }
}
