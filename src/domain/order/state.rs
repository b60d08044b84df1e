//! What an order is: its state (`Order`, `SoState`, `Delivery`), the queries others
//! ask of it, and how each event changes it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::observed::{KatanaFulfillment, OrderSnapshot, TikTokOrderStatus};

use super::events::*;

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

    /// How each event changes the order; `Aggregate::apply` is this.
    pub(super) fn apply_event(&mut self, event: &OrderEvent) {
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

    /// `apply_event` moving the payloads it keeps instead of cloning them.
    pub(super) fn apply_event_owned(&mut self, event: OrderEvent) {
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
            other => self.apply_event(&other),
        }
    }
}
