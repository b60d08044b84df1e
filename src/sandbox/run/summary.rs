//! The end of a run: what it achieved, read back from the log and the simulators,
//! and the summary printed after the live log.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::runner::Runner;
use super::world::tiktok_sku_id;
use crate::domain::order::SoState;
use crate::names::lookup::EXCEPTION as EXCEPTION_LOOKUP;
use crate::sandbox::scenario::{self, Role};
use crate::sandbox::tiktok::{MAIN_WAREHOUSE, SECOND_WAREHOUSE};

/// What the run achieved, read back from the log and the simulators.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub placed: usize,
    pub pushed: usize,
    pub pushed_after_exception: usize,
    pub skipped: usize,
    pub cancelled: usize,
    pub edited: usize,
    pub exceptions_raised: usize,
    pub exceptions_resolved: usize,
    pub exceptions_open: usize,
    /// Non-deleted TikTok SOs in the Katana simulator.
    pub sales_orders_in_katana: usize,
    /// TikTok shops served, and the SOs of each by its order prefix.
    pub shops: usize,
    pub sales_orders_by_prefix: Vec<(String, usize)>,
    /// Packages TikTok's simulator recorded, and their line items.
    pub shipments: usize,
    pub shipped_line_items: usize,
    /// Of those, shipments TikTok arranged with its own label.
    pub tiktok_label_shipments: usize,
    /// Pushes of the multi-warehouse SKU, and how many of them sent the 3PL
    /// warehouse the quantity TikTok held for it at that moment.
    pub multi_warehouse_pushes: usize,
    pub other_warehouse_kept: usize,
    /// Inventory quantities TikTok's simulator accepted.
    pub inventory_pushes: usize,
    pub katana_requests: usize,
    pub katana_429: usize,
    /// `METHOD /path` (ids as `{id}`) -> requests, most called first.
    pub katana_by_endpoint: Vec<(String, usize)>,
}

/// The end of a run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Every scripted order reached its final state before the timeout.
    pub completed: bool,
    /// What was still missing at the timeout, one line each.
    pub missing: Vec<String>,
    pub elapsed: Duration,
    pub summary: Summary,
    /// (number, role, TikTok order id) of every placed order.
    pub orders: Vec<(usize, Role, String)>,
    pub db_path: PathBuf,
}

impl<'a, W: Write> Runner<'a, W> {
    // ------------------------------------------------------------ summary

    pub(super) fn summary(&self) -> Summary {
        let mut s = Summary {
            exceptions_raised: self.exceptions_raised,
            exceptions_resolved: self.exceptions_resolved,
            pushed_after_exception: self.pushed_after_exception,
            ..Summary::default()
        };
        for (i, t) in self.tracked.iter().enumerate() {
            let Some(t) = t else { continue };
            s.placed += 1;
            let Some(o) = self.orders.get(&t.id) else {
                continue;
            };
            if matches!(o.so, SoState::Created { .. }) {
                s.pushed += 1;
            }
            if o.skipped.is_some() {
                s.skipped += 1;
            }
            if o.cancelled {
                s.cancelled += 1;
            }
            if self.script.orders[i].role == Role::EditedInHold
                && o.snapshot
                    .as_ref()
                    .is_some_and(|x| x.units.iter().any(|u| u.cancelled))
            {
                s.edited += 1;
            }
        }
        s.exceptions_open = self
            .world
            .store()
            .lookup_all(EXCEPTION_LOOKUP)
            .map_or(0, |v| v.len());
        s.sales_orders_in_katana = self
            .world
            .katana
            .sales_orders()
            .iter()
            .filter(|so| so["deleted_at"].is_null() && so["ecommerce_order_type"] == "tiktok")
            .count();
        for shop in self.world.app.services.settings.served_shops() {
            let count = self
                .world
                .katana
                .sales_orders()
                .iter()
                .filter(|so| so["deleted_at"].is_null())
                .filter(|so| {
                    so["order_no"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&shop.order_no_prefix))
                })
                .count();
            s.sales_orders_by_prefix.push((shop.order_no_prefix, count));
        }
        // Every shop's shipments and pushes (one shop unless `--shops 2`).
        let shops: Vec<_> = self
            .world
            .tiktok
            .shop_ids()
            .iter()
            .filter_map(|id| self.world.tiktok.shop(id))
            .filter(|shop| shop.seller() == 0)
            .collect();
        s.shops = shops
            .len()
            .min(self.world.app.services.settings.served_shops().len());
        let shipments: Vec<_> = shops.iter().flat_map(|shop| shop.shipments()).collect();
        s.shipments = shipments.len();
        s.shipped_line_items = shipments.iter().map(|x| x.line_item_ids.len()).sum();
        s.tiktok_label_shipments = shipments
            .iter()
            .filter(|x| x.method == "tiktok_label")
            .count();
        let pushes: Vec<_> = shops
            .iter()
            .flat_map(|shop| shop.inventory_pushes())
            .collect();
        s.inventory_pushes = pushes.len();
        let other = tiktok_sku_id(scenario::MULTI_WAREHOUSE_SKU).unwrap_or_default();
        let changes = &self.other_warehouse_set;
        for p in pushes.iter().filter(|p| p.sku_id == other) {
            if p.warehouse_id == MAIN_WAREHOUSE {
                s.multi_warehouse_pushes += 1;
            } else if p.warehouse_id == SECOND_WAREHOUSE {
                // What TikTok held for the 3PL when the update was sent.
                let expected = changes
                    .iter()
                    .filter(|(at, _)| *at <= p.time)
                    .map(|(_, q)| *q)
                    .next_back()
                    .unwrap_or(scenario::OTHER_WAREHOUSE_STOCK);
                if p.quantity == expected {
                    s.other_warehouse_kept += 1;
                }
            }
        }
        let stats = self.world.katana.stats();
        s.katana_requests = stats.requests;
        s.katana_429 = stats.rate_limited;
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for (endpoint, n) in stats.by_endpoint {
            let generic: Vec<&str> = endpoint
                .split('/')
                .map(|seg| {
                    if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                        "{id}"
                    } else {
                        seg
                    }
                })
                .collect();
            *by.entry(generic.join("/")).or_default() += n;
        }
        s.katana_by_endpoint = by.into_iter().collect();
        s.katana_by_endpoint
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        s
    }

    pub(super) fn print_summary(&mut self, outcome: &Outcome) {
        let s = &outcome.summary;
        let db = outcome.db_path.display().to_string();
        let per_so = if s.pushed > 0 {
            format!("{:.1}", s.katana_requests as f64 / s.pushed as f64)
        } else {
            "-".into()
        };
        let example = outcome
            .orders
            .iter()
            .find(|(_, r, _)| *r == Role::Unmatched)
            .or_else(|| outcome.orders.first())
            .map(|(_, _, id)| id.clone());
        let verdict = if outcome.completed {
            "every scripted order reached its final state"
        } else {
            "INCOMPLETE: see the list above"
        };
        let poll = self.world.services().settings.katana.poll_interval;
        let by_endpoint = s
            .katana_by_endpoint
            .iter()
            .map(|(e, n)| format!("{e} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = |label: &str, value: String| format!("  {label:<30}{value}");
        let mut lines = vec![
            String::new(),
            format!(
                "summary after {:.0}s: {verdict}",
                outcome.elapsed.as_secs_f64()
            ),
            row("orders placed on TikTok", s.placed.to_string()),
            row(
                "pushed to Katana as SOs",
                format!(
                    "{} ({} after an exception was resolved; Katana holds {} TikTok SOs)",
                    s.pushed, s.pushed_after_exception, s.sales_orders_in_katana
                ),
            ),
            row(
                "TikTok shops",
                if s.shops > 1 {
                    let per_shop: Vec<String> = s
                        .sales_orders_by_prefix
                        .iter()
                        .map(|(prefix, n)| format!("{n} SOs {prefix}…"))
                        .collect();
                    format!("{} ({})", s.shops, per_shop.join(", "))
                } else {
                    s.shops.to_string()
                },
            ),
            row("skipped (fulfilled by TikTok)", s.skipped.to_string()),
            row("cancelled in the hold", format!("{} (never pushed)", s.cancelled)),
            row("edited in the hold", s.edited.to_string()),
            row(
                "exceptions",
                format!(
                    "{} raised, {} resolved, {} open",
                    s.exceptions_raised, s.exceptions_resolved, s.exceptions_open
                ),
            ),
            row(
                "shipments to TikTok",
                format!(
                    "{} packages, {} line items ({} with TikTok's label)",
                    s.shipments, s.shipped_line_items, s.tiktok_label_shipments
                ),
            ),
            row("inventory pushes to TikTok", s.inventory_pushes.to_string()),
            row(
                "multi-warehouse SKU",
                format!(
                    "{}: {} push(es), the 3PL warehouse sent its current quantity in {} of them",
                    scenario::MULTI_WAREHOUSE_SKU,
                    s.multi_warehouse_pushes,
                    s.other_warehouse_kept
                ),
            ),
            row(
                "Katana API calls",
                format!(
                    "{} = {per_so} per SO pushed, reconciliation polls every {:.2}s included; {} answered 429",
                    s.katana_requests,
                    poll.as_secs_f64(),
                    s.katana_429
                ),
            ),
            row("  by endpoint", by_endpoint),
            row("database", db.clone()),
        ];
        if let Some(id) = example {
            lines.push(row(
                "the whole story of an order",
                format!("tks-replay timeline order {id} --db {db}"),
            ));
        }
        for l in lines {
            self.plain(l);
        }
    }
}
