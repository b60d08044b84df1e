//! One seeded shop day: what buyers, the warehouse, the APIs and the machine do,
//! step by step on a manual clock, and what of it the invariants need to know.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::clock::ManualClock;
use crate::domain::observed::{FulfillmentType, Quantity};
use crate::sandbox::katana::Tracking;
use crate::sandbox::run::{World, WorldOptions};
use crate::sandbox::scenario::KATANA_STOCK;
use crate::sandbox::tiktok::Faults;

const MIN: Duration = Duration::from_secs(60);
/// How long the service gets to catch up after a step, in real time, before the
/// step only waits for the log to stop growing (something waits on the clock).
const SETTLE: Duration = Duration::from_millis(150);
const QUIET: Duration = Duration::from_millis(100);

/// How long a day is: `steps` five-minute steps of activity, then four quiet hours
/// in which holds end, waits run out, buffers flush and polls reconcile.
#[derive(Clone, Copy, Debug)]
pub struct DaySize {
    pub steps: u32,
}

impl Default for DaySize {
    fn default() -> Self {
        DaySize { steps: 24 }
    }
}

/// An order the day placed.
#[derive(Clone, Debug)]
pub struct PlacedOrder {
    pub placed_at: DateTime<Utc>,
    pub fbt: bool,
    /// Cancelled on TikTok (during the hold or after the push).
    pub cancelled: bool,
    /// Units the warehouse delivered in Katana.
    pub delivered_units: u32,
}

/// The day as played, with the world it left behind.
pub struct Played {
    pub world: World,
    pub orders: BTreeMap<String, PlacedOrder>,
    pub deliveries: usize,
    pub stock_changes: usize,
    pub faults: usize,
    pub crashes: usize,
    pub cancellations: usize,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub async fn play(seed: u64, size: DaySize, db: &Path) -> anyhow::Result<Played> {
    let manual = ManualClock::new(t0());
    let world = World::start(
        manual.clock(),
        WorldOptions {
            shops: 1,
            db_path: db.to_path_buf(),
            katana_requests_per_minute: None,
            pollers: true,
        },
        |s| {
            s.sync.order_hold = 60 * MIN;
            s.sync.inventory_buffer = 30 * MIN;
            s.katana.create_settle = 5 * MIN;
            s.katana.poll_interval = 10 * MIN;
            s.tiktok.poll_interval = 10 * MIN;
        },
    )
    .await?;
    let mut day = Day {
        rng: StdRng::seed_from_u64(seed),
        manual,
        world: Some(world),
        played: Counts {
            seed,
            orders: BTreeMap::new(),
            deliveries: 0,
            stock_changes: 0,
            faults: 0,
            crashes: 0,
            cancellations: 0,
        },
    };
    for _ in 0..size.steps {
        for _ in 0..day.rng.gen_range(1..=3) {
            day.act().await?;
        }
        day.advance(5, MIN).await;
    }
    // The APIs recover; what was lost must be repaired by the service itself.
    day.w().tiktok.set_faults(Faults::default());
    day.w().katana.fail_next(0);
    day.w().katana.drop_next_webhooks(0);
    day.advance(24, 10 * MIN).await;
    let Some(world) = day.world.take() else {
        anyhow::bail!("the world was lost in a restart");
    };
    let c = day.played;
    Ok(Played {
        world,
        orders: c.orders,
        deliveries: c.deliveries,
        stock_changes: c.stock_changes,
        faults: c.faults,
        crashes: c.crashes,
        cancellations: c.cancellations,
    })
}

struct Day {
    rng: StdRng,
    manual: ManualClock,
    /// Absent only while a crash restarts it.
    world: Option<World>,
    played: Counts,
}

/// What the day did, as it goes.
struct Counts {
    seed: u64,
    orders: BTreeMap<String, PlacedOrder>,
    deliveries: usize,
    stock_changes: usize,
    faults: usize,
    crashes: usize,
    cancellations: usize,
}

impl Day {
    fn w(&self) -> &World {
        self.world
            .as_ref()
            .expect("the world is absent only inside crash()")
    }

    async fn advance(&mut self, steps: u32, by: Duration) {
        for _ in 0..steps {
            self.manual.advance(by);
            if let Some(w) = &self.world {
                quiesce(w).await;
            }
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.manual.now()
    }

    async fn act(&mut self) -> anyhow::Result<()> {
        match self.rng.gen_range(0..100) {
            0..=39 => self.place(),
            40..=47 => self.cancel_in_hold(),
            48..=51 => self.cancel_after_push(),
            52..=57 => self.cancel_one_unit(),
            58..=71 => self.change_stock(),
            72..=87 => self.deliver(),
            88..=96 => self.fault(),
            _ => self.crash().await,
        }
    }

    /// The machine dies mid-work and the service starts again.
    async fn crash(&mut self) -> anyhow::Result<()> {
        let Some(world) = self.world.take() else {
            anyhow::bail!("no world to crash");
        };
        self.world = Some(world.crash_and_restart().await?);
        self.played.crashes += 1;
        Ok(())
    }

    fn place(&mut self) -> anyhow::Result<()> {
        let mut items: Vec<(&str, u32)> = Vec::new();
        for _ in 0..self.rng.gen_range(1..=2) {
            let (sku, _) = KATANA_STOCK[self.rng.gen_range(0..KATANA_STOCK.len())];
            if !items.iter().any(|(s, _)| *s == sku) {
                items.push((sku, self.rng.gen_range(1..=3)));
            }
        }
        let fbt = self.rng.gen_ratio(1, 10);
        let kind = if fbt {
            FulfillmentType::FulfillmentByTiktok
        } else {
            FulfillmentType::FulfillmentBySeller
        };
        let order = self.w().place(&items, kind)?;
        self.played.orders.insert(
            order.id,
            PlacedOrder {
                placed_at: self.now(),
                fbt,
                cancelled: false,
                delivered_units: 0,
            },
        );
        Ok(())
    }

    /// An order of the last 50 minutes, still open: the buyer may still change it.
    fn in_hold(&mut self) -> Option<String> {
        let now = self.now();
        let open: Vec<String> = self
            .played
            .orders
            .iter()
            .filter(|(_, o)| !o.cancelled && now - o.placed_at < chrono::Duration::minutes(50))
            .map(|(id, _)| id.clone())
            .collect();
        (!open.is_empty()).then(|| open[self.rng.gen_range(0..open.len())].clone())
    }

    fn cancel_in_hold(&mut self) -> anyhow::Result<()> {
        let Some(id) = self.in_hold() else {
            return Ok(());
        };
        if self.w().tiktok.cancel_order(&id, None).is_ok() {
            self.mark_cancelled(&id);
        }
        Ok(())
    }

    fn cancel_one_unit(&mut self) -> anyhow::Result<()> {
        let Some(id) = self.in_hold() else {
            return Ok(());
        };
        let Some(order) = self.w().tiktok.order(&id) else {
            return Ok(());
        };
        let open: Vec<String> = order
            .units
            .iter()
            .filter(|u| !u.cancelled)
            .map(|u| u.id.clone())
            .collect();
        if open.len() < 2 {
            return Ok(());
        }
        let unit = open[self.rng.gen_range(0..open.len())].clone();
        if self.w().tiktok.cancel_order(&id, Some(vec![unit])).is_ok() {
            self.played.cancellations += 1;
        }
        Ok(())
    }

    /// Live SOs of this day's seller-fulfilled orders, with their order ids.
    fn live_sos(&self) -> Vec<(String, Value)> {
        self.w()
            .katana
            .sales_orders()
            .into_iter()
            .filter(|so| so["deleted_at"].is_null())
            .filter_map(|so| {
                let id = so["ecommerce_order_id"].as_str()?.to_string();
                let o = self.played.orders.get(&id)?;
                (!o.cancelled && !o.fbt).then_some((id, so))
            })
            .collect()
    }

    fn cancel_after_push(&mut self) -> anyhow::Result<()> {
        let candidates: Vec<String> = self
            .live_sos()
            .into_iter()
            .filter(|(id, so)| {
                so["status"] == "NOT_SHIPPED" && self.played.orders[id].delivered_units == 0
            })
            .map(|(id, _)| id)
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let id = candidates[self.rng.gen_range(0..candidates.len())].clone();
        if self.w().tiktok.cancel_order(&id, None).is_ok() {
            self.mark_cancelled(&id);
        }
        Ok(())
    }

    fn mark_cancelled(&mut self, id: &str) {
        if let Some(o) = self.played.orders.get_mut(id) {
            o.cancelled = true;
            self.played.cancellations += 1;
        }
    }

    fn change_stock(&mut self) -> anyhow::Result<()> {
        let (sku, _) = KATANA_STOCK[self.rng.gen_range(0..KATANA_STOCK.len())];
        let stock = self.rng.gen_range(0..=60);
        self.w().set_katana_stock(sku, stock)?;
        self.played.stock_changes += 1;
        Ok(())
    }

    fn deliver(&mut self) -> anyhow::Result<()> {
        let open: Vec<(String, Value)> = self
            .live_sos()
            .into_iter()
            .filter(|(_, so)| {
                matches!(
                    so["status"].as_str(),
                    Some("NOT_SHIPPED" | "PARTIALLY_DELIVERED")
                )
            })
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let (id, so) = open[self.rng.gen_range(0..open.len())].clone();
        let Some(so_id) = so["id"].as_i64() else {
            return Ok(());
        };
        let total: u32 = so["sales_order_rows"]
            .as_array()
            .map(|rows| rows.iter().map(|r| units_of(&r["quantity"])).sum())
            .unwrap_or(0);
        let already = self.played.orders[&id].delivered_units;
        let tracking = Tracking {
            tracking_number: Some(format!(
                "1Z{}{:04}",
                self.played.seed, self.played.deliveries
            )),
            tracking_url: None,
            tracking_carrier: Some("UPS".into()),
        };
        let first_row = so["sales_order_rows"]
            .get(0)
            .and_then(|r| Some((r["id"].as_i64()?, units_of(&r["quantity"]))));
        let partial = match first_row {
            Some((row, q)) if q >= 2 && already == 0 && self.rng.gen() => Some(row),
            _ => None,
        };
        let delivered = match partial {
            Some(row) => self
                .w()
                .katana
                .deliver(so_id, Some(&[(row, Quantity::from_units(1))]), tracking)
                .map(|_| 1),
            None => self
                .w()
                .katana
                .deliver(so_id, None, tracking)
                .map(|_| total.saturating_sub(already)),
        };
        if let Ok(units) = delivered {
            self.played.deliveries += 1;
            if let Some(o) = self.played.orders.get_mut(&id) {
                o.delivered_units += units;
            }
        }
        Ok(())
    }

    fn fault(&mut self) -> anyhow::Result<()> {
        let kind = self.rng.gen_range(0..6);
        let n = self.rng.gen_range(1..=3);
        let w = self.w();
        let mut f = w.tiktok.faults();
        match kind {
            0 => w.katana.fail_next(n.min(2)),
            1 => w.katana.drop_next_webhooks(n.min(2)),
            2 => f.throttle_next += n,
            3 => f.fail_next += 1,
            4 => f.drop_webhooks += n.min(2),
            _ => f.duplicate_webhooks = !f.duplicate_webhooks,
        }
        w.tiktok.set_faults(f);
        self.played.faults += 1;
        Ok(())
    }
}

/// Waits until the service caught up, or, if a subscriber waits on the clock (a
/// back-off, a create's settle time), until the log stopped growing.
async fn quiesce(world: &World) {
    if world.settle(SETTLE).await {
        return;
    }
    let store = world.store();
    let mut last = store.head();
    let mut still = Duration::ZERO;
    let step = Duration::from_millis(5);
    for _ in 0..1000 {
        tokio::time::sleep(step).await;
        let head = store.head();
        if head == last {
            still += step;
            if still >= QUIET {
                return;
            }
        } else {
            still = Duration::ZERO;
            last = head;
        }
    }
}

/// Whole units of a Katana quantity (sent as a number or a decimal string).
fn units_of(v: &Value) -> u32 {
    let q = match v {
        Value::String(s) => s.parse::<f64>().unwrap_or(0.0),
        other => other.as_f64().unwrap_or(0.0),
    };
    q.max(0.0).floor() as u32
}
