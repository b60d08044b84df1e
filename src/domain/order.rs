//! The TikTok order aggregate: from placement through the edit hold to one Katana
//! sales order, its deliveries, and the shipments pushed back to TikTok.
//!
//! Life cycle: placed -> held -> (edited | cancelled) -> hold expired -> SO requested
//! -> SO created -> delivered (partly or fully) -> fulfilment requested -> pushed.
//!
//! One concept per file: `events` (what can happen), `commands` (what it can be
//! asked, and its refusals), `state` (what it is, and how events change it),
//! `decide` (its rules), `shipping` (shipping beyond Mark Package As Shipped).

mod commands;
mod decide;
mod events;
pub mod shipping;
mod state;
#[cfg(test)]
mod tests;

pub use commands::{OrderCommand, OrderError};
pub use decide::{HOLD_TIMER, SO_RETRY_TIMER};
pub use events::{
    CreatedRow, DuplicateSoDeleted, DuplicateSoFound, FulfillmentPushed, FulfillmentRequested,
    HoldExpired, OrderCancelled, OrderEdited, OrderEvent, OrderPlaced, OrderSignalled,
    OrderSkipped, RequestedRow, Signaller, SkipReason, SoBlocked, SoCreateAttempted,
    SoCreateFailed, SoCreateUnconfirmed, SoCreated, SoDeleted, SoDelivered, SoRequested, Source,
};
pub use shipping::{
    PickupSlot, ShipmentArranged, ShipmentDeferred, TrackingCorrected, TrackingCorrectionRequested,
    TrackingWrittenToKatana,
};
pub use state::{Delivery, Order, SoState};
