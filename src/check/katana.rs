//! `tks check` on the Katana side: the API key, the mapped locations, the variants.

use crate::clock::Clock;
use crate::config::{FbtMode, Settings, ShopSettings};
use crate::connectors::katana::client::{KatanaClient, KatanaConfig};
use crate::connectors::katana::model::{Location, Variant};

use super::report::{list, CheckReport, Status};
use super::scope::Scope;
use super::CheckOptions;

pub(super) struct KatanaPart {
    pub(super) report: CheckReport,
    pub(super) variants: Option<Vec<Variant>>,
}

pub(super) async fn checks(
    settings: &Settings,
    clock: Clock,
    options: &CheckOptions,
) -> KatanaPart {
    let mut report = CheckReport::default();
    let variants = katana_inner(&mut report, settings, clock, options).await;
    KatanaPart { report, variants }
}

async fn katana_inner(
    r: &mut CheckReport,
    settings: &Settings,
    clock: Clock,
    options: &CheckOptions,
) -> Option<Vec<Variant>> {
    if settings.katana.api_key.is_empty() {
        r.push(
            Status::Fail,
            "katana.api_key",
            "katana.api_key is not set (TKS_KATANA__API_KEY)",
        );
        return None;
    }
    let mut cfg = KatanaConfig::from_settings(&settings.katana);
    cfg.timeout = options.katana_timeout;
    cfg.backoff = options.katana_backoff;
    let client = match KatanaClient::new(cfg, clock) {
        Ok(c) => c,
        Err(e) => {
            r.push(Status::Fail, "katana.api", e.to_string());
            return None;
        }
    };
    let locations = match client.locations().await {
        Ok(l) => l,
        Err(e) if matches!(e.status(), Some(401) | Some(403)) => {
            r.push(
                Status::Fail,
                "katana.api_key",
                format!("Katana refused the API key: {e}"),
            );
            return None;
        }
        Err(e) => {
            r.push(Status::Fail, "katana.api", e.to_string());
            return None;
        }
    };
    r.push(
        Status::Ok,
        "katana.api_key",
        format!("API key accepted ({} location(s))", locations.len()),
    );

    // With `[[shops]]` the primary shop is the first table, not `[warehouses]`.
    let served = settings.served_shops();
    shop_locations(
        r,
        settings,
        &Scope::primary(settings),
        &served[0],
        &locations,
    );
    for (i, shop) in served.iter().enumerate().skip(1) {
        shop_locations(r, settings, &Scope::shop(i, &shop.id), shop, &locations);
    }

    match client.all_variants().await {
        Ok(v) => Some(v),
        Err(e) => {
            r.push(Status::Fail, "katana.variants", e.to_string());
            None
        }
    }
}

/// One shop's Katana locations: where its SOs are created, where its stock is
/// counted, where its returns and its fulfilled-by-TikTok orders go.
fn shop_locations(
    r: &mut CheckReport,
    settings: &Settings,
    scope: &Scope,
    w: &ShopSettings,
    locations: &[Location],
) {
    let sellable: Vec<&Location> = locations.iter().filter(|l| l.sales_allowed).collect();
    let sellable_list = || list(&sellable, |l| format!("{} ({:?})", l.id, l.name));
    let unset = |what: &str| {
        format!(
            "{what} is not set; locations that allow sales: {}",
            sellable_list()
        )
    };

    if w.pickup_location_id == 0 {
        r.push(
            Status::Fail,
            &scope.check("katana.pickup_location"),
            unset(&format!(
                "{} (sales orders are created there)",
                scope.key("pickup_location_id")
            )),
        );
    } else {
        check_location(
            r,
            locations,
            w.pickup_location_id,
            &scope.check("katana.pickup_location"),
            &scope.key("pickup_location_id"),
            Status::Fail,
            "sales orders are created there and Katana refuses them at a location with selling disabled",
            &sellable_list(),
        );
    }

    if w.return_location_id == 0 {
        r.push(
            Status::Warn,
            &scope.check("katana.return_location"),
            unset(&format!(
                "{} (where TikTok returns are restocked)",
                scope.key("return_location_id")
            )),
        );
    } else {
        check_location(
            r,
            locations,
            w.return_location_id,
            &scope.check("katana.return_location"),
            &scope.key("return_location_id"),
            // Nothing this service does creates a sales order there, so it is not blocking.
            Status::Warn,
            "returned stock restocked there cannot be sold from it",
            &sellable_list(),
        );
    }

    let record_as_done = settings.sync.fbt_orders == FbtMode::RecordAsDone;
    if w.fbt_location_id == 0 {
        if record_as_done {
            r.push(
                Status::Fail,
                &scope.check("katana.fbt_location"),
                unset(&format!(
                    "{} (needed by sync.fbt_orders = \"record_as_done\")",
                    scope.key("fbt_location_id")
                )),
            );
        }
    } else {
        check_location(
            r,
            locations,
            w.fbt_location_id,
            &scope.check("katana.fbt_location"),
            &scope.key("fbt_location_id"),
            if record_as_done {
                Status::Fail
            } else {
                Status::Warn
            },
            "Done sales orders of fulfilled-by-TikTok orders are created there",
            &sellable_list(),
        );
        if record_as_done && w.fbt_location_id == w.pickup_location_id {
            r.push(
                Status::Warn,
                &scope.check("katana.fbt_location"),
                "the FBT location is the pickup location: stock TikTok shipped from its own warehouse would also leave the pickup location",
            );
        }
    }
    // Stock counted from locations that do not exist is stock never offered.
    if !w.locations.is_empty() {
        let missing: Vec<i64> = w
            .locations
            .iter()
            .copied()
            .filter(|id| !locations.iter().any(|l| l.id == *id))
            .collect();
        if missing.is_empty() {
            r.push(
                Status::Ok,
                &scope.check("katana.stock_locations"),
                format!("stock counted from locations {:?}", w.locations),
            );
        } else {
            r.push(
                Status::Fail,
                &scope.check("katana.stock_locations"),
                format!(
                    "{} lists {missing:?}: no such Katana location; locations that allow sales: {}",
                    scope.key("locations"),
                    sellable_list()
                ),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_location(
    r: &mut CheckReport,
    all: &[Location],
    id: i64,
    check: &str,
    key: &str,
    no_sales: Status,
    why_sales: &str,
    sellable: &str,
) {
    match all.iter().find(|l| l.id == id) {
        None => r.push(
            Status::Fail,
            check,
            format!("{key} = {id}: no such Katana location; locations that allow sales: {sellable}"),
        ),
        Some(l) if !l.sales_allowed => r.push(
            no_sales,
            check,
            format!(
                "{key} = {id} ({:?}) does not allow sales: {why_sales}; enable selling for it in Katana or pick one of: {sellable}",
                l.name
            ),
        ),
        Some(l) => r.push(
            Status::Ok,
            check,
            format!("{id} ({:?}) exists and allows sales", l.name),
        ),
    }
}
