//! `tks bench peak`: a TikTok live sale against Katana's real 60 requests a minute,
//! on the simulators and a manual clock. N orders arrive evenly over one hour of
//! shop time; after the 60-minute hold each becomes an SO; the warehouse delivers in
//! waves every 10 minutes (the SOs created at least 20 minutes before), each
//! delivery ships on TikTok; stock changes every 4 minutes until the last SO is in
//! Katana. Reconciliation polls run as in production.
//!
//! Measured: Katana requests over every order's whole life (placement to shipment)
//! per order, 429s, when the last order reached Katana, and how long a stock
//! decrease in Katana took to be read and to reach TikTok.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};

use super::{endpoint_key, print, stuck_report};
use crate::actors::policies::{decode_order, decode_sku};
use crate::clock::ManualClock;
use crate::domain::observed::FulfillmentType;
use crate::domain::order::OrderEvent;
use crate::domain::sku::SkuEvent;
use crate::sandbox::katana::Tracking;
use crate::sandbox::run::{World, WorldOptions};

/// Clock step: everything the bench does happens on these boundaries.
const STEP: Duration = Duration::from_secs(10);
const SALE: Duration = Duration::from_secs(3600);
const WAVE_EVERY: Duration = Duration::from_secs(600);
/// An SO is delivered in the first wave at least this long after its creation.
const PICK_AND_PACK: Duration = Duration::from_secs(1200);
const STOCK_CHANGE_EVERY: Duration = Duration::from_secs(240);
const STOCK_CHANGE_OFFSET: Duration = Duration::from_secs(370);
/// Shop time after which the bench gives up and reports what is stuck.
const GIVE_UP: Duration = Duration::from_secs(8 * 3600);
/// Stock at the start, enough that no order of the sale runs out.
const START_STOCK: i64 = 100_000;

const BASKETS: &[&[(&str, u32)]] = &[
    &[("MUG-WHITE", 2), ("TOTE-NAT", 1)],
    &[("MUG-BLACK", 1)],
    &[("TOTE-NAT", 1), ("MUG-BLACK", 1)],
    &[("MUG-WHITE", 1)],
];

fn ch(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Real time a step may take on a loaded machine before the bench moves on.
const STEP_LIMIT: Duration = Duration::from_secs(30);

async fn step_done(world: &World) {
    world.settle_on_clock(STEP_LIMIT).await;
}

struct Decrease {
    sku: String,
    at: DateTime<Utc>,
    level: i64,
}

/// What `tks bench peak` measured.
pub struct PeakRun {
    pub orders: usize,
    pub requests: usize,
    pub rate_limited: usize,
    pub by_endpoint: BTreeMap<String, usize>,
    pub max_in_any_window: usize,
    pub all_in_katana_after: Duration,
    pub longest_wait_after_hold: Duration,
    pub decreases: usize,
    pub decrease_read_max: Duration,
    pub decrease_to_tiktok_max: Duration,
    pub delivery_to_tiktok_max: Duration,
}

fn secs(d: chrono::Duration) -> Duration {
    d.to_std().unwrap_or_default()
}

pub async fn run(db: &Path, orders: usize) -> anyhow::Result<PeakRun> {
    let start = Utc.with_ymd_and_hms(2026, 11, 27, 19, 0, 0).unwrap();
    let manual = ManualClock::new(start);
    let world = World::start(
        manual.clock(),
        WorldOptions {
            shops: 1,
            db_path: db.to_path_buf(),
            katana_requests_per_minute: Some(60),
            pollers: true,
        },
        |s| s.tiktok.requests_per_second = 0,
    )
    .await?;
    let skus: Vec<String> = world.variants.lock().keys().cloned().collect();
    for sku in &skus {
        world.set_katana_stock(sku, START_STOCK)?;
    }
    step_done(&world).await;
    manual.advance(STEP);
    step_done(&world).await;
    let counted_from = world.katana.requests().len();
    let sale_start = manual.now();
    let mut placed: Vec<String> = Vec::with_capacity(orders);
    let mut delivered_at: BTreeMap<i64, DateTime<Utc>> = BTreeMap::new();
    let mut decreases: Vec<Decrease> = Vec::new();
    let mut next_wave = sale_start + ch(WAVE_EVERY);
    // Offset so a change never falls on a wave: its deliveries move stock too.
    let mut next_stock_change = sale_start + ch(STOCK_CHANGE_OFFSET);
    let mut stock_changes = 0usize;
    let ups = || Tracking {
        tracking_number: Some("1ZPEAK".into()),
        tracking_url: None,
        tracking_carrier: Some("UPS".into()),
    };
    loop {
        let now = manual.now();
        let elapsed = secs(now - sale_start);
        while placed.len() < orders
            && Duration::from_secs_f64(SALE.as_secs_f64() * placed.len() as f64 / orders as f64)
                <= elapsed
        {
            let basket = BASKETS[placed.len() % BASKETS.len()];
            placed.push(
                world
                    .place(basket, FulfillmentType::FulfillmentBySeller)?
                    .id,
            );
        }
        let sos: Vec<(i64, DateTime<Utc>)> = world
            .katana
            .sales_orders()
            .iter()
            .filter(|so| so["deleted_at"].is_null())
            .filter_map(|so| {
                let created = so["created_at"].as_str()?;
                let created = DateTime::parse_from_rfc3339(created).ok()?;
                Some((so["id"].as_i64()?, created.with_timezone(&Utc)))
            })
            .collect();
        let all_in_katana = placed.len() == orders && sos.len() >= orders;
        if now >= next_wave {
            next_wave += ch(WAVE_EVERY);
            for (so_id, created) in &sos {
                if !delivered_at.contains_key(so_id) && *created + ch(PICK_AND_PACK) <= now {
                    world
                        .katana
                        .deliver(*so_id, None, ups())
                        .map_err(|e| anyhow::anyhow!("delivering SO {so_id}: {e}"))?;
                    delivered_at.insert(*so_id, now);
                }
            }
        }
        if now >= next_stock_change && !all_in_katana {
            next_stock_change += ch(STOCK_CHANGE_EVERY);
            let sku = &skus[stock_changes % skus.len()];
            let variant = world.variants.lock()[sku];
            let (in_stock, _) = world.katana.stock(variant, world.main_location);
            // Mostly damage and miscounts (decreases), a restock every fifth time.
            let restock = stock_changes % 5 == 4;
            let level = in_stock.floor_units() + if restock { 50 } else { -5 };
            world.set_katana_stock(sku, level)?;
            if !restock {
                decreases.push(Decrease {
                    sku: sku.clone(),
                    at: now,
                    level,
                });
            }
            stock_changes += 1;
        }
        step_done(&world).await;
        let shipped: std::collections::BTreeSet<String> = world
            .tiktok
            .shipments()
            .into_iter()
            .map(|s| s.order_id)
            .collect();
        if all_in_katana && placed.iter().all(|id| shipped.contains(id)) {
            break;
        }
        if elapsed > GIVE_UP {
            let report = stuck_report(&world, &placed).await;
            for line in &report {
                print("peak.stuck", line);
            }
            world.stop().await;
            anyhow::bail!(
                "after {GIVE_UP:?} of shop time: {} of {orders} orders in Katana, {} shipped",
                sos.len(),
                shipped.len()
            );
        }
        manual.advance(STEP);
    }

    // Timings from the service's own log.
    let store = world.store().clone();
    let mut hold_expired: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let mut so_created: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let mut stock_seen: BTreeMap<String, Vec<(DateTime<Utc>, i64)>> = BTreeMap::new();
    let mut pushed: BTreeMap<String, Vec<DateTime<Utc>>> = BTreeMap::new();
    let mut position = 0;
    loop {
        let batch = store.read_all(position, 4096)?;
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            position = e.position;
            let at = e.meta.recorded_at;
            if let Some((id, ev)) = decode_order(e) {
                match ev {
                    OrderEvent::HoldExpired(_) => {
                        hold_expired.entry(id).or_insert(at);
                    }
                    OrderEvent::SoCreated(_) => {
                        so_created.entry(id).or_insert(at);
                    }
                    _ => {}
                }
            } else if let Some((sku, ev)) = decode_sku(e) {
                match ev {
                    SkuEvent::StockChanged(c) => stock_seen
                        .entry(sku)
                        .or_default()
                        .push((at, c.in_stock.floor_units())),
                    SkuEvent::InventoryPushed(_) => pushed.entry(sku).or_default().push(at),
                    _ => {}
                }
            }
        }
    }
    let first_after = |list: Option<&Vec<DateTime<Utc>>>, t: DateTime<Utc>| {
        list.and_then(|l| l.iter().find(|x| **x >= t).copied())
    };
    let mut decrease_read_max = chrono::Duration::zero();
    let mut decrease_to_tiktok_max = chrono::Duration::zero();
    for d in &decreases {
        // The first observation at or below the new level (a later delivery may
        // have lowered it further before the read).
        let seen = stock_seen
            .get(&d.sku)
            .and_then(|l| {
                l.iter()
                    .find(|(t, in_stock)| *t >= d.at && *in_stock <= d.level)
                    .map(|(t, _)| *t)
            })
            .ok_or_else(|| {
                anyhow::anyhow!("the decrease of {} at {} was never read", d.sku, d.at)
            })?;
        let on_tiktok = first_after(pushed.get(&d.sku), seen).ok_or_else(|| {
            anyhow::anyhow!("the decrease of {} at {} never reached TikTok", d.sku, d.at)
        })?;
        decrease_read_max = decrease_read_max.max(seen - d.at);
        decrease_to_tiktok_max = decrease_to_tiktok_max.max(on_tiktok - d.at);
    }
    let last_created = placed
        .iter()
        .filter_map(|id| so_created.get(id))
        .max()
        .copied()
        .unwrap_or(sale_start);
    let longest_wait_after_hold = placed
        .iter()
        .filter_map(|id| Some(*so_created.get(id)? - *hold_expired.get(id)?))
        .max()
        .unwrap_or_else(chrono::Duration::zero);
    let so_of_order: BTreeMap<String, i64> = world
        .katana
        .sales_orders()
        .iter()
        .filter_map(|so| {
            Some((
                so["ecommerce_order_id"].as_str()?.to_string(),
                so["id"].as_i64()?,
            ))
        })
        .collect();
    let mut delivery_to_tiktok_max = chrono::Duration::zero();
    for s in world.tiktok.shipments() {
        let Some(at) = so_of_order
            .get(&s.order_id)
            .and_then(|so| delivered_at.get(so))
        else {
            continue;
        };
        let shipped = Utc.timestamp_opt(s.time, 0).single().unwrap_or(*at);
        delivery_to_tiktok_max = delivery_to_tiktok_max.max(shipped - *at);
    }

    let max_in_any_window = world.katana.max_requests_in_any_window();
    let requests = world.katana.requests();
    world.stop().await;
    let measured = &requests[counted_from.min(requests.len())..];
    let mut by_endpoint = BTreeMap::new();
    for r in measured {
        *by_endpoint
            .entry(endpoint_key(&r.method, &r.path))
            .or_default() += 1;
    }
    Ok(PeakRun {
        orders,
        requests: measured.len(),
        rate_limited: measured.iter().filter(|r| r.status == 429).count(),
        by_endpoint,
        max_in_any_window,
        all_in_katana_after: secs(last_created - sale_start),
        longest_wait_after_hold: secs(longest_wait_after_hold),
        decreases: decreases.len(),
        decrease_read_max: secs(decrease_read_max),
        decrease_to_tiktok_max: secs(decrease_to_tiktok_max),
        delivery_to_tiktok_max: secs(delivery_to_tiktok_max),
    })
}

/// `tks bench peak --orders N`.
pub async fn peak(orders: usize) -> anyhow::Result<()> {
    if orders == 0 {
        anyhow::bail!("--orders must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("tks-bench-peak-")
        .tempdir()?;
    let started = Instant::now();
    let run = run(&dir.path().join("peak.db"), orders).await?;
    let per = |n: usize| format!("{:.3}", n as f64 / run.orders.max(1) as f64);
    let minutes = |d: Duration| format!("{:.1}", d.as_secs_f64() / 60.0);
    print("peak.orders", run.orders);
    print("peak.katana_requests", run.requests);
    print("peak.katana_calls_per_order", per(run.requests));
    for (endpoint, n) in &run.by_endpoint {
        print(&format!("peak.katana_calls_per_order.{endpoint}"), per(*n));
    }
    print("peak.katana_429", run.rate_limited);
    print("peak.katana_max_requests_in_any_60s", run.max_in_any_window);
    print(
        "peak.minutes_until_every_order_in_katana",
        minutes(run.all_in_katana_after),
    );
    print(
        "peak.longest_hold_end_to_so_minutes",
        minutes(run.longest_wait_after_hold),
    );
    print("peak.stock_decreases", run.decreases);
    print(
        "peak.stock_decrease_read_max_s",
        run.decrease_read_max.as_secs(),
    );
    print(
        "peak.stock_decrease_to_tiktok_max_minutes",
        minutes(run.decrease_to_tiktok_max),
    );
    print(
        "peak.delivery_to_tiktok_max_s",
        run.delivery_to_tiktok_max.as_secs(),
    );
    print(
        "peak.real_seconds",
        format!("{:.1}", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_basket_is_of_skus_katana_stocks() {
        for basket in BASKETS {
            for (sku, _) in *basket {
                assert!(crate::sandbox::scenario::KATANA_STOCK
                    .iter()
                    .any(|(k, _)| k == sku));
            }
        }
    }

    #[test]
    fn the_wave_interval_divides_into_clock_steps() {
        assert_eq!(WAVE_EVERY.as_secs() % STEP.as_secs(), 0);
        assert_eq!(STOCK_CHANGE_EVERY.as_secs() % STEP.as_secs(), 0);
        assert_eq!(STOCK_CHANGE_OFFSET.as_secs() % STEP.as_secs(), 0);
        for k in 0..100 {
            let at = STOCK_CHANGE_OFFSET.as_secs() + k * STOCK_CHANGE_EVERY.as_secs();
            assert_ne!(at % WAVE_EVERY.as_secs(), 0, "a stock change on a wave");
        }
    }
}
