//! Several TikTok shops selling one Katana stock: which locations each shop sells
//! from, the pool a shop's offer is drawn from, and the allocation rule (`share`,
//! `max`, `reserve`) that turns the pool into the quantity pushed to that shop.
//!
//! The first shop is the primary one: events written before the instance served
//! several shops (and every event of a single-shop instance) carry no shop id and
//! belong to it, so old logs keep their meaning and their state hashes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// TikTok refuses inventory quantities outside 0..=99,999.
const MAX_OFFER: i64 = 99_999;

/// How much of its pool a shop is offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Allocation {
    /// Percent of the pool left after the other shops' reserves (0..=100).
    pub share: u32,
    /// At most this many units (0: no cap).
    pub max: u32,
    /// Units kept back for this shop: the other shops sharing its locations are
    /// never offered them, and this shop is offered at least them while the pool has
    /// them.
    pub reserve: u32,
}

impl Default for Allocation {
    fn default() -> Self {
        Allocation {
            share: 100,
            max: 0,
            reserve: 0,
        }
    }
}

/// One shop's part of the stock rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShopStock {
    pub shop_id: String,
    /// Katana locations whose stock this shop sells; empty: every location the SKU's
    /// stock was read at.
    pub locations: Vec<i64>,
    pub allocation: Allocation,
}

/// Every shop of the instance, the primary one first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shops(Vec<ShopStock>);

impl Default for Shops {
    /// The single shop of an instance configured with the single-shop keys.
    fn default() -> Self {
        Shops(vec![ShopStock {
            shop_id: String::new(),
            locations: Vec::new(),
            allocation: Allocation::default(),
        }])
    }
}

impl Shops {
    /// `shops` in configuration order; an empty list is the single default shop.
    pub fn new(shops: Vec<ShopStock>) -> Self {
        if shops.is_empty() {
            Shops::default()
        } else {
            Shops(shops)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &ShopStock> {
        self.0.iter()
    }

    pub fn primary(&self) -> &ShopStock {
        &self.0[0]
    }

    /// The key a shop's events carry: none for the primary shop (see the module
    /// documentation), its id for the others.
    pub fn event_key<'a>(&self, shop_id: &'a str) -> &'a str {
        if shop_id == self.primary().shop_id {
            ""
        } else {
            shop_id
        }
    }

    /// The shop an event's key names: no key is the primary shop.
    pub fn by_key(&self, key: &str) -> Option<&ShopStock> {
        if key.is_empty() {
            Some(self.primary())
        } else {
            self.0.iter().find(|s| s.shop_id == key)
        }
    }

    /// These shops with one shop's rule changed by `change`, e.g. `share=50,max=3`
    /// (the fields not named keep their values): a what-if tries another
    /// allocation this way.
    pub fn with_allocation(&self, shop_id: &str, change: &str) -> Result<Shops, String> {
        let mut shops = self.0.clone();
        let Some(shop) = shops.iter_mut().find(|s| s.shop_id == shop_id) else {
            let ids: Vec<&str> = self.0.iter().map(|s| s.shop_id.as_str()).collect();
            return Err(format!(
                "no shop {shop_id:?} among the configured shops {ids:?}"
            ));
        };
        for part in change.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected share=N, max=N or reserve=N"))?;
            let value: u32 = value
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: {value:?} is not a whole number"))?;
            match field.trim() {
                "share" if value <= 100 => shop.allocation.share = value,
                "share" => return Err(format!("{part:?}: share is a percentage (0..=100)")),
                "max" => shop.allocation.max = value,
                "reserve" => shop.allocation.reserve = value,
                other => {
                    return Err(format!(
                        "{other:?}: an allocation has share, max and reserve"
                    ))
                }
            }
        }
        Ok(Shops(shops))
    }

    /// The event keys of every shop, the primary's (empty) first.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, s)| if i == 0 { "" } else { s.shop_id.as_str() })
    }
}

fn sells_from(shop: &ShopStock, location: i64) -> bool {
    shop.locations.is_empty() || shop.locations.contains(&location)
}

/// Whether two shops sell from a common location (a shop with no list sells from
/// every one): units one of them holds lower what the other is offered.
fn share_a_location(a: &ShopStock, b: &ShopStock) -> bool {
    a.locations.is_empty()
        || b.locations.is_empty()
        || a.locations.iter().any(|l| b.locations.contains(l))
}

/// What a SKU knows that a shop's offer depends on.
pub struct StockView<'a> {
    /// Free units (in stock − committed, at least 0) per Katana location read.
    pub free_by_location: &'a BTreeMap<i64, i64>,
    /// Units of orders not yet in Katana, per shop key.
    pub held_by_shop: &'a BTreeMap<String, i64>,
    pub safety_stock: u32,
}

/// The shop's pool: the free stock of its locations, minus the units held by the
/// orders of every shop selling from one of those locations, minus safety stock.
pub fn pool(shops: &Shops, key: &str, view: &StockView<'_>) -> i64 {
    let Some(shop) = shops.by_key(key) else {
        return 0;
    };
    let free: i64 = view
        .free_by_location
        .iter()
        .filter(|(&l, _)| sells_from(shop, l))
        .map(|(_, &f)| f.max(0))
        .sum();
    let held: i64 = view
        .held_by_shop
        .iter()
        .filter(|(k, _)| match shops.by_key(k) {
            Some(other) => share_a_location(shop, other),
            // Orders of a shop no longer configured: counted, to oversell nothing.
            None => true,
        })
        .map(|(_, &u)| u)
        .sum();
    free - held - i64::from(view.safety_stock)
}

/// The quantity offered to the shop of `key`, from its pool and its rule.
pub fn offer(shops: &Shops, key: &str, view: &StockView<'_>) -> i64 {
    let Some(shop) = shops.by_key(key) else {
        return 0;
    };
    let pool = pool(shops, key, view).max(0);
    let others_reserve: i64 = shops
        .iter()
        .filter(|o| o.shop_id != shop.shop_id && share_a_location(shop, o))
        .map(|o| i64::from(o.allocation.reserve))
        .sum();
    let rule = shop.allocation;
    let shared = (pool - others_reserve).max(0);
    let by_share = shared * i64::from(rule.share.min(100)) / 100;
    let own = i64::from(rule.reserve).min(pool);
    let mut offered = by_share.max(own);
    if rule.max > 0 {
        offered = offered.min(i64::from(rule.max));
    }
    offered.clamp(0, MAX_OFFER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_shops_allocation_is_changed_by_name_and_the_rest_kept() {
        let shops = Shops::new(vec![shop("A", &[1], 100, 0, 0), shop("B", &[1], 50, 7, 2)]);
        let changed = shops.with_allocation("B", "max=3, share=40").unwrap();
        assert_eq!(
            changed.by_key("").unwrap().allocation,
            shops.primary().allocation
        );
        assert_eq!(
            changed.by_key("B").unwrap().allocation,
            Allocation {
                share: 40,
                max: 3,
                reserve: 2
            }
        );
        for (shop, change, needle) in [
            ("C", "max=1", "no shop \"C\""),
            ("B", "share=120", "percentage"),
            ("B", "cap=3", "share, max and reserve"),
            ("B", "max=-1", "not a whole number"),
            ("B", "max", "expected share=N"),
        ] {
            let e = shops.with_allocation(shop, change).unwrap_err();
            assert!(e.contains(needle), "{change}: {e}");
        }
    }

    fn shop(id: &str, locations: &[i64], share: u32, max: u32, reserve: u32) -> ShopStock {
        ShopStock {
            shop_id: id.into(),
            locations: locations.to_vec(),
            allocation: Allocation {
                share,
                max,
                reserve,
            },
        }
    }

    fn view<'a>(free: &'a BTreeMap<i64, i64>, held: &'a BTreeMap<String, i64>) -> StockView<'a> {
        StockView {
            free_by_location: free,
            held_by_shop: held,
            safety_stock: 0,
        }
    }

    #[test]
    fn one_shop_with_the_default_rule_is_offered_its_whole_pool() {
        let shops = Shops::default();
        let free = BTreeMap::from([(1, 7), (2, 3)]);
        let held = BTreeMap::from([(String::new(), 2)]);
        let v = StockView {
            safety_stock: 1,
            ..view(&free, &held)
        };
        assert_eq!(pool(&shops, "", &v), 7);
        assert_eq!(offer(&shops, "", &v), 7);
    }

    #[test]
    fn share_max_and_reserve_shape_the_offer() {
        let free = BTreeMap::from([(1, 100)]);
        let held = BTreeMap::new();
        let half = Shops::new(vec![shop("A", &[1], 50, 0, 0), shop("B", &[1], 50, 0, 0)]);
        assert_eq!(offer(&half, "", &view(&free, &held)), 50);
        assert_eq!(offer(&half, "B", &view(&free, &held)), 50);
        let capped = Shops::new(vec![
            shop("A", &[1], 100, 30, 0),
            shop("B", &[1], 100, 0, 0),
        ]);
        assert_eq!(offer(&capped, "", &view(&free, &held)), 30);
        assert_eq!(offer(&capped, "B", &view(&free, &held)), 100);
        // B keeps 40 back: A is offered what is left, B at least its 40.
        let reserved = Shops::new(vec![shop("A", &[1], 100, 0, 0), shop("B", &[1], 10, 0, 40)]);
        assert_eq!(offer(&reserved, "", &view(&free, &held)), 60);
        assert_eq!(offer(&reserved, "B", &view(&free, &held)), 40);
    }

    #[test]
    fn a_held_order_lowers_the_shops_that_share_its_location_only() {
        let free = BTreeMap::from([(1, 10), (2, 10)]);
        let held = BTreeMap::from([(String::new(), 3)]);
        let shared = Shops::new(vec![shop("A", &[1], 100, 0, 0), shop("B", &[1], 100, 0, 0)]);
        assert_eq!(offer(&shared, "B", &view(&free, &held)), 7);
        let apart = Shops::new(vec![shop("A", &[1], 100, 0, 0), shop("B", &[2], 100, 0, 0)]);
        assert_eq!(offer(&apart, "B", &view(&free, &held)), 10);
        assert_eq!(offer(&apart, "", &view(&free, &held)), 7);
    }

    #[test]
    fn the_primary_shop_is_the_one_without_an_event_key() {
        let shops = Shops::new(vec![shop("A", &[], 100, 0, 0), shop("B", &[], 100, 0, 0)]);
        assert_eq!(shops.event_key("A"), "");
        assert_eq!(shops.event_key("B"), "B");
        assert_eq!(shops.by_key("").unwrap().shop_id, "A");
        assert_eq!(shops.keys().collect::<Vec<_>>(), vec!["", "B"]);
        assert!(shops.by_key("C").is_none());
    }

    proptest! {
        /// Whatever the rules, no shop is offered more than its pool, and shops
        /// sharing locations are together never offered more than the pool
        /// unless a share above what is left says so (shares summing past 100).
        #[test]
        fn offers_stay_within_the_pool(
            stock in 0i64..500,
            held in 0i64..50,
            rules in prop::collection::vec((0u32..=100, 0u32..200, 0u32..100), 1..4),
        ) {
            let shops = Shops::new(rules.iter().enumerate()
                .map(|(i, &(share, max, reserve))| shop(&format!("S{i}"), &[1], share, max, reserve))
                .collect());
            let free = BTreeMap::from([(1, stock)]);
            let held_by = BTreeMap::from([(String::new(), held)]);
            let v = view(&free, &held_by);
            let pool_all = (stock - held).max(0);
            let mut total_share = 0;
            let mut total = 0;
            for key in shops.keys() {
                let o = offer(&shops, key, &v);
                prop_assert!(o >= 0 && o <= pool_all, "{o} outside 0..={pool_all}");
                total += o;
                total_share += shops.by_key(key).unwrap().allocation.share;
            }
            let reserves: i64 = rules.iter().map(|r| i64::from(r.2)).sum();
            if total_share <= 100 && reserves <= pool_all {
                prop_assert!(total <= pool_all, "{total} offered from a pool of {pool_all}");
            }
        }
    }
}
