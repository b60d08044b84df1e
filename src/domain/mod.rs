//! The pure business rules: aggregates decide what happens and record it as events.
//! Nothing in here performs I/O, awaits, or reads the clock: time arrives as an
//! argument, so every rule is testable and every decision replayable.

pub mod allocation;
pub mod codec;
pub mod exceptions;
pub mod modes;
pub mod observed;
pub mod order;
pub mod reactions;
pub mod sku;
#[cfg(test)]
pub(crate) mod testkit;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use codec::{DecodeError, DomainEvent};

/// Why an aggregate refused a command, as the aggregate said it: callers can tell a
/// refusal apart by its kind instead of by its wording.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Order(#[from] order::OrderError),
    #[error(transparent)]
    Sku(#[from] sku::SkuError),
}

pub use modes::{ArrangeShipmentOn, BufferMode, FbtMode};

/// The settings that decisions depend on. Decisions record their inputs' results
/// in their events, so replay never needs these; what-if runs pass other values.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub order_hold: Duration,
    pub inventory_buffer: Duration,
    pub buffer_mode: BufferMode,
    pub safety_stock: u32,
    pub fbt_orders: FbtMode,
    pub arrange_shipment_on: ArrangeShipmentOn,
    /// The shops the stock is offered to, and how.
    pub shops: allocation::Shops,
}

/// The product's defaults (`sync.*` in product.md).
impl Default for Policy {
    fn default() -> Self {
        Policy {
            order_hold: Duration::from_secs(60 * 60),
            inventory_buffer: Duration::from_secs(60 * 60),
            buffer_mode: BufferMode::All,
            safety_stock: 0,
            fbt_orders: FbtMode::Skip,
            arrange_shipment_on: ArrangeShipmentOn::Delivered,
            shops: allocation::Shops::default(),
        }
    }
}

/// Everything a decision may look at besides the aggregate's own state.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub policy: &'a Policy,
}

pub(crate) fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A timer an event arms or disarms on its own stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimerChange {
    Arm {
        kind: TimerKind,
        due_at: DateTime<Utc>,
    },
    Disarm {
        kind: TimerKind,
    },
}

/// A timer's kind: a fixed name, or one made per shop (a shop's buffer window).
pub type TimerKind = std::borrow::Cow<'static, str>;

/// A lookup entry an event writes in the same transaction, for queries the log
/// alone would answer only by a scan (which order a Katana SO belongs to, which
/// exceptions are open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexChange {
    /// This stream is found under `key` in index `kind`.
    Put {
        kind: &'static str,
        key: String,
    },
    /// An open exception of this stream.
    PutException {
        key: String,
        message: String,
    },
    DeleteException {
        key: String,
    },
}

/// One consistency boundary: its state is a fold of its events.
pub trait Aggregate:
    Default
    + Clone
    + std::fmt::Debug
    + PartialEq
    + Serialize
    + DeserializeOwned
    + Send
    + Unpin
    + 'static
{
    type Command: Clone + std::fmt::Debug + Send + Unpin + 'static;
    type Event: DomainEvent + Clone + std::fmt::Debug + Send + Unpin + 'static;
    type Error: std::error::Error + Into<Rejection> + Send + 'static;

    /// Streams of this aggregate are named `<PREFIX>-<id>`.
    const STREAM_PREFIX: &'static str;
    /// Bumped whenever the state's shape changes, so old snapshots are ignored
    /// rather than misread.
    const STATE_VERSION: u32;

    fn decide(
        &self,
        command: &Self::Command,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    fn apply(&mut self, event: &Self::Event);

    /// `apply` for an event the caller no longer needs: replay folds millions of
    /// events, and moving their payloads instead of cloning them is measurable.
    fn apply_owned(&mut self, event: Self::Event) {
        self.apply(&event);
    }

    /// The timers an event arms or disarms.
    fn timers(event: &Self::Event) -> Vec<TimerChange>;

    /// The index entries an event writes or removes.
    fn index(_event: &Self::Event) -> Vec<IndexChange> {
        Vec::new()
    }

    /// The command a fired timer of `kind` delivers, if the kind is known.
    fn timer_command(kind: &str) -> Option<Self::Command>;

    fn stream_id(id: &str) -> String {
        format!("{}-{}", Self::STREAM_PREFIX, id)
    }
}

/// Folds `events` into a fresh state: what rehydration and replay both do.
pub fn fold<A: Aggregate>(events: &[A::Event]) -> A {
    let mut state = A::default();
    for e in events {
        state.apply(e);
    }
    state
}
