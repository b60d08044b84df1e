//! What can happen to an order: the event payloads, the `OrderEvent` enum with
//! each type's version, and the upcasters that read older versions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::codec::{domain_events, Upcaster};
use crate::domain::exceptions::{ExceptionRaised, ExceptionResolved};
use crate::domain::observed::{KatanaFulfillment, OrderSnapshot};

use super::shipping::{
    ShipmentArranged, ShipmentDeferred, TrackingCorrected, TrackingCorrectionRequested,
    TrackingWrittenToKatana,
};

/// Where an observation of the order came from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Source {
    /// A TikTok webhook made us re-read the order.
    Webhook,
    /// The periodic reconciliation poll.
    Poll,
    /// The re-read at the end of the hold.
    HoldReread,
    /// Recorded before sources were recorded (event version 1).
    #[default]
    Unknown,
}

/// Which system signalled a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Signaller {
    TikTok,
    Katana,
}

/// One Katana row requested for an order: all units of one SKU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RequestedRow {
    pub sku_id: String,
    pub seller_sku: String,
    pub quantity: u32,
    pub price_per_unit: String,
}

/// A row of the SO Katana created, to map its fulfillments back to SKUs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreatedRow {
    pub row_id: i64,
    pub seller_sku: String,
    pub quantity: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum SkipReason {
    FulfilledByTikTok,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderSignalled {
    pub by: Signaller,
    pub delivery_id: String,
    /// The webhook's own name for what happened (e.g. `ORDER_STATUS_CHANGE`).
    pub what: String,
    /// The TikTok shop that signalled, by its event key: none for the primary shop
    /// (and for Katana), so a single-shop log keeps its shape.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shop: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderPlaced {
    pub snapshot: OrderSnapshot,
    pub hold_until: DateTime<Utc>,
    #[serde(default)]
    pub source: Source,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderEdited {
    pub snapshot: OrderSnapshot,
    /// Human-readable differences, for the operator and the audit trail.
    pub changes: Vec<String>,
    /// The SO already exists: Katana will not follow this edit by itself.
    pub after_push: bool,
    #[serde(default)]
    pub source: Source,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderCancelled {
    pub after_push: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HoldExpired {
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderSkipped {
    pub reason: SkipReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SoRequested {
    pub rows: Vec<RequestedRow>,
    /// Record as an already delivered ("Done") SO: fulfilled-by-TikTok orders.
    pub as_done: bool,
}

/// Recorded before the first create call, so a restart knows an earlier POST
/// may have reached Katana and looks it up before creating again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SoCreateAttempted {
    pub attempt: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SoBlocked {
    /// Seller SKUs with no Katana variant yet.
    pub unmatched: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SoCreated {
    pub so_id: i64,
    pub order_no: String,
    pub rows: Vec<CreatedRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SoCreateFailed {
    pub reason: String,
    pub retryable: bool,
}

/// A create call whose outcome we could not learn (a timeout, a connection lost
/// after sending, a server error, or a restart while it was in flight). Katana may
/// still commit it, so nothing is looked up or created again before `retry_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SoCreateUnconfirmed {
    pub reason: String,
    pub retry_at: DateTime<Utc>,
}

/// Katana holds a second live SO for this order: a create that committed after we
/// stopped waiting for it. `kept_so_id` is the one this order keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DuplicateSoFound {
    pub so_id: i64,
    pub kept_so_id: i64,
    /// Katana's status of the duplicate when it was found.
    pub status: String,
}

/// The duplicate was deleted in Katana (it was still `NOT_SHIPPED`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DuplicateSoDeleted {
    pub so_id: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SoDeleted {
    pub so_id: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SoDelivered {
    pub fulfillment: KatanaFulfillment,
    /// The TikTok line items this delivery ships: as many not-yet-shipped units of
    /// each SKU as the fulfillment's rows deliver.
    pub line_item_ids: Vec<String>,
    /// Units Katana delivered for which no unshipped TikTok unit was left.
    pub unmatched_units: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FulfillmentRequested {
    pub fulfillment_id: i64,
    pub line_item_ids: Vec<String>,
    pub tracking_number: String,
    pub carrier: Option<String>,
    /// A TikTok-shipping order: TikTok arranges the shipment and owns the tracking.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub platform_label: bool,
    /// Deferred deliveries whose units go out in the same package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with_fulfillment_ids: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FulfillmentPushed {
    pub fulfillment_id: i64,
    pub package_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with_fulfillment_ids: Vec<i64>,
    /// When TikTok took it: tracking corrections are accepted for 72 h after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<DateTime<Utc>>,
}

/// Version 1 of `OrderPlaced` and `OrderEdited` did not say where the observation
/// came from.
fn add_unknown_source(mut v: Value) -> Result<Value, String> {
    match v.as_object_mut() {
        Some(o) => {
            o.entry("source").or_insert(Value::String("Unknown".into()));
            Ok(v)
        }
        None => Err("payload is not an object".into()),
    }
}

const ORDER_UPCASTERS: &[Upcaster] = &[
    Upcaster {
        event_type: "OrderPlaced",
        from: 1,
        lift: add_unknown_source,
    },
    Upcaster {
        event_type: "OrderEdited",
        from: 1,
        lift: add_unknown_source,
    },
];

domain_events! {
    /// Everything that can happen to an order.
    pub enum OrderEvent upcasters(ORDER_UPCASTERS) {
        OrderSignalled = 1,
        OrderPlaced = 2,
        OrderEdited = 2,
        OrderCancelled = 1,
        HoldExpired = 1,
        OrderSkipped = 1,
        SoRequested = 1,
        SoBlocked = 1,
        SoCreateAttempted = 1,
        SoCreated = 1,
        SoCreateFailed = 1,
        SoDeleted = 1,
        SoDelivered = 1,
        FulfillmentRequested = 1,
        FulfillmentPushed = 1,
        ExceptionRaised = 1,
        ExceptionResolved = 1,
        SoCreateUnconfirmed = 1,
        DuplicateSoFound = 1,
        DuplicateSoDeleted = 1,
        ShipmentArranged = 1,
        ShipmentDeferred = 1,
        TrackingWrittenToKatana = 1,
        TrackingCorrectionRequested = 1,
        TrackingCorrected = 1,
    }
}
