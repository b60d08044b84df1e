//! Outbound connectors to TikTok Shop and Katana, each folder with the same files
//! (`client.rs`, `model.rs`, `mapping.rs`, `webhook.rs`), and the retry
//! classification and back-off that both share.

pub mod katana;
pub mod pollers;
pub mod ports;
pub mod tiktok;

use std::time::Duration;

use rand::Rng;

use crate::clock::Clock;

/// What to do after a call: the one classification every connector maps its
/// responses onto, so retry behaviour is decided in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    /// Try again; `after` is the server's own hint (e.g. `Retry-After`).
    Retry { after: Option<Duration> },
    /// Retrying cannot help (bad request, missing permission, not found).
    Permanent,
}

/// An error that knows whether retrying it can help.
pub trait Classify {
    fn retry_class(&self) -> RetryClass;
}

/// Whether retrying can help: decides between "try the same event again later" and
/// "record an exception and move on".
pub fn is_retryable<E: Classify>(e: &E) -> bool {
    matches!(e.retry_class(), RetryClass::Retry { .. })
}

/// Exponential back-off with full jitter, slept through the injected clock.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
            max_attempts: 6,
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (1-based): a uniform pick in
    /// `[cap/2, cap]` with `cap = min(max, base * 2^(attempt-1))`, or the server's
    /// hint when it gave one and it is longer.
    pub fn delay(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max);
        let half = cap / 2;
        let jittered = half + rand::thread_rng().gen_range(Duration::ZERO..=half);
        match hint {
            Some(h) if h > jittered => h,
            _ => jittered,
        }
    }

    /// Runs `call` until it succeeds, fails permanently, or attempts run out,
    /// sleeping between attempts through `clock`.
    pub async fn retry<T, E, F, Fut>(&self, clock: &Clock, mut call: F) -> Result<T, E>
    where
        E: Classify + std::fmt::Display,
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match call(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) => match e.retry_class() {
                    RetryClass::Permanent => return Err(e),
                    RetryClass::Retry { .. } if attempt >= self.max_attempts => return Err(e),
                    RetryClass::Retry { after } => {
                        let wait = self.delay(attempt, after);
                        tracing::warn!(attempt, ?wait, error = %e, "retrying");
                        clock.sleep(wait).await;
                        attempt += 1;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[derive(Debug)]
    struct Flaky(RetryClass);
    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl Classify for Flaky {
        fn retry_class(&self) -> RetryClass {
            self.0
        }
    }

    #[test]
    fn delay_grows_and_is_capped_and_honours_hint() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
            max_attempts: 10,
        };
        for _ in 0..50 {
            let d1 = b.delay(1, None);
            assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1));
            let d9 = b.delay(9, None);
            assert!(d9 >= Duration::from_secs(4) && d9 <= Duration::from_secs(8));
        }
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried_and_retryable_ones_are() {
        let manual = ManualClock::at_epoch();
        let clock = manual.clock();
        let b = Backoff::default();
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let r: Result<(), Flaky> = b
            .retry(&clock, |_| {
                c.fetch_add(1, Ordering::SeqCst);
                async { Err(Flaky(RetryClass::Permanent)) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let task = tokio::spawn(async move {
            b.retry(&clock, |attempt| {
                c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if attempt < 3 {
                        Err(Flaky(RetryClass::Retry { after: None }))
                    } else {
                        Ok(attempt)
                    }
                }
            })
            .await
        });
        for _ in 0..100 {
            if task.is_finished() {
                break;
            }
            manual.advance(Duration::from_secs(5));
            tokio::task::yield_now().await;
        }
        assert_eq!(task.await.unwrap().unwrap(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
