//! What an order decides: the `Aggregate` impl's decision for each command and
//! the rules it is built from (the SO request, releasing deliveries, pushes,
//! tracking corrections, exceptions), plus the timers and index entries events carry.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::domain::exceptions::{keys, ExceptionRaised, ExceptionResolved};
use crate::domain::modes::FbtMode;
use crate::domain::observed::{
    FulfillmentType, KatanaFulfillment, OrderSnapshot, ShippingType, TikTokOrderStatus,
};
use crate::domain::{add, Aggregate, Ctx, IndexChange, TimerChange, TimerKind};

use super::commands::*;
use super::events::*;
use super::shipping::{self, *};
use super::state::*;

pub const HOLD_TIMER: &str = "hold";
/// Fires when a create whose outcome was unknown can no longer commit in Katana.
pub const SO_RETRY_TIMER: &str = "so-retry";

impl Order {
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
        // A read that got through shows the shop's connection works again.
        if let Some(e) = d.state.resolve(keys::TIKTOK_READ) {
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
                shop,
            } => Ok(vec![OrderEvent::OrderSignalled(OrderSignalled {
                by: *by,
                delivery_id: delivery_id.clone(),
                what: what.clone(),
                shop: shop.clone(),
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
        self.apply_event(event);
    }

    fn apply_owned(&mut self, event: OrderEvent) {
        self.apply_event_owned(event);
    }

    fn timers(event: &OrderEvent) -> Vec<TimerChange> {
        match event {
            OrderEvent::OrderPlaced(e) => vec![TimerChange::Arm {
                kind: TimerKind::Borrowed(HOLD_TIMER),
                due_at: e.hold_until,
            }],
            OrderEvent::HoldExpired(_) => vec![TimerChange::Disarm {
                kind: TimerKind::Borrowed(HOLD_TIMER),
            }],
            OrderEvent::SoCreateUnconfirmed(e) => vec![TimerChange::Arm {
                kind: TimerKind::Borrowed(SO_RETRY_TIMER),
                due_at: e.retry_at,
            }],
            _ => vec![],
        }
    }

    fn index(event: &OrderEvent) -> Vec<IndexChange> {
        match event {
            OrderEvent::SoCreated(e) => vec![IndexChange::Put {
                kind: crate::names::lookup::SO,
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
