//! The TikTok shops an instance serves: one `[[shops]]` table each, or, without
//! any, the one shop the single-shop keys (`tiktok.shop_id` + `[warehouses]`)
//! describe, so a `tks.toml` written for one shop keeps working unchanged.

use serde::{Deserialize, Serialize};

use super::{lenient_string, Settings, TikTokSettings};
use crate::domain::allocation::{Allocation, ShopStock, Shops};

/// One `[[shops]]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopSettings {
    /// TikTok's shop id.
    #[serde(deserialize_with = "lenient_string")]
    pub id: String,
    /// The shop's cipher; empty: the one Get Authorized Shops reports for the id.
    #[serde(deserialize_with = "lenient_string")]
    pub cipher: String,
    #[serde(deserialize_with = "lenient_string")]
    pub pickup_warehouse_id: String,
    pub pickup_location_id: i64,
    /// Katana locations whose stock the shop sells, instead of the pickup location.
    pub locations: Vec<i64>,
    #[serde(deserialize_with = "lenient_string")]
    pub return_warehouse_id: String,
    pub return_location_id: i64,
    pub fbt_location_id: i64,
    /// Empty: `katana.order_no_prefix`.
    #[serde(deserialize_with = "lenient_string")]
    pub order_no_prefix: String,
    pub allocation: Allocation,
}

impl ShopSettings {
    /// The Katana locations whose stock this shop sells; empty: every location
    /// that allows sales.
    pub fn stock_locations(&self) -> Vec<i64> {
        if !self.locations.is_empty() {
            self.locations.clone()
        } else if self.pickup_location_id != 0 {
            vec![self.pickup_location_id]
        } else {
            Vec::new()
        }
    }
}

impl Settings {
    /// Every shop served, the primary one first: the `[[shops]]` tables, or the
    /// single shop of `tiktok.shop_id` and `[warehouses]`. An empty prefix is
    /// `katana.order_no_prefix`.
    pub fn served_shops(&self) -> Vec<ShopSettings> {
        let mut shops = if self.shops.is_empty() {
            let w = &self.warehouses;
            vec![ShopSettings {
                id: self.tiktok.shop_id.clone(),
                cipher: self.tiktok.shop_cipher.clone(),
                pickup_warehouse_id: w.pickup_warehouse_id.clone(),
                pickup_location_id: w.pickup_location_id,
                locations: Vec::new(),
                return_warehouse_id: w.return_warehouse_id.clone(),
                return_location_id: w.return_location_id,
                fbt_location_id: w.fbt_location_id,
                order_no_prefix: String::new(),
                allocation: Allocation::default(),
            }]
        } else {
            self.shops.clone()
        };
        for shop in &mut shops {
            if shop.order_no_prefix.is_empty() {
                shop.order_no_prefix = self.katana.order_no_prefix.clone();
            }
        }
        shops
    }

    /// The TikTok settings of the primary shop's client: `tks connect` binds the
    /// tokens to this shop, and the seller's other shops share them.
    pub fn primary_tiktok(&self) -> TikTokSettings {
        let mut tiktok = self.tiktok.clone();
        if let Some(primary) = self.shops.first() {
            tiktok.shop_id = primary.id.clone();
            tiktok.shop_cipher = primary.cipher.clone();
        }
        tiktok
    }

    /// The stock rules of the shops served, for the SKU aggregate.
    pub fn shop_stock(&self) -> Shops {
        Shops::new(
            self.served_shops()
                .into_iter()
                .map(|s| ShopStock {
                    locations: s.stock_locations(),
                    shop_id: s.id,
                    allocation: s.allocation,
                })
                .collect(),
        )
    }

    /// Every Katana location some shop sells from; empty when a shop sells from
    /// every location that allows sales.
    pub fn stock_locations(&self) -> Vec<i64> {
        let mut all = Vec::new();
        for shop in self.served_shops() {
            let own = shop.stock_locations();
            if own.is_empty() {
                return Vec::new();
            }
            all.extend(own);
        }
        all.sort_unstable();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_shop_tables_the_single_shop_keys_are_the_one_shop() {
        let s = Settings::from_toml(
            r#"
            [tiktok]
            shop_id = "7494726673780148744"
            [katana]
            order_no_prefix = "TK-"
            [warehouses]
            pickup_warehouse_id = "7300000000000000001"
            pickup_location_id = 4
            "#,
        )
        .unwrap();
        let shops = s.served_shops();
        assert_eq!(shops.len(), 1);
        assert_eq!(shops[0].id, "7494726673780148744");
        assert_eq!(shops[0].order_no_prefix, "TK-");
        assert_eq!(shops[0].stock_locations(), vec![4]);
        assert_eq!(shops[0].allocation, Allocation::default());
        assert_eq!(s.shop_stock().iter().count(), 1);
    }

    #[test]
    fn shop_tables_list_every_shop_with_its_own_rule() {
        let s = Settings::from_toml(
            r#"
            [[shops]]
            id = "111"
            pickup_warehouse_id = "w1"
            locations = [1, 2]
            order_no_prefix = "US-"
            allocation = { share = 50, max = 20 }

            [[shops]]
            id = "222"
            pickup_location_id = 2
            allocation = { reserve = 5 }
            "#,
        )
        .unwrap();
        let shops = s.served_shops();
        assert_eq!(shops.len(), 2);
        assert_eq!(shops[0].stock_locations(), vec![1, 2]);
        assert_eq!(shops[0].allocation.share, 50);
        assert_eq!(shops[0].allocation.max, 20);
        assert_eq!(shops[1].order_no_prefix, "TT-");
        assert_eq!(shops[1].allocation.share, 100);
        assert_eq!(shops[1].allocation.reserve, 5);
        assert_eq!(s.stock_locations(), vec![1, 2]);
        let rules = s.shop_stock();
        assert_eq!(rules.iter().count(), 2);
        assert_eq!(rules.primary().shop_id, "111");
    }

    #[test]
    fn environment_variables_address_a_shop_by_its_index() {
        use figment::providers::{Format, Serialized, Toml};
        let file = r#"
            [[shops]]
            id = "111"
            order_no_prefix = "US-"
            allocation = { share = 50 }
        "#;
        let figment = figment::Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(file));
        let vars = [
            ("TKS_SHOPS__0__PICKUP_LOCATION_ID", "7"),
            ("TKS_SHOPS__0__ALLOCATION__MAX", "30"),
            ("TKS_SHOPS__1__ID", "0222"),
            ("TKS_KATANA__API_KEY", "not a shop key"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let s: Settings = super::super::with_env_shops(figment, vars.into_iter())
            .extract_lossy()
            .unwrap();
        assert_eq!(s.shops.len(), 2);
        // The file's keys of shop 0 stay; the environment's are added.
        assert_eq!(s.shops[0].id, "111");
        assert_eq!(s.shops[0].order_no_prefix, "US-");
        assert_eq!(s.shops[0].pickup_location_id, 7);
        assert_eq!(s.shops[0].allocation.share, 50);
        assert_eq!(s.shops[0].allocation.max, 30);
        // An id keeps its leading zero: every value stays the text it was.
        assert_eq!(s.shops[1].id, "0222");
    }

    #[test]
    fn a_misspelt_shop_key_is_refused() {
        let e = Settings::from_toml("[[shops]]\nid = \"1\"\npickup_locaton_id = 3\n").unwrap_err();
        assert!(e.to_string().contains("pickup_locaton_id"), "{e}");
    }
}
