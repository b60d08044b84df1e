//! Narration: the header, each event and scripted action told as one line with its
//! time since the start.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};

use super::runner::{units, was_blocked, Runner};
use super::world::ADMIN_TOKEN;
use crate::domain::exceptions::keys;
use crate::domain::observed::TikTokOrderStatus;
use crate::domain::order::{Order, OrderEvent, SoState, Source};
use crate::domain::sku::{Sku, SkuEvent};
use crate::sandbox::scenario::{self, Role};

pub(super) fn fmt_items(items: &[(&str, u32)]) -> String {
    items
        .iter()
        .map(|(s, q)| format!("{s} x{q}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn status_name(s: TikTokOrderStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{s:?}"))
}

/// `mm:ss` of `t` since the start of the run.
pub(super) fn stamp(t0: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let s = (t - t0).num_milliseconds().max(0) / 1000;
    format!("{:02}:{:02}", s / 60, s % 60)
}
/// `unit 5000...1 (TOTE-NAT) cancelled` -> `1 unit of TOTE-NAT cancelled`.
pub(super) fn readable_changes(changes: &[String]) -> String {
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    let mut other = Vec::new();
    for c in changes {
        let parsed = c.strip_prefix("unit ").and_then(|rest| {
            let (_, rest) = rest.split_once(" (")?;
            let (sku, what) = rest.split_once(") ")?;
            Some(format!("{sku} {what}"))
        });
        match parsed {
            Some(k) => *counted.entry(k).or_default() += 1,
            None => other.push(c.clone()),
        }
    }
    let mut out: Vec<String> = counted
        .into_iter()
        .map(|(k, n)| {
            let (sku, what) = k.split_once(' ').unwrap_or((&k, ""));
            let noun = if n == 1 { "unit" } else { "units" };
            format!("{n} {noun} of {sku} {what}")
        })
        .collect();
    out.extend(other);
    out.join(", ")
}
impl<'a, W: Write> Runner<'a, W> {
    pub(super) fn stamp_of(&self, t: DateTime<Utc>) -> String {
        stamp(self.t0, t)
    }

    pub(super) fn say(&mut self, line: impl AsRef<str>) {
        let stamp = self.stamp_of(self.world.clock.now());
        // A closed stdout (e.g. piped into `head`) must not stop the run.
        let _ = writeln!(self.out, "[{stamp}] {}", line.as_ref());
        let _ = self.out.flush();
    }

    pub(super) fn plain(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", line.as_ref());
        let _ = self.out.flush();
    }

    pub(super) fn header(&mut self) {
        let s = &self.world.services().settings;
        let hold = s.sync.order_hold;
        let buffer = s.sync.inventory_buffer;
        let poll = s.katana.poll_interval;
        let service = self.world.app.base_url();
        let db = self.world.db_path.display().to_string();
        let tiktok_skus: Vec<&str> = scenario::CATALOGUE.iter().map(|(s, _, _)| *s).collect();
        let katana_stock: Vec<String> = scenario::KATANA_STOCK
            .iter()
            .map(|(s, q)| format!("{s} {q}"))
            .collect();
        let script = self.script;
        let lines = [
            format!(
                "tks sandbox: TikTok Shop and Katana simulators and the service on 127.0.0.1, time x{}",
                self.speed
            ),
            format!(
                "  hold 60m -> {:.1}s, inventory buffer 60m -> {:.1}s, polls every {:.2}s, Katana 60 calls/min -> {}/min",
                hold.as_secs_f64(),
                buffer.as_secs_f64(),
                poll.as_secs_f64(),
                s.katana.requests_per_minute
            ),
            format!("  TikTok shop \"{}\" sells {}", self.world.tiktok.config().shop_name, tiktok_skus.join(", ")),
            format!(
                "  {} is also stocked on TikTok in a 3PL's warehouse ({} available) that the service does not own",
                scenario::MULTI_WAREHOUSE_SKU,
                scenario::OTHER_WAREHOUSE_STOCK
            ),
            format!(
                "  Katana \"Main warehouse\" stocks {} ({} has no Katana variant yet)",
                katana_stock.join(", "),
                scenario::UNMATCHED_SKU
            ),
            format!("  console {service}/ : log in with the admin token \"{ADMIN_TOKEN}\""),
            format!("  service {service} (operator token \"{ADMIN_TOKEN}\"), TikTok connected with an auth code, Katana webhook registered by the service"),
            format!("  database {db}"),
            format!(
                "  script: {} orders ({} normal, {} fulfilled by TikTok, {} shipped with TikTok's label, {} with an unmatched SKU, {} edited and {} cancelled in the hold), {} stock changes",
                script.orders.len(),
                script.count(Role::Normal),
                script.count(Role::FulfilledByTikTok),
                script.count(Role::TikTokShipping),
                script.count(Role::Unmatched),
                script.count(Role::EditedInHold),
                script.count(Role::CancelledInHold),
                script.stock_changes.len()
            ),
        ];
        for l in lines {
            self.plain(l);
        }
    }

    pub(super) fn label(&self, order_id: &str) -> String {
        match self.by_id.get(order_id) {
            Some(i) => format!("order #{}", i + 1),
            None => format!("order {order_id}"),
        }
    }

    pub(super) fn render_order(
        &self,
        order_id: &str,
        before: &Order,
        after: &Order,
        ev: &OrderEvent,
    ) -> Option<String> {
        let who = self.label(order_id);
        Some(match ev {
            OrderEvent::OrderPlaced(p) => {
                let how = match p.source {
                    Source::Webhook => "from TikTok's webhook",
                    Source::Poll => "by the reconciliation poll",
                    Source::HoldReread | Source::Unknown => "",
                };
                format!(
                    "{who}: recorded {how}, held until [{}]",
                    self.stamp_of(p.hold_until)
                )
            }
            OrderEvent::OrderSkipped(_) => {
                format!("{who}: fulfilled by TikTok -> recorded as skipped, never pushed to Katana")
            }
            OrderEvent::OrderEdited(e) => {
                if e.snapshot.status == TikTokOrderStatus::Cancelled {
                    return None;
                }
                let only_status = e.changes.iter().all(|c| c.starts_with("status "));
                if e.after_push && only_status {
                    format!(
                        "{who}: TikTok now shows it {}",
                        status_name(e.snapshot.status)
                    )
                } else if e.changes.iter().all(|c| c == "shipping progress") {
                    return None;
                } else if e.after_push {
                    format!(
                        "{who}: edited on TikTok after the push: {}",
                        readable_changes(&e.changes)
                    )
                } else {
                    format!(
                        "{who}: edit seen during the hold: {}",
                        readable_changes(&e.changes)
                    )
                }
            }
            OrderEvent::OrderCancelled(c) => {
                if c.after_push {
                    format!("{who}: cancelled on TikTok after the push")
                } else {
                    format!(
                        "{who}: cancelled on TikTok during the hold -> it will never reach Katana"
                    )
                }
            }
            OrderEvent::HoldExpired(_) if after.cancelled => {
                format!("{who}: hold over; the order is cancelled -> nothing sent to Katana")
            }
            OrderEvent::SoBlocked(b) => format!(
                "{who}: hold over, but SKU {} has no Katana variant -> exception, the SO waits",
                b.unmatched.join(", ")
            ),
            OrderEvent::SoCreated(so) => {
                let rows = so
                    .rows
                    .iter()
                    .map(|r| format!("{} x{}", r.seller_sku, r.quantity))
                    .collect::<Vec<_>>()
                    .join(", ");
                let left_out = after
                    .snapshot
                    .as_ref()
                    .map_or(0, |s| s.units.iter().filter(|u| u.cancelled).count());
                let note = if left_out > 0 {
                    format!("; {left_out} unit(s) cancelled in the hold left out")
                } else {
                    String::new()
                };
                if was_blocked(before) {
                    format!(
                        "{who}: the variant exists now -> exception resolved, SO {} created in Katana ({rows}){note}",
                        so.order_no
                    )
                } else {
                    format!(
                        "{who}: hold expired -> SO {} created in Katana ({rows}){note}",
                        so.order_no
                    )
                }
            }
            OrderEvent::SoCreateFailed(f) if f.retryable => {
                format!("{who}: SO not created yet ({}); retrying", f.reason)
            }
            OrderEvent::SoCreateFailed(f) => format!("{who}: Katana refused the SO: {}", f.reason),
            OrderEvent::SoDeleted(d) => format!("{who}: SO {} deleted in Katana", d.so_id),
            OrderEvent::SoDelivered(d) if d.line_item_ids.is_empty() => format!(
                "{who}: Katana fulfillment {} has no unshipped TikTok unit left",
                d.fulfillment.fulfillment_id
            ),
            OrderEvent::FulfillmentPushed(p) => {
                let SoState::Created { order_no, rows, .. } = &after.so else {
                    return None;
                };
                let total: u32 = rows.iter().map(|r| r.quantity).sum();
                let delivered: i64 = after
                    .deliveries
                    .values()
                    .flat_map(|d| d.fulfillment.rows.iter())
                    .map(|(_, q)| units(*q))
                    .sum();
                let d = after.deliveries.get(&p.fulfillment_id)?;
                let items = d.line_item_ids.len();
                let (carrier, tracking) = match after.arranged_packages.get(&p.package_id) {
                    Some(t) => ("TikTok's label", t.as_str()),
                    None => (
                        d.fulfillment.tracking_carrier.as_deref().unwrap_or("no carrier"),
                        d.fulfillment.tracking_number.as_deref().unwrap_or("no tracking"),
                    ),
                };
                let noun = if items == 1 {
                    "line item"
                } else {
                    "line items"
                };
                format!(
                    "{who}: SO {order_no} delivered {delivered} of {total} -> TikTok shipment, {items} {noun} ({carrier} {tracking})"
                )
            }
            OrderEvent::ShipmentArranged(a) => format!(
                "{who}: TikTok arranges the shipment ({}, {}) and issues its label, tracking {}",
                a.handover_method.to_lowercase().replace('_', "-"),
                if a.shipping_provider.is_empty() {
                    "TikTok's carrier"
                } else {
                    a.shipping_provider.as_str()
                },
                a.tracking_number
            ),
            OrderEvent::TrackingWrittenToKatana(w) => format!(
                "{who}: Katana fulfillment {} gets TikTok's tracking {}: the warehouse prints TikTok's label",
                w.fulfillment_id, w.tracking_number
            ),
            OrderEvent::ExceptionRaised(x) if x.key != keys::UNMATCHED_SKU => {
                format!("{who}: exception {}: {}", x.key, x.message)
            }
            OrderEvent::ExceptionResolved(x) if x.key != keys::UNMATCHED_SKU => {
                format!("{who}: exception {} resolved", x.key)
            }
            _ => return None,
        })
    }

    pub(super) fn render_sku(&self, sku: &str, after: &Sku, ev: &SkuEvent) -> Option<String> {
        let in_stock: i64 = after.locations.values().map(|l| units(l.in_stock)).sum();
        let committed: i64 = after.locations.values().map(|l| units(l.committed)).sum();
        let held: i64 = after.demand.values().map(|u| i64::from(*u)).sum();
        Some(match ev {
            SkuEvent::SkuMapped(m) => format!(
                "SKU {sku}: found in Katana (variant {}) -> mapped; orders waiting for it are retried",
                m.variant_id
            ),
            SkuEvent::BufferOpened(b) => format!(
                "SKU {sku}: stock or held demand changed -> inventory buffer open until [{}]",
                self.stamp_of(b.due_at)
            ),
            SkuEvent::InventoryPushed(p) => {
                let held = if held > 0 {
                    format!(" - {held} in orders still held")
                } else {
                    String::new()
                };
                format!(
                    "SKU {sku}: buffer flushed -> TikTok shows {} ({in_stock} in stock - {committed} committed{held})",
                    p.quantity
                )
            }
            SkuEvent::BufferClosed(c) => format!(
                "SKU {sku}: buffer closed, TikTok already shows {} -> nothing pushed",
                c.atp
            ),
            SkuEvent::ExceptionRaised(x) => format!("SKU {sku}: exception {}: {}", x.key, x.message),
            SkuEvent::ExceptionResolved(x) => format!("SKU {sku}: exception {} resolved", x.key),
            SkuEvent::ChannelSyncToggled(t) => format!(
                "SKU {sku}: inventory sync {}",
                if t.enabled { "enabled" } else { "disabled" }
            ),
            _ => return None,
        })
    }
}
