//! What a failure at a seam (a feed subscriber, a poller, a command a connector
//! derived) means for whoever meets it. A bare string said only "not done", so a
//! payload this build cannot read was retried like a timeout, or skipped; the
//! variant says what happens next.

use crate::domain::codec::DecodeError;
use crate::store::RecordedEvent;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeamError {
    /// Passing (an outage, a 429, a store hiccup): back off and try the same work
    /// again.
    #[error("{0}")]
    Retry(String),
    /// Refused for good: trying again cannot help, so it becomes an exception for
    /// an operator and the feed moves on.
    #[error("refused: {0}")]
    Refused(String),
    /// This build cannot go on (an event it cannot read): the subscriber stops
    /// where it is, loudly, rather than guess or skip.
    #[error("bug: {0}")]
    Bug(String),
}

impl SeamError {
    /// An event of a subscriber's own stream kind that does not decode.
    pub fn undecodable(event: &RecordedEvent, error: &DecodeError) -> Self {
        SeamError::Bug(format!(
            "event {} ({} v{} on {}) cannot be decoded: {error}",
            event.position, event.event_type, event.version, event.stream
        ))
    }
}

/// Every error that was a bare string meant "not done, the same work comes again".
impl From<String> for SeamError {
    fn from(reason: String) -> Self {
        SeamError::Retry(reason)
    }
}
