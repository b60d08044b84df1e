//! The SKU aggregate: Katana stock observed per location, TikTok demand not yet in
//! Katana, and the buffer that decides when which available-to-promise (ATP) value
//! goes to TikTok.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::allocation::{self, Shops, StockView};
use super::codec::{domain_events, Upcaster};
use super::exceptions::{keys, ExceptionRaised, ExceptionResolved};
use super::modes::BufferMode;
use super::observed::{Quantity, StockLevel};
use super::{add, Aggregate, Ctx, IndexChange, TimerChange, TimerKind};

pub const FLUSH_TIMER: &str = "flush";

/// TikTok refuses inventory quantities outside 0..=99,999.
pub const MAX_TIKTOK_QUANTITY: i64 = 99_999;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SkuMapped {
    pub variant_id: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StockChanged {
    pub location_id: i64,
    pub in_stock: Quantity,
    pub committed: Quantity,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DemandChanged {
    pub order_id: String,
    /// Units of this SKU in that order not yet in Katana (0: none any more).
    pub units: u32,
    /// The shop this concerns, by its event key (none: the primary shop).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shop: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BufferOpened {
    pub due_at: DateTime<Utc>,
    /// The shop this concerns, by its event key (none: the primary shop).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shop: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BufferFlushed {
    /// The ATP to push, computed when the window closed (or at once for a
    /// decrease in `increases_only` mode).
    pub atp: i64,
    pub immediate: bool,
    /// The shop this concerns, by its event key (none: the primary shop).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shop: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BufferClosed {
    /// The ATP at the window's end, equal to what TikTok already has: not pushed.
    pub atp: i64,
    /// The shop this concerns, by its event key (none: the primary shop).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shop: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InventoryPushed {
    pub quantity: i64,
    /// The shop this concerns, by its event key (none: the primary shop).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shop: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChannelSyncToggled {
    pub enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SkuSignalled {
    pub delivery_id: String,
    pub what: String,
}

const SKU_UPCASTERS: &[Upcaster] = &[];

domain_events! {
    /// Everything that can happen to a SKU.
    pub enum SkuEvent upcasters(SKU_UPCASTERS) {
        SkuMapped = 1,
        StockChanged = 1,
        DemandChanged = 1,
        BufferOpened = 1,
        BufferFlushed = 1,
        BufferClosed = 1,
        InventoryPushed = 1,
        ChannelSyncToggled = 1,
        SkuSignalled = 1,
        ExceptionRaised = 1,
        ExceptionResolved = 1,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkuCommand {
    MapVariant {
        variant_id: i64,
    },
    /// Katana's inventory rows of this SKU's variant at mapped locations.
    ObserveStock(Vec<StockLevel>),
    SetDemand {
        order_id: String,
        units: u32,
        /// The order's shop, by its event key (empty: the primary shop).
        shop: String,
    },
    /// The primary shop's buffer timer fired.
    FlushBuffer,
    /// Another shop's buffer timer fired.
    FlushShopBuffer {
        shop: String,
    },
    RecordInventoryPushed {
        quantity: i64,
        shop: String,
    },
    ToggleSync {
        enabled: bool,
    },
    /// Katana said this variant's stock changed: recorded, then re-read.
    Signal {
        delivery_id: String,
        what: String,
    },
    RaiseException {
        key: String,
        message: String,
    },
    ResolveException {
        key: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SkuError {
    #[error("stock level for variant {got} does not belong to this SKU (variant {expected})")]
    WrongVariant { expected: i64, got: i64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LocationStock {
    pub in_stock: Quantity,
    pub committed: Quantity,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sku {
    pub variant_id: Option<i64>,
    pub locations: BTreeMap<i64, LocationStock>,
    pub demand: BTreeMap<String, u32>,
    pub sync_enabled: bool,
    pub buffer_due: Option<DateTime<Utc>>,
    /// The last ATP decided for TikTok (flushed), pushed or not yet.
    pub last_flushed: Option<i64>,
    /// The last quantity TikTok confirmed.
    pub last_pushed: Option<i64>,
    /// Open exceptions: key -> message.
    #[serde(default)]
    pub exceptions: BTreeMap<String, String>,
    /// An order took units since the last flush: TikTok lowers its available
    /// quantity by itself when a buyer orders, so it no longer shows the last
    /// flushed value and the next window pushes even an unchanged ATP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ordered_since_flush: bool,
    /// The shop of each order in `demand` that is not the primary shop's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub demand_shops: BTreeMap<String, String>,
    /// The buffers of the shops other than the primary one, whose buffer is the
    /// fields above (so a single-shop state keeps its shape and its hash).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shop_buffers: BTreeMap<String, ShopBuffer>,
}

/// One shop's buffer window and what was decided and pushed for that shop.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShopBuffer {
    pub buffer_due: Option<DateTime<Utc>>,
    pub last_flushed: Option<i64>,
    pub last_pushed: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ordered_since_flush: bool,
}

impl Default for Sku {
    fn default() -> Self {
        Sku {
            variant_id: None,
            locations: BTreeMap::new(),
            demand: BTreeMap::new(),
            sync_enabled: true,
            buffer_due: None,
            last_flushed: None,
            last_pushed: None,
            exceptions: BTreeMap::new(),
            ordered_since_flush: false,
            demand_shops: BTreeMap::new(),
            shop_buffers: BTreeMap::new(),
        }
    }
}

impl Sku {
    /// ATP = Σ locations max(0, in_stock − committed) − pending demand − safety
    /// stock, clamped to what TikTok accepts: the offer of a single shop.
    pub fn atp(&self, safety_stock: u32) -> i64 {
        self.offer(&Shops::default(), "", safety_stock)
    }

    /// What the shop of event key `shop` is offered: its pool under its
    /// allocation rule (see [`allocation`](super::allocation)).
    pub fn offer(&self, shops: &Shops, shop: &str, safety_stock: u32) -> i64 {
        self.with_view(safety_stock, |view| allocation::offer(shops, shop, view))
    }

    /// The pool the shop of event key `shop` is offered from.
    pub fn pool(&self, shops: &Shops, shop: &str, safety_stock: u32) -> i64 {
        self.with_view(safety_stock, |view| allocation::pool(shops, shop, view))
    }

    fn with_view<T>(&self, safety_stock: u32, f: impl FnOnce(&StockView<'_>) -> T) -> T {
        let free = self.free_by_location();
        let held = self.held_by_shop();
        f(&StockView {
            free_by_location: &free,
            held_by_shop: &held,
            safety_stock,
        })
    }

    fn free_by_location(&self) -> BTreeMap<i64, i64> {
        self.locations
            .iter()
            .map(|(&l, s)| {
                (
                    l,
                    Quantity(s.in_stock.0 - s.committed.0).floor_units().max(0),
                )
            })
            .collect()
    }

    fn held_by_shop(&self) -> BTreeMap<String, i64> {
        let mut held = BTreeMap::new();
        for (order, &units) in &self.demand {
            let shop = self.demand_shops.get(order).cloned().unwrap_or_default();
            *held.entry(shop).or_insert(0) += i64::from(units);
        }
        held
    }

    /// The buffer of the shop of event key `shop`.
    pub fn buffer(&self, shop: &str) -> ShopBuffer {
        if shop.is_empty() {
            ShopBuffer {
                buffer_due: self.buffer_due,
                last_flushed: self.last_flushed,
                last_pushed: self.last_pushed,
                ordered_since_flush: self.ordered_since_flush,
            }
        } else {
            self.shop_buffers.get(shop).cloned().unwrap_or_default()
        }
    }

    fn change_buffer(&mut self, shop: &str, change: impl FnOnce(&mut ShopBuffer)) {
        if shop.is_empty() {
            let mut b = self.buffer("");
            change(&mut b);
            self.buffer_due = b.buffer_due;
            self.last_flushed = b.last_flushed;
            self.last_pushed = b.last_pushed;
            self.ordered_since_flush = b.ordered_since_flush;
        } else {
            change(self.shop_buffers.entry(shop.to_string()).or_default());
        }
    }

    /// Whether Katana's stock of this SKU was ever read. Until it is, the SKU has
    /// no ATP at all (not an ATP of 0): pushing 0 would stop the listing's sales.
    pub fn stock_known(&self) -> bool {
        !self.locations.is_empty()
    }

    /// After something moved the ATP's inputs, for each shop: open a window, or in
    /// `increases_only` mode push a decrease at once. Nothing while the stock is
    /// unknown: the first stock read is itself a change and opens the window.
    fn buffer_decisions(&self, ctx: &Ctx<'_>) -> Vec<SkuEvent> {
        if !self.sync_enabled || !self.stock_known() {
            return Vec::new();
        }
        let shops = &ctx.policy.shops;
        let mut decided = Vec::new();
        for shop in shops.keys() {
            let atp = self.offer(shops, shop, ctx.policy.safety_stock);
            let buffer = self.buffer(shop);
            if ctx.policy.buffer_mode == BufferMode::IncreasesOnly
                && buffer.last_flushed.is_some_and(|last| atp < last)
            {
                decided.push(SkuEvent::BufferFlushed(BufferFlushed {
                    atp,
                    immediate: true,
                    shop: shop.to_string(),
                }));
            } else if buffer.buffer_due.is_none() {
                decided.push(SkuEvent::BufferOpened(BufferOpened {
                    due_at: add(ctx.now, ctx.policy.inventory_buffer),
                    shop: shop.to_string(),
                }));
            }
        }
        decided
    }

    /// The window of `shop` ended: push its offer if TikTok may not show it.
    fn flush(&self, shop: &str, ctx: &Ctx<'_>) -> Option<SkuEvent> {
        let buffer = self.buffer(shop);
        let due = buffer.buffer_due?;
        if ctx.now < due {
            return None;
        }
        let atp = self.offer(&ctx.policy.shops, shop, ctx.policy.safety_stock);
        let stale = buffer.last_flushed != Some(atp) || buffer.ordered_since_flush;
        Some(if self.sync_enabled && self.stock_known() && stale {
            SkuEvent::BufferFlushed(BufferFlushed {
                atp,
                immediate: false,
                shop: shop.to_string(),
            })
        } else {
            SkuEvent::BufferClosed(BufferClosed {
                atp,
                shop: shop.to_string(),
            })
        })
    }
}

/// The timer of a shop's buffer window: the primary shop's keeps the name it
/// always had.
pub fn flush_timer(shop: &str) -> TimerKind {
    if shop.is_empty() {
        TimerKind::Borrowed(FLUSH_TIMER)
    } else {
        TimerKind::Owned(format!("{FLUSH_TIMER}:{shop}"))
    }
}

/// Applies `e` to the decision's scratch state and keeps it, so later rules in the
/// same decision see its effect.
fn record(next: &mut Sku, events: &mut Vec<SkuEvent>, e: SkuEvent) {
    next.apply(&e);
    events.push(e);
}

impl Aggregate for Sku {
    type Command = SkuCommand;
    type Event = SkuEvent;
    type Error = SkuError;

    const STREAM_PREFIX: &'static str = "sku";
    const STATE_VERSION: u32 = 3;

    fn decide(&self, command: &SkuCommand, ctx: &Ctx<'_>) -> Result<Vec<SkuEvent>, SkuError> {
        let mut next = self.clone();
        let mut events = Vec::new();
        match command {
            SkuCommand::MapVariant { variant_id } => {
                if self.variant_id != Some(*variant_id) {
                    record(
                        &mut next,
                        &mut events,
                        SkuEvent::SkuMapped(SkuMapped {
                            variant_id: *variant_id,
                        }),
                    );
                }
                return Ok(events);
            }
            SkuCommand::ObserveStock(levels) => {
                for l in levels {
                    if let Some(expected) = self.variant_id {
                        if l.variant_id != expected {
                            return Err(SkuError::WrongVariant {
                                expected,
                                got: l.variant_id,
                            });
                        }
                    }
                    let new = LocationStock {
                        in_stock: l.in_stock,
                        committed: l.committed,
                    };
                    if next.locations.get(&l.location_id) != Some(&new) {
                        record(
                            &mut next,
                            &mut events,
                            SkuEvent::StockChanged(StockChanged {
                                location_id: l.location_id,
                                in_stock: l.in_stock,
                                committed: l.committed,
                            }),
                        );
                    }
                }
            }
            SkuCommand::SetDemand {
                order_id,
                units,
                shop,
            } => {
                let current = self.demand.get(order_id).copied().unwrap_or(0);
                if current != *units {
                    record(
                        &mut next,
                        &mut events,
                        SkuEvent::DemandChanged(DemandChanged {
                            order_id: order_id.clone(),
                            units: *units,
                            shop: shop.clone(),
                        }),
                    );
                }
            }
            SkuCommand::FlushBuffer => {
                events.extend(self.flush("", ctx));
                return Ok(events);
            }
            SkuCommand::FlushShopBuffer { shop } => {
                events.extend(self.flush(shop, ctx));
                return Ok(events);
            }
            SkuCommand::RecordInventoryPushed { quantity, shop } => {
                record(
                    &mut next,
                    &mut events,
                    SkuEvent::InventoryPushed(InventoryPushed {
                        quantity: *quantity,
                        shop: shop.clone(),
                    }),
                );
                let key = keys::inventory_rejected(shop);
                if next.exceptions.contains_key(&key) {
                    record(
                        &mut next,
                        &mut events,
                        SkuEvent::ExceptionResolved(ExceptionResolved { key }),
                    );
                }
                return Ok(events);
            }
            SkuCommand::Signal { delivery_id, what } => {
                record(
                    &mut next,
                    &mut events,
                    SkuEvent::SkuSignalled(SkuSignalled {
                        delivery_id: delivery_id.clone(),
                        what: what.clone(),
                    }),
                );
                return Ok(events);
            }
            SkuCommand::RaiseException { key, message } => {
                if self.exceptions.get(key) != Some(message) {
                    record(
                        &mut next,
                        &mut events,
                        SkuEvent::ExceptionRaised(ExceptionRaised {
                            key: key.clone(),
                            message: message.clone(),
                        }),
                    );
                }
                return Ok(events);
            }
            SkuCommand::ResolveException { key } => {
                if self.exceptions.contains_key(key) {
                    record(
                        &mut next,
                        &mut events,
                        SkuEvent::ExceptionResolved(ExceptionResolved { key: key.clone() }),
                    );
                }
                return Ok(events);
            }
            SkuCommand::ToggleSync { enabled } => {
                if self.sync_enabled == *enabled {
                    return Ok(events);
                }
                record(
                    &mut next,
                    &mut events,
                    SkuEvent::ChannelSyncToggled(ChannelSyncToggled { enabled: *enabled }),
                );
            }
        }
        if !events.is_empty() {
            for e in next.clone().buffer_decisions(ctx) {
                record(&mut next, &mut events, e);
            }
        }
        Ok(events)
    }

    fn apply(&mut self, event: &SkuEvent) {
        match event {
            SkuEvent::SkuMapped(e) => self.variant_id = Some(e.variant_id),
            SkuEvent::StockChanged(e) => {
                self.locations.insert(
                    e.location_id,
                    LocationStock {
                        in_stock: e.in_stock,
                        committed: e.committed,
                    },
                );
            }
            SkuEvent::DemandChanged(e) => {
                // TikTok lowers the available quantity of the shop the buyer
                // ordered in, not of the others.
                if e.units > self.demand.get(&e.order_id).copied().unwrap_or(0) {
                    self.change_buffer(&e.shop, |b| b.ordered_since_flush = true);
                }
                if e.units == 0 {
                    self.demand.remove(&e.order_id);
                    self.demand_shops.remove(&e.order_id);
                } else {
                    self.demand.insert(e.order_id.clone(), e.units);
                    if !e.shop.is_empty() {
                        self.demand_shops.insert(e.order_id.clone(), e.shop.clone());
                    }
                }
            }
            SkuEvent::BufferOpened(e) => {
                self.change_buffer(&e.shop, |b| b.buffer_due = Some(e.due_at))
            }
            SkuEvent::BufferFlushed(e) => self.change_buffer(&e.shop, |b| {
                b.last_flushed = Some(e.atp);
                b.ordered_since_flush = false;
                if !e.immediate {
                    b.buffer_due = None;
                }
            }),
            SkuEvent::BufferClosed(e) => self.change_buffer(&e.shop, |b| b.buffer_due = None),
            SkuEvent::InventoryPushed(e) => {
                self.change_buffer(&e.shop, |b| b.last_pushed = Some(e.quantity))
            }
            SkuEvent::ChannelSyncToggled(e) => {
                self.sync_enabled = e.enabled;
                if !e.enabled {
                    self.buffer_due = None;
                    for b in self.shop_buffers.values_mut() {
                        b.buffer_due = None;
                    }
                }
            }
            SkuEvent::SkuSignalled(_) => {}
            SkuEvent::ExceptionRaised(e) => {
                self.exceptions.insert(e.key.clone(), e.message.clone());
            }
            SkuEvent::ExceptionResolved(e) => {
                self.exceptions.remove(&e.key);
            }
        }
    }

    fn index(event: &SkuEvent) -> Vec<IndexChange> {
        match event {
            SkuEvent::SkuMapped(e) => vec![IndexChange::Put {
                kind: crate::names::lookup::VARIANT,
                key: e.variant_id.to_string(),
            }],
            SkuEvent::ExceptionRaised(e) => vec![IndexChange::PutException {
                key: e.key.clone(),
                message: e.message.clone(),
            }],
            SkuEvent::ExceptionResolved(e) => {
                vec![IndexChange::DeleteException { key: e.key.clone() }]
            }
            _ => vec![],
        }
    }

    fn timers(event: &SkuEvent) -> Vec<TimerChange> {
        match event {
            SkuEvent::BufferOpened(e) => vec![TimerChange::Arm {
                kind: flush_timer(&e.shop),
                due_at: e.due_at,
            }],
            SkuEvent::BufferFlushed(BufferFlushed {
                immediate: false,
                shop,
                ..
            })
            | SkuEvent::BufferClosed(BufferClosed { shop, .. }) => vec![TimerChange::Disarm {
                kind: flush_timer(shop),
            }],
            // Another shop's timer finds its window closed when it fires.
            SkuEvent::ChannelSyncToggled(ChannelSyncToggled { enabled: false }) => {
                vec![TimerChange::Disarm {
                    kind: flush_timer(""),
                }]
            }
            _ => vec![],
        }
    }

    fn timer_command(kind: &str) -> Option<SkuCommand> {
        if kind == FLUSH_TIMER {
            return Some(SkuCommand::FlushBuffer);
        }
        kind.strip_prefix(FLUSH_TIMER)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|shop| SkuCommand::FlushShopBuffer {
                shop: shop.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::*;
    use crate::domain::{fold, DomainEvent, Policy};
    use proptest::prelude::*;

    fn level(location_id: i64, in_stock: i64, committed: i64) -> StockLevel {
        StockLevel {
            variant_id: 9,
            location_id,
            in_stock: Quantity::from_units(in_stock),
            committed: Quantity::from_units(committed),
        }
    }

    fn observe(levels: &[(i64, i64, i64)]) -> SkuCommand {
        SkuCommand::ObserveStock(levels.iter().map(|&(l, s, c)| level(l, s, c)).collect())
    }

    fn history(cmds: Vec<(SkuCommand, i64)>, policy: &Policy) -> Vec<SkuEvent> {
        run::<Sku>(
            cmds.into_iter().map(|(c, m)| (c, mins(m))).collect(),
            policy,
        )
        .1
    }

    fn flushed(events: &[SkuEvent]) -> Vec<i64> {
        events
            .iter()
            .filter_map(|e| match e {
                SkuEvent::BufferFlushed(f) => Some(f.atp),
                _ => None,
            })
            .collect()
    }

    fn two_shops(b_locations: &[i64], b_share: u32) -> Policy {
        use crate::domain::allocation::{Allocation, ShopStock};
        let shop = |id: &str, locations: &[i64], share| ShopStock {
            shop_id: id.into(),
            locations: locations.to_vec(),
            allocation: Allocation {
                share,
                ..Allocation::default()
            },
        };
        Policy {
            shops: Shops::new(vec![shop("A", &[1], 100), shop("B", b_locations, b_share)]),
            ..Policy::default()
        }
    }

    fn flushed_per_shop(events: &[SkuEvent]) -> Vec<(String, i64)> {
        events
            .iter()
            .filter_map(|e| match e {
                SkuEvent::BufferFlushed(f) => Some((f.shop.clone(), f.atp)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_shop_has_its_own_window_timer_and_offer() {
        let policy = two_shops(&[1], 50);
        let (state, h) = run::<Sku>(
            vec![
                (observe(&[(1, 10, 0)]), mins(0)),
                (SkuCommand::FlushBuffer, mins(60)),
                (SkuCommand::FlushShopBuffer { shop: "B".into() }, mins(60)),
            ],
            &policy,
        );
        let opened: Vec<_> = h
            .iter()
            .filter(|e| matches!(e, SkuEvent::BufferOpened(_)))
            .flat_map(Sku::timers)
            .collect();
        assert_eq!(
            opened,
            vec![
                TimerChange::Arm {
                    kind: flush_timer(""),
                    due_at: mins(60)
                },
                TimerChange::Arm {
                    kind: "flush:B".into(),
                    due_at: mins(60)
                },
            ]
        );
        assert_eq!(
            Sku::timer_command("flush:B"),
            Some(SkuCommand::FlushShopBuffer { shop: "B".into() })
        );
        // A is the primary shop: its events carry no shop key.
        assert_eq!(
            flushed_per_shop(&h),
            vec![(String::new(), 10), ("B".into(), 5)]
        );
        assert_eq!(state.buffer("B").last_flushed, Some(5));
        assert_eq!(state.last_flushed, Some(10));
    }

    #[test]
    fn an_order_held_in_one_shop_lowers_the_other_only_where_they_share_a_location() {
        for (b_locations, b_offer) in [(&[1][..], 7), (&[2][..], 10)] {
            let policy = two_shops(b_locations, 100);
            let (_, h) = run::<Sku>(
                vec![
                    (observe(&[(1, 10, 0), (2, 10, 0)]), mins(0)),
                    (
                        SkuCommand::SetDemand {
                            order_id: "o1".into(),
                            units: 3,
                            shop: String::new(),
                        },
                        mins(1),
                    ),
                    (SkuCommand::FlushBuffer, mins(60)),
                    (SkuCommand::FlushShopBuffer { shop: "B".into() }, mins(60)),
                ],
                &policy,
            );
            assert_eq!(
                flushed_per_shop(&h),
                vec![(String::new(), 7), ("B".into(), b_offer)],
                "B sells from {b_locations:?}"
            );
        }
    }

    #[test]
    fn atp_sums_free_stock_per_location_minus_demand_and_safety_stock() {
        let mut s = Sku::default();
        s.locations.insert(
            1,
            LocationStock {
                in_stock: Quantity::from_units(10),
                committed: Quantity::from_units(3),
            },
        );
        // A location with more committed than in stock contributes 0, not a negative.
        s.locations.insert(
            2,
            LocationStock {
                in_stock: Quantity::from_units(1),
                committed: Quantity::from_units(5),
            },
        );
        s.demand.insert("o1".into(), 2);
        assert_eq!(s.atp(0), 5);
        assert_eq!(s.atp(4), 1);
        assert_eq!(s.atp(50), 0);
        s.locations.insert(
            3,
            LocationStock {
                in_stock: Quantity::from_units(500_000),
                committed: Quantity(0),
            },
        );
        assert_eq!(s.atp(0), MAX_TIKTOK_QUANTITY);
    }

    #[test]
    fn fractional_stock_never_counts_as_a_sellable_unit() {
        let mut s = Sku::default();
        s.locations.insert(
            1,
            LocationStock {
                in_stock: "2.5".parse().unwrap(),
                committed: Quantity(0),
            },
        );
        assert_eq!(s.atp(0), 2);
    }

    #[test]
    fn the_first_change_opens_a_buffer_window() {
        let e = given_when::<Sku>(&[], observe(&[(1, 10, 0)]), t0(), &Policy::default()).unwrap();
        assert!(
            matches!(&e[..], [SkuEvent::StockChanged(_), SkuEvent::BufferOpened(b)] if b.due_at == mins(60))
        );
        assert_eq!(
            Sku::timers(&e[1]),
            vec![TimerChange::Arm {
                kind: flush_timer(""),
                due_at: mins(60)
            }]
        );
    }

    #[test]
    fn changes_inside_the_window_are_coalesced_into_one_flush_of_the_latest_value() {
        let h = history(
            vec![
                (observe(&[(1, 10, 0)]), 0),
                (observe(&[(1, 8, 0)]), 5),
                (observe(&[(1, 7, 1)]), 10),
                (SkuCommand::FlushBuffer, 59),
                (SkuCommand::FlushBuffer, 60),
                (SkuCommand::FlushBuffer, 61),
            ],
            &Policy::default(),
        );
        assert_eq!(
            h.iter()
                .filter(|e| matches!(e, SkuEvent::BufferOpened(_)))
                .count(),
            1
        );
        assert_eq!(flushed(&h), vec![6]);
    }

    #[test]
    fn an_unchanged_value_is_not_flushed() {
        let h = history(
            vec![
                (observe(&[(1, 10, 0)]), 0),
                (SkuCommand::FlushBuffer, 60),
                (observe(&[(1, 11, 1)]), 70),
                (SkuCommand::FlushBuffer, 130),
            ],
            &Policy::default(),
        );
        assert_eq!(flushed(&h), vec![10]);
        assert!(matches!(h.last(), Some(SkuEvent::BufferClosed(c)) if c.atp == 10));
    }

    #[test]
    fn increases_only_pushes_decreases_at_once_and_buffers_increases() {
        let policy = Policy {
            buffer_mode: BufferMode::IncreasesOnly,
            ..Policy::default()
        };
        let h = history(
            vec![
                (observe(&[(1, 10, 0)]), 0),
                (SkuCommand::FlushBuffer, 60),
                (observe(&[(1, 4, 0)]), 70),
                (observe(&[(1, 9, 0)]), 75),
                (SkuCommand::FlushBuffer, 134),
                (SkuCommand::FlushBuffer, 135),
            ],
            &policy,
        );
        assert_eq!(flushed(&h), vec![10, 4, 9]);
        let immediate: Vec<bool> = h
            .iter()
            .filter_map(|e| match e {
                SkuEvent::BufferFlushed(f) => Some(f.immediate),
                _ => None,
            })
            .collect();
        assert_eq!(immediate, vec![false, true, false]);
    }

    #[test]
    fn an_order_after_a_flush_makes_the_next_window_push_even_an_unchanged_atp() {
        let order = |id: &str, units| SkuCommand::SetDemand {
            shop: String::new(),
            order_id: id.into(),
            units,
        };
        let h = history(
            vec![
                (observe(&[(1, 10, 0)]), 0),
                (SkuCommand::FlushBuffer, 60),
                // TikTok shows 10, then 7 once the buyer ordered 3; Katana gets the
                // SO and a restock of 3 brings the ATP back to 10.
                (order("o1", 3), 70),
                (observe(&[(1, 10, 3)]), 80),
                (order("o1", 0), 80),
                (observe(&[(1, 13, 3)]), 90),
                (SkuCommand::FlushBuffer, 130),
                // With no order since, an unchanged ATP stays unpushed.
                (observe(&[(1, 14, 4)]), 140),
                (SkuCommand::FlushBuffer, 200),
            ],
            &Policy::default(),
        );
        assert_eq!(flushed(&h), vec![10, 10]);
        assert!(matches!(h.last(), Some(SkuEvent::BufferClosed(c)) if c.atp == 10));
    }

    #[test]
    fn held_orders_reduce_the_atp_that_is_flushed() {
        let h = history(
            vec![
                (observe(&[(1, 10, 0)]), 0),
                (
                    SkuCommand::SetDemand {
                        order_id: "o1".into(),
                        units: 3,
                        shop: String::new(),
                    },
                    1,
                ),
                (SkuCommand::FlushBuffer, 60),
            ],
            &Policy::default(),
        );
        assert_eq!(flushed(&h), vec![7]);
    }

    #[test]
    fn a_sku_excluded_from_channel_sync_is_never_flushed() {
        let h = history(
            vec![
                (SkuCommand::ToggleSync { enabled: false }, 0),
                (observe(&[(1, 10, 0)]), 1),
                (SkuCommand::FlushBuffer, 61),
            ],
            &Policy::default(),
        );
        assert!(flushed(&h).is_empty());
        assert!(!h.iter().any(|e| matches!(e, SkuEvent::BufferOpened(_))));
    }

    #[test]
    fn stock_of_another_variant_is_refused() {
        let h = history(
            vec![(SkuCommand::MapVariant { variant_id: 1 }, 0)],
            &Policy::default(),
        );
        let err =
            given_when::<Sku>(&h, observe(&[(1, 1, 0)]), t0(), &Policy::default()).unwrap_err();
        assert_eq!(
            err,
            SkuError::WrongVariant {
                expected: 1,
                got: 9
            }
        );
    }

    fn arb_command() -> impl Strategy<Value = (SkuCommand, i64)> {
        prop_oneof![
            (
                prop::collection::vec((1..3i64, 0..20i64, 0..20i64), 1..3),
                0..300i64
            )
                .prop_map(|(l, m)| (observe(&l), m)),
            (0..3u8, 0..5u32, 0..300i64).prop_map(|(o, u, m)| (
                SkuCommand::SetDemand {
                    order_id: format!("o{o}"),
                    units: u,
                    shop: String::new(),
                },
                m
            )),
            (0..300i64).prop_map(|m| (SkuCommand::FlushBuffer, m)),
            (0..30i64, 0..300i64).prop_map(|(q, m)| (
                SkuCommand::RecordInventoryPushed {
                    quantity: q,
                    shop: String::new()
                },
                m
            )),
            (any::<bool>(), 0..300i64)
                .prop_map(|(b, m)| (SkuCommand::ToggleSync { enabled: b }, m)),
        ]
    }

    proptest! {
        #[test]
        fn replaying_any_accepted_history_gives_the_live_state(
            mut cmds in prop::collection::vec(arb_command(), 0..60),
            increases_only in any::<bool>(),
            safety in 0..5u32,
        ) {
            cmds.sort_by_key(|(_, m)| *m);
            let policy = Policy {
                buffer_mode: if increases_only { BufferMode::IncreasesOnly } else { BufferMode::All },
                safety_stock: safety,
                ..Policy::default()
            };
            let (live, history) = run::<Sku>(cmds.into_iter().map(|(c, m)| (c, mins(m))).collect(), &policy);
            let decoded: Vec<SkuEvent> = history.iter()
                .map(|e| SkuEvent::decode(e.event_type(), e.version(), &e.encode()).unwrap())
                .collect();
            prop_assert_eq!(fold::<Sku>(&decoded), live);
        }
    }
}
