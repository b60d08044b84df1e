//! `tks check` on the Katana side: the API key, the mapped locations, the variants.

use crate::clock::Clock;
use crate::config::{FbtMode, Settings};
use crate::connectors::katana::client::{KatanaClient, KatanaConfig};
use crate::connectors::katana::model::{Location, Variant};

use super::report::{list, CheckReport, Status};
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

    let w = &settings.warehouses;
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
            "katana.pickup_location",
            unset("warehouses.pickup_location_id (sales orders are created there)"),
        );
    } else {
        check_location(
            r,
            &locations,
            w.pickup_location_id,
            "katana.pickup_location",
            "warehouses.pickup_location_id",
            Status::Fail,
            "sales orders are created there and Katana refuses them at a location with selling disabled",
            &sellable_list(),
        );
    }

    if w.return_location_id == 0 {
        r.push(
            Status::Warn,
            "katana.return_location",
            unset("warehouses.return_location_id (where TikTok returns are restocked)"),
        );
    } else {
        check_location(
            r,
            &locations,
            w.return_location_id,
            "katana.return_location",
            "warehouses.return_location_id",
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
                "katana.fbt_location",
                unset(
                    "warehouses.fbt_location_id (needed by sync.fbt_orders = \"record_as_done\")",
                ),
            );
        }
    } else {
        check_location(
            r,
            &locations,
            w.fbt_location_id,
            "katana.fbt_location",
            "warehouses.fbt_location_id",
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
                "katana.fbt_location",
                "the FBT location is the pickup location: stock TikTok shipped from its own warehouse would also leave the pickup location",
            );
        }
    }

    match client.all_variants().await {
        Ok(v) => Some(v),
        Err(e) => {
            r.push(Status::Fail, "katana.variants", e.to_string());
            None
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
