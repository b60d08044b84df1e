//! The actix side: thin actor shells around the pure aggregates, the registry that
//! routes commands to them, the feed that hands committed events to subscribers in
//! log order, and the durable timer service.

pub mod aggregate;
pub mod feed;
pub mod feed_health;
pub mod metrics_projection;
pub mod policies;
pub mod registry;
pub mod timers;

pub use aggregate::{AggregateActor, CommandError, Execute};
pub use feed::{spawn_feed, Subscriber};
pub use feed_health::FeedHealth;
pub use registry::Registry;
pub use timers::{TimerRoute, TimerService};
