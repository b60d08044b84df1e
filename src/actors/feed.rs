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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use super::*;
    use crate::store::{EventMeta, EventStore, Expected, MemoryStore, NewEvent};

    /// Answers each event with the next scripted result, then `Ok`.
    struct Scripted {
        answers: VecDeque<Result<(), SeamError>>,
        seen: std::rc::Rc<std::cell::RefCell<Vec<u64>>>,
    }

    impl Subscriber for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }

        fn handle<'a>(
            &'a mut self,
            event: &'a RecordedEvent,
        ) -> LocalBoxFuture<'a, Result<(), SeamError>> {
            self.seen.borrow_mut().push(event.position);
            let answer = self.answers.pop_front().unwrap_or(Ok(()));
            Box::pin(async move { answer })
        }
    }

    async fn run(answers: Vec<Result<(), SeamError>>) -> (Vec<u64>, u64, Arc<FeedHealth>) {
        let store = Arc::new(MemoryStore::new());
        for n in 1..=3 {
            let event = NewEvent {
                event_type: "T".into(),
                version: 1,
                payload: "{}".into(),
                meta: EventMeta::root(chrono::DateTime::UNIX_EPOCH),
            };
            store
                .commit(UnitOfWork::append(
                    format!("s-{n}"),
                    Expected::Seq(0),
                    vec![event],
                ))
                .await
                .unwrap();
        }
        let shared: SharedStore = store.clone();
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let subscriber = Scripted {
            answers: answers.into(),
            seen: seen.clone(),
        };
        let health = Arc::new(FeedHealth::default());
        let (stop, shutdown) = watch::channel(false);
        let task = spawn_feed(shared, subscriber, health.clone(), shutdown);
        for _ in 0..200 {
            let done = store.checkpoint("scripted").unwrap() == 3 || !health.stops().is_empty();
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(true);
        let _ = task.await;
        let seen = seen.borrow().clone();
        (seen, store.checkpoint("scripted").unwrap(), health)
    }

    #[actix::test]
    async fn a_passing_failure_is_retried_on_the_same_event() {
        let (seen, checkpoint, health) =
            run(vec![Ok(()), Err(SeamError::Retry("500".into()))]).await;
        assert_eq!(seen, vec![1, 2, 2, 3]);
        assert_eq!(checkpoint, 3);
        assert!(health.stalls().is_empty() && health.stops().is_empty());
    }

    #[actix::test]
    async fn a_refusal_for_good_is_passed_over() {
        let (seen, checkpoint, _) = run(vec![Err(SeamError::Refused("no".into()))]).await;
        assert_eq!(seen, vec![1, 2, 3]);
        assert_eq!(checkpoint, 3);
    }

    #[actix::test]
    async fn a_bug_stops_the_subscriber_before_the_event() {
        let (seen, checkpoint, health) =
            run(vec![Ok(()), Err(SeamError::Bug("cannot decode".into()))]).await;
        assert_eq!(seen, vec![1, 2], "never retried, never passed over");
        assert_eq!(checkpoint, 1);
        let stops = health.stops();
        assert_eq!((stops.len(), stops[0].position), (1, 2));
        assert!(health
            .render()
            .contains("tks_subscriber_stopped{subscriber=\"scripted\""));
    }
}
