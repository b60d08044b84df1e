//! The SKU aggregate: Katana stock observed per location, TikTok demand not yet in
//! Katana, and the buffer that decides when which available-to-promise (ATP) value
//! goes to TikTok.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{domain_events, Upcaster};
use super::exceptions::{keys, ExceptionRaised, ExceptionResolved};
use super::modes::BufferMode;
use super::observed::{Quantity, StockLevel};
use super::{add, Aggregate, Ctx, IndexChange, TimerChange};

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
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BufferOpened {
    pub due_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BufferFlushed {
    /// The ATP to push, computed when the window closed (or at once for a
    /// decrease in `increases_only` mode).
    pub atp: i64,
    pub immediate: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BufferClosed {
    /// The ATP at the window's end, equal to what TikTok already has: not pushed.
    pub atp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InventoryPushed {
    pub quantity: i64,
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
    },
    /// The buffer timer fired.
    FlushBuffer,
    RecordInventoryPushed {
        quantity: i64,
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
        }
    }
}

impl Sku {
    /// ATP = Σ locations max(0, in_stock − committed) − pending demand − safety
    /// stock, clamped to what TikTok accepts.
    pub fn atp(&self, safety_stock: u32) -> i64 {
        let free: i64 = self
            .locations
            .values()
            .map(|l| Quantity(l.in_stock.0 - l.committed.0).floor_units().max(0))
            .sum();
        let demand: i64 = self.demand.values().map(|&u| i64::from(u)).sum();
        (free - demand - i64::from(safety_stock)).clamp(0, MAX_TIKTOK_QUANTITY)
    }

    /// Whether Katana's stock of this SKU was ever read. Until it is, the SKU has
    /// no ATP at all (not an ATP of 0): pushing 0 would stop the listing's sales.
    pub fn stock_known(&self) -> bool {
        !self.locations.is_empty()
    }

    /// After something moved the ATP's inputs: open a window, or in
    /// `increases_only` mode push a decrease at once. Nothing while the stock is
    /// unknown: the first stock read is itself a change and opens the window.
    fn buffer_decision(&self, ctx: &Ctx<'_>) -> Option<SkuEvent> {
        if !self.sync_enabled || !self.stock_known() {
            return None;
        }
        let atp = self.atp(ctx.policy.safety_stock);
        if ctx.policy.buffer_mode == BufferMode::IncreasesOnly {
            if let Some(last) = self.last_flushed {
                if atp < last {
                    return Some(SkuEvent::BufferFlushed(BufferFlushed {
                        atp,
                        immediate: true,
                    }));
                }
            }
        }
        if self.buffer_due.is_some() {
            return None;
        }
        Some(SkuEvent::BufferOpened(BufferOpened {
            due_at: add(ctx.now, ctx.policy.inventory_buffer),
        }))
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
            SkuCommand::SetDemand { order_id, units } => {
                let current = self.demand.get(order_id).copied().unwrap_or(0);
                if current != *units {
                    record(
                        &mut next,
                        &mut events,
                        SkuEvent::DemandChanged(DemandChanged {
                            order_id: order_id.clone(),
                            units: *units,
                        }),
                    );
                }
            }
            SkuCommand::FlushBuffer => {
                let Some(due) = self.buffer_due else {
                    return Ok(events);
                };
                if ctx.now < due {
                    return Ok(events);
                }
                let atp = self.atp(ctx.policy.safety_stock);
                let stale = self.last_flushed != Some(atp) || self.ordered_since_flush;
                let e = if self.sync_enabled && self.stock_known() && stale {
                    SkuEvent::BufferFlushed(BufferFlushed {
                        atp,
                        immediate: false,
                    })
                } else {
                    SkuEvent::BufferClosed(BufferClosed { atp })
                };
                record(&mut next, &mut events, e);
                return Ok(events);
            }
            SkuCommand::RecordInventoryPushed { quantity } => {
                record(
                    &mut next,
                    &mut events,
                    SkuEvent::InventoryPushed(InventoryPushed {
                        quantity: *quantity,
                    }),
                );
                if next.exceptions.contains_key(keys::INVENTORY_REJECTED) {
                    record(
                        &mut next,
                        &mut events,
                        SkuEvent::ExceptionResolved(ExceptionResolved {
                            key: keys::INVENTORY_REJECTED.into(),
                        }),
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
            if let Some(e) = next.buffer_decision(ctx) {
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
                if e.units > self.demand.get(&e.order_id).copied().unwrap_or(0) {
                    self.ordered_since_flush = true;
                }
                if e.units == 0 {
                    self.demand.remove(&e.order_id);
                } else {
                    self.demand.insert(e.order_id.clone(), e.units);
                }
            }
            SkuEvent::BufferOpened(e) => self.buffer_due = Some(e.due_at),
            SkuEvent::BufferFlushed(e) => {
                self.last_flushed = Some(e.atp);
                self.ordered_since_flush = false;
                if !e.immediate {
                    self.buffer_due = None;
                }
            }
            SkuEvent::BufferClosed(_) => self.buffer_due = None,
            SkuEvent::InventoryPushed(e) => self.last_pushed = Some(e.quantity),
            SkuEvent::ChannelSyncToggled(e) => {
                self.sync_enabled = e.enabled;
                if !e.enabled {
                    self.buffer_due = None;
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
                kind: FLUSH_TIMER,
                due_at: e.due_at,
            }],
            SkuEvent::BufferFlushed(BufferFlushed {
                immediate: false, ..
            })
            | SkuEvent::BufferClosed(_)
            | SkuEvent::ChannelSyncToggled(ChannelSyncToggled { enabled: false }) => {
                vec![TimerChange::Disarm { kind: FLUSH_TIMER }]
            }
            _ => vec![],
        }
    }

    fn timer_command(kind: &str) -> Option<SkuCommand> {
        (kind == FLUSH_TIMER).then_some(SkuCommand::FlushBuffer)
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
                kind: FLUSH_TIMER,
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
                    units: u
                },
                m
            )),
            (0..300i64).prop_map(|m| (SkuCommand::FlushBuffer, m)),
            (0..30i64, 0..300i64)
                .prop_map(|(q, m)| (SkuCommand::RecordInventoryPushed { quantity: q }, m)),
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
