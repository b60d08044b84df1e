//! Which TikTok SKU is which Katana variant: both catalogues as last read, and the
//! matching rules (exact, case-insensitive, an alias table). Kept in memory and
//! refreshed from the APIs; the decisions it feeds are recorded as `SkuMapped`.
//! Only live (`ACTIVATE`) listings count, and a seller SKU may be listed on several
//! of them: each one gets the SKU's stock (F28).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use parking_lot::RwLock;
use serde::Serialize;

use crate::config::{SkuMatch, SyncSettings};
use crate::connectors::katana::model::Variant;
use crate::connectors::tiktok::mapping::CatalogueEntry;

#[derive(Clone, Debug)]
pub struct SkuRules {
    pub mode: SkuMatch,
    /// TikTok seller_sku -> Katana sku.
    pub aliases: BTreeMap<String, String>,
}

impl SkuRules {
    pub fn from_settings(s: &SyncSettings) -> Self {
        SkuRules {
            mode: s.sku_match,
            aliases: s.sku_aliases.clone(),
        }
    }

    /// The key a TikTok seller SKU is looked up by among Katana SKUs.
    pub fn katana_key(&self, seller_sku: &str) -> String {
        let sku = self
            .aliases
            .get(seller_sku)
            .map(String::as_str)
            .unwrap_or(seller_sku);
        self.fold(sku)
    }

    fn fold(&self, sku: &str) -> String {
        match self.mode {
            SkuMatch::Exact => sku.to_string(),
            SkuMatch::CaseInsensitive => sku.to_lowercase(),
        }
    }
}

#[derive(Default)]
struct Maps {
    /// Folded Katana sku -> variant id.
    variants: HashMap<String, i64>,
    /// variant id -> Katana sku as written.
    katana_skus: HashMap<i64, String>,
    /// TikTok seller_sku -> its live listings, by product id.
    tiktok: HashMap<String, Vec<CatalogueEntry>>,
}

/// The SKU match report of `tks check`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MatchReport {
    pub matched: Vec<(String, i64)>,
    pub only_tiktok: Vec<String>,
    pub only_katana: Vec<String>,
}

pub struct Catalogue {
    rules: SkuRules,
    maps: RwLock<Maps>,
}

impl Catalogue {
    pub fn new(rules: SkuRules) -> Self {
        Catalogue {
            rules,
            maps: RwLock::new(Maps::default()),
        }
    }

    pub fn rules(&self) -> &SkuRules {
        &self.rules
    }

    /// Replaces the Katana side with a full read of its variants.
    pub fn set_katana_variants(&self, variants: &[Variant]) {
        let mut m = self.maps.write();
        m.variants.clear();
        m.katana_skus.clear();
        drop(m);
        self.add_katana_variants(variants);
    }

    /// Adds variants found by a targeted lookup.
    pub fn add_katana_variants(&self, variants: &[Variant]) {
        let mut m = self.maps.write();
        for v in variants.iter().filter(|v| v.deleted_at.is_none()) {
            if let Some(sku) = v.sku.as_deref().filter(|s| !s.is_empty()) {
                let key = self.rules.fold(sku);
                // Katana can hold duplicate SKUs (archived copies); the oldest live
                // variant is the one the merchant has been using.
                let keep = match m.variants.get(&key) {
                    Some(&existing) => existing.min(v.id),
                    None => v.id,
                };
                m.variants.insert(key, keep);
                m.katana_skus.insert(v.id, sku.to_string());
            }
        }
    }

    /// Replaces the TikTok side with a full read; listings that are not live are
    /// left out.
    pub fn set_tiktok(&self, entries: Vec<CatalogueEntry>) {
        let mut m = self.maps.write();
        m.tiktok = live_listings(entries);
    }

    pub fn variant_for(&self, seller_sku: &str) -> Option<i64> {
        self.maps
            .read()
            .variants
            .get(&self.rules.katana_key(seller_sku))
            .copied()
    }

    /// Every live listing of a seller SKU (none when it is not listed live).
    pub fn tiktok_listings(&self, seller_sku: &str) -> Vec<CatalogueEntry> {
        self.maps
            .read()
            .tiktok
            .get(seller_sku)
            .cloned()
            .unwrap_or_default()
    }

    /// TikTok SKUs that map to `variant_id`.
    pub fn seller_skus_for_variant(&self, variant_id: i64) -> Vec<String> {
        let m = self.maps.read();
        let mut out: Vec<String> = m
            .tiktok
            .keys()
            .filter(|s| m.variants.get(&self.rules.katana_key(s)) == Some(&variant_id))
            .cloned()
            .collect();
        if out.is_empty() {
            // Not (yet) in the TikTok catalogue read: exact SKU identity still holds.
            if let Some(sku) = m.katana_skus.get(&variant_id) {
                out.push(sku.clone());
            }
        }
        out.sort();
        out
    }

    /// Every TikTok SKU with a Katana variant.
    pub fn matched(&self) -> Vec<(String, i64)> {
        self.matched_in(&self.maps.read())
    }

    fn matched_in(&self, m: &Maps) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = m
            .tiktok
            .keys()
            .filter_map(|s| {
                m.variants
                    .get(&self.rules.katana_key(s))
                    .map(|v| (s.clone(), *v))
            })
            .collect();
        out.sort();
        out
    }

    pub fn report(&self) -> MatchReport {
        let m = self.maps.read();
        let matched = self.matched_in(&m);
        let matched_variants: BTreeSet<i64> = matched.iter().map(|(_, v)| *v).collect();
        let mut only_tiktok: Vec<String> = m
            .tiktok
            .keys()
            .filter(|s| !m.variants.contains_key(&self.rules.katana_key(s)))
            .cloned()
            .collect();
        only_tiktok.sort();
        let mut only_katana: Vec<String> = m
            .katana_skus
            .iter()
            .filter(|(id, _)| !matched_variants.contains(id))
            .map(|(_, s)| s.clone())
            .collect();
        only_katana.sort();
        MatchReport {
            matched,
            only_tiktok,
            only_katana,
        }
    }
}

/// Live listings grouped by seller SKU, each group ordered by product id.
fn live_listings(entries: Vec<CatalogueEntry>) -> HashMap<String, Vec<CatalogueEntry>> {
    let mut out: HashMap<String, Vec<CatalogueEntry>> = HashMap::new();
    for e in entries.into_iter().filter(CatalogueEntry::is_live) {
        out.entry(e.seller_sku.clone()).or_default().push(e);
    }
    for listings in out.values_mut() {
        listings.sort_by(|a, b| (&a.product_id, &a.sku_id).cmp(&(&b.product_id, &b.sku_id)));
        listings.dedup_by(|a, b| a.product_id == b.product_id && a.sku_id == b.sku_id);
    }
    out
}

/// A seller SKU's listings on TikTok that are not live: (product id, status) each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InactiveListing {
    pub seller_sku: String,
    pub products: Vec<(String, String)>,
    /// Whether a Katana variant matches it: its stock would be synced if it were live.
    pub katana_variant: bool,
}

/// A seller SKU on several live products: each gets the same quantity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SharedListing {
    pub seller_sku: String,
    pub products: Vec<String>,
}

/// What `tks check` says about TikTok's listings (F28).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListingReport {
    /// Seller SKUs found on TikTok only in listings that are not live.
    pub no_live_listing: Vec<InactiveListing>,
    /// Seller SKUs listed on more than one live product.
    pub several_live_listings: Vec<SharedListing>,
}

impl Catalogue {
    /// Reads every listing whatever its status: the live ones become the TikTok side
    /// (as [`Catalogue::set_tiktok`]), the others are named in the report.
    pub fn listing_report(&self, all: &[CatalogueEntry]) -> ListingReport {
        let live = live_listings(all.to_vec());
        let mut inactive: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for e in all.iter().filter(|e| !live.contains_key(&e.seller_sku)) {
            inactive
                .entry(e.seller_sku.clone())
                .or_default()
                .push((e.product_id.clone(), e.product_status.clone()));
        }
        let m = self.maps.read();
        let no_live_listing = inactive
            .into_iter()
            .map(|(seller_sku, mut products)| {
                products.sort();
                products.dedup();
                InactiveListing {
                    katana_variant: m.variants.contains_key(&self.rules.katana_key(&seller_sku)),
                    seller_sku,
                    products,
                }
            })
            .collect();
        let mut several_live_listings: Vec<SharedListing> = live
            .iter()
            .filter(|(_, ls)| ls.len() > 1)
            .map(|(sku, ls)| SharedListing {
                seller_sku: sku.clone(),
                products: ls.iter().map(|l| l.product_id.clone()).collect(),
            })
            .collect();
        several_live_listings.sort_by(|a, b| a.seller_sku.cmp(&b.seller_sku));
        ListingReport {
            no_live_listing,
            several_live_listings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(id: i64, sku: &str) -> Variant {
        Variant {
            id,
            sku: Some(sku.into()),
            product_id: None,
            sales_price: None,
            deleted_at: None,
        }
    }

    fn entry(sku: &str) -> CatalogueEntry {
        listing(sku, "P", "ACTIVATE")
    }

    fn listing(sku: &str, product: &str, status: &str) -> CatalogueEntry {
        CatalogueEntry {
            product_id: product.into(),
            product_title: "T".into(),
            product_status: status.into(),
            sku_id: format!("id-{sku}-{product}"),
            seller_sku: sku.into(),
            warehouses: vec![],
        }
    }

    fn products(listings: &[CatalogueEntry]) -> Vec<&str> {
        listings.iter().map(|l| l.product_id.as_str()).collect()
    }

    #[test]
    fn a_seller_sku_keeps_every_live_listing_and_none_that_is_not_live() {
        let c = Catalogue::new(SkuRules {
            mode: SkuMatch::Exact,
            aliases: BTreeMap::new(),
        });
        c.set_katana_variants(&[variant(1, "MUG"), variant(2, "CAP"), variant(3, "BAG")]);
        let all = vec![
            listing("MUG", "P2", "ACTIVATE"),
            listing("MUG", "P1", "ACTIVATE"),
            listing("MUG", "P0", "DELETED"),
            listing("CAP", "P3", "SELLER_DEACTIVATED"),
            listing("CAP", "P4", "DRAFT"),
            listing("OLD", "P5", "PLATFORM_DEACTIVATED"),
        ];
        c.set_tiktok(all.clone());
        assert_eq!(products(&c.tiktok_listings("MUG")), vec!["P1", "P2"]);
        assert!(c.tiktok_listings("CAP").is_empty());
        // Only live listings are matched: CAP's variant counts as not sold on TikTok.
        assert_eq!(c.matched(), vec![("MUG".to_string(), 1)]);
        let r = c.report();
        assert!(r.only_tiktok.is_empty(), "{r:?}");
        assert_eq!(r.only_katana, vec!["BAG".to_string(), "CAP".to_string()]);

        let listings = c.listing_report(&all);
        assert_eq!(
            listings.no_live_listing,
            vec![
                InactiveListing {
                    seller_sku: "CAP".into(),
                    products: vec![
                        ("P3".into(), "SELLER_DEACTIVATED".into()),
                        ("P4".into(), "DRAFT".into())
                    ],
                    katana_variant: true,
                },
                InactiveListing {
                    seller_sku: "OLD".into(),
                    products: vec![("P5".into(), "PLATFORM_DEACTIVATED".into())],
                    katana_variant: false,
                },
            ]
        );
        assert_eq!(
            listings.several_live_listings,
            vec![SharedListing {
                seller_sku: "MUG".into(),
                products: vec!["P1".into(), "P2".into()],
            }]
        );
    }

    #[test]
    fn exact_matching_is_the_default_and_aliases_bridge_the_exceptions() {
        let mut aliases = BTreeMap::new();
        aliases.insert("TT-MUG".to_string(), "MUG-01".to_string());
        let c = Catalogue::new(SkuRules {
            mode: SkuMatch::Exact,
            aliases,
        });
        c.set_katana_variants(&[variant(1, "MUG-01"), variant(2, "Cap")]);
        c.set_tiktok(vec![entry("TT-MUG"), entry("cap"), entry("BAG")]);
        assert_eq!(c.variant_for("TT-MUG"), Some(1));
        assert_eq!(c.variant_for("cap"), None);
        let r = c.report();
        assert_eq!(r.matched, vec![("TT-MUG".to_string(), 1)]);
        assert_eq!(r.only_tiktok, vec!["BAG".to_string(), "cap".to_string()]);
        assert_eq!(r.only_katana, vec!["Cap".to_string()]);
        assert_eq!(c.seller_skus_for_variant(1), vec!["TT-MUG".to_string()]);
    }

    #[test]
    fn case_insensitive_matching_folds_both_sides() {
        let c = Catalogue::new(SkuRules {
            mode: SkuMatch::CaseInsensitive,
            aliases: BTreeMap::new(),
        });
        c.set_katana_variants(&[variant(2, "Cap")]);
        assert_eq!(c.variant_for("CAP"), Some(2));
    }
}
