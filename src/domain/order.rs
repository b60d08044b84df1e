//! The TikTok order aggregate: from placement through the edit hold to one Katana
//! sales order, its deliveries, and the shipments pushed back to TikTok.
//!
//! Life cycle: placed -> held -> (edited | cancelled) -> hold expired -> SO requested
//! -> SO created -> delivered (partly or fully) -> fulfilment requested -> pushed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codec::{domain_events, Upcaster};
use super::exceptions::{keys, ExceptionRaised, ExceptionResolved};
use super::modes::FbtMode;
use super::observed::{
    FulfillmentType, KatanaFulfillment, OrderSnapshot, ShippingType, TikTokOrderStatus,
};
use super::{add, Aggregate, Ctx, IndexChange, TimerChange};

pub mod shipping;
pub use shipping::{
    PickupSlot, ShipmentArranged, ShipmentDeferred, TrackingCorrected, TrackingCorrectionRequested,
    TrackingWrittenToKatana,
};

pub const HOLD_TIMER: &str = "hold";
/// Fires when a create whose outcome was unknown can no longer commit in Katana.
pub const SO_RETRY_TIMER: &str = "so-retry";

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderCommand {
    /// A webhook said something about this order changed: recorded, then re-read.
    Signal {
        by: Signaller,
        delivery_id: String,
        what: String,
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

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum SoState {
    #[default]
    None,
    Requested {
        rows: Vec<RequestedRow>,
        as_done: bool,
        last_error: Option<String>,
    },
    /// Waiting for SKU mappings, or refused by Katana for a reason retrying won't fix.
    Blocked {
        reason: String,
    },
    Created {
        so_id: i64,
        order_no: String,
        rows: Vec<CreatedRow>,
    },
    Deleted {
        so_id: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Delivery {
    pub fulfillment: KatanaFulfillment,
    pub line_item_ids: Vec<String>,
    pub requested: bool,
    pub package_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<DateTime<Utc>>,
    /// Why TikTok cannot take these units on their own yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    /// TikTok's tracking number of a TikTok-shipping package, once on the Katana
    /// fulfillment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_written: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Order {
    pub snapshot: Option<OrderSnapshot>,
    pub hold_until: Option<DateTime<Utc>>,
    pub hold_expired: bool,
    pub cancelled: bool,
    pub skipped: Option<SkipReason>,
    pub so: SoState,
    pub deliveries: BTreeMap<i64, Delivery>,
    /// Line items already promised to a delivery, so no unit ships twice.
    pub assigned_units: BTreeSet<String>,
    /// Every seller SKU the order ever had, so demand can be released for SKUs an
    /// edit removed.
    pub skus_seen: BTreeSet<String>,
    /// Open exceptions: key -> message.
    pub exceptions: BTreeMap<String, String>,
    pub signals: u64,
    /// Create calls started for the current request.
    pub so_attempts: u32,
    /// A create call was started and nothing about its outcome was recorded yet: a
    /// restart finds it here and waits before looking up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub so_attempt_open: bool,
    /// After an unconfirmed create: no lookup or create before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub so_unconfirmed_until: Option<DateTime<Utc>>,
    /// Duplicate SOs found in Katana: id -> deleted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub duplicate_sos: BTreeMap<i64, bool>,
    /// Packages TikTok arranged with its label: package id -> tracking number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arranged_packages: BTreeMap<String, String>,
}

impl Order {
    pub fn is_placed(&self) -> bool {
        self.snapshot.is_some()
    }

    pub fn order_id(&self) -> Option<&str> {
        self.snapshot.as_ref().map(|s| s.order_id.as_str())
    }

    pub fn status(&self) -> Option<TikTokOrderStatus> {
        self.snapshot.as_ref().map(|s| s.status)
    }

    pub fn so_id(&self) -> Option<i64> {
        match &self.so {
            SoState::Created { so_id, .. } => Some(*so_id),
            _ => None,
        }
    }

    /// Units of each seller SKU sold on TikTok but not yet in a Katana SO: the
    /// demand the inventory push must hold back. Every SKU the order ever had is
    /// listed, with 0 where nothing is pending, so a consumer can release demand.
    pub fn pending_units(&self) -> BTreeMap<String, u32> {
        let mut out: BTreeMap<String, u32> =
            self.skus_seen.iter().map(|s| (s.clone(), 0)).collect();
        let counts = !(self.cancelled
            || self.skipped.is_some()
            || matches!(self.so, SoState::Created { .. } | SoState::Deleted { .. }));
        if let (true, Some(s)) = (counts, &self.snapshot) {
            for u in s.units.iter().filter(|u| !u.cancelled) {
                *out.entry(u.seller_sku.clone()).or_insert(0) += 1;
            }
        }
        out
    }

    fn rows_of(snapshot: &OrderSnapshot) -> Vec<RequestedRow> {
        let mut rows: BTreeMap<&str, RequestedRow> = BTreeMap::new();
        for u in snapshot.units.iter().filter(|u| !u.cancelled) {
            rows.entry(u.sku_id.as_str())
                .and_modify(|r| r.quantity += 1)
                .or_insert_with(|| RequestedRow {
                    sku_id: u.sku_id.clone(),
                    seller_sku: u.seller_sku.clone(),
                    quantity: 1,
                    price_per_unit: u.sale_price.clone(),
                });
        }
        rows.into_values().collect()
    }

    /// The SO to request now, if the order has become eligible.
    fn so_request(&self, snapshot: &OrderSnapshot, fbt: FbtMode) -> Option<SoRequested> {
        let open = matches!(self.so, SoState::None);
        if !self.hold_expired || self.cancelled || !open {
            return None;
        }
        self.eligible_request(snapshot, fbt)
    }

    fn eligible_request(&self, snapshot: &OrderSnapshot, fbt: FbtMode) -> Option<SoRequested> {
        let fbt_order = snapshot.fulfillment_type == FulfillmentType::FulfillmentByTiktok;
        let as_done = match (fbt_order, fbt) {
            (true, FbtMode::Skip) => return None,
            // A Done SO records what TikTok already shipped, so wait for that.
            (true, FbtMode::RecordAsDone) if !snapshot.status.is_shipped() => return None,
            (true, FbtMode::RecordAsDone) => true,
            (false, _) => false,
        };
        if snapshot.status.is_pre_release() || snapshot.status == TikTokOrderStatus::Cancelled {
            return None;
        }
        let rows = Self::rows_of(snapshot);
        if rows.is_empty() {
            return None;
        }
        Some(SoRequested { rows, as_done })
    }

    /// Deliveries recorded while TikTok still held the order go out once it is
    /// released (F9).
    fn releasable_fulfillments(&self, status: TikTokOrderStatus) -> Vec<OrderEvent> {
        if status.is_pre_release() {
            return vec![];
        }
        let platform_label = self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.shipping_type == ShippingType::Tiktok);
        // Deferred units wait in their package for the next delivery and leave with it.
        let mut waiting: Vec<&Delivery> = self
            .deliveries
            .values()
            .filter(|d| d.requested && d.package_id.is_none() && d.deferred.is_some())
            .collect();
        self.deliveries
            .values()
            .filter(|d| !d.requested && d.package_id.is_none() && !d.line_item_ids.is_empty())
            .map(|d| {
                let joining = std::mem::take(&mut waiting);
                let mut line_item_ids: Vec<String> = joining
                    .iter()
                    .flat_map(|w| w.line_item_ids.iter().cloned())
                    .collect();
                line_item_ids.extend(d.line_item_ids.iter().cloned());
                OrderEvent::FulfillmentRequested(FulfillmentRequested {
                    fulfillment_id: d.fulfillment.fulfillment_id,
                    line_item_ids,
                    tracking_number: d.fulfillment.tracking_number.clone().unwrap_or_default(),
                    carrier: d.fulfillment.tracking_carrier.clone(),
                    platform_label,
                    with_fulfillment_ids: joining
                        .iter()
                        .map(|w| w.fulfillment.fulfillment_id)
                        .collect(),
                })
            })
            .collect()
    }

    /// TikTok took a package with these deliveries' units.
    fn decide_pushed(
        &self,
        fulfillment_id: i64,
        with_fulfillment_ids: &[i64],
        package_id: &str,
        arranged: Option<OrderEvent>,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        match self.deliveries.get(&fulfillment_id) {
            None => Err(OrderError::UnknownFulfillment(fulfillment_id)),
            Some(d) if d.package_id.is_some() => Ok(vec![]),
            Some(_) => {
                let mut d = Decision::new(self);
                if let Some(e) = arranged {
                    d.push(e);
                }
                let with: Vec<i64> = with_fulfillment_ids
                    .iter()
                    .copied()
                    .filter(|id| self.deliveries.contains_key(id))
                    .collect();
                d.push(OrderEvent::FulfillmentPushed(FulfillmentPushed {
                    fulfillment_id,
                    package_id: package_id.to_string(),
                    with_fulfillment_ids: with.clone(),
                    pushed_at: Some(ctx.now),
                }));
                for id in std::iter::once(fulfillment_id).chain(with) {
                    for key in [keys::fulfillment_rejected(id), keys::shipment_deferred(id)] {
                        if let Some(e) = d.state.resolve(&key) {
                            d.push(e);
                        }
                    }
                }
                Ok(d.events)
            }
        }
    }

    /// A pushed delivery whose Katana tracking changed since: TikTok is told while
    /// it accepts corrections, the operator after.
    fn tracking_correction(
        &self,
        known: &Delivery,
        now_read: &KatanaFulfillment,
        now: DateTime<Utc>,
    ) -> Vec<OrderEvent> {
        let (Some(package_id), Some(pushed_at)) = (&known.package_id, known.pushed_at) else {
            return vec![];
        };
        if !shipping::tracking_changed(&known.fulfillment, now_read) {
            return vec![];
        }
        let key = keys::tracking_correction(known.fulfillment.fulfillment_id);
        let tracking = now_read.tracking_number.as_deref().unwrap_or("").trim();
        if !shipping::correction_allowed(pushed_at, now) {
            let message = format!(
                "tracking of Katana fulfillment {} changed to {tracking} more than 72 h after it reached TikTok, which no longer accepts corrections: correct it in TikTok Seller Center",
                known.fulfillment.fulfillment_id
            );
            return self.raise(&key, message).into_iter().collect();
        }
        let packages: BTreeSet<&String> = self
            .deliveries
            .values()
            .filter_map(|d| d.package_id.as_ref())
            .collect();
        vec![OrderEvent::TrackingCorrectionRequested(
            TrackingCorrectionRequested {
                fulfillment_id: known.fulfillment.fulfillment_id,
                package_id: package_id.clone(),
                tracking_number: tracking.to_string(),
                carrier: now_read.tracking_carrier.clone(),
                several_packages: packages.len() > 1,
            },
        )]
    }

    fn raise(&self, key: &str, message: String) -> Option<OrderEvent> {
        (self.exceptions.get(key) != Some(&message)).then(|| {
            OrderEvent::ExceptionRaised(ExceptionRaised {
                key: key.to_string(),
                message,
            })
        })
    }

    fn resolve(&self, key: &str) -> Option<OrderEvent> {
        self.exceptions.contains_key(key).then(|| {
            OrderEvent::ExceptionResolved(ExceptionResolved {
                key: key.to_string(),
            })
        })
    }

    fn decide_observe(
        &self,
        snap: &OrderSnapshot,
        source: Source,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let mut d = Decision::new(self);
        let after_push = matches!(self.so, SoState::Created { .. });
        match &self.snapshot {
            None => {
                d.push(OrderEvent::OrderPlaced(OrderPlaced {
                    snapshot: snap.clone(),
                    hold_until: add(snap.create_time, ctx.policy.order_hold),
                    source,
                }));
                if snap.fulfillment_type == FulfillmentType::FulfillmentByTiktok
                    && ctx.policy.fbt_orders == FbtMode::Skip
                {
                    d.push(OrderEvent::OrderSkipped(OrderSkipped {
                        reason: SkipReason::FulfilledByTikTok,
                    }));
                }
            }
            Some(current) => {
                if current.order_id != snap.order_id {
                    return Err(OrderError::WrongOrder {
                        expected: current.order_id.clone(),
                        got: snap.order_id.clone(),
                    });
                }
                // An older read arriving late (poll after webhook) must not undo a newer one.
                if snap.update_time < current.update_time {
                    return Ok(vec![]);
                }
                let changes = differences(current, snap);
                if !changes.is_empty() {
                    let material = changes.iter().any(|c| !c.starts_with("status "));
                    d.push(OrderEvent::OrderEdited(OrderEdited {
                        snapshot: snap.clone(),
                        changes: changes.clone(),
                        after_push,
                        source,
                    }));
                    if after_push && material && snap.status != TikTokOrderStatus::Cancelled {
                        if let Some(e) = d.state.raise(
                            keys::EDITED_AFTER_PUSH,
                            format!("edited after the SO was created: {}", changes.join("; ")),
                        ) {
                            d.push(e);
                        }
                    }
                }
            }
        }
        let all_cancelled = snap.units.iter().all(|u| u.cancelled);
        if !d.state.cancelled && (snap.status == TikTokOrderStatus::Cancelled || all_cancelled) {
            d.push(OrderEvent::OrderCancelled(OrderCancelled { after_push }));
        }
        if let Some(req) = d.state.so_request(snap, ctx.policy.fbt_orders) {
            d.push(OrderEvent::SoRequested(req));
        }
        for e in d.state.releasable_fulfillments(snap.status) {
            d.push(e);
        }
        Ok(d.events)
    }

    fn decide_fulfillments(
        &self,
        fulfillments: &[KatanaFulfillment],
        ctx: &Ctx<'_>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let SoState::Created { rows, .. } = &self.so else {
            return Err(OrderError::NoSalesOrder);
        };
        let Some(snapshot) = &self.snapshot else {
            return Err(OrderError::NotPlaced);
        };
        let sku_of_row: BTreeMap<i64, &str> = rows
            .iter()
            .map(|r| (r.row_id, r.seller_sku.as_str()))
            .collect();
        let mut d = Decision::new(self);
        let mut ordered: Vec<&KatanaFulfillment> = fulfillments.iter().collect();
        ordered.sort_by_key(|f| f.fulfillment_id);
        let shipping = snapshot.shipping_type;
        for f in ordered {
            if let Some(known) = self.deliveries.get(&f.fulfillment_id) {
                if shipping == ShippingType::Seller {
                    for e in d.state.tracking_correction(known, f, ctx.now) {
                        d.push(e);
                    }
                }
                continue;
            }
            if !shipping::releases_units(f, shipping, ctx.policy.arrange_shipment_on) {
                continue;
            }
            let missing_key = keys::missing_tracking(f.fulfillment_id);
            let tracking = f.tracking_number.as_deref().unwrap_or("").trim();
            // TikTok issues the tracking of its own shipments.
            if tracking.is_empty() && shipping == ShippingType::Seller {
                // Recorded only once tracking exists: TikTok needs it, and a later
                // read that has it resolves the exception by itself.
                if let Some(e) = d.state.raise(
                    &missing_key,
                    format!(
                        "Katana fulfillment {} has no tracking number; add it in Katana",
                        f.fulfillment_id
                    ),
                ) {
                    d.push(e);
                }
                continue;
            }
            if let Some(e) = d.state.resolve(&missing_key) {
                d.push(e);
            }
            let mut line_item_ids = Vec::new();
            let mut unmatched_units = 0;
            for (row_id, qty) in &f.rows {
                let units = qty.floor_units().max(0) as u32;
                let Some(sku) = sku_of_row.get(row_id) else {
                    unmatched_units += units;
                    continue;
                };
                let free: Vec<&str> = snapshot
                    .units
                    .iter()
                    .filter(|u| {
                        u.seller_sku == *sku
                            && !u.cancelled
                            && !u.shipped
                            && !d.state.assigned_units.contains(&u.line_item_id)
                            && !line_item_ids.contains(&u.line_item_id)
                    })
                    .map(|u| u.line_item_id.as_str())
                    .take(units as usize)
                    .collect();
                unmatched_units += units - free.len() as u32;
                line_item_ids.extend(free.into_iter().map(str::to_string));
            }
            d.push(OrderEvent::SoDelivered(SoDelivered {
                fulfillment: f.clone(),
                line_item_ids,
                unmatched_units,
            }));
        }
        for e in d.state.releasable_fulfillments(snapshot.status) {
            d.push(e);
        }
        Ok(d.events)
    }
}

/// Events decided so far, applied to a scratch copy so later rules of the same
/// decision see their effect.
struct Decision {
    state: Order,
    events: Vec<OrderEvent>,
}

impl Decision {
    fn new(order: &Order) -> Self {
        Decision {
            state: order.clone(),
            events: Vec::new(),
        }
    }

    fn push(&mut self, e: OrderEvent) {
        self.state.apply(&e);
        self.events.push(e);
    }
}

/// What changed between two reads of an order, in the operator's words.
fn differences(old: &OrderSnapshot, new: &OrderSnapshot) -> Vec<String> {
    let mut out = Vec::new();
    if old.status != new.status {
        out.push(format!("status {:?} -> {:?}", old.status, new.status));
    }
    if old.recipient != new.recipient {
        out.push("recipient address changed".to_string());
    }
    let old_units: BTreeMap<&str, _> = old
        .units
        .iter()
        .map(|u| (u.line_item_id.as_str(), u))
        .collect();
    let new_units: BTreeMap<&str, _> = new
        .units
        .iter()
        .map(|u| (u.line_item_id.as_str(), u))
        .collect();
    for (id, u) in &new_units {
        match old_units.get(id) {
            None => out.push(format!("unit {id} ({}) added", u.seller_sku)),
            Some(o) if !o.cancelled && u.cancelled => {
                out.push(format!("unit {id} ({}) cancelled", u.seller_sku))
            }
            // Shipping flags follow our own pushes; they are not edits.
            Some(o)
                if o.cancelled != u.cancelled
                    || o.sale_price != u.sale_price
                    || o.sku_id != u.sku_id =>
            {
                out.push(format!("unit {id} ({}) changed", u.seller_sku))
            }
            _ => {}
        }
    }
    for (id, u) in &old_units {
        if !new_units.contains_key(id) {
            out.push(format!("unit {id} ({}) removed", u.seller_sku));
        }
    }
    if old.fulfillment_type != new.fulfillment_type || old.warehouse_id != new.warehouse_id {
        out.push("fulfilment changed".to_string());
    }
    if out.is_empty() && old.units != new.units {
        // Only shipping flags moved: keep the newest view without calling it an edit.
        out.push("shipping progress".to_string());
    }
    out
}

impl Aggregate for Order {
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    const STREAM_PREFIX: &'static str = "order";
    const STATE_VERSION: u32 = 3;

    fn decide(&self, command: &OrderCommand, ctx: &Ctx<'_>) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::Signal {
                by,
                delivery_id,
                what,
            } => Ok(vec![OrderEvent::OrderSignalled(OrderSignalled {
                by: *by,
                delivery_id: delivery_id.clone(),
                what: what.clone(),
            })]),
            OrderCommand::Observe { snapshot, source } => {
                self.decide_observe(snapshot, *source, ctx)
            }
            OrderCommand::ExpireHold => {
                let Some(until) = self.hold_until else {
                    return Err(OrderError::NotPlaced);
                };
                // A timer that fires twice, or early after a clock change, decides nothing.
                if self.hold_expired || ctx.now < until {
                    return Ok(vec![]);
                }
                // The SO is requested by the re-read that follows (see the policy), so
                // edits made in the last minutes of the hold are what Katana receives.
                Ok(vec![OrderEvent::HoldExpired(HoldExpired { at: ctx.now })])
            }
            OrderCommand::RecordSoBlocked { unmatched } => match &self.so {
                SoState::Requested { .. } => {
                    let mut d = Decision::new(self);
                    d.push(OrderEvent::SoBlocked(SoBlocked {
                        unmatched: unmatched.clone(),
                    }));
                    if let Some(e) = d.state.raise(
                        keys::UNMATCHED_SKU,
                        format!(
                            "no Katana variant with SKU {}; the order is pushed as soon as it exists",
                            unmatched.join(", ")
                        ),
                    ) {
                        d.push(e);
                    }
                    Ok(d.events)
                }
                _ => Err(OrderError::NotRequested),
            },
            OrderCommand::RetrySo => match (&self.so, &self.snapshot) {
                (SoState::Blocked { .. }, Some(snapshot)) if !self.cancelled => Ok(self
                    .eligible_request(snapshot, ctx.policy.fbt_orders)
                    .map(OrderEvent::SoRequested)
                    .into_iter()
                    .collect()),
                _ => Ok(vec![]),
            },
            OrderCommand::RecordSoAttempt => match &self.so {
                SoState::Requested { .. } => {
                    Ok(vec![OrderEvent::SoCreateAttempted(SoCreateAttempted {
                        attempt: self.so_attempts + 1,
                    })])
                }
                _ => Err(OrderError::NotRequested),
            },
            OrderCommand::RecordSoCreated {
                so_id,
                order_no,
                rows,
            } => match &self.so {
                SoState::Requested { .. } | SoState::Blocked { .. } => {
                    let mut d = Decision::new(self);
                    d.push(OrderEvent::SoCreated(SoCreated {
                        so_id: *so_id,
                        order_no: order_no.clone(),
                        rows: rows.clone(),
                    }));
                    for key in [keys::UNMATCHED_SKU, keys::SO_REJECTED] {
                        if let Some(e) = d.state.resolve(key) {
                            d.push(e);
                        }
                    }
                    Ok(d.events)
                }
                SoState::Created {
                    so_id: existing, ..
                } if existing == so_id => Ok(vec![]),
                SoState::Created {
                    so_id: existing, ..
                } => Err(OrderError::SecondSalesOrder {
                    existing: *existing,
                    offered: *so_id,
                }),
                SoState::None | SoState::Deleted { .. } => Err(OrderError::NotRequested),
            },
            OrderCommand::RecordSoCreateFailed { reason, retryable } => match &self.so {
                SoState::Requested { .. } => {
                    let mut d = Decision::new(self);
                    d.push(OrderEvent::SoCreateFailed(SoCreateFailed {
                        reason: reason.clone(),
                        retryable: *retryable,
                    }));
                    if !retryable {
                        if let Some(e) = d.state.raise(
                            keys::SO_REJECTED,
                            format!("Katana refused the SO: {reason}"),
                        ) {
                            d.push(e);
                        }
                    }
                    Ok(d.events)
                }
                _ => Err(OrderError::NotRequested),
            },
            OrderCommand::RecordSoUnconfirmed { reason, retry_at } => match &self.so {
                SoState::Requested { .. } => {
                    Ok(vec![OrderEvent::SoCreateUnconfirmed(SoCreateUnconfirmed {
                        reason: reason.clone(),
                        retry_at: *retry_at,
                    })])
                }
                _ => Err(OrderError::NotRequested),
            },
            OrderCommand::RetryUnconfirmedSo => match &self.so {
                SoState::Requested { rows, as_done, .. } if self.so_unconfirmed_until.is_some() => {
                    Ok(vec![OrderEvent::SoRequested(SoRequested {
                        rows: rows.clone(),
                        as_done: *as_done,
                    })])
                }
                _ => Ok(vec![]),
            },
            OrderCommand::RecordDuplicateSo {
                so_id,
                kept_so_id,
                status,
            } => {
                if self.duplicate_sos.contains_key(so_id) || self.so_id() == Some(*so_id) {
                    return Ok(vec![]);
                }
                Ok(vec![OrderEvent::DuplicateSoFound(DuplicateSoFound {
                    so_id: *so_id,
                    kept_so_id: *kept_so_id,
                    status: status.clone(),
                })])
            }
            OrderCommand::RecordDuplicateSoDeleted { so_id } => {
                if self.duplicate_sos.get(so_id) != Some(&false) {
                    return Ok(vec![]);
                }
                let mut d = Decision::new(self);
                d.push(OrderEvent::DuplicateSoDeleted(DuplicateSoDeleted {
                    so_id: *so_id,
                }));
                if let Some(e) = d.state.resolve(&keys::duplicate_so(*so_id)) {
                    d.push(e);
                }
                Ok(d.events)
            }
            OrderCommand::RecordSoDeleted => match &self.so {
                SoState::Created { so_id, .. } => {
                    let mut d = Decision::new(self);
                    d.push(OrderEvent::SoDeleted(SoDeleted { so_id: *so_id }));
                    if let Some(e) = d.state.resolve(keys::CANCELLED_AFTER_PUSH) {
                        d.push(e);
                    }
                    Ok(d.events)
                }
                SoState::Deleted { .. } => Ok(vec![]),
                _ => Err(OrderError::NoSalesOrder),
            },
            OrderCommand::ObserveFulfillments(list) => self.decide_fulfillments(list, ctx),
            OrderCommand::RetryFulfillment { fulfillment_id } => {
                match self.deliveries.get(fulfillment_id) {
                    None => Err(OrderError::UnknownFulfillment(*fulfillment_id)),
                    Some(d) if d.package_id.is_some() => Ok(vec![]),
                    Some(_) => {
                        let mut scratch = self.clone();
                        if let Some(d) = scratch.deliveries.get_mut(fulfillment_id) {
                            d.requested = false;
                        }
                        let status = self.status().unwrap_or(TikTokOrderStatus::OnHold);
                        Ok(scratch
                            .releasable_fulfillments(status)
                            .into_iter()
                            .filter(|e| matches!(e, OrderEvent::FulfillmentRequested(r) if r.fulfillment_id == *fulfillment_id))
                            .collect())
                    }
                }
            }
            OrderCommand::RecordFulfillmentPushed {
                fulfillment_id,
                with_fulfillment_ids,
                package_id,
            } => self.decide_pushed(*fulfillment_id, with_fulfillment_ids, package_id, None, ctx),
            OrderCommand::RecordShipmentArranged(arranged) => {
                let Some((first, rest)) = arranged.fulfillment_ids.split_first() else {
                    return Ok(vec![]);
                };
                if self.arranged_packages.contains_key(&arranged.package_id) {
                    return Ok(vec![]);
                }
                self.decide_pushed(
                    *first,
                    rest,
                    &arranged.package_id,
                    Some(OrderEvent::ShipmentArranged((**arranged).clone())),
                    ctx,
                )
            }
            OrderCommand::RecordShipmentDeferred {
                fulfillment_id,
                reason,
            } => match self.deliveries.get(fulfillment_id) {
                None => Err(OrderError::UnknownFulfillment(*fulfillment_id)),
                Some(d) if d.package_id.is_some() || d.deferred.as_ref() == Some(reason) => {
                    Ok(vec![])
                }
                Some(_) => {
                    let mut d = Decision::new(self);
                    d.push(OrderEvent::ShipmentDeferred(ShipmentDeferred {
                        fulfillment_id: *fulfillment_id,
                        reason: reason.clone(),
                    }));
                    if let Some(e) = d
                        .state
                        .raise(&keys::shipment_deferred(*fulfillment_id), reason.clone())
                    {
                        d.push(e);
                    }
                    Ok(d.events)
                }
            },
            OrderCommand::RecordTrackingWritten {
                fulfillment_id,
                tracking_number,
            } => match self.deliveries.get(fulfillment_id) {
                None => Err(OrderError::UnknownFulfillment(*fulfillment_id)),
                Some(d) if d.tracking_written.as_ref() == Some(tracking_number) => Ok(vec![]),
                Some(_) => {
                    let mut d = Decision::new(self);
                    d.push(OrderEvent::TrackingWrittenToKatana(
                        TrackingWrittenToKatana {
                            fulfillment_id: *fulfillment_id,
                            tracking_number: tracking_number.clone(),
                        },
                    ));
                    if let Some(e) = d.state.resolve(&keys::tracking_writeback(*fulfillment_id)) {
                        d.push(e);
                    }
                    Ok(d.events)
                }
            },
            OrderCommand::RecordTrackingCorrected {
                fulfillment_id,
                tracking_number,
                carrier,
            } => match self.deliveries.get(fulfillment_id) {
                None => Err(OrderError::UnknownFulfillment(*fulfillment_id)),
                Some(_) => {
                    let mut d = Decision::new(self);
                    d.push(OrderEvent::TrackingCorrected(TrackingCorrected {
                        fulfillment_id: *fulfillment_id,
                        tracking_number: tracking_number.clone(),
                        carrier: carrier.clone(),
                    }));
                    if let Some(e) = d.state.resolve(&keys::tracking_correction(*fulfillment_id)) {
                        d.push(e);
                    }
                    Ok(d.events)
                }
            },
            OrderCommand::RaiseException { key, message } => {
                Ok(self.raise(key, message.clone()).into_iter().collect())
            }
            OrderCommand::ResolveException { key } => Ok(self.resolve(key).into_iter().collect()),
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::OrderSignalled(_) => self.signals += 1,
            OrderEvent::OrderPlaced(e) => {
                self.skus_seen
                    .extend(e.snapshot.units.iter().map(|u| u.seller_sku.clone()));
                self.snapshot = Some(e.snapshot.clone());
                self.hold_until = Some(e.hold_until);
            }
            OrderEvent::OrderEdited(e) => {
                self.skus_seen
                    .extend(e.snapshot.units.iter().map(|u| u.seller_sku.clone()));
                self.snapshot = Some(e.snapshot.clone());
            }
            OrderEvent::OrderCancelled(_) => self.cancelled = true,
            OrderEvent::HoldExpired(_) => self.hold_expired = true,
            OrderEvent::OrderSkipped(e) => self.skipped = Some(e.reason),
            OrderEvent::SoRequested(e) => {
                self.so = SoState::Requested {
                    rows: e.rows.clone(),
                    as_done: e.as_done,
                    last_error: None,
                };
                self.so_unconfirmed_until = None;
            }
            OrderEvent::SoBlocked(e) => {
                self.so = SoState::Blocked {
                    reason: format!("unmatched SKU {}", e.unmatched.join(", ")),
                }
            }
            OrderEvent::SoCreateAttempted(e) => {
                self.so_attempts = e.attempt;
                self.so_attempt_open = true;
            }
            OrderEvent::SoCreateUnconfirmed(e) => {
                self.so_attempt_open = false;
                self.so_unconfirmed_until = Some(e.retry_at);
                if let SoState::Requested { last_error, .. } = &mut self.so {
                    *last_error = Some(e.reason.clone());
                }
            }
            OrderEvent::DuplicateSoFound(e) => {
                self.duplicate_sos.insert(e.so_id, false);
            }
            OrderEvent::DuplicateSoDeleted(e) => {
                self.duplicate_sos.insert(e.so_id, true);
            }
            OrderEvent::SoCreated(e) => {
                self.so_attempt_open = false;
                self.so_unconfirmed_until = None;
                self.so = SoState::Created {
                    so_id: e.so_id,
                    order_no: e.order_no.clone(),
                    rows: e.rows.clone(),
                }
            }
            OrderEvent::SoCreateFailed(e) => {
                self.so_attempt_open = false;
                if e.retryable {
                    if let SoState::Requested { last_error, .. } = &mut self.so {
                        *last_error = Some(e.reason.clone());
                    }
                } else {
                    self.so = SoState::Blocked {
                        reason: e.reason.clone(),
                    };
                }
            }
            OrderEvent::SoDeleted(e) => self.so = SoState::Deleted { so_id: e.so_id },
            OrderEvent::SoDelivered(e) => {
                self.assigned_units.extend(e.line_item_ids.iter().cloned());
                self.deliveries.insert(
                    e.fulfillment.fulfillment_id,
                    Delivery {
                        fulfillment: e.fulfillment.clone(),
                        line_item_ids: e.line_item_ids.clone(),
                        requested: false,
                        package_id: None,
                        pushed_at: None,
                        deferred: None,
                        tracking_written: None,
                    },
                );
            }
            OrderEvent::FulfillmentRequested(e) => {
                if let Some(d) = self.deliveries.get_mut(&e.fulfillment_id) {
                    d.requested = true;
                }
            }
            OrderEvent::FulfillmentPushed(e) => {
                for id in std::iter::once(&e.fulfillment_id).chain(&e.with_fulfillment_ids) {
                    if let Some(d) = self.deliveries.get_mut(id) {
                        d.package_id = Some(e.package_id.clone());
                        d.pushed_at = e.pushed_at;
                        d.deferred = None;
                    }
                }
            }
            OrderEvent::ShipmentArranged(e) => {
                self.arranged_packages
                    .insert(e.package_id.clone(), e.tracking_number.clone());
            }
            OrderEvent::ShipmentDeferred(e) => {
                if let Some(d) = self.deliveries.get_mut(&e.fulfillment_id) {
                    d.deferred = Some(e.reason.clone());
                }
            }
            OrderEvent::TrackingWrittenToKatana(e) => {
                if let Some(d) = self.deliveries.get_mut(&e.fulfillment_id) {
                    d.tracking_written = Some(e.tracking_number.clone());
                }
            }
            OrderEvent::TrackingCorrectionRequested(e) => {
                // What TikTok is being told from now on: later reads compare with it.
                if let Some(d) = self.deliveries.get_mut(&e.fulfillment_id) {
                    d.fulfillment.tracking_number = Some(e.tracking_number.clone());
                    d.fulfillment.tracking_carrier = e.carrier.clone();
                }
            }
            OrderEvent::TrackingCorrected(_) => {}
            OrderEvent::ExceptionRaised(e) => {
                self.exceptions.insert(e.key.clone(), e.message.clone());
            }
            OrderEvent::ExceptionResolved(e) => {
                self.exceptions.remove(&e.key);
            }
        }
    }

    fn apply_owned(&mut self, event: OrderEvent) {
        match event {
            OrderEvent::OrderPlaced(e) => {
                self.skus_seen
                    .extend(e.snapshot.units.iter().map(|u| u.seller_sku.clone()));
                self.hold_until = Some(e.hold_until);
                self.snapshot = Some(e.snapshot);
            }
            OrderEvent::OrderEdited(e) => {
                self.skus_seen
                    .extend(e.snapshot.units.iter().map(|u| u.seller_sku.clone()));
                self.snapshot = Some(e.snapshot);
            }
            other => self.apply(&other),
        }
    }

    fn timers(event: &OrderEvent) -> Vec<TimerChange> {
        match event {
            OrderEvent::OrderPlaced(e) => vec![TimerChange::Arm {
                kind: HOLD_TIMER,
                due_at: e.hold_until,
            }],
            OrderEvent::HoldExpired(_) => vec![TimerChange::Disarm { kind: HOLD_TIMER }],
            OrderEvent::SoCreateUnconfirmed(e) => vec![TimerChange::Arm {
                kind: SO_RETRY_TIMER,
                due_at: e.retry_at,
            }],
            _ => vec![],
        }
    }

    fn index(event: &OrderEvent) -> Vec<IndexChange> {
        match event {
            OrderEvent::SoCreated(e) => vec![IndexChange::Put {
                kind: "so",
                key: e.so_id.to_string(),
            }],
            OrderEvent::ExceptionRaised(e) => vec![IndexChange::PutException {
                key: e.key.clone(),
                message: e.message.clone(),
            }],
            OrderEvent::ExceptionResolved(e) => {
                vec![IndexChange::DeleteException { key: e.key.clone() }]
            }
            _ => vec![],
        }
    }

    fn timer_command(kind: &str) -> Option<OrderCommand> {
        match kind {
            HOLD_TIMER => Some(OrderCommand::ExpireHold),
            SO_RETRY_TIMER => Some(OrderCommand::RetryUnconfirmedSo),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::observed::Quantity;
    use crate::domain::testkit::*;
    use crate::domain::{fold, DomainEvent, Policy};
    use proptest::prelude::*;

    fn policy() -> Policy {
        Policy::default()
    }

    fn placed(snap: &OrderSnapshot) -> Vec<OrderEvent> {
        given_when::<Order>(
            &[],
            OrderCommand::observe(snap.clone(), Source::Poll),
            t0(),
            &policy(),
        )
        .unwrap()
    }

    fn expired(snap: &OrderSnapshot) -> Vec<OrderEvent> {
        let mut h = placed(snap);
        h.extend(given_when::<Order>(&h, OrderCommand::ExpireHold, mins(60), &policy()).unwrap());
        h
    }

    fn requested_rows(events: &[OrderEvent]) -> Option<Vec<RequestedRow>> {
        events.iter().find_map(|e| match e {
            OrderEvent::SoRequested(r) => Some(r.rows.clone()),
            _ => None,
        })
    }

    fn created(snap: &OrderSnapshot) -> Vec<OrderEvent> {
        let mut h = expired(snap);
        h.extend(
            given_when::<Order>(
                &h,
                OrderCommand::observe(reread(snap, 60, |_| {}), Source::Poll),
                mins(60),
                &policy(),
            )
            .unwrap(),
        );
        let rows: Vec<CreatedRow> = requested_rows(&h)
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, r)| CreatedRow {
                row_id: 100 + i as i64,
                seller_sku: r.seller_sku.clone(),
                quantity: r.quantity,
            })
            .collect();
        h.extend(
            given_when::<Order>(
                &h,
                OrderCommand::RecordSoCreated {
                    so_id: 42,
                    order_no: "TT-5770001".into(),
                    rows,
                },
                mins(61),
                &policy(),
            )
            .unwrap(),
        );
        h
    }

    fn fulfillment(id: i64, rows: &[(i64, i64)]) -> KatanaFulfillment {
        KatanaFulfillment {
            fulfillment_id: id,
            status: "DELIVERED".into(),
            tracking_number: Some(format!("1Z{id}")),
            tracking_url: None,
            tracking_carrier: Some("UPS".into()),
            rows: rows
                .iter()
                .map(|(r, q)| (*r, Quantity::from_units(*q)))
                .collect(),
        }
    }

    #[test]
    fn first_observation_places_the_order_and_holds_it_from_create_time() {
        let events = placed(&order(&[("1", "A")]));
        assert!(matches!(&events[..], [OrderEvent::OrderPlaced(p)] if p.hold_until == mins(60)));
        assert_eq!(
            Order::timers(&events[0]),
            vec![TimerChange::Arm {
                kind: HOLD_TIMER,
                due_at: mins(60)
            }]
        );
    }

    #[test]
    fn hold_does_not_expire_before_its_time_and_expires_once() {
        let h = placed(&order(&[("1", "A")]));
        let early = given_when::<Order>(&h, OrderCommand::ExpireHold, mins(59), &policy()).unwrap();
        assert!(early.is_empty());
        let at = given_when::<Order>(&h, OrderCommand::ExpireHold, mins(60), &policy()).unwrap();
        assert!(matches!(&at[..], [OrderEvent::HoldExpired(_)]));
        let mut h2 = h.clone();
        h2.extend(at);
        let again =
            given_when::<Order>(&h2, OrderCommand::ExpireHold, mins(61), &policy()).unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn order_is_not_requested_during_the_hold() {
        let snap = order(&[("1", "A")]);
        let h = placed(&snap);
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(
                reread(&snap, 30, |s| {
                    s.status = TikTokOrderStatus::AwaitingShipment
                }),
                Source::Poll,
            ),
            mins(30),
            &policy(),
        )
        .unwrap();
        assert!(requested_rows(&e).is_none());
    }

    #[test]
    fn units_are_grouped_by_sku_into_one_row_each() {
        let snap = order(&[("1", "A"), ("2", "A"), ("3", "B")]);
        let h = expired(&snap);
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(reread(&snap, 60, |_| {}), Source::Poll),
            mins(60),
            &policy(),
        )
        .unwrap();
        let rows = requested_rows(&e).expect("requested after the re-read");
        let summary: Vec<(String, u32)> = rows
            .iter()
            .map(|r| (r.seller_sku.clone(), r.quantity))
            .collect();
        assert_eq!(summary, vec![("A".into(), 2), ("B".into(), 1)]);
        assert_eq!(rows[0].price_per_unit, "10.00");
    }

    #[test]
    fn edits_during_the_hold_are_what_gets_requested() {
        let snap = order(&[("1", "A"), ("2", "A"), ("3", "B")]);
        let mut h = placed(&snap);
        let edit = reread(&snap, 20, |s| s.units[1].cancelled = true);
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(edit.clone(), Source::Poll),
            mins(20),
            &policy(),
        )
        .unwrap();
        assert!(
            matches!(&e[..], [OrderEvent::OrderEdited(ed)] if !ed.after_push && ed.changes.iter().any(|c| c.contains("cancelled")))
        );
        h.extend(e);
        h.extend(given_when::<Order>(&h, OrderCommand::ExpireHold, mins(60), &policy()).unwrap());
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(reread(&edit, 60, |_| {}), Source::Poll),
            mins(60),
            &policy(),
        )
        .unwrap();
        let rows = requested_rows(&e).unwrap();
        assert_eq!(rows.iter().map(|r| r.quantity).sum::<u32>(), 2);
    }

    #[test]
    fn cancelled_during_hold_is_never_pushed() {
        let snap = order(&[("1", "A")]);
        let mut h = placed(&snap);
        let cancel = reread(&snap, 10, |s| s.status = TikTokOrderStatus::Cancelled);
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(cancel.clone(), Source::Poll),
            mins(10),
            &policy(),
        )
        .unwrap();
        assert!(e
            .iter()
            .any(|e| matches!(e, OrderEvent::OrderCancelled(c) if !c.after_push)));
        h.extend(e);
        h.extend(given_when::<Order>(&h, OrderCommand::ExpireHold, mins(60), &policy()).unwrap());
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(reread(&cancel, 61, |_| {}), Source::Poll),
            mins(61),
            &policy(),
        )
        .unwrap();
        assert!(requested_rows(&e).is_none());
        assert!(fold::<Order>(&h).pending_units().values().all(|&u| u == 0));
    }

    #[test]
    fn never_pushed_while_tiktok_shows_unpaid_or_on_hold() {
        for status in [TikTokOrderStatus::Unpaid, TikTokOrderStatus::OnHold] {
            let mut snap = order(&[("1", "A")]);
            snap.status = status;
            snap.recipient = None;
            let h = expired(&snap);
            let e = given_when::<Order>(
                &h,
                OrderCommand::observe(reread(&snap, 61, |_| {}), Source::Poll),
                mins(61),
                &policy(),
            )
            .unwrap();
            assert!(requested_rows(&e).is_none(), "{status:?}");
            let released = reread(&snap, 90, |s| {
                s.status = TikTokOrderStatus::AwaitingShipment
            });
            let e = given_when::<Order>(
                &h,
                OrderCommand::observe(released, Source::Poll),
                mins(90),
                &policy(),
            )
            .unwrap();
            assert!(requested_rows(&e).is_some(), "released later: {status:?}");
        }
    }

    #[test]
    fn fulfilled_by_tiktok_orders_are_skipped_by_default() {
        let mut snap = order(&[("1", "A")]);
        snap.fulfillment_type = FulfillmentType::FulfillmentByTiktok;
        let h = expired(&snap);
        assert!(h.iter().any(|e| matches!(e, OrderEvent::OrderSkipped(_))));
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(
                reread(&snap, 61, |s| s.status = TikTokOrderStatus::InTransit),
                Source::Poll,
            ),
            mins(61),
            &policy(),
        )
        .unwrap();
        assert!(requested_rows(&e).is_none());
    }

    #[test]
    fn fulfilled_by_tiktok_orders_are_recorded_as_done_once_shipped() {
        let policy = Policy {
            fbt_orders: FbtMode::RecordAsDone,
            ..Policy::default()
        };
        let mut snap = order(&[("1", "A")]);
        snap.fulfillment_type = FulfillmentType::FulfillmentByTiktok;
        let (_, h) = crate::domain::testkit::run::<Order>(
            vec![
                (OrderCommand::observe(snap.clone(), Source::Poll), t0()),
                (OrderCommand::ExpireHold, mins(60)),
                (
                    OrderCommand::observe(reread(&snap, 60, |_| {}), Source::Poll),
                    mins(60),
                ),
            ],
            &policy,
        );
        assert!(requested_rows(&h).is_none(), "not before TikTok ships it");
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(
                reread(&snap, 70, |s| s.status = TikTokOrderStatus::InTransit),
                Source::Poll,
            ),
            mins(70),
            &policy,
        )
        .unwrap();
        assert!(e
            .iter()
            .any(|e| matches!(e, OrderEvent::SoRequested(r) if r.as_done)));
    }

    #[test]
    fn an_unchanged_observation_records_nothing() {
        let snap = order(&[("1", "A")]);
        let h = placed(&snap);
        for _ in 0..5 {
            let e = given_when::<Order>(
                &h,
                OrderCommand::observe(snap.clone(), Source::Poll),
                mins(5),
                &policy(),
            )
            .unwrap();
            assert!(e.is_empty());
        }
    }

    #[test]
    fn an_older_read_does_not_undo_a_newer_one() {
        let snap = order(&[("1", "A")]);
        let mut h = placed(&snap);
        let newer = reread(&snap, 20, |s| {
            s.recipient.as_mut().unwrap().city = "Dallas".into()
        });
        h.extend(
            given_when::<Order>(
                &h,
                OrderCommand::observe(newer, Source::Poll),
                mins(20),
                &policy(),
            )
            .unwrap(),
        );
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(reread(&snap, 10, |_| {}), Source::Poll),
            mins(21),
            &policy(),
        )
        .unwrap();
        assert!(e.is_empty());
    }

    #[test]
    fn one_order_never_gets_a_second_sales_order() {
        let h = created(&order(&[("1", "A")]));
        let same = given_when::<Order>(
            &h,
            OrderCommand::RecordSoCreated {
                so_id: 42,
                order_no: "TT-5770001".into(),
                rows: vec![],
            },
            mins(62),
            &policy(),
        )
        .unwrap();
        assert!(same.is_empty());
        let other = given_when::<Order>(
            &h,
            OrderCommand::RecordSoCreated {
                so_id: 43,
                order_no: "TT-5770001".into(),
                rows: vec![],
            },
            mins(62),
            &policy(),
        );
        assert_eq!(
            other.unwrap_err(),
            OrderError::SecondSalesOrder {
                existing: 42,
                offered: 43
            }
        );
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(reread(&order(&[("1", "A")]), 70, |_| {}), Source::Poll),
            mins(70),
            &policy(),
        )
        .unwrap();
        assert!(requested_rows(&e).is_none());
    }

    #[test]
    fn a_partial_delivery_ships_that_many_units_then_the_rest() {
        let snap = order(&[("1", "A"), ("2", "A")]);
        let mut h = created(&snap);
        let first = given_when::<Order>(
            &h,
            OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
            mins(90),
            &policy(),
        )
        .unwrap();
        let ids: Vec<_> = first
            .iter()
            .filter_map(|e| match e {
                OrderEvent::SoDelivered(d) => Some(d.line_item_ids.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec![vec!["1".to_string()]]);
        h.extend(first);
        let again = given_when::<Order>(
            &h,
            OrderCommand::ObserveFulfillments(vec![
                fulfillment(7, &[(100, 1)]),
                fulfillment(8, &[(100, 1)]),
            ]),
            mins(95),
            &policy(),
        )
        .unwrap();
        assert!(
            matches!(&again[..], [OrderEvent::SoDelivered(d), OrderEvent::FulfillmentRequested(r)]
                if d.line_item_ids == vec!["2".to_string()] && d.unmatched_units == 0
                    && r.fulfillment_id == 8 && r.line_item_ids == d.line_item_ids && r.tracking_number == "1Z8")
        );
    }

    #[test]
    fn tracking_is_never_requested_while_tiktok_shows_on_hold() {
        let snap = order(&[("1", "A")]);
        let mut h = created(&snap);
        let held = reread(&snap, 70, |s| s.status = TikTokOrderStatus::OnHold);
        h.extend(
            given_when::<Order>(
                &h,
                OrderCommand::observe(held.clone(), Source::Webhook),
                mins(70),
                &policy(),
            )
            .unwrap(),
        );
        let e = given_when::<Order>(
            &h,
            OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
            mins(90),
            &policy(),
        )
        .unwrap();
        assert!(matches!(&e[..], [OrderEvent::SoDelivered(_)]), "{e:?}");
        h.extend(e);
        let released = reread(&held, 95, |s| {
            s.status = TikTokOrderStatus::AwaitingShipment
        });
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(released, Source::Webhook),
            mins(95),
            &policy(),
        )
        .unwrap();
        assert!(e
            .iter()
            .any(|e| matches!(e, OrderEvent::FulfillmentRequested(r) if r.fulfillment_id == 7)));
    }

    #[test]
    fn a_delivery_without_tracking_is_an_exception_until_tracking_appears() {
        let mut h = created(&order(&[("1", "A")]));
        let mut untracked = fulfillment(7, &[(100, 1)]);
        untracked.tracking_number = None;
        let e = given_when::<Order>(
            &h,
            OrderCommand::ObserveFulfillments(vec![untracked.clone()]),
            mins(90),
            &policy(),
        )
        .unwrap();
        assert!(
            matches!(&e[..], [OrderEvent::ExceptionRaised(x)] if x.key == "missing-tracking-7")
        );
        h.extend(e);
        let again = given_when::<Order>(
            &h,
            OrderCommand::ObserveFulfillments(vec![untracked]),
            mins(91),
            &policy(),
        )
        .unwrap();
        assert!(again.is_empty(), "raised once");
        let e = given_when::<Order>(
            &h,
            OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
            mins(92),
            &policy(),
        )
        .unwrap();
        assert!(
            matches!(
                &e[..],
                [
                    OrderEvent::ExceptionResolved(_),
                    OrderEvent::SoDelivered(_),
                    OrderEvent::FulfillmentRequested(_)
                ]
            ),
            "{e:?}"
        );
        h.extend(e);
        assert!(fold::<Order>(&h).exceptions.is_empty());
    }

    #[test]
    fn an_unmatched_sku_blocks_the_order_until_a_retry_after_the_mapping() {
        let snap = order(&[("1", "A")]);
        let mut h = expired(&snap);
        h.extend(
            given_when::<Order>(
                &h,
                OrderCommand::observe(reread(&snap, 60, |_| {}), Source::HoldReread),
                mins(60),
                &policy(),
            )
            .unwrap(),
        );
        let e = given_when::<Order>(
            &h,
            OrderCommand::RecordSoBlocked {
                unmatched: vec!["A".into()],
            },
            mins(60),
            &policy(),
        )
        .unwrap();
        assert!(
            matches!(&e[..], [OrderEvent::SoBlocked(_), OrderEvent::ExceptionRaised(x)] if x.key == "unmatched-sku" && x.message.contains('A'))
        );
        h.extend(e);
        assert_eq!(
            fold::<Order>(&h).pending_units().get("A"),
            Some(&1),
            "still holds stock back"
        );
        let e = given_when::<Order>(&h, OrderCommand::RetrySo, mins(70), &policy()).unwrap();
        assert!(matches!(&e[..], [OrderEvent::SoRequested(_)]));
        h.extend(e);
        let e = given_when::<Order>(
            &h,
            OrderCommand::RecordSoCreated {
                so_id: 9,
                order_no: "TT-1".into(),
                rows: vec![],
            },
            mins(71),
            &policy(),
        )
        .unwrap();
        assert!(
            matches!(&e[..], [OrderEvent::SoCreated(_), OrderEvent::ExceptionResolved(x)] if x.key == "unmatched-sku")
        );
    }

    #[test]
    fn a_cancellation_after_the_push_ends_with_the_so_deleted() {
        let snap = order(&[("1", "A")]);
        let mut h = created(&snap);
        h.extend(
            given_when::<Order>(
                &h,
                OrderCommand::observe(
                    reread(&snap, 81, |s| s.status = TikTokOrderStatus::Cancelled),
                    Source::Webhook,
                ),
                mins(81),
                &policy(),
            )
            .unwrap(),
        );
        let e =
            given_when::<Order>(&h, OrderCommand::RecordSoDeleted, mins(82), &policy()).unwrap();
        assert!(matches!(&e[..], [OrderEvent::SoDeleted(d)] if d.so_id == 42));
        h.extend(e);
        assert!(
            given_when::<Order>(&h, OrderCommand::RecordSoDeleted, mins(83), &policy())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn version_one_placements_are_read_with_an_unknown_source() {
        let v1 = r#"{"snapshot":{"order_id":"1","status":"AWAITING_SHIPMENT","fulfillment_type":"FULFILLMENT_BY_SELLER","create_time":"2026-01-01T12:00:00Z","update_time":"2026-01-01T12:00:00Z","currency":"USD","warehouse_id":null,"recipient":null,"buyer_email":null,"units":[]},"hold_until":"2026-01-01T13:00:00Z"}"#;
        let e = OrderEvent::decode("OrderPlaced", 1, v1).unwrap();
        assert!(
            matches!(e, OrderEvent::OrderPlaced(p) if p.source == Source::Unknown && p.hold_until == mins(60))
        );
    }

    #[test]
    fn a_fulfillment_is_pushed_once() {
        let mut h = created(&order(&[("1", "A")]));
        h.extend(
            given_when::<Order>(
                &h,
                OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
                mins(90),
                &policy(),
            )
            .unwrap(),
        );
        let cmd = OrderCommand::RecordFulfillmentPushed {
            fulfillment_id: 7,
            with_fulfillment_ids: vec![],
            package_id: "P1".into(),
        };
        let e = given_when::<Order>(&h, cmd.clone(), mins(91), &policy()).unwrap();
        assert_eq!(e.len(), 1);
        h.extend(e);
        assert!(given_when::<Order>(&h, cmd, mins(92), &policy())
            .unwrap()
            .is_empty());
    }

    fn tiktok_shipping(snap: &OrderSnapshot) -> OrderSnapshot {
        let mut s = snap.clone();
        s.shipping_type = ShippingType::Tiktok;
        s
    }

    fn then(
        h: &mut Vec<OrderEvent>,
        cmd: OrderCommand,
        at: i64,
        policy: &Policy,
    ) -> Vec<OrderEvent> {
        let e = given_when::<Order>(h, cmd, mins(at), policy).unwrap();
        h.extend(e.clone());
        e
    }

    #[test]
    fn a_packed_tiktok_shipping_order_asks_for_tiktoks_label_without_katana_tracking() {
        let on_packing = Policy {
            arrange_shipment_on: crate::domain::ArrangeShipmentOn::Packed,
            ..policy()
        };
        let mut h = created(&tiktok_shipping(&order(&[("1", "A")])));
        let mut packed = fulfillment(7, &[(100, 1)]);
        packed.status = "PACKED".into();
        packed.tracking_number = None;
        // Not on packing under the default policy.
        let later = given_when::<Order>(
            &h,
            OrderCommand::ObserveFulfillments(vec![packed.clone()]),
            mins(90),
            &policy(),
        )
        .unwrap();
        assert!(later.is_empty(), "{later:?}");
        let e = then(
            &mut h,
            OrderCommand::ObserveFulfillments(vec![packed]),
            90,
            &on_packing,
        );
        assert!(
            matches!(&e[..], [OrderEvent::SoDelivered(_), OrderEvent::FulfillmentRequested(r)] if r.platform_label && r.tracking_number.is_empty()),
            "{e:?}"
        );
        let arranged = ShipmentArranged {
            fulfillment_ids: vec![7],
            package_id: "P1".into(),
            handover_method: "DROP_OFF".into(),
            pickup_slot: None,
            tracking_number: "TT1".into(),
            shipping_provider: "TikTok Shipping".into(),
            label_url: "https://label".into(),
        };
        let e = then(
            &mut h,
            OrderCommand::RecordShipmentArranged(Box::new(arranged.clone())),
            91,
            &on_packing,
        );
        assert!(
            matches!(&e[..], [OrderEvent::ShipmentArranged(_), OrderEvent::FulfillmentPushed(p)] if p.package_id == "P1"),
            "{e:?}"
        );
        let state: Order = crate::domain::fold(&h);
        assert_eq!(
            state.arranged_packages.get("P1").map(String::as_str),
            Some("TT1")
        );
        // TikTok's tracking written back to Katana is not a correction.
        let e = then(
            &mut h,
            OrderCommand::RecordTrackingWritten {
                fulfillment_id: 7,
                tracking_number: "TT1".into(),
            },
            92,
            &on_packing,
        );
        assert!(matches!(&e[..], [OrderEvent::TrackingWrittenToKatana(_)]));
        let mut delivered = fulfillment(7, &[(100, 1)]);
        delivered.tracking_number = Some("TT1".into());
        let e = then(
            &mut h,
            OrderCommand::ObserveFulfillments(vec![delivered]),
            93,
            &on_packing,
        );
        assert!(e.is_empty(), "{e:?}");
        assert!(given_when::<Order>(
            &h,
            OrderCommand::RecordShipmentArranged(Box::new(arranged)),
            mins(94),
            &on_packing
        )
        .map(|e| e.is_empty())
        .unwrap_or(false));
    }

    #[test]
    fn a_deferred_delivery_leaves_with_the_next_one_in_one_package() {
        let mut h = created(&order(&[("1", "A"), ("2", "A")]));
        then(
            &mut h,
            OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
            90,
            &policy(),
        );
        let e = then(
            &mut h,
            OrderCommand::RecordShipmentDeferred {
                fulfillment_id: 7,
                reason: "TikTok will not split".into(),
            },
            91,
            &policy(),
        );
        assert!(
            matches!(&e[..], [OrderEvent::ShipmentDeferred(_), OrderEvent::ExceptionRaised(x)] if x.key == "shipment-deferred-7")
        );
        let again = given_when::<Order>(
            &h,
            OrderCommand::RecordShipmentDeferred {
                fulfillment_id: 7,
                reason: "TikTok will not split".into(),
            },
            mins(92),
            &policy(),
        )
        .unwrap();
        assert!(again.is_empty());
        let e = then(
            &mut h,
            OrderCommand::ObserveFulfillments(vec![
                fulfillment(7, &[(100, 1)]),
                fulfillment(8, &[(100, 1)]),
            ]),
            120,
            &policy(),
        );
        let Some(OrderEvent::FulfillmentRequested(r)) = e.last() else {
            panic!("{e:?}");
        };
        assert_eq!(r.fulfillment_id, 8);
        assert_eq!(r.with_fulfillment_ids, vec![7]);
        assert_eq!(r.line_item_ids.len(), 2);
        let e = then(
            &mut h,
            OrderCommand::RecordFulfillmentPushed {
                fulfillment_id: 8,
                with_fulfillment_ids: vec![7],
                package_id: "P".into(),
            },
            121,
            &policy(),
        );
        assert!(e.iter().any(
            |e| matches!(e, OrderEvent::ExceptionResolved(x) if x.key == "shipment-deferred-7")
        ));
        let state: Order = crate::domain::fold(&h);
        assert!(state
            .deliveries
            .values()
            .all(|d| d.package_id.as_deref() == Some("P")));
    }

    #[test]
    fn changed_tracking_is_corrected_on_tiktok_for_72_hours_then_raised() {
        let mut h = created(&order(&[("1", "A")]));
        then(
            &mut h,
            OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
            90,
            &policy(),
        );
        then(
            &mut h,
            OrderCommand::RecordFulfillmentPushed {
                fulfillment_id: 7,
                with_fulfillment_ids: vec![],
                package_id: "P".into(),
            },
            91,
            &policy(),
        );
        let mut fixed = fulfillment(7, &[(100, 1)]);
        fixed.tracking_number = Some("1ZFIXED".into());
        let e = then(
            &mut h,
            OrderCommand::ObserveFulfillments(vec![fixed.clone()]),
            100,
            &policy(),
        );
        assert!(
            matches!(&e[..], [OrderEvent::TrackingCorrectionRequested(c)] if c.tracking_number == "1ZFIXED" && c.package_id == "P" && !c.several_packages),
            "{e:?}"
        );
        // Asked once, not on every read.
        let e = then(
            &mut h,
            OrderCommand::ObserveFulfillments(vec![fixed]),
            101,
            &policy(),
        );
        assert!(e.is_empty());
        let mut late = fulfillment(7, &[(100, 1)]);
        late.tracking_number = Some("1ZLATE".into());
        let e = then(
            &mut h,
            OrderCommand::ObserveFulfillments(vec![late]),
            91 + 72 * 60 + 1,
            &policy(),
        );
        assert!(
            matches!(&e[..], [OrderEvent::ExceptionRaised(x)] if x.key == "tracking-correction-7" && x.message.contains("72 h")),
            "{e:?}"
        );
    }

    #[test]
    fn edits_and_cancellations_after_the_push_are_flagged() {
        let snap = order(&[("1", "A")]);
        let h = created(&snap);
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(
                reread(&snap, 80, |s| {
                    s.recipient.as_mut().unwrap().zip = "10001".into()
                }),
                Source::Poll,
            ),
            mins(80),
            &policy(),
        )
        .unwrap();
        assert!(
            matches!(&e[..], [OrderEvent::OrderEdited(ed), OrderEvent::ExceptionRaised(x)] if ed.after_push && x.key == "edited-after-push"),
            "{e:?}"
        );
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(
                reread(&snap, 81, |s| s.status = TikTokOrderStatus::Cancelled),
                Source::Poll,
            ),
            mins(81),
            &policy(),
        )
        .unwrap();
        assert!(e
            .iter()
            .any(|e| matches!(e, OrderEvent::OrderCancelled(c) if c.after_push)));
    }

    #[test]
    fn units_count_as_pending_demand_until_the_sales_order_exists() {
        let snap = order(&[("1", "A"), ("2", "A"), ("3", "B")]);
        let h = expired(&snap);
        let pending = fold::<Order>(&h).pending_units();
        assert_eq!(pending.get("A"), Some(&2));
        assert_eq!(pending.get("B"), Some(&1));
        assert!(fold::<Order>(&created(&snap))
            .pending_units()
            .values()
            .all(|&u| u == 0));
    }

    #[test]
    fn events_round_trip_through_the_codec() {
        for e in created(&order(&[("1", "A"), ("2", "B")])) {
            let back = OrderEvent::decode(e.event_type(), e.version(), &e.encode()).unwrap();
            assert_eq!(back, e);
        }
        assert!(matches!(
            OrderEvent::decode("OrderPlaced", 9, "{}"),
            Err(crate::domain::DecodeError::NewerVersion { .. })
        ));
        assert!(matches!(
            OrderEvent::decode("Nope", 1, "{}"),
            Err(crate::domain::DecodeError::UnknownType(_))
        ));
    }

    fn arb_command() -> impl Strategy<Value = (OrderCommand, i64)> {
        let units = prop::collection::vec((0..4u8, any::<bool>()), 1..5);
        let status = prop::sample::select(vec![
            TikTokOrderStatus::Unpaid,
            TikTokOrderStatus::OnHold,
            TikTokOrderStatus::AwaitingShipment,
            TikTokOrderStatus::PartiallyShipping,
            TikTokOrderStatus::InTransit,
            TikTokOrderStatus::Cancelled,
        ]);
        prop_oneof![
            (units, status, any::<bool>(), 0..200i64).prop_map(|(units, status, fbt, minute)| {
                let mut s = order(&[]);
                s.status = status;
                s.update_time = mins(minute);
                if fbt {
                    s.fulfillment_type = FulfillmentType::FulfillmentByTiktok;
                }
                s.units = units
                    .iter()
                    .enumerate()
                    .map(|(i, (sku, cancelled))| {
                        let mut u = unit(&i.to_string(), &format!("S{sku}"));
                        u.cancelled = *cancelled;
                        u
                    })
                    .collect();
                (OrderCommand::observe(s, Source::Poll), minute)
            }),
            (0..200i64).prop_map(|m| (OrderCommand::ExpireHold, m)),
            (1..3i64, 0..200i64).prop_map(|(id, m)| (
                OrderCommand::RecordSoCreated {
                    so_id: id,
                    order_no: "TT-1".into(),
                    rows: vec![CreatedRow {
                        row_id: 100,
                        seller_sku: "S0".into(),
                        quantity: 1
                    }]
                },
                m
            )),
            (0..200i64).prop_map(|m| (
                OrderCommand::RecordSoCreateFailed {
                    reason: "boom".into(),
                    retryable: true
                },
                m
            )),
            (1..4i64, 0..3i64, 0..200i64).prop_map(|(id, q, m)| (
                OrderCommand::ObserveFulfillments(vec![fulfillment(id, &[(100, q)])]),
                m
            )),
            (1..4i64, 0..200i64).prop_map(|(id, m)| (
                OrderCommand::RecordFulfillmentPushed {
                    fulfillment_id: id,
                    with_fulfillment_ids: vec![],
                    package_id: format!("P{id}")
                },
                m
            )),
        ]
    }

    proptest! {
        #[test]
        fn replaying_any_accepted_history_gives_the_live_state(
            cmds in prop::collection::vec(arb_command(), 0..40),
            fbt_done in any::<bool>(),
        ) {
            let policy = Policy { fbt_orders: if fbt_done { FbtMode::RecordAsDone } else { FbtMode::Skip }, ..Policy::default() };
            let (live, history) = run::<Order>(cmds.into_iter().map(|(c, m)| (c, mins(m))).collect(), &policy);
            let decoded: Vec<OrderEvent> = history.iter()
                .map(|e| OrderEvent::decode(e.event_type(), e.version(), &e.encode()).unwrap())
                .collect();
            let mut owned = Order::default();
            for e in decoded.iter().cloned() {
                owned.apply_owned(e);
            }
            prop_assert_eq!(&owned, &live);
            prop_assert_eq!(fold::<Order>(&decoded), live);
        }
    }
}
