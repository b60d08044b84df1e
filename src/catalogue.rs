//! Which TikTok SKU is which Katana variant: both catalogues as last read, and the
//! matching rules (exact, case-insensitive, an alias table). Kept in memory and
//! refreshed from the APIs; the decisions it feeds are recorded as `SkuMapped`.

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
    /// TikTok seller_sku -> catalogue entry.
    tiktok: HashMap<String, CatalogueEntry>,
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

    pub fn set_tiktok(&self, entries: Vec<CatalogueEntry>) {
        let mut m = self.maps.write();
        m.tiktok = entries
            .into_iter()
            .map(|e| (e.seller_sku.clone(), e))
            .collect();
    }

    pub fn variant_for(&self, seller_sku: &str) -> Option<i64> {
        self.maps
            .read()
            .variants
            .get(&self.rules.katana_key(seller_sku))
            .copied()
    }

    pub fn tiktok_entry(&self, seller_sku: &str) -> Option<CatalogueEntry> {
        self.maps.read().tiktok.get(seller_sku).cloned()
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
        CatalogueEntry {
            product_id: "P".into(),
            product_title: "T".into(),
            product_status: "ACTIVATE".into(),
            sku_id: format!("id-{sku}"),
            seller_sku: sku.into(),
            warehouses: vec![],
        }
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
