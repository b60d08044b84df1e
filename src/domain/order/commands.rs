//! What an order can be asked to do, and why it may refuse.

use chrono::{DateTime, Utc};

use crate::domain::observed::{KatanaFulfillment, OrderSnapshot};

use super::events::*;
use super::shipping::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderCommand {
    /// A webhook said something about this order changed: recorded, then re-read.
    Signal {
        by: Signaller,
        delivery_id: String,
        what: String,
        /// The TikTok shop that signalled, by its event key (empty: the primary
        /// shop, or Katana).
        shop: String,
    },
    /// TikTok showed the order like this.
    Observe {
        snapshot: Box<OrderSnapshot>,
        source: Source,
    },
    /// The hold timer fired.
    ExpireHold,
    /// Some SKUs have no Katana variant: wait for the mapping.
    RecordSoBlocked {
        unmatched: Vec<String>,
    },
    /// A blocked or refused SO may go through now (a mapping appeared).
    RetrySo,
    RecordSoAttempt,
    RecordSoCreated {
        so_id: i64,
        order_no: String,
        rows: Vec<CreatedRow>,
    },
    RecordSoCreateFailed {
        reason: String,
        retryable: bool,
    },
    /// The create's outcome is unknown: wait until `retry_at` before looking up.
    RecordSoUnconfirmed {
        reason: String,
        retry_at: DateTime<Utc>,
    },
    /// The wait after an unconfirmed create is over: request the SO again (the
    /// writer looks it up before creating).
    RetryUnconfirmedSo,
    /// Katana holds another live SO for this order besides `kept_so_id`.
    RecordDuplicateSo {
        so_id: i64,
        kept_so_id: i64,
        status: String,
    },
    RecordDuplicateSoDeleted {
        so_id: i64,
    },
    RecordSoDeleted,
    /// Katana's fulfillments of this order's SO, as read after a delivery signal.
    ObserveFulfillments(Vec<KatanaFulfillment>),
    /// Ask again for a delivery whose push failed (its cause may be fixed now).
    RetryFulfillment {
        fulfillment_id: i64,
    },
    RecordFulfillmentPushed {
        fulfillment_id: i64,
        with_fulfillment_ids: Vec<i64>,
        package_id: String,
    },
    /// TikTok arranged a TikTok-shipping package and issued its label.
    RecordShipmentArranged(Box<ShipmentArranged>),
    /// The delivery's units cannot get a package of their own yet.
    RecordShipmentDeferred {
        fulfillment_id: i64,
        reason: String,
    },
    RecordTrackingWritten {
        fulfillment_id: i64,
        tracking_number: String,
    },
    RecordTrackingCorrected {
        fulfillment_id: i64,
        tracking_number: String,
        carrier: Option<String>,
    },
    RaiseException {
        key: String,
        message: String,
    },
    ResolveException {
        key: String,
    },
}

impl OrderCommand {
    pub fn observe(snapshot: OrderSnapshot, source: Source) -> Self {
        OrderCommand::Observe {
            snapshot: Box::new(snapshot),
            source,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OrderError {
    #[error("order has not been placed")]
    NotPlaced,
    #[error("snapshot is for order {got}, this stream is order {expected}")]
    WrongOrder { expected: String, got: String },
    #[error("no sales order was requested")]
    NotRequested,
    #[error("order already has sales order {existing}; refusing a second one ({offered})")]
    SecondSalesOrder { existing: i64, offered: i64 },
    #[error("no sales order exists yet")]
    NoSalesOrder,
    #[error("fulfillment {0} is not known for this order")]
    UnknownFulfillment(i64),
}
