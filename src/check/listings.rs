//! `tks check` across both catalogues: how the SKUs match, and which have no live
//! TikTok listing or several (F28).

use crate::catalogue::{Catalogue, ListingReport, SkuRules};
use crate::config::Settings;
use crate::connectors::katana::model::Variant;
use crate::connectors::tiktok::mapping::CatalogueEntry;

use super::report::{list, CheckReport, Status};

pub(super) fn sku_match(
    r: &mut CheckReport,
    settings: &Settings,
    entries: Vec<CatalogueEntry>,
    variants: &[Variant],
) {
    let catalogue = Catalogue::new(SkuRules::from_settings(&settings.sync));
    let tiktok_count = entries.iter().filter(|e| e.is_live()).count();
    catalogue.set_katana_variants(variants);
    let listings = catalogue.listing_report(&entries);
    catalogue.set_tiktok(entries);
    let m = catalogue.report();
    if tiktok_count == 0 {
        r.push(
            Status::Warn,
            "sku_match",
            "the TikTok catalogue has no live (ACTIVATE) SKUs: nothing can be matched or synced",
        );
    } else if m.only_tiktok.is_empty() {
        r.push(
            Status::Ok,
            "sku_match",
            format!(
                "all {} TikTok SKU(s) match a Katana variant ({:?} matching)",
                m.matched.len(),
                settings.sync.sku_match
            ),
        );
    } else {
        r.push(
            Status::Warn,
            "sku_match",
            format!(
                "{} matched; {} TikTok SKU(s) have no Katana variant: {} (their orders wait as exceptions until the variant \
                 exists; [sync] sku_aliases bridges different spellings)",
                m.matched.len(),
                m.only_tiktok.len(),
                list(&m.only_tiktok, String::clone)
            ),
        );
    }
    if !m.only_katana.is_empty() {
        r.push(
            Status::Ok,
            "sku_match.katana_only",
            format!(
                "{} Katana SKU(s) are not sold on TikTok: {}",
                m.only_katana.len(),
                list(&m.only_katana, String::clone)
            ),
        );
    }
    r.sku_match = Some(m);
    report_listings(r, &listings);
    r.listings = Some(listings);
}

/// F28: SKUs whose listings are all inactive get no stock, and a SKU on several live
/// products gets the same quantity on each.
fn report_listings(r: &mut CheckReport, listings: &ListingReport) {
    let named = |l: &&crate::catalogue::InactiveListing| {
        format!(
            "{} ({})",
            l.seller_sku,
            l.products
                .iter()
                .map(|(p, status)| format!("product {p} {status}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let (katana, tiktok_only): (Vec<_>, Vec<_>) = listings
        .no_live_listing
        .iter()
        .partition(|l| l.katana_variant);
    if !katana.is_empty() {
        r.push(
            Status::Warn,
            "listings.no_live_listing",
            format!(
                "{} Katana SKU(s) are on TikTok only in listings that are not live, so their stock is not pushed: {}; \
                 activate a listing in Seller Center",
                katana.len(),
                list(&katana, named)
            ),
        );
    }
    if !tiktok_only.is_empty() {
        r.push(
            Status::Ok,
            "listings.not_live",
            format!(
                "{} TikTok SKU(s) without a Katana variant are only in listings that are not live (ignored): {}",
                tiktok_only.len(),
                list(&tiktok_only, named)
            ),
        );
    }
    if !listings.several_live_listings.is_empty() {
        r.push(
            Status::Warn,
            "listings.several_live",
            format!(
                "{} SKU(s) are listed on several live products, and each listing is pushed the full quantity, \
                 so buyers see the stock once per listing until an order lowers it: {}",
                listings.several_live_listings.len(),
                list(&listings.several_live_listings, |l| format!(
                    "{} (products {})",
                    l.seller_sku,
                    l.products.join(", ")
                ))
            ),
        );
    }
}
