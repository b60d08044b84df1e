//! What a failure at a seam (a feed subscriber, a poller, a command a connector
//! derived) means for whoever meets it. A bare string said only "not done", so a
//! payload this build cannot read was retried like a timeout, or skipped; the
//! variant says what happens next.

use crate::actors::CommandError;
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

/// A command a seam derived: the log failing is passing, a stream this build
/// cannot read is a bug, and an aggregate's refusal is for good.
impl From<CommandError> for SeamError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Store(_) | CommandError::Unavailable(_) => {
                SeamError::Retry(e.to_string())
            }
            CommandError::Rejected(_) => SeamError::Refused(e.to_string()),
            CommandError::Undecodable { .. } | CommandError::Unroutable(_) => {
                SeamError::Bug(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::OrderError;
    use crate::store::StoreError;

    #[test]
    fn a_command_error_says_what_happens_next() {
        let store = CommandError::Store(StoreError::Storage("disk".into()));
        assert!(matches!(SeamError::from(store), SeamError::Retry(_)));
        let gone = CommandError::Unavailable("order-1".into());
        assert!(matches!(SeamError::from(gone), SeamError::Retry(_)));
        let undecodable = CommandError::Undecodable {
            stream: "order-1".into(),
            source: DecodeError::UnknownType("X".into()),
        };
        assert!(matches!(SeamError::from(undecodable), SeamError::Bug(_)));
        let unroutable = CommandError::Unroutable("timer".into());
        assert!(matches!(SeamError::from(unroutable), SeamError::Bug(_)));
        let rejected = CommandError::Rejected(OrderError::NotPlaced.into());
        assert!(matches!(SeamError::from(rejected), SeamError::Refused(_)));
    }
}
