//! What must hold after any shop day, whatever faults and crashes it had: one live
//! SO per pushed order and none for cancelled or fulfilled-by-TikTok ones (F5, F3,
//! F4), every delivered unit shipped exactly once (F7), TikTok showing the ATP of
//! Katana's stock (F10), and the log rebuilding to the live state (F19).

use std::collections::{BTreeMap, BTreeSet};

use super::day::Played;
use crate::domain::order::SoState;
use crate::replay::{rebuild, StreamState};
use crate::sandbox::scenario::KATANA_STOCK;
use crate::sandbox::tiktok::MAIN_WAREHOUSE;

/// One broken promise, said so that the seed's log can be searched for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

fn broken(out: &mut Vec<Violation>, invariant: &'static str, detail: String) {
    out.push(Violation { invariant, detail });
}

/// Runs every check; returns how many checks ran and what failed.
pub async fn check(played: &Played) -> (usize, Vec<Violation>) {
    let mut checks = 0;
    let mut out = Vec::new();
    let world = &played.world;
    let sos = world.katana.sales_orders();
    let mut live: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut ever: BTreeMap<String, usize> = BTreeMap::new();
    for so in &sos {
        let Some(ext) = so["ecommerce_order_id"].as_str() else {
            continue;
        };
        *ever.entry(ext.to_string()).or_default() += 1;
        if so["deleted_at"].is_null() {
            if let Some(id) = so["id"].as_i64() {
                live.entry(ext.to_string()).or_default().push(id);
            }
        }
    }
    for (id, placed) in &played.orders {
        checks += 1;
        let live_sos = live.get(id).cloned().unwrap_or_default();
        let state = world
            .services()
            .commands
            .orders
            .state(id)
            .await
            .ok()
            .map(|(s, _)| s);
        if placed.fbt {
            if ever.get(id).copied().unwrap_or(0) > 0 {
                broken(
                    &mut out,
                    "fbt-never-pushed",
                    format!("order {id} has an SO"),
                );
            }
            continue;
        }
        if placed.cancelled {
            if !live_sos.is_empty() {
                broken(
                    &mut out,
                    "cancelled-has-no-live-so",
                    format!("order {id}: live SOs {live_sos:?}"),
                );
            }
            continue;
        }
        if live_sos.len() != 1 {
            broken(
                &mut out,
                "one-live-so-per-order",
                format!("order {id}: live SOs {live_sos:?}"),
            );
            continue;
        }
        match state.as_ref().map(|s| &s.so) {
            Some(SoState::Created { so_id, .. }) if *so_id == live_sos[0] => {}
            other => broken(
                &mut out,
                "order-knows-its-so",
                format!(
                    "order {id}: Katana has {}, the order says {other:?}",
                    live_sos[0]
                ),
            ),
        }
    }

    // Every delivered unit reached TikTok once, and no line item shipped twice.
    let mut shipped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in world.tiktok.shipments() {
        shipped
            .entry(s.order_id.clone())
            .or_default()
            .extend(s.line_item_ids);
    }
    for (id, placed) in &played.orders {
        checks += 1;
        let items = shipped.get(id).cloned().unwrap_or_default();
        let distinct: BTreeSet<&String> = items.iter().collect();
        if distinct.len() != items.len() {
            broken(
                &mut out,
                "no-unit-shipped-twice",
                format!("order {id}: {items:?}"),
            );
        }
        if items.len() as u32 != placed.delivered_units {
            broken(
                &mut out,
                "every-delivered-unit-shipped",
                format!(
                    "order {id}: {} delivered in Katana, {} shipped on TikTok",
                    placed.delivered_units,
                    items.len()
                ),
            );
        }
    }

    // With every hold over, TikTok shows Katana's free stock.
    let sku_ids: BTreeMap<String, String> = world
        .tiktok
        .products()
        .into_iter()
        .flat_map(|p| p.skus.into_iter())
        .map(|s| (s.seller_sku, s.id))
        .collect();
    let tiktok_stock = world.tiktok.stock();
    let variants = world.variants.lock().clone();
    for (sku, _) in KATANA_STOCK {
        checks += 1;
        let (Some(variant), Some(sku_id)) = (variants.get(*sku), sku_ids.get(*sku)) else {
            continue;
        };
        let (in_stock, committed) = world.katana.stock(*variant, world.main_location);
        let expected = (in_stock.floor_units() - committed.floor_units()).clamp(0, 99_999);
        let shown = tiktok_stock
            .get(sku_id)
            .and_then(|w| w.get(MAIN_WAREHOUSE))
            .copied()
            .unwrap_or(0);
        if shown != expected {
            broken(
                &mut out,
                "tiktok-shows-the-atp",
                format!("{sku}: Katana free {expected}, TikTok shows {shown}"),
            );
        }
    }

    // The log rebuilds to what the actors hold.
    checks += 1;
    let store = world.store();
    match rebuild(store.as_ref(), &[], |_| {}) {
        Ok(rebuilt) => {
            if !rebuilt.problems.is_empty() {
                broken(
                    &mut out,
                    "rebuild-without-problems",
                    format!("{:?}", rebuilt.problems.first()),
                );
            }
            for (stream, state) in &rebuilt.states {
                let live = match stream.split_once('-') {
                    Some(("order", id)) => world
                        .services()
                        .commands
                        .orders
                        .state(id)
                        .await
                        .ok()
                        .map(|(s, _)| StreamState::Order(Box::new(s))),
                    Some(("sku", sku)) => world
                        .services()
                        .commands
                        .skus
                        .state(sku)
                        .await
                        .ok()
                        .map(|(s, _)| StreamState::Sku(Box::new(s))),
                    _ => None,
                };
                if live.as_ref() != Some(state) {
                    broken(&mut out, "rebuild-equals-live", format!("{stream} differs"));
                }
            }
        }
        Err(e) => broken(&mut out, "rebuild-equals-live", e.to_string()),
    }
    (checks, out)
}
