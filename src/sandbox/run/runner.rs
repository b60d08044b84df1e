//! The runner: the scripted actions on their schedule, the log followed event by
//! event, the scenario's reactions, and when the run is done.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::narration::{fmt_items, stamp};
use super::scaled;
use super::summary::Outcome;
use super::world::{tiktok_sku_id, World};
use crate::actors::policies::{decode_order, decode_sku};
use crate::domain::exceptions::keys;
use crate::domain::observed::{FulfillmentType, Quantity, ShippingType};
use crate::domain::order::{Order, OrderEvent, SoState};
use crate::domain::sku::{Sku, SkuEvent};
use crate::domain::Aggregate;
use crate::sandbox::katana::Tracking;
use crate::sandbox::scenario::{self, Role, Script, ScriptedOrder};
use crate::sandbox::tiktok::SECOND_WAREHOUSE;
use crate::store::RecordedEvent;

#[derive(Clone, Debug)]
pub(super) enum Action {
    Place(usize),
    CancelOneUnit(usize),
    Cancel(usize),
    AddVariant,
    Deliver {
        order: usize,
        so_id: i64,
        order_no: String,
        rows: Option<Vec<(i64, u32)>>,
        part: u32,
    },
    SetStock(usize),
    SetOtherWarehouse(usize),
}

/// A scripted order once placed.
pub(super) struct Tracked {
    pub(super) id: String,
    /// (seller SKU, line item id) of every unit.
    pub(super) units: Vec<(String, String)>,
}

/// A scripted stock change and whether the service has followed it through.
#[derive(Default)]
pub(super) struct StockWatch {
    pub(super) done_action: bool,
    pub(super) seen: bool,
    pub(super) settled: bool,
}

pub(super) struct Runner<'a, W: Write> {
    pub(super) world: &'a World,
    pub(super) script: &'a Script,
    pub(super) speed: f64,
    pub(super) out: W,
    pub(super) t0: DateTime<Utc>,
    pub(super) queue: BTreeMap<(DateTime<Utc>, u64), Action>,
    pub(super) seq: u64,
    pub(super) tracked: Vec<Option<Tracked>>,
    pub(super) by_id: HashMap<String, usize>,
    pub(super) orders: HashMap<String, Order>,
    pub(super) skus: BTreeMap<String, Sku>,
    pub(super) position: u64,
    /// Events up to here happened before the script started: folded, not told.
    pub(super) live_from: u64,
    pub(super) stock: Vec<StockWatch>,
    pub(super) variant_scheduled: bool,
    /// Event ids of Katana stock webhooks recorded on SKU streams, to tell a
    /// re-read the webhook caused from one the reconciliation poll made.
    pub(super) stock_signals: HashSet<uuid::Uuid>,
    pub(super) exceptions_raised: usize,
    pub(super) exceptions_resolved: usize,
    pub(super) pushed_after_exception: usize,
    /// When the 3PL's quantity was set (unix seconds) and to what.
    pub(super) other_warehouse_set: Vec<(i64, i64)>,
}

/// The order waited for a SKU mapping before this SO (the retry moved it from
/// blocked back to requested, so the open exception is what tells).
pub(super) fn was_blocked(o: &Order) -> bool {
    matches!(o.so, SoState::Blocked { .. }) || o.exceptions.contains_key(keys::UNMATCHED_SKU)
}

pub(super) fn units(q: Quantity) -> i64 {
    q.floor_units()
}
impl<'a, W: Write> Runner<'a, W> {
    pub(super) fn new(world: &'a World, script: &'a Script, speed: f64, out: W) -> Self {
        let t0 = world.clock.now();
        let mut r = Runner {
            world,
            script,
            speed,
            out,
            t0,
            queue: BTreeMap::new(),
            seq: 0,
            tracked: script.orders.iter().map(|_| None).collect(),
            by_id: HashMap::new(),
            orders: HashMap::new(),
            skus: BTreeMap::new(),
            position: 0,
            live_from: world.store().head(),
            stock: script
                .stock_changes
                .iter()
                .map(|_| StockWatch::default())
                .collect(),
            variant_scheduled: false,
            stock_signals: HashSet::new(),
            exceptions_raised: 0,
            exceptions_resolved: 0,
            pushed_after_exception: 0,
            other_warehouse_set: Vec::new(),
        };
        for (i, o) in script.orders.iter().enumerate() {
            r.schedule_merchant(o.arrives, Action::Place(i));
            match o.role {
                Role::EditedInHold => r.schedule_merchant(
                    o.arrives + script.delays.edit_after,
                    Action::CancelOneUnit(i),
                ),
                Role::CancelledInHold => {
                    r.schedule_merchant(o.arrives + script.delays.cancel_after, Action::Cancel(i))
                }
                _ => {}
            }
        }
        for (i, c) in script.stock_changes.iter().enumerate() {
            r.schedule_merchant(c.at, Action::SetStock(i));
        }
        for (i, c) in script.other_warehouse.iter().enumerate() {
            r.schedule_merchant(c.at, Action::SetOtherWarehouse(i));
        }
        r
    }

    pub(super) fn real(&self, merchant: Duration) -> chrono::Duration {
        chrono::Duration::from_std(scaled(merchant, self.speed)).unwrap_or(chrono::Duration::MAX)
    }

    /// At `merchant` time from the start of the run.
    pub(super) fn schedule_merchant(&mut self, merchant: Duration, action: Action) {
        let at = self.t0 + self.real(merchant);
        self.schedule_at(at, action);
    }

    /// `merchant` time from now.
    pub(super) fn schedule_in(&mut self, merchant: Duration, action: Action) {
        let at = self.world.clock.now() + self.real(merchant);
        self.schedule_at(at, action);
    }

    pub(super) fn schedule_at(&mut self, at: DateTime<Utc>, action: Action) {
        self.seq += 1;
        self.queue.insert((at, self.seq), action);
    }

    // ------------------------------------------------------------ the loop

    pub(super) async fn play(&mut self, timeout: Duration) -> anyhow::Result<Outcome> {
        let deadline =
            self.t0 + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let store = self.world.store().clone();
        let mut head = store.watch_head();
        let completed = loop {
            head.mark_unchanged();
            loop {
                let batch = store.read_all(self.position, 512)?;
                if batch.is_empty() {
                    break;
                }
                for e in &batch {
                    self.on_event(e);
                    self.position = e.position;
                }
            }
            let now = self.world.clock.now();
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let action = entry.remove();
                self.perform(action);
            }
            if self.pending().is_empty() {
                break true;
            }
            if now >= deadline {
                break false;
            }
            let next = self
                .queue
                .keys()
                .next()
                .map_or(deadline, |(t, _)| *t)
                .min(deadline);
            tokio::select! {
                _ = head.changed() => {}
                _ = self.world.clock.sleep_until(next) => {}
            }
        };
        let elapsed = (self.world.clock.now() - self.t0)
            .to_std()
            .unwrap_or_default();
        let missing = self.pending();
        if !completed {
            self.say(format!(
                "timed out after {:.0}s; still waiting for:",
                timeout.as_secs_f64()
            ));
            for m in &missing {
                self.plain(format!("  - {m}"));
            }
        }
        let summary = self.summary();
        let orders: Vec<(usize, Role, String)> = self
            .tracked
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                t.as_ref()
                    .map(|t| (i + 1, self.script.orders[i].role, t.id.clone()))
            })
            .collect();
        let outcome = Outcome {
            completed,
            missing,
            elapsed,
            summary,
            orders,
            db_path: self.world.db_path.clone(),
        };
        self.print_summary(&outcome);
        Ok(outcome)
    }

    // ------------------------------------------------------------ scenario actions

    pub(super) fn perform(&mut self, action: Action) {
        if let Err(e) = self.try_perform(action) {
            self.say(format!("scenario step failed: {e:#}"));
        }
    }

    pub(super) fn try_perform(&mut self, action: Action) -> anyhow::Result<()> {
        match action {
            Action::Place(i) => {
                let o: &ScriptedOrder = &self.script.orders[i];
                let fulfillment = if o.role == Role::FulfilledByTikTok {
                    FulfillmentType::FulfillmentByTiktok
                } else {
                    FulfillmentType::FulfillmentBySeller
                };
                let shipping = if o.role == Role::TikTokShipping {
                    ShippingType::Tiktok
                } else {
                    ShippingType::Seller
                };
                let placed = self
                    .world
                    .place_shipped_by(&o.items, fulfillment, shipping)?;
                let extra = match o.role {
                    Role::FulfilledByTikTok => ", fulfilled by TikTok",
                    Role::TikTokShipping => ", shipped with TikTok's label",
                    _ => "",
                };
                let line = format!(
                    "TikTok: buyer places order #{} {} ({}{extra})",
                    o.number,
                    placed.id,
                    fmt_items(&o.items)
                );
                self.by_id.insert(placed.id.clone(), i);
                self.tracked[i] = Some(Tracked {
                    id: placed.id.clone(),
                    units: placed
                        .units
                        .iter()
                        .map(|u| (u.seller_sku.clone(), u.id.clone()))
                        .collect(),
                });
                self.say(line);
            }
            Action::CancelOneUnit(i) => {
                let t = self.tracked[i].as_ref().context("order not placed yet")?;
                // The last unit of the SKU with the most units: the order keeps every SKU.
                let mut count: BTreeMap<&str, usize> = BTreeMap::new();
                for (sku, _) in &t.units {
                    *count.entry(sku).or_default() += 1;
                }
                let sku = count
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(s, _)| s.to_string())
                    .context("order has no units")?;
                let unit = t
                    .units
                    .iter()
                    .rev()
                    .find(|(s, _)| *s == sku)
                    .map(|(_, id)| id.clone())
                    .context("no unit to cancel")?;
                let id = t.id.clone();
                self.world.cancel_order(&id, Some(vec![unit]))?;
                self.say(format!(
                    "TikTok: buyer of order #{} cancels 1 unit of {sku} (still in the hold)",
                    i + 1
                ));
            }
            Action::Cancel(i) => {
                let id = self.tracked[i]
                    .as_ref()
                    .context("order not placed yet")?
                    .id
                    .clone();
                self.world.cancel_order(&id, None)?;
                self.say(format!(
                    "TikTok: buyer cancels order #{} (still in the hold)",
                    i + 1
                ));
            }
            Action::AddVariant => {
                let sku = scenario::UNMATCHED_SKU;
                let id = self
                    .world
                    .add_katana_variant(sku, scenario::UNMATCHED_SKU_STOCK)?;
                self.say(format!(
                    "Katana: merchant adds product {sku} (variant {id}, stock {}); the next catalogue refresh finds it",
                    scenario::UNMATCHED_SKU_STOCK
                ));
            }
            Action::Deliver {
                order,
                so_id,
                order_no,
                rows,
                part,
            } => {
                let n = order + 1;
                // A parcel shipped with TikTok's label gets its tracking from TikTok.
                let own_carrier = self.script.orders[order].role != Role::TikTokShipping;
                let tracking = format!(
                    "1Z9SB403{part:02}{:08}",
                    (so_id * 100 + n as i64) % 100_000_000
                );
                let t = Tracking {
                    tracking_number: own_carrier.then(|| tracking.clone()),
                    tracking_url: None,
                    tracking_carrier: own_carrier.then(|| "UPS".into()),
                };
                let carrier = if own_carrier {
                    format!("UPS {tracking}")
                } else {
                    "tracking to come from TikTok".to_string()
                };
                let what = match &rows {
                    Some(r) => {
                        let units: u32 = r.iter().map(|(_, q)| q).sum();
                        format!("{units} unit(s) now, the rest later")
                    }
                    None if part > 1 => "the rest".to_string(),
                    None => "everything".to_string(),
                };
                let quantities: Option<Vec<(i64, Quantity)>> = rows.map(|r| {
                    r.iter()
                        .map(|(row, q)| (*row, Quantity::from_units(i64::from(*q))))
                        .collect()
                });
                self.world
                    .katana
                    .deliver(so_id, quantities.as_deref(), t)
                    .map_err(|e| {
                        anyhow::anyhow!("Katana refused the delivery of SO {so_id}: {e}")
                    })?;
                self.say(format!(
                    "Katana: warehouse delivers SO {order_no} of order #{n}: {what} ({carrier})"
                ));
            }
            Action::SetStock(i) => {
                let c = &self.script.stock_changes[i];
                let before = self
                    .world
                    .variants
                    .lock()
                    .get(c.sku)
                    .map(|v| units(self.world.katana.stock(*v, self.world.main_location).0));
                self.world.set_katana_stock(c.sku, c.in_stock)?;
                self.stock[i].done_action = true;
                let before = before.map_or_else(|| "?".to_string(), |b| b.to_string());
                self.say(format!(
                    "Katana: {} stock {before} -> {} ({})",
                    c.sku, c.in_stock, c.why
                ));
            }
            Action::SetOtherWarehouse(i) => {
                let c = &self.script.other_warehouse[i];
                let sku = scenario::MULTI_WAREHOUSE_SKU;
                let sku_id = tiktok_sku_id(sku).context("multi-warehouse SKU not listed")?;
                self.world
                    .tiktok
                    .set_available(&sku_id, SECOND_WAREHOUSE, c.available)
                    .map_err(|e| anyhow::anyhow!("TikTok refused the 3PL count: {e:?}"))?;
                self.other_warehouse_set
                    .push((self.world.clock.now().timestamp(), c.available));
                self.say(format!(
                    "TikTok: the 3PL warehouse now has {} {sku} available ({}); the service owns only the main warehouse",
                    c.available, c.why
                ));
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ following the log

    pub(super) fn on_event(&mut self, e: &RecordedEvent) {
        let live = e.position > self.live_from;
        if let Some((order_id, ev)) = decode_order(e) {
            let before = self.orders.get(&order_id).cloned().unwrap_or_default();
            let mut after = before.clone();
            after.apply(&ev);
            self.orders.insert(order_id.clone(), after.clone());
            if !live {
                return;
            }
            self.count_exceptions_order(&ev, &before);
            self.react(&order_id, &before, &ev);
            if let Some(line) = self.render_order(&order_id, &before, &after, &ev) {
                self.say(line);
            }
        } else if let Some((sku, ev)) = decode_sku(e) {
            let before = self.skus.get(&sku).cloned().unwrap_or_default();
            let mut after = before.clone();
            after.apply(&ev);
            self.skus.insert(sku.clone(), after.clone());
            if !live {
                return;
            }
            match &ev {
                SkuEvent::ExceptionRaised(_) => self.exceptions_raised += 1,
                SkuEvent::ExceptionResolved(_) => self.exceptions_resolved += 1,
                _ => {}
            }
            if matches!(ev, SkuEvent::SkuSignalled(_)) {
                self.stock_signals.insert(e.meta.event_id);
            }
            let by_webhook = e
                .meta
                .causation_id
                .is_some_and(|c| self.stock_signals.contains(&c));
            if let Some(line) = self.watch_stock(&sku, &ev, &after, by_webhook) {
                self.say(line);
            }
            if let Some(line) = self.render_sku(&sku, &after, &ev) {
                self.say(line);
            }
        }
    }

    pub(super) fn count_exceptions_order(&mut self, ev: &OrderEvent, before: &Order) {
        match ev {
            OrderEvent::ExceptionRaised(_) => self.exceptions_raised += 1,
            OrderEvent::ExceptionResolved(_) => self.exceptions_resolved += 1,
            OrderEvent::SoCreated(_) if was_blocked(before) => self.pushed_after_exception += 1,
            _ => {}
        }
    }

    /// The scenario's reactions: deliver what Katana received, add the missing
    /// variant once the exception shows.
    pub(super) fn react(&mut self, order_id: &str, before: &Order, ev: &OrderEvent) {
        let Some(&i) = self.by_id.get(order_id) else {
            return;
        };
        let o = &self.script.orders[i];
        match ev {
            OrderEvent::SoCreated(so) if o.role.ships() && before.so_id().is_none() => {
                let rows: Vec<(i64, u32)> =
                    so.rows.iter().map(|r| (r.row_id, r.quantity)).collect();
                let delays = self.script.delays;
                let first = o
                    .partial_delivery
                    .then(|| scenario::first_part(&rows))
                    .flatten();
                let deliver = |rows, part| Action::Deliver {
                    order: i,
                    so_id: so.so_id,
                    order_no: so.order_no.clone(),
                    rows,
                    part,
                };
                match first {
                    Some(first) => {
                        self.schedule_in(delays.deliver_after, deliver(Some(first), 1));
                        self.schedule_in(
                            delays.deliver_after + delays.rest_after,
                            deliver(None, 2),
                        );
                    }
                    None => self.schedule_in(delays.deliver_after, deliver(None, 1)),
                }
            }
            OrderEvent::SoBlocked(_) if o.role == Role::Unmatched && !self.variant_scheduled => {
                self.variant_scheduled = true;
                self.schedule_in(self.script.delays.add_variant_after, Action::AddVariant);
            }
            _ => {}
        }
    }

    /// Follows a scripted stock change through the service; says when the
    /// service has read the new stock.
    pub(super) fn watch_stock(
        &mut self,
        sku: &str,
        ev: &SkuEvent,
        after: &Sku,
        by_webhook: bool,
    ) -> Option<String> {
        let how = if by_webhook {
            "Katana's webhook"
        } else {
            "the reconciliation poll"
        };
        let mut line = None;
        let t0 = self.t0;
        for (i, c) in self.script.stock_changes.iter().enumerate() {
            let w = &mut self.stock[i];
            if c.sku != sku || !w.done_action || w.settled {
                continue;
            }
            match ev {
                SkuEvent::StockChanged(s) if !w.seen && units(s.in_stock) == c.in_stock => {
                    w.seen = true;
                    let window = match after.buffer_due {
                        Some(due) => format!("buffer open until [{}]", stamp(t0, due)),
                        None => "no buffer open".into(),
                    };
                    line = Some(format!(
                        "SKU {sku}: {how} -> stock re-read: {} in stock, {} committed ({window})",
                        c.in_stock,
                        units(s.committed)
                    ));
                }
                SkuEvent::InventoryPushed(_) | SkuEvent::BufferClosed(_) if w.seen => {
                    w.settled = true
                }
                _ => {}
            }
        }
        line
    }

    // ------------------------------------------------------------ completion

    /// What is not final yet, one readable line each (empty: the run is done).
    pub(super) fn pending(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, o) in self.script.orders.iter().enumerate() {
            let n = o.number;
            let Some(t) = &self.tracked[i] else {
                out.push(format!(
                    "order #{n} ({}): not placed yet",
                    o.role.describe()
                ));
                continue;
            };
            let Some(state) = self.orders.get(&t.id) else {
                out.push(format!(
                    "order #{n} {}: the service has not recorded it",
                    t.id
                ));
                continue;
            };
            if let Some(why) = Self::not_final(o.role, state) {
                out.push(format!(
                    "order #{n} {} ({}): {why}",
                    t.id,
                    o.role.describe()
                ));
            }
        }
        for (i, c) in self.script.stock_changes.iter().enumerate() {
            let w = &self.stock[i];
            let why = if !w.done_action {
                "not made yet"
            } else if !w.seen {
                "not seen by the service yet"
            } else if !w.settled {
                "inventory buffer not flushed yet"
            } else {
                continue;
            };
            out.push(format!(
                "stock change of {} to {}: {why}",
                c.sku, c.in_stock
            ));
        }
        out
    }

    pub(super) fn not_final(role: Role, o: &Order) -> Option<String> {
        match role {
            Role::FulfilledByTikTok => o.skipped.is_none().then(|| "not skipped yet".into()),
            Role::CancelledInHold => {
                if o.so != SoState::None {
                    Some(format!("pushed although cancelled: {:?}", o.so))
                } else if !o.cancelled {
                    Some("cancellation not seen yet".into())
                } else if !o.hold_expired {
                    Some("hold not over yet".into())
                } else {
                    None
                }
            }
            Role::TikTokShipping => {
                let waiting = o
                    .deliveries
                    .values()
                    .filter(|d| d.package_id.is_some() && d.tracking_written.is_none())
                    .count();
                match Self::not_final(Role::Normal, o) {
                    Some(why) => Some(why),
                    None if waiting > 0 => Some("TikTok's tracking not in Katana yet".to_string()),
                    None => None,
                }
            }
            Role::Normal | Role::Unmatched | Role::EditedInHold => {
                let live: Vec<&str> = o
                    .snapshot
                    .as_ref()
                    .map(|s| {
                        s.units
                            .iter()
                            .filter(|u| !u.cancelled)
                            .map(|u| u.line_item_id.as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                let shipped: Vec<&str> = o
                    .deliveries
                    .values()
                    .filter(|d| d.package_id.is_some())
                    .flat_map(|d| d.line_item_ids.iter().map(String::as_str))
                    .collect();
                let unshipped = live.iter().filter(|u| !shipped.contains(u)).count();
                match &o.so {
                    SoState::Created { .. } if unshipped == 0 && !live.is_empty() => None,
                    SoState::Created { .. } => Some(format!(
                        "{unshipped} of {} unit(s) not shipped on TikTok yet",
                        live.len()
                    )),
                    SoState::None if !o.hold_expired => Some("still in the hold".into()),
                    SoState::None => Some("hold over, SO not requested".into()),
                    SoState::Requested { last_error, .. } => Some(format!(
                        "SO requested, not created yet{}",
                        last_error
                            .as_ref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )),
                    SoState::Blocked { reason } => Some(format!("SO blocked: {reason}")),
                    SoState::Deleted { .. } => Some("SO deleted".into()),
                }
            }
        }
    }
}
