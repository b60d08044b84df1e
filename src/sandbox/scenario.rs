//! The scripted shop day of `tks sandbox`: which orders arrive when, what the buyers
//! and the warehouse do to them, and the stock changes in Katana. Pure data on a
//! "merchant clock" (minutes as a real shop would see them); the runner divides
//! every time by the speed factor.

use std::time::Duration;

/// The seeded catalogue: (seller SKU, product title, unit price on both sides).
pub const CATALOGUE: &[(&str, &str, &str)] = &[
    ("MUG-WHITE", "Ceramic mug, white", "12.50"),
    ("MUG-BLACK", "Ceramic mug, black", "12.50"),
    ("TOTE-NAT", "Linen tote", "18.00"),
    ("CANDLE-FIG", "Scented candle", "22.00"),
];

/// Katana stock at the start; CANDLE-FIG is sold on TikTok but has no Katana
/// variant until the scenario adds it.
pub const KATANA_STOCK: &[(&str, i64)] = &[("MUG-WHITE", 40), ("MUG-BLACK", 25), ("TOTE-NAT", 60)];

/// The SKU TikTok sells that Katana does not know at first.
pub const UNMATCHED_SKU: &str = "CANDLE-FIG";
/// Stock of the unmatched SKU once the merchant adds it in Katana.
pub const UNMATCHED_SKU_STOCK: i64 = 15;

/// The SKU TikTok also sells from a second warehouse (a 3PL's) whose stock the
/// service does not own: each update must send that warehouse's current quantity.
pub const MULTI_WAREHOUSE_SKU: &str = "TOTE-NAT";
/// The 3PL warehouse's quantity at the start.
pub const OTHER_WAREHOUSE_STOCK: i64 = 8;

/// The 3PL sells some of its own stock of the multi-warehouse SKU on TikTok's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherWarehouseChange {
    pub at: Duration,
    pub available: i64,
    pub why: &'static str,
}

/// What the script does to an order, and so what its final state must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Pushed after the hold, delivered in Katana, shipped on TikTok.
    Normal,
    /// Has a SKU with no Katana variant: an exception until the variant is added,
    /// then pushed and shipped like a normal order.
    Unmatched,
    /// One unit cancelled by the buyer during the hold: the SO has one unit less.
    EditedInHold,
    /// Cancelled by the buyer during the hold: never reaches Katana.
    CancelledInHold,
    /// Fulfilled by TikTok: recorded as skipped, never pushed.
    FulfilledByTikTok,
    /// Shipped with TikTok's label: TikTok arranges the shipment when Katana
    /// delivers, and its tracking number is written back to Katana.
    TikTokShipping,
}

impl Role {
    /// Whether the order ends with an SO in Katana and shipments on TikTok.
    pub fn ships(self) -> bool {
        matches!(
            self,
            Role::Normal | Role::Unmatched | Role::EditedInHold | Role::TikTokShipping
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Role::Normal => "normal",
            Role::Unmatched => "unmatched SKU",
            Role::EditedInHold => "edited in the hold",
            Role::CancelledInHold => "cancelled in the hold",
            Role::FulfilledByTikTok => "fulfilled by TikTok",
            Role::TikTokShipping => "shipped with TikTok's label",
        }
    }
}

/// One order of the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedOrder {
    /// 1-based, as the live log names it (`order #3`).
    pub number: usize,
    pub role: Role,
    /// Merchant time from the start of the run.
    pub arrives: Duration,
    pub items: Vec<(&'static str, u32)>,
    /// Delivered in two parts (some units first, the rest later).
    pub partial_delivery: bool,
}

/// A stock change a warehouse worker makes in Katana.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockChange {
    pub at: Duration,
    pub sku: &'static str,
    pub in_stock: i64,
    pub why: &'static str,
}

/// Merchant-clock delays of the scripted reactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delays {
    /// Between two orders arriving.
    pub between_orders: Duration,
    /// From arrival to the buyer's edit (one unit cancelled).
    pub edit_after: Duration,
    /// From arrival to the buyer's cancellation.
    pub cancel_after: Duration,
    /// From the SO appearing in Katana to its (first) delivery.
    pub deliver_after: Duration,
    /// From the first part of a split delivery to the rest.
    pub rest_after: Duration,
    /// From the unmatched-SKU exception to the merchant adding the variant.
    pub add_variant_after: Duration,
}

const MIN: u64 = 60;

impl Default for Delays {
    fn default() -> Self {
        Delays {
            between_orders: Duration::from_secs(4 * MIN),
            edit_after: Duration::from_secs(5 * MIN),
            cancel_after: Duration::from_secs(8 * MIN),
            deliver_after: Duration::from_secs(3 * MIN),
            rest_after: Duration::from_secs(6 * MIN),
            add_variant_after: Duration::from_secs(6 * MIN),
        }
    }
}

/// The whole script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub orders: Vec<ScriptedOrder>,
    pub stock_changes: Vec<StockChange>,
    /// Changes of the 3PL warehouse's quantity of [`MULTI_WAREHOUSE_SKU`], before the
    /// Katana stock change of that SKU so the push after it must keep them.
    pub other_warehouse: Vec<OtherWarehouseChange>,
    pub delays: Delays,
}

/// Normal orders cycle through these baskets: all multi-unit, mostly two SKUs.
const BASKETS: &[&[(&str, u32)]] = &[
    &[("MUG-WHITE", 2), ("TOTE-NAT", 1)],
    &[("MUG-BLACK", 3)],
    &[("TOTE-NAT", 2), ("MUG-BLACK", 1)],
    &[("MUG-WHITE", 1), ("MUG-BLACK", 1), ("TOTE-NAT", 1)],
    &[("MUG-WHITE", 4)],
];

/// The role of the `index`-th order (0-based). The special cases come first so a
/// short run still shows them; after those, every fifth order is fulfilled by
/// TikTok, the sixth ships with TikTok's label and the rest are normal.
fn role_of(index: usize) -> Role {
    match index {
        0 => Role::Normal,
        1 => Role::Unmatched,
        2 => Role::EditedInHold,
        3 => Role::CancelledInHold,
        i if i % 5 == 4 => Role::FulfilledByTikTok,
        5 => Role::TikTokShipping,
        _ => Role::Normal,
    }
}

impl Script {
    /// `orders` orders arriving every few merchant minutes, plus three stock
    /// changes spread over the first hour.
    pub fn new(orders: usize) -> Script {
        let delays = Delays::default();
        let mut normal = 0usize;
        let orders = (0..orders)
            .map(|i| {
                let role = role_of(i);
                let (items, partial) = match role {
                    Role::Normal => {
                        let basket = BASKETS[normal % BASKETS.len()].to_vec();
                        // Every other normal order is delivered in two parts.
                        let partial = normal % 2 == 0;
                        normal += 1;
                        (basket, partial)
                    }
                    Role::Unmatched => (vec![(UNMATCHED_SKU, 1), ("MUG-WHITE", 1)], false),
                    Role::EditedInHold => (vec![("MUG-WHITE", 1), ("TOTE-NAT", 3)], true),
                    Role::CancelledInHold => (vec![("MUG-BLACK", 2)], false),
                    Role::FulfilledByTikTok => (vec![("TOTE-NAT", 1)], false),
                    Role::TikTokShipping => (vec![("MUG-BLACK", 1), ("TOTE-NAT", 1)], false),
                };
                ScriptedOrder {
                    number: i + 1,
                    role,
                    arrives: Duration::from_secs(MIN) + delays.between_orders * i as u32,
                    items,
                    partial_delivery: partial,
                }
            })
            .collect();
        let stock_changes = vec![
            StockChange {
                at: Duration::from_secs(12 * MIN),
                sku: "MUG-WHITE",
                in_stock: 64,
                why: "a production run of 24 finished",
            },
            StockChange {
                at: Duration::from_secs(30 * MIN),
                sku: "TOTE-NAT",
                in_stock: 57,
                why: "stock count: 3 damaged",
            },
            StockChange {
                at: Duration::from_secs(44 * MIN),
                sku: "MUG-BLACK",
                in_stock: 35,
                why: "a purchase order of 10 received",
            },
        ];
        Script {
            orders,
            stock_changes,
            other_warehouse: vec![OtherWarehouseChange {
                at: Duration::from_secs(20 * MIN),
                available: 5,
                why: "the 3PL shipped 3 of its own",
            }],
            delays,
        }
    }

    pub fn count(&self, role: Role) -> usize {
        self.orders.iter().filter(|o| o.role == role).count()
    }

    /// When the last scripted order arrives (merchant time).
    pub fn last_arrival(&self) -> Duration {
        self.orders
            .iter()
            .map(|o| o.arrives)
            .max()
            .unwrap_or_default()
    }
}

/// How a delivery of an SO is split: `(row id, units)` of the first part, or
/// `None` to deliver everything at once. The first row is delivered alone (one
/// unit of it when it has several), so the first part is always a strict subset.
pub fn first_part(rows: &[(i64, u32)]) -> Option<Vec<(i64, u32)>> {
    let total: u32 = rows.iter().map(|(_, q)| q).sum();
    if total < 2 {
        return None;
    }
    let (row, qty) = rows.first()?;
    let units = if *qty >= 2 { 1 } else { *qty };
    Some(vec![(*row, units)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_still_has_the_special_cases_first() {
        let s = Script::new(4);
        let roles: Vec<Role> = s.orders.iter().map(|o| o.role).collect();
        assert_eq!(
            roles,
            vec![
                Role::Normal,
                Role::Unmatched,
                Role::EditedInHold,
                Role::CancelledInHold
            ]
        );
    }

    #[test]
    fn the_default_run_is_mostly_normal_with_two_fulfilled_by_tiktok() {
        let s = Script::new(12);
        assert_eq!(s.count(Role::Normal), 6);
        assert_eq!(s.count(Role::TikTokShipping), 1);
        assert_eq!(s.count(Role::FulfilledByTikTok), 2);
        assert_eq!(s.count(Role::Unmatched), 1);
        assert_eq!(s.count(Role::EditedInHold), 1);
        assert_eq!(s.count(Role::CancelledInHold), 1);
        // Every normal order is multi-unit, and some are delivered in two parts.
        for o in s.orders.iter().filter(|o| o.role == Role::Normal) {
            assert!(o.items.iter().map(|(_, q)| q).sum::<u32>() >= 2, "{o:?}");
        }
        assert!(s.orders.iter().any(|o| o.partial_delivery));
        // Arrivals are strictly increasing.
        assert!(s.orders.windows(2).all(|w| w[0].arrives < w[1].arrives));
    }

    #[test]
    fn every_scripted_sku_is_in_the_catalogue() {
        let s = Script::new(30);
        for o in &s.orders {
            for (sku, _) in &o.items {
                assert!(CATALOGUE.iter().any(|(c, _, _)| c == sku), "{sku}");
            }
        }
        for c in &s.stock_changes {
            assert!(KATANA_STOCK.iter().any(|(k, _)| *k == c.sku), "{}", c.sku);
        }
    }

    #[test]
    fn a_split_delivery_ships_a_strict_subset_first() {
        assert_eq!(first_part(&[(7, 2), (8, 1)]), Some(vec![(7, 1)]));
        assert_eq!(first_part(&[(7, 1), (8, 1)]), Some(vec![(7, 1)]));
        assert_eq!(first_part(&[(7, 3)]), Some(vec![(7, 1)]));
        assert_eq!(first_part(&[(7, 1)]), None);
        assert_eq!(first_part(&[]), None);
    }
}
