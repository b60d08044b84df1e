//! The what-if simulation: a pure discrete-event run in virtual time over the log,
//! read once, in order.
//!
//! Observations (order snapshots from `OrderPlaced`/`OrderEdited`, cancellations,
//! Katana stock per location, SKU mapping and channel-sync switches) are fed, at
//! their recorded times, to fresh copies of the REAL `Order` and `Sku` aggregates
//! (`decide` + `apply`) running the proposed [`Policy`]. The timers those
//! aggregates arm go into a virtual timer queue and fire between observations. The
//! recorded decisions (`SoRequested`, `BufferFlushed`, `InventoryPushed`) are the
//! "recorded" side of the comparison.
//!
//! How the simulation stands in for the rest of the service (the glue the actors
//! and connectors provide live):
//! - hold expiry is followed by a re-read of the order: the newest snapshot the
//!   log has shown by that moment is observed again;
//! - a requested sales order is created at once (one Katana lookup and one create),
//!   unless the recorded order was requested and never created by the end of the
//!   log, in which case Katana is assumed to refuse it again; a flushed ATP is pushed to TikTok at once (one
//!   call);
//! - units of orders not yet in Katana reach the SKU as `SetDemand`;
//! - Katana's `committed` is what the log observed, corrected by the units of sales
//!   orders that exist in one timeline and not (yet) in the other, so a sales order
//!   created earlier or later than recorded moves Katana's commitment with it. A
//!   recorded sales order counts as part of the observed `committed` from the first
//!   stock observation of its SKU after its creation (Katana reports the new
//!   commitment with a lag); a simulated one counts at once.
//!
//! Oversell windows compare the quantity TikTok showed (the last value pushed) with
//! the true ATP: Σ locations max(0, in stock − committed) as observed, minus the units
//! of recorded orders not yet in Katana (or in Katana but not yet in its reported
//! stock), with no safety stock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{BufferMode, FbtMode};
use crate::domain::allocation::Shops;
use crate::domain::observed::{
    FulfillmentType, OrderSnapshot, Quantity, StockLevel, TikTokOrderStatus,
};
use crate::domain::order::{
    CreatedRow, Order, OrderCommand, OrderEvent, SoState, Source, HOLD_TIMER,
};
use crate::domain::reactions::{order_reactions, sku_reactions, OrderReaction, SkuReaction};
use crate::domain::sku::{Sku, SkuCommand, SkuEvent, FLUSH_TIMER, MAX_TIKTOK_QUANTITY};
use crate::domain::{Aggregate, Ctx, DomainEvent, Policy, TimerChange, TimerKind};
use crate::replay::timeline::fmt_time;
use crate::store::{EventStore, RecordedEvent, StoreError};

use super::report::{Calls, Observed, OrderOutcome, PolicyView, Push, Report, SkuOutcome, Window};

/// The settings to try. `None` keeps what the log shows was used (or the default
/// when the log does not show it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proposal {
    pub order_hold: Option<Duration>,
    pub inventory_buffer: Option<Duration>,
    pub buffer_mode: Option<BufferMode>,
    pub safety_stock: Option<u32>,
    pub fbt_orders: Option<FbtMode>,
    /// The shops and their allocation rules: the log does not record them, so a
    /// log of several shops is simulated with the instance's `[[shops]]` (one of
    /// them changed, to try another allocation). `None`: the one primary shop.
    pub shops: Option<Shops>,
}

#[derive(Debug, thiserror::Error)]
pub enum WhatIfError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the log is empty: nothing to simulate")]
    Empty,
}

/// Runs the simulation over the whole log in `store`. `progress` gets the number
/// of events read.
pub fn what_if(
    store: &dyn EventStore,
    proposal: &Proposal,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, WhatIfError> {
    // The settings the log shows are needed before the first decision, so the log
    // is read twice: once to learn them, once to simulate.
    let mut observed = SettingsProbe {
        shops: proposal.shops.clone(),
        ..SettingsProbe::default()
    };
    let mut after = 0;
    loop {
        let batch = store.read_all(after, 8192)?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        for rec in &batch {
            observed.step(rec);
        }
    }
    let (observed, outcomes, lateness, latency, demand_latency) = observed.finish();
    let policy = effective_policy(proposal, &observed);
    let mut sim = Simulation::new(policy, observed, outcomes);
    sim.lateness = lateness;
    sim.latency = latency;
    sim.demand_latency = demand_latency;
    let mut after = 0;
    loop {
        let batch = store.read_all(after, 8192)?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        for rec in &batch {
            sim.step(rec);
        }
        progress(sim.events);
    }
    sim.finish().ok_or(WhatIfError::Empty)
}

/// The proposal, with what it leaves open taken from the log, then the defaults.
pub fn effective_policy(proposal: &Proposal, observed: &Observed) -> Policy {
    let d = Policy::default();
    Policy {
        order_hold: proposal
            .order_hold
            .or(observed.order_hold)
            .unwrap_or(d.order_hold),
        inventory_buffer: proposal
            .inventory_buffer
            .or(observed.inventory_buffer)
            .unwrap_or(d.inventory_buffer),
        buffer_mode: proposal
            .buffer_mode
            .or(observed.buffer_mode)
            .unwrap_or(d.buffer_mode),
        safety_stock: proposal
            .safety_stock
            .or(observed.safety_stock)
            .unwrap_or(d.safety_stock),
        fbt_orders: proposal
            .fbt_orders
            .or(observed.fbt_orders)
            .unwrap_or(d.fbt_orders),
        shops: proposal.shops.clone().unwrap_or(d.shops),
        // Shipments are not simulated: when one is arranged changes no decision here.
        ..d
    }
}

fn order_id_of(stream: &str) -> Option<&str> {
    stream
        .strip_prefix(Order::STREAM_PREFIX)
        .and_then(|s| s.strip_prefix('-'))
}

fn sku_of(stream: &str) -> Option<&str> {
    stream
        .strip_prefix(Sku::STREAM_PREFIX)
        .and_then(|s| s.strip_prefix('-'))
}

fn to_std(d: chrono::Duration) -> Option<Duration> {
    d.to_std().ok()
}

/// Whether a recorded order's sales order was requested and created, by the end
/// of the log: the simulation gives each order the same answer from Katana.
#[derive(Clone, Debug, Default)]
struct KatanaOutcome {
    requested: bool,
    created: Option<(i64, String)>,
}

/// Learns the recorded settings from the decisions they shaped. The latest
/// evidence wins: settings may have changed while the log was written.
#[derive(Default)]
struct SettingsProbe {
    seen: Observed,
    /// How late each recorded timer fired after its due time: the service's own
    /// timing (a timer service waking, a clock stepping), not a setting, so the
    /// simulation's timers fire as late.
    lateness: Lateness,
    /// How long the service took to react, per order: the re-read after the hold
    /// and the create in Katana.
    latency: Latency,
    /// How long the demand policy took to tell a SKU of an order's units.
    demand_latency: DemandLatency,
    /// Per SKU: the due time of the window open in the recorded log.
    open_window: HashMap<String, DateTime<Utc>>,
    /// Per order: when its hold expired and its SO was requested, as recorded.
    expired_at: HashMap<String, DateTime<Utc>>,
    requested_at: HashMap<String, DateTime<Utc>>,
    /// Per order: when its last event was recorded (what a demand change follows).
    last_order_event: HashMap<String, DateTime<Utc>>,
    /// What Katana did with each recorded order by the end of the log.
    outcomes: HashMap<String, KatanaOutcome>,
    skus: HashMap<String, Sku>,
    last_flushed: HashMap<String, i64>,
    /// The shops' rules, when the proposal gives them.
    shops: Option<Shops>,
}

impl SettingsProbe {
    fn step(&mut self, rec: &RecordedEvent) {
        if let Some(order_id) = order_id_of(&rec.stream) {
            let Ok(e) = OrderEvent::decode(&rec.event_type, rec.version, &rec.payload) else {
                return;
            };
            self.last_order_event
                .insert(order_id.to_string(), rec.meta.recorded_at);
            match &e {
                OrderEvent::SoRequested(_) => {
                    self.outcomes.entry(order_id.into()).or_default().requested = true;
                    let t = rec.meta.recorded_at;
                    if let Some(h) = self.expired_at.remove(order_id) {
                        self.latency
                            .entry((rec.stream.clone(), TimerKind::Borrowed(REREAD)))
                            .or_insert(t - h);
                    }
                    self.requested_at.entry(order_id.to_string()).or_insert(t);
                }
                OrderEvent::SoCreated(c) => {
                    self.outcomes.entry(order_id.into()).or_default().created =
                        Some((c.so_id, c.order_no.clone()));
                    if let Some(r) = self.requested_at.get(order_id) {
                        self.latency
                            .entry((rec.stream.clone(), TimerKind::Borrowed(CREATE)))
                            .or_insert(rec.meta.recorded_at - *r);
                    }
                }
                _ => {}
            }
            match e {
                OrderEvent::OrderPlaced(p) => {
                    self.seen.order_hold = to_std(p.hold_until - p.snapshot.create_time);
                    self.open_window.insert(rec.stream.clone(), p.hold_until);
                }
                OrderEvent::HoldExpired(h) => {
                    // From the decision's own instant: the simulation's hold expires
                    // at exactly that instant, and the log keeps milliseconds.
                    self.expired_at.insert(order_id.to_string(), h.at);
                    if let Some(due) = self.open_window.remove(&rec.stream) {
                        self.lateness.insert(
                            (
                                rec.stream.clone(),
                                TimerKind::Borrowed(HOLD_TIMER),
                                at_log_resolution(due),
                            ),
                            h.at,
                        );
                    }
                }
                OrderEvent::OrderSkipped(_) => self.seen.fbt_orders = Some(FbtMode::Skip),
                OrderEvent::SoRequested(r) if r.as_done => {
                    self.seen.fbt_orders = Some(FbtMode::RecordAsDone)
                }
                _ => {}
            }
        } else if let Some(sku) = sku_of(&rec.stream) {
            let Ok(e) = SkuEvent::decode(&rec.event_type, rec.version, &rec.payload) else {
                return;
            };
            if let SkuEvent::DemandChanged(d) = &e {
                if let Some(t) = self.last_order_event.get(&d.order_id) {
                    self.demand_latency
                        .entry((sku.to_string(), d.order_id.clone(), d.units))
                        .or_insert(rec.meta.recorded_at - *t);
                }
            }
            let state = self.skus.entry(sku.to_string()).or_default();
            match &e {
                SkuEvent::BufferOpened(o) => {
                    self.seen.inventory_buffer = to_std(o.due_at - rec.meta.recorded_at);
                    self.open_window.insert(rec.stream.clone(), o.due_at);
                }
                SkuEvent::BufferClosed(_) => {
                    if let Some(due) = self.open_window.remove(&rec.stream) {
                        self.lateness.insert(
                            (
                                rec.stream.clone(),
                                TimerKind::Borrowed(FLUSH_TIMER),
                                at_log_resolution(due),
                            ),
                            rec.meta.recorded_at,
                        );
                    }
                }
                SkuEvent::BufferFlushed(f) => {
                    if !f.immediate {
                        if let Some(due) = self.open_window.remove(&rec.stream) {
                            self.lateness.insert(
                                (
                                    rec.stream.clone(),
                                    TimerKind::Borrowed(FLUSH_TIMER),
                                    at_log_resolution(due),
                                ),
                                rec.meta.recorded_at,
                            );
                        }
                    }
                    if f.immediate {
                        self.seen.buffer_mode = Some(BufferMode::IncreasesOnly);
                    } else if self.last_flushed.get(sku).is_some_and(|&l| f.atp < l) {
                        // A decrease that waited for the window: every change is buffered.
                        self.seen.buffer_mode = Some(BufferMode::All);
                    }
                    // The safety stock shows where a push is the whole pool less
                    // it: not where an allocation rule shaped the push too.
                    let unreserved = match &self.shops {
                        Some(shops) if pushes_whole_pool(shops, &f.shop) => {
                            Some(state.pool(shops, &f.shop, 0))
                        }
                        Some(_) => None,
                        None if f.shop.is_empty() => Some(state.atp(0)),
                        None => None,
                    };
                    if let Some(unreserved) = unreserved.filter(|&u| f.atp > 0 && u >= f.atp) {
                        self.seen.safety_stock = u32::try_from(unreserved - f.atp).ok();
                    }
                    self.last_flushed.insert(sku.to_string(), f.atp);
                }
                _ => {}
            }
            state.apply(&e);
        }
    }

    fn finish(
        self,
    ) -> (
        Observed,
        HashMap<String, KatanaOutcome>,
        Lateness,
        Latency,
        DemandLatency,
    ) {
        (
            self.seen,
            self.outcomes,
            self.lateness,
            self.latency,
            self.demand_latency,
        )
    }
}

/// Whether the shop of `key` is offered its whole pool: the default rule, and no
/// other shop's reserve taken out of it.
fn pushes_whole_pool(shops: &Shops, key: &str) -> bool {
    let Some(shop) = shops.by_key(key) else {
        return false;
    };
    shop.allocation == crate::domain::allocation::Allocation::default()
        && shops
            .iter()
            .all(|o| o.shop_id == shop.shop_id || o.allocation.reserve == 0)
}

/// (stream, timer kind, due at the log's resolution) -> when the recorded timer
/// fired (late when the timer service woke late or a manual clock stepped past it).
type Lateness = HashMap<(String, TimerKind, DateTime<Utc>), DateTime<Utc>>;

/// The log keeps times to the millisecond: simulated times are compared at that
/// resolution.
fn at_log_resolution(t: DateTime<Utc>) -> DateTime<Utc> {
    chrono::DurationRound::duration_trunc(t, chrono::Duration::milliseconds(1)).unwrap_or(t)
}

/// (order stream, reaction) -> how long the recorded service took for it.
type Latency = HashMap<(String, TimerKind), chrono::Duration>;

/// The simulation's stand-ins for the service's reactions, scheduled like timers
/// so they take as long as the log shows they took.
const REREAD: &str = "what-if:reread";
const DEMAND: &str = "what-if:demand";

/// (sku, order, units) -> how long after the order's event the SKU heard of it.
type DemandLatency = HashMap<(String, String, u32), chrono::Duration>;
const CREATE: &str = "what-if:create";

/// Units per seller SKU that a Katana sales order of this order commits at the
/// main location: none for a Done (FBT) order, which ships from its own location.
fn committed_units(order: &Order, as_done: bool) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    if let (SoState::Created { rows, .. }, false, false) = (&order.so, order.cancelled, as_done) {
        for r in rows {
            *out.entry(r.seller_sku.clone()).or_insert(0) += r.quantity;
        }
    }
    out
}

/// Adds `after - before` per key into `totals`; returns the keys that moved.
fn shift(
    totals: &mut HashMap<String, i64>,
    before: &BTreeMap<String, u32>,
    after: &BTreeMap<String, u32>,
) -> Vec<String> {
    let mut moved = Vec::new();
    for k in before.keys().chain(after.keys()) {
        let b = i64::from(before.get(k).copied().unwrap_or(0));
        let a = i64::from(after.get(k).copied().unwrap_or(0));
        if a != b && !moved.contains(k) {
            *totals.entry(k.clone()).or_insert(0) += a - b;
            moved.push(k.clone());
        }
    }
    moved
}

/// Why an order has no push, in the operator's words.
fn not_pushed_because(order: &Order, ended_at: DateTime<Utc>) -> String {
    let Some(snap) = &order.snapshot else {
        return "never placed".into();
    };
    if order.skipped.is_some() {
        return "fulfilled by TikTok: skipped".into();
    }
    if order.cancelled {
        return "cancelled before the push".into();
    }
    if !order.hold_expired {
        return match order.hold_until {
            Some(t) if t > ended_at => format!("still held at the end ({})", fmt_time(t)),
            _ => "hold not expired".into(),
        };
    }
    if snap.status.is_pre_release() {
        return format!("TikTok still showed it {:?}", snap.status);
    }
    if snap.fulfillment_type == FulfillmentType::FulfillmentByTiktok && !snap.status.is_shipped() {
        return "fulfilled by TikTok: waiting for TikTok to ship it".into();
    }
    if snap.units.iter().all(|u| u.cancelled) {
        return "no units left to push".into();
    }
    "hold expired, but no re-read requested a sales order".into()
}

#[derive(Default)]
struct Tracker {
    open: Option<(DateTime<Utc>, i64)>,
    windows: Vec<Window>,
}

impl Tracker {
    fn observe(&mut self, now: DateTime<Utc>, excess: Option<i64>) {
        match (excess.filter(|&x| x > 0), &mut self.open) {
            (Some(x), Some((_, max))) => *max = (*max).max(x),
            (Some(x), None) => self.open = Some((now, x)),
            (None, Some(_)) => self.close(now, true),
            (None, None) => {}
        }
    }

    fn close(&mut self, now: DateTime<Utc>, closed: bool) {
        if let Some((from, max_excess)) = self.open.take() {
            self.windows.push(Window {
                from,
                until: closed.then_some(now),
                seconds: (now - from).num_seconds(),
                max_excess,
            });
        }
    }
}

#[derive(Default)]
struct SimOrder {
    /// Its `snapshot` is the newest the log has shown so far: what a re-read at
    /// that moment would return.
    state: Order,
    pushed_at: Option<DateTime<Utc>>,
    as_done: bool,
}

#[derive(Default)]
struct RecOrder {
    state: Order,
    placed_at: Option<DateTime<Utc>>,
    pushed_at: Option<DateTime<Utc>>,
    as_done: bool,
}

#[derive(Default)]
struct SkuWorld {
    /// The simulated aggregate, once the log shows the SKU.
    sim: Option<Sku>,
    /// Katana stock per location as observed: (in stock, committed).
    observed: BTreeMap<i64, (Quantity, Quantity)>,
    shown_recorded: Option<i64>,
    shown_proposed: Option<i64>,
    recorded_pushes: Vec<Push>,
    proposed_pushes: Vec<Push>,
    recorded_oversell: Tracker,
    proposed_oversell: Tracker,
}

struct Simulation {
    policy: Policy,
    observed_settings: Observed,
    now: Option<DateTime<Utc>>,
    first: Option<DateTime<Utc>>,
    last_logged: Option<DateTime<Utc>>,
    events: u64,
    sim_orders: BTreeMap<String, SimOrder>,
    rec_orders: BTreeMap<String, RecOrder>,
    outcomes: HashMap<String, KatanaOutcome>,
    skus: BTreeMap<String, SkuWorld>,
    /// Units not yet in Katana, per SKU and order, as last told to the simulated SKU.
    demand_sent: HashMap<(String, String), u32>,
    rec_pending: HashMap<String, i64>,
    rec_committed: HashMap<String, i64>,
    /// The part of `rec_committed` that Katana's observed stock already reflects.
    rec_reflected: HashMap<String, i64>,
    sim_committed: HashMap<String, i64>,
    /// The part of `sim_committed` Katana's stock would already show: like a
    /// recorded SO's, a simulated SO's commitment shows from the next stock read.
    sim_reflected: HashMap<String, i64>,
    timers: BinaryHeap<Reverse<TimerEntry>>,
    armed: HashMap<(String, TimerKind), DateTime<Utc>>,
    timer_seq: u64,
    recorded_calls: Calls,
    proposed_calls: Calls,
    warnings: Vec<String>,
    dirty: HashSet<String>,
    lateness: Lateness,
    latency: Latency,
    demand_latency: DemandLatency,
    /// Demand changes on their way to a SKU: timer sequence -> (order, units).
    demand_in_flight: HashMap<u64, (String, u32)>,
    /// Shops the log pushed to that the simulated shops do not include.
    unknown_shops: BTreeSet<String>,
}

/// (due, arming order, stream, kind): earliest first, ties in arming order.
type TimerEntry = (DateTime<Utc>, u64, String, TimerKind);

const MAX_WARNINGS: usize = 50;

impl Simulation {
    fn new(
        policy: Policy,
        observed_settings: Observed,
        outcomes: HashMap<String, KatanaOutcome>,
    ) -> Self {
        Simulation {
            policy,
            observed_settings,
            now: None,
            first: None,
            last_logged: None,
            events: 0,
            sim_orders: BTreeMap::new(),
            rec_orders: BTreeMap::new(),
            outcomes,
            skus: BTreeMap::new(),
            demand_sent: HashMap::new(),
            rec_pending: HashMap::new(),
            rec_committed: HashMap::new(),
            rec_reflected: HashMap::new(),
            sim_committed: HashMap::new(),
            sim_reflected: HashMap::new(),
            timers: BinaryHeap::new(),
            armed: HashMap::new(),
            timer_seq: 0,
            recorded_calls: Calls::default(),
            proposed_calls: Calls::default(),
            warnings: Vec::new(),
            dirty: HashSet::new(),
            lateness: Lateness::new(),
            latency: Latency::new(),
            demand_latency: DemandLatency::new(),
            demand_in_flight: HashMap::new(),
            unknown_shops: BTreeSet::new(),
        }
    }

    fn warn(&mut self, w: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(w);
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Moves virtual time to `t` (never backwards).
    fn advance(&mut self, t: DateTime<Utc>) {
        self.now = Some(self.now.map_or(t, |n| n.max(t)));
    }

    /// One recorded event: first the timers due strictly before it (a timer due at
    /// the same instant fires after it, as a re-read at hold expiry sees the edit
    /// recorded at that instant), then the event itself.
    fn step(&mut self, rec: &RecordedEvent) {
        let t = rec.meta.recorded_at;
        self.fire_timers(Some(t));
        self.advance(t);
        self.first.get_or_insert(t);
        self.last_logged = Some(self.last_logged.map_or(t, |l| l.max(t)));
        self.events += 1;
        if let Some(order_id) = order_id_of(&rec.stream) {
            match OrderEvent::decode(&rec.event_type, rec.version, &rec.payload) {
                Ok(e) => self.recorded_order_event(order_id, e, t),
                Err(e) => self.warn(format!("{} seq {}: {e}", rec.stream, rec.seq)),
            }
        } else if let Some(sku) = sku_of(&rec.stream) {
            match SkuEvent::decode(&rec.event_type, rec.version, &rec.payload) {
                Ok(e) => self.recorded_sku_event(sku, e, t),
                Err(e) => self.warn(format!("{} seq {}: {e}", rec.stream, rec.seq)),
            }
        }
        self.track_oversell();
    }

    fn fire_timers(&mut self, before: Option<DateTime<Utc>>) {
        while let Some(Reverse((due, seq, stream, kind))) = self.timers.peek().cloned() {
            if before.is_some_and(|t| due >= t) {
                break;
            }
            self.timers.pop();
            if kind == DEMAND {
                if let (Some((order_id, units)), Some(sku)) =
                    (self.demand_in_flight.remove(&seq), sku_of(&stream))
                {
                    self.advance(due);
                    let sku = sku.to_string();
                    let shop = self.shop_of(&order_id);
                    self.exec_sku(
                        &sku,
                        SkuCommand::SetDemand {
                            order_id,
                            units,
                            shop,
                        },
                    );
                    self.track_oversell();
                }
                continue;
            }
            if self.armed.get(&(stream.clone(), kind.clone())) != Some(&due) {
                continue;
            }
            self.armed.remove(&(stream.clone(), kind.clone()));
            self.advance(due);
            if let Some(order_id) = order_id_of(&stream) {
                match kind.as_ref() {
                    REREAD => self.reread(order_id),
                    CREATE => self.create(order_id),
                    kind => {
                        if let Some(cmd) = Order::timer_command(kind) {
                            self.exec_order(order_id, cmd);
                        }
                    }
                }
            } else if let Some(sku) = sku_of(&stream) {
                if let Some(cmd) = Sku::timer_command(&kind) {
                    self.exec_sku(sku, cmd);
                }
            }
            self.track_oversell();
        }
    }

    fn set_timers(&mut self, stream: String, changes: Vec<TimerChange>) {
        for change in changes {
            match change {
                TimerChange::Arm { kind, due_at } => {
                    // A timer the log shows firing late fires as late here (never
                    // before it is due).
                    let due_at = self
                        .lateness
                        .get(&(stream.clone(), kind.clone(), at_log_resolution(due_at)))
                        .map_or(due_at, |fired| due_at.max(*fired));
                    self.timer_seq += 1;
                    self.armed.insert((stream.clone(), kind.clone()), due_at);
                    self.timers
                        .push(Reverse((due_at, self.timer_seq, stream.clone(), kind)));
                }
                TimerChange::Disarm { kind } => {
                    self.armed.remove(&(stream.clone(), kind));
                }
            }
        }
    }

    /// A recorded order event at its recorded time `t` (which, with concurrent
    /// writers, can be a little behind the simulation's clock).
    fn recorded_order_event(&mut self, order_id: &str, e: OrderEvent, t: DateTime<Utc>) {
        let now = self.now();
        let rec = self.rec_orders.entry(order_id.to_string()).or_default();
        let pending_before = rec.state.pending_units();
        let committed_before = committed_units(&rec.state, rec.as_done);
        match &e {
            OrderEvent::OrderPlaced(_) => {
                rec.placed_at.get_or_insert(t);
            }
            OrderEvent::SoRequested(r) => {
                rec.pushed_at.get_or_insert(t);
                rec.as_done = r.as_done;
                self.recorded_calls.katana_lookups += 1;
                self.recorded_calls.katana_creates += 1;
            }
            // A request blocked on an unmatched SKU never reached Katana's create.
            OrderEvent::SoBlocked(_) => {
                let c = &mut self.recorded_calls;
                c.katana_lookups = c.katana_lookups.saturating_sub(1);
                c.katana_creates = c.katana_creates.saturating_sub(1);
            }
            _ => {}
        }
        rec.state.apply(&e);
        let pending_after = rec.state.pending_units();
        let committed_after = committed_units(&rec.state, rec.as_done);
        let moved = shift(&mut self.rec_pending, &pending_before, &pending_after);
        self.dirty.extend(moved);
        // Katana's stock shows the new commitment only with its next report, so the
        // simulated SKU's correction follows at the next stock observation.
        let moved = shift(&mut self.rec_committed, &committed_before, &committed_after);
        self.dirty.extend(moved);
        // The observations this event carries, fed to the simulated order.
        match e {
            OrderEvent::OrderPlaced(p) => self.observe_order(order_id, p.snapshot),
            OrderEvent::OrderEdited(p) => self.observe_order(order_id, p.snapshot),
            OrderEvent::OrderCancelled(_) => {
                let sim = self.sim_orders.entry(order_id.to_string()).or_default();
                // A cancellation normally arrives inside the snapshot just observed;
                // one recorded without it is turned into a cancelled re-read.
                let conveyed = sim.state.snapshot.as_ref().map_or(true, |s| {
                    s.status == TikTokOrderStatus::Cancelled || s.units.iter().all(|u| u.cancelled)
                });
                if !conveyed {
                    if let Some(mut s) = sim.state.snapshot.clone() {
                        s.status = TikTokOrderStatus::Cancelled;
                        s.update_time = s.update_time.max(now);
                        self.observe_order(order_id, s);
                    }
                }
            }
            _ => {}
        }
    }

    fn observe_order(&mut self, order_id: &str, snapshot: OrderSnapshot) {
        self.exec_order(order_id, OrderCommand::observe(snapshot, Source::Poll));
    }

    /// Runs a command on the simulated order and plays the service's reactions.
    fn exec_order(&mut self, order_id: &str, cmd: OrderCommand) {
        let now = self.now();
        let ctx = Ctx {
            now,
            policy: &self.policy,
        };
        let decided = self
            .sim_orders
            .entry(order_id.to_string())
            .or_default()
            .state
            .decide(&cmd, &ctx);
        let events = match decided {
            Ok(events) => events,
            Err(e) => {
                self.warn(format!("order {order_id}: simulated command refused: {e}"));
                return;
            }
        };
        if events.is_empty() {
            return;
        }
        let sim = self.sim_orders.entry(order_id.to_string()).or_default();
        let pending_before = sim.state.pending_units();
        let committed_before = committed_units(&sim.state, sim.as_done);
        let mut timer_changes = Vec::new();
        let mut reactions = Vec::new();
        for e in &events {
            sim.state.apply(e);
            timer_changes.extend(Order::timers(e));
            if let OrderEvent::SoRequested(r) = e {
                sim.pushed_at.get_or_insert(at_log_resolution(now));
                sim.as_done = r.as_done;
            }
            reactions.extend(order_reactions(e));
        }
        let pending_after = sim.state.pending_units();
        let committed_after = committed_units(&sim.state, sim.as_done);
        self.set_timers(Order::stream_id(order_id), timer_changes);
        // The service's own reactions, performed on the simulated world; the ones
        // that reach only TikTok's or Katana's shipping change no decision here.
        let has = |wanted: fn(&OrderReaction) -> bool| reactions.iter().any(wanted);
        let create = has(|r| *r == OrderReaction::CreateSalesOrder);
        let reread = has(|r| matches!(r, OrderReaction::Reread { .. }));
        if has(|r| *r == OrderReaction::SyncDemand) {
            self.sync_demand(order_id, &pending_before, &pending_after);
        }
        let moved = shift(&mut self.sim_committed, &committed_before, &committed_after);
        for sku in moved {
            self.feed_stock(&sku);
        }
        if create {
            self.proposed_calls.katana_lookups += 1;
            self.proposed_calls.katana_creates += 1;
            self.after(order_id, CREATE);
        }
        if reread {
            self.after(order_id, REREAD);
        }
    }

    /// Schedules a reaction of the service to this order after the time the log
    /// shows it took (at once when the log does not show it).
    fn after(&mut self, order_id: &str, reaction: &'static str) {
        let stream = Order::stream_id(order_id);
        let took = self
            .latency
            .get(&(stream.clone(), TimerKind::Borrowed(reaction)))
            .copied()
            .filter(|d| *d > chrono::Duration::zero())
            .unwrap_or_else(chrono::Duration::zero);
        if took.is_zero() {
            match reaction {
                REREAD => self.reread(order_id),
                _ => self.create(order_id),
            }
            return;
        }
        let due_at = self.now() + took;
        self.timer_seq += 1;
        self.armed
            .insert((stream.clone(), TimerKind::Borrowed(reaction)), due_at);
        self.timers.push(Reverse((
            due_at,
            self.timer_seq,
            stream,
            TimerKind::Borrowed(reaction),
        )));
    }

    /// The re-read at the end of the hold: the newest snapshot the log has shown.
    fn reread(&mut self, order_id: &str) {
        let latest = self
            .sim_orders
            .get(order_id)
            .and_then(|o| o.state.snapshot.clone());
        if let Some(s) = latest {
            self.exec_order(order_id, OrderCommand::observe(s, Source::Poll));
        }
    }

    /// Katana creates the requested SO, unless the recorded one was requested and
    /// never created by the end of the log: then it would refuse this one too.
    fn create(&mut self, order_id: &str) {
        let Some(SoState::Requested { rows, .. }) =
            self.sim_orders.get(order_id).map(|o| o.state.so.clone())
        else {
            return;
        };
        let outcome = self.outcomes.get(order_id).cloned().unwrap_or_default();
        if outcome.requested && outcome.created.is_none() {
            return;
        }
        let (so_id, order_no) = outcome
            .created
            .unwrap_or_else(|| (0, format!("what-if-{order_id}")));
        let rows = rows
            .iter()
            .enumerate()
            .map(|(i, row)| CreatedRow {
                row_id: i as i64 + 1,
                seller_sku: row.seller_sku.clone(),
                quantity: row.quantity,
            })
            .collect();
        self.exec_order(
            order_id,
            OrderCommand::RecordSoCreated {
                so_id,
                order_no,
                rows,
            },
        );
    }

    /// The event key of the shop an order was placed in (empty: the primary).
    fn shop_of(&self, order_id: &str) -> String {
        self.sim_orders
            .get(order_id)
            .and_then(|o| o.state.snapshot.as_ref())
            .map(|s| s.shop_id.clone())
            .unwrap_or_default()
    }

    /// Tells each simulated SKU how many units of this order are not in Katana.
    fn sync_demand(
        &mut self,
        order_id: &str,
        before: &BTreeMap<String, u32>,
        after: &BTreeMap<String, u32>,
    ) {
        let skus: Vec<String> = before.keys().chain(after.keys()).cloned().collect();
        for sku in skus {
            let units = after.get(&sku).copied().unwrap_or(0);
            let key = (sku.clone(), order_id.to_string());
            if self.demand_sent.get(&key).copied().unwrap_or(0) == units {
                continue;
            }
            if units == 0 {
                self.demand_sent.remove(&key);
            } else {
                self.demand_sent.insert(key, units);
            }
            let took = self
                .demand_latency
                .get(&(sku.clone(), order_id.to_string(), units))
                .copied()
                .filter(|d| *d > chrono::Duration::zero());
            match took {
                // As late as the demand policy told the SKU in the log.
                Some(took) => {
                    self.timer_seq += 1;
                    self.demand_in_flight
                        .insert(self.timer_seq, (order_id.to_string(), units));
                    let due = self.now() + took;
                    self.timers.push(Reverse((
                        due,
                        self.timer_seq,
                        Sku::stream_id(&sku),
                        TimerKind::Borrowed(DEMAND),
                    )));
                }
                None => self.exec_sku(
                    &sku,
                    SkuCommand::SetDemand {
                        order_id: order_id.to_string(),
                        units,
                        shop: self.shop_of(order_id),
                    },
                ),
            }
        }
    }

    fn recorded_sku_event(&mut self, sku: &str, e: SkuEvent, t: DateTime<Utc>) {
        self.ensure_sim_sku(sku);
        self.dirty.insert(sku.to_string());
        let world = self.skus.entry(sku.to_string()).or_default();
        match e {
            SkuEvent::StockChanged(s) => {
                world
                    .observed
                    .insert(s.location_id, (s.in_stock, s.committed));
                let committed = self.rec_committed.get(sku).copied().unwrap_or(0);
                self.rec_reflected.insert(sku.to_string(), committed);
                let committed = self.sim_committed.get(sku).copied().unwrap_or(0);
                self.sim_reflected.insert(sku.to_string(), committed);
                self.feed_stock(sku);
            }
            SkuEvent::SkuMapped(m) => self.exec_sku(
                sku,
                SkuCommand::MapVariant {
                    variant_id: m.variant_id,
                },
            ),
            SkuEvent::ChannelSyncToggled(t) => {
                self.exec_sku(sku, SkuCommand::ToggleSync { enabled: t.enabled })
            }
            SkuEvent::BufferFlushed(f) => {
                // Oversell windows are the primary shop's: what each shop was
                // shown is tracked, the truth is one pool per shop only with rules.
                if f.shop.is_empty() {
                    world.shown_recorded = Some(f.atp);
                }
                if self.policy.shops.by_key(&f.shop).is_none() {
                    self.unknown_shops.insert(f.shop.clone());
                }
                world.recorded_pushes.push(Push {
                    at: t,
                    quantity: f.atp,
                    immediate: f.immediate,
                    shop: f.shop,
                });
                self.recorded_calls.tiktok_inventory += 1;
            }
            SkuEvent::InventoryPushed(p) if p.shop.is_empty() => {
                world.shown_recorded = Some(p.quantity)
            }
            _ => {}
        }
    }

    /// The simulated SKU comes to life when the log first shows it, with the
    /// demand of orders placed before that.
    fn ensure_sim_sku(&mut self, sku: &str) {
        let world = self.skus.entry(sku.to_string()).or_default();
        if world.sim.is_some() {
            return;
        }
        world.sim = Some(Sku::default());
        let demands: Vec<(String, u32)> = self
            .demand_sent
            .iter()
            .filter(|((s, _), _)| s == sku)
            .map(|((_, o), u)| (o.clone(), *u))
            .collect();
        for (order_id, units) in demands {
            let shop = self.shop_of(&order_id);
            self.exec_sku(
                sku,
                SkuCommand::SetDemand {
                    order_id,
                    units,
                    shop,
                },
            );
        }
    }

    /// Feeds the observed stock, with the commitment correction at the SKU's first
    /// location, to the simulated SKU (which records only what changed).
    fn feed_stock(&mut self, sku: &str) {
        let correction = self.sim_reflected.get(sku).copied().unwrap_or(0)
            - self.rec_reflected.get(sku).copied().unwrap_or(0);
        let Some(world) = self.skus.get(sku) else {
            return;
        };
        let Some(sim) = &world.sim else { return };
        let variant_id = sim.variant_id.unwrap_or(0);
        let levels: Vec<StockLevel> = world
            .observed
            .iter()
            .enumerate()
            .map(|(i, (&location_id, &(in_stock, committed)))| StockLevel {
                variant_id,
                location_id,
                in_stock,
                committed: if i == 0 {
                    Quantity(committed.0 + Quantity::from_units(correction).0)
                } else {
                    committed
                },
            })
            .collect();
        if !levels.is_empty() {
            self.exec_sku(sku, SkuCommand::ObserveStock(levels));
        }
    }

    fn exec_sku(&mut self, sku: &str, cmd: SkuCommand) {
        let now = self.now();
        let ctx = Ctx {
            now,
            policy: &self.policy,
        };
        let Some(decided) = self
            .skus
            .get(sku)
            .and_then(|w| w.sim.as_ref())
            .map(|state| state.decide(&cmd, &ctx))
        else {
            return;
        };
        let events = match decided {
            Ok(events) => events,
            Err(e) => {
                self.warn(format!("sku {sku}: simulated command refused: {e}"));
                return;
            }
        };
        let Some(world) = self.skus.get_mut(sku) else {
            return;
        };
        let Some(state) = world.sim.as_mut() else {
            return;
        };
        let mut timer_changes = Vec::new();
        let mut pushes = Vec::new();
        for e in &events {
            state.apply(e);
            timer_changes.extend(Sku::timers(e));
            let immediate = matches!(e, SkuEvent::BufferFlushed(f) if f.immediate);
            for reaction in sku_reactions(e) {
                // Stock reads follow the log's own observations; mappings are as
                // recorded, so only the push is the simulation's to perform.
                if let SkuReaction::PushInventory { atp, shop } = reaction {
                    pushes.push((atp, immediate, shop));
                }
            }
        }
        for (atp, immediate, shop) in pushes {
            if shop.is_empty() {
                world.shown_proposed = Some(atp);
            }
            world.proposed_pushes.push(Push {
                at: at_log_resolution(now),
                quantity: atp,
                immediate,
                shop: shop.clone(),
            });
            self.proposed_calls.tiktok_inventory += 1;
            if let Some(state) = world.sim.as_mut() {
                state.apply(&SkuEvent::InventoryPushed(
                    crate::domain::sku::InventoryPushed {
                        quantity: atp,
                        shop,
                    },
                ));
            }
        }
        self.dirty.insert(sku.to_string());
        self.set_timers(Sku::stream_id(sku), timer_changes);
    }

    fn track_oversell(&mut self) {
        let now = self.now();
        for sku in std::mem::take(&mut self.dirty) {
            let unreflected = self.rec_committed.get(&sku).copied().unwrap_or(0)
                - self.rec_reflected.get(&sku).copied().unwrap_or(0);
            let pending = self.rec_pending.get(&sku).copied().unwrap_or(0) + unreflected;
            let Some(world) = self.skus.get_mut(&sku) else {
                continue;
            };
            let free: i64 = world
                .observed
                .values()
                .map(|(i, c)| Quantity(i.0 - c.0).floor_units().max(0))
                .sum();
            let truth = (free - pending).clamp(0, MAX_TIKTOK_QUANTITY);
            world
                .recorded_oversell
                .observe(now, world.shown_recorded.map(|s| s - truth));
            world
                .proposed_oversell
                .observe(now, world.shown_proposed.map(|s| s - truth));
        }
    }

    fn finish(mut self) -> Option<Report> {
        let from = self.first?;
        let until = self.last_logged?;
        for shop in std::mem::take(&mut self.unknown_shops) {
            self.warn(format!(
                "the log pushes stock to shop {shop}, which the simulated shops do not include: \
                 simulate with the instance's settings (tks-replay what-if --config tks.toml)"
            ));
        }
        // What is decided within the log is compared; what the proposal would still
        // decide after it (a window open when the log ends) is reported apart.
        self.fire_timers(Some(until + chrono::Duration::nanoseconds(1)));
        let in_log_calls = self.proposed_calls;
        let in_log_pushes: HashMap<String, usize> = self
            .skus
            .iter()
            .map(|(sku, w)| (sku.clone(), w.proposed_pushes.len()))
            .collect();
        self.fire_timers(None);
        let end = self.now();
        let after_log_calls = Calls {
            katana_lookups: self.proposed_calls.katana_lookups - in_log_calls.katana_lookups,
            katana_creates: self.proposed_calls.katana_creates - in_log_calls.katana_creates,
            tiktok_inventory: self.proposed_calls.tiktok_inventory - in_log_calls.tiktok_inventory,
        };
        self.proposed_calls = in_log_calls;
        let mut orders = Vec::new();
        let ids: Vec<String> = self
            .rec_orders
            .keys()
            .chain(self.sim_orders.keys())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for id in ids {
            let rec = self.rec_orders.get(&id);
            let sim = self.sim_orders.get(&id);
            let recorded_push = rec.and_then(|r| r.pushed_at);
            let proposed_any = sim.and_then(|s| s.pushed_at);
            let proposed_push = proposed_any.filter(|t| *t <= until);
            orders.push(OrderOutcome {
                order_id: id.clone(),
                placed_at: rec.and_then(|r| r.placed_at),
                recorded_push,
                proposed_push,
                recorded_note: match (recorded_push, rec) {
                    (None, Some(r)) => Some(not_pushed_because(&r.state, until)),
                    _ => None,
                },
                proposed_note: match (proposed_push, proposed_any, sim) {
                    (None, Some(t), _) => Some(format!(
                        "not by the end of the log; {} after it",
                        fmt_time(t)
                    )),
                    (None, None, Some(s)) => Some(not_pushed_because(&s.state, end)),
                    _ => None,
                },
            });
        }
        let skus = std::mem::take(&mut self.skus)
            .into_iter()
            .map(|(sku, mut w)| {
                w.recorded_oversell.close(end, false);
                w.proposed_oversell.close(end, false);
                let keep = in_log_pushes.get(&sku).copied().unwrap_or(0);
                let proposed_after_log = w.proposed_pushes.split_off(keep);
                SkuOutcome {
                    sku,
                    recorded_pushes: w.recorded_pushes,
                    proposed_pushes: w.proposed_pushes,
                    proposed_after_log,
                    recorded_oversell: w.recorded_oversell.windows,
                    proposed_oversell: w.proposed_oversell.windows,
                }
            })
            .collect();
        Some(Report {
            events: self.events,
            from,
            until,
            simulated_until: end,
            recorded_settings: self.observed_settings,
            proposed: PolicyView::from(&self.policy),
            orders,
            skus,
            recorded_calls: self.recorded_calls,
            proposed_calls: self.proposed_calls,
            proposed_calls_after_log: after_log_calls,
            warnings: self.warnings,
        })
    }
}
