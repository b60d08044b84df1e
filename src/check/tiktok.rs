//! `tks check` on the TikTok side: tokens, the authorised shop and its market,
//! warehouses, delivery options and shipping providers, the `[carriers]` table.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Settings;
use crate::config::{ArrangeShipmentOn, CustomerMode, HandoverMethod};
use crate::connectors::katana::client::KatanaClient;
use crate::connectors::katana::mapping::store_name;
use crate::connectors::tiktok::auth::token_file_for;
use crate::connectors::tiktok::auth::Tokens;
use crate::connectors::tiktok::auth::{FileTokenStore, TokenStore};
use crate::connectors::tiktok::client::TikTokClient;
use crate::connectors::tiktok::mapping::CatalogueEntry;
use crate::connectors::tiktok::market;
use crate::connectors::tiktok::model::Warehouse;
use crate::operator::unix_time;

use super::report::{list, CheckReport, Listed, Status};
use super::scope::Scope;
use super::CheckOptions;

/// A refresh token closer than this to expiry is a warning: when it lapses the
/// seller has to authorise the app again by hand.
pub const REFRESH_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

fn date(secs: i64) -> String {
    unix_time(secs)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("unix {secs}"))
}

pub(super) struct TikTokPart {
    pub(super) report: CheckReport,
    pub(super) catalogue: Option<Vec<CatalogueEntry>>,
}

pub(super) async fn checks(
    settings: &Settings,
    clock: Clock,
    options: &CheckOptions,
) -> TikTokPart {
    let mut report = CheckReport::default();
    let catalogue = tiktok_inner(&mut report, settings, clock, options).await;
    TikTokPart { report, catalogue }
}

/// Returns the TikTok catalogue when it could be read.
async fn tiktok_inner(
    r: &mut CheckReport,
    settings: &Settings,
    clock: Clock,
    options: &CheckOptions,
) -> Option<Vec<CatalogueEntry>> {
    let primary = settings.primary_tiktok();
    let s = &primary;
    if s.app_key.is_empty() || s.app_secret.is_empty() {
        r.push(
            Status::Fail,
            "tiktok.credentials",
            "tiktok.app_key and tiktok.app_secret are not set (TKS_TIKTOK__APP_KEY, TKS_TIKTOK__APP_SECRET)",
        );
        return None;
    }
    let path = options
        .token_file
        .clone()
        .unwrap_or_else(|| token_file_for(&settings.store.path));
    let store: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(path.clone()));
    let client = match TikTokClient::new(s, clock.clone(), store, options.tiktok_client) {
        Ok(c) => c,
        Err(e) => {
            r.push(Status::Fail, "tiktok.token", e.to_string());
            return None;
        }
    };
    let Some(tokens) = client.tokens().await else {
        r.push(
            Status::Fail,
            "tiktok.token",
            format!(
                "not connected (no tokens in {}): run `tks connect tiktok --auth-code CODE`",
                path.display()
            ),
        );
        return None;
    };
    // The first call refreshes an access token that has expired: report the tokens
    // as they are after it.
    let warehouses = client.warehouses().await;
    let tokens = client.tokens().await.unwrap_or(tokens);
    if !report_tokens(r, "tiktok.token", &tokens, clock.unix()) {
        return None;
    }

    match &tokens.shop {
        Some(shop) if !s.shop_id.is_empty() && shop.id != s.shop_id => {
            r.push(
                Status::Fail,
                "tiktok.shop",
                format!(
                    "the stored authorisation is for shop {} ({}) but tiktok.shop_id is {}: connect the configured shop",
                    shop.id, shop.name, s.shop_id
                ),
            );
            return None;
        }
        Some(shop) => {
            r.push(
                Status::Ok,
                "tiktok.shop",
                format!(
                    "{:?} (id {}, region {}, cipher {})",
                    shop.name, shop.id, shop.region, shop.cipher
                ),
            );
            r.shop = Some(shop.clone());
        }
        None if client.shop_cipher().is_empty() => {
            r.push(
                Status::Fail,
                "tiktok.shop",
                "no shop is bound to the stored authorisation and tiktok.shop_cipher is empty: run `tks connect tiktok --auth-code CODE`",
            );
            return None;
        }
        None => r.push(
            Status::Ok,
            "tiktok.shop",
            format!(
                "shop cipher {} (from tiktok.shop_cipher)",
                client.shop_cipher()
            ),
        ),
    }

    let warehouses = match warehouses {
        Ok(w) => w,
        Err(e) => {
            r.push(Status::Fail, "tiktok.api", e.to_string());
            return None;
        }
    };
    check_shop_name(r, &client, settings).await;
    r.push(
        Status::Ok,
        "tiktok.api",
        format!(
            "TikTok answers with the stored token ({} warehouse(s))",
            warehouses.len()
        ),
    );

    // With `[[shops]]` the primary shop is the first table, not `[warehouses]`.
    let w = &settings.served_shops()[0];
    let scope = Scope::primary(settings);
    let pickup = check_warehouse(
        r,
        &scope,
        &warehouses,
        &w.pickup_warehouse_id,
        WarehouseRole::Pickup,
    );
    check_warehouse(
        r,
        &scope,
        &warehouses,
        &w.return_warehouse_id,
        WarehouseRole::Return,
    );

    let providers = match pickup {
        Some(id) => shipping(r, &client, &id, settings).await,
        None => None,
    };
    check_carriers(r, settings, providers.as_deref());

    match client.all_listings().await {
        Ok(entries) => Some(entries),
        Err(e) => {
            r.push(Status::Fail, "tiktok.catalogue", e.to_string());
            None
        }
    }
}

/// The lines about a seller's tokens under `check`; false when the refresh token
/// has expired, so nothing else of that seller can be checked.
pub(super) fn report_tokens(r: &mut CheckReport, check: &str, tokens: &Tokens, now: i64) -> bool {
    let access = if tokens.access_token_expire_in > now {
        format!(
            "access token valid until {} (refreshed automatically)",
            date(tokens.access_token_expire_in)
        )
    } else {
        format!(
            "access token expired at {}, refreshed on the next call",
            date(tokens.access_token_expire_in)
        )
    };
    let refresh_left = tokens.refresh_token_expire_in - now;
    let refresh_at = date(tokens.refresh_token_expire_in);
    if refresh_left <= 0 {
        r.push(
            Status::Fail,
            check,
            format!("the refresh token expired at {refresh_at}: authorise the app again and run `tks connect tiktok --auth-code CODE`"),
        );
        return false;
    } else if refresh_left < REFRESH_WARNING.as_secs() as i64 {
        r.push(
            Status::Warn,
            check,
            format!(
                "{access}; the refresh token expires at {refresh_at} ({} day(s)): authorise again before then",
                refresh_left / 86_400
            ),
        );
    } else {
        r.push(
            Status::Ok,
            check,
            format!("{access}; refresh token valid until {refresh_at}"),
        );
    }
    true
}

/// F1: sales orders carry the shop's name as TikTok lists it now (the stored
/// authorisation may hold an older one).
async fn check_shop_name(r: &mut CheckReport, client: &TikTokClient, settings: &Settings) {
    let bound = r.shop.clone();
    let id = bound
        .as_ref()
        .map(|s| s.id.clone())
        .unwrap_or_else(|| settings.tiktok.shop_id.clone());
    let listed = match client.authorized_shops().await {
        Ok(shops) if id.is_empty() && shops.len() == 1 => shops.into_iter().next(),
        Ok(shops) => shops.into_iter().find(|s| s.id == id).or(bound),
        Err(e) => {
            tracing::warn!(error = %e, "authorised shops not read; using the stored shop");
            bound
        }
    };
    check_market(r, listed.as_ref().map(|s| s.region.as_str()), settings);
    let name = store_name(listed.as_ref().map(|s| s.name.as_str()), &id);
    let customer = match settings.katana.customer {
        CustomerMode::PerBuyer => String::new(),
        CustomerMode::Generic => format!(
            "; the generic customer is {:?}",
            KatanaClient::generic_customer_name(&name.name)
        ),
    };
    if name.fallback {
        r.push(
            Status::Warn,
            "tiktok.shop_name",
            format!(
                "TikTok lists no name for shop {id}: sales orders carry {:?} as ecommerce_store_name instead{customer}; \
                 name the shop in Seller Center",
                name.name
            ),
        );
    } else {
        r.push(
            Status::Ok,
            "tiktok.shop_name",
            format!(
                "sales orders carry ecommerce_store_name {:?}{customer}",
                name.name
            ),
        );
    }
}

/// F25/F26: how this shop's orders will reach TikTok, from its market.
fn check_market(r: &mut CheckReport, region: Option<&str>, settings: &Settings) {
    let region = region.map(str::trim).filter(|r| !r.is_empty());
    let seller = if market::offers_mark_package_shipped(region) {
        "seller-shipped orders go out with Mark Package As Shipped"
    } else {
        "this market has no Mark Package As Shipped: seller-shipped orders go out with Ship Package (self_shipment), a partial delivery split into its own package first"
    };
    let arrange = match settings.tiktok.arrange_shipment_on {
        ArrangeShipmentOn::Packed => "packs",
        ArrangeShipmentOn::Delivered => "delivers",
    };
    let handover = match settings.tiktok.handover_method {
        HandoverMethod::Pickup => "collected in TikTok's earliest pickup slot",
        HandoverMethod::DropOff => "dropped off",
    };
    let tiktok = format!(
        "orders with TikTok's label are arranged when Katana {arrange} them and {handover}"
    );
    match region {
        Some(region) => r.push(
            Status::Ok,
            "tiktok.market",
            format!("shop in market {region}: {seller}; {tiktok}"),
        ),
        None => r.push(
            Status::Warn,
            "tiktok.market",
            format!(
                "TikTok lists no region for the shop, so {seller} as in the US; {tiktok}; reconnect (tks connect tiktok) to read it"
            ),
        ),
    }
}

#[derive(Clone, Copy)]
pub(super) enum WarehouseRole {
    Pickup,
    Return,
}

impl WarehouseRole {
    fn check(self) -> &'static str {
        match self {
            WarehouseRole::Pickup => "tiktok.pickup_warehouse",
            WarehouseRole::Return => "tiktok.return_warehouse",
        }
    }
    fn key(self) -> &'static str {
        match self {
            WarehouseRole::Pickup => "pickup_warehouse_id",
            WarehouseRole::Return => "return_warehouse_id",
        }
    }
    fn wanted_type(self) -> &'static str {
        match self {
            WarehouseRole::Pickup => "SALES_WAREHOUSE",
            WarehouseRole::Return => "RETURN_WAREHOUSE",
        }
    }
}

/// Checks one configured warehouse; returns its id when it exists (even if it is
/// unfit, so its delivery options can still be listed).
pub(super) fn check_warehouse(
    r: &mut CheckReport,
    scope: &Scope,
    all: &[Warehouse],
    id: &str,
    role: WarehouseRole,
) -> Option<String> {
    let wanted = role.wanted_type();
    let check = scope.check(role.check());
    let key = scope.key(role.key());
    let candidates: Vec<&Warehouse> = all.iter().filter(|w| w.warehouse_type == wanted).collect();
    let options = || {
        list(&candidates, |w| {
            format!("{} ({:?}, {})", w.id, w.name, w.effect_status)
        })
    };
    if id.is_empty() {
        // The service needs the pickup warehouse for inventory and shipping; the
        // return warehouse is TikTok's requirement, not one of our flows.
        let status = match role {
            WarehouseRole::Pickup => Status::Fail,
            WarehouseRole::Return => Status::Warn,
        };
        r.push(
            status,
            &check,
            format!("{} is not set; {wanted}s: {}", key, options()),
        );
        return None;
    }
    let Some(found) = all.iter().find(|w| w.id == id) else {
        r.push(
            Status::Fail,
            &check,
            format!(
                "{} = {id}: no such TikTok warehouse; {wanted}s: {}",
                key,
                options()
            ),
        );
        return None;
    };
    let problems = found.unfit_for(wanted);
    if problems.is_empty() {
        r.push(
            Status::Ok,
            &check,
            format!("{id} {:?}: {wanted}, ENABLED", found.name),
        );
    } else {
        r.push(
            Status::Fail,
            &check,
            format!(
                "{} = {id} {:?} {}; {wanted}s: {}",
                key,
                found.name,
                problems.join(" and "),
                options()
            ),
        );
    }
    Some(found.id.clone())
}

/// Delivery options of the pickup warehouse, its seller-shipping option and that
/// option's providers. Returns the providers when they could be read.
async fn shipping(
    r: &mut CheckReport,
    client: &TikTokClient,
    pickup: &str,
    settings: &Settings,
) -> Option<Vec<Listed>> {
    let options = match client.delivery_options(pickup).await {
        Ok(o) => o,
        Err(e) => {
            r.push(Status::Fail, "tiktok.delivery_options", e.to_string());
            return None;
        }
    };
    r.delivery_options = options
        .iter()
        .map(|o| Listed {
            id: o.id.clone(),
            name: o.name.clone(),
            kind: o.option_type.clone(),
        })
        .collect();
    r.push(
        Status::Ok,
        "tiktok.delivery_options",
        format!(
            "warehouse {pickup}: {}",
            list(&r.delivery_options, |o| format!(
                "{:?} ({}, id {})",
                o.name, o.kind, o.id
            ))
        ),
    );
    let seller: Vec<_> = options
        .iter()
        .filter(|o| o.option_type == "SEND_BY_SELLER")
        .collect();
    if seller.is_empty() {
        r.push(
            Status::Fail,
            "tiktok.seller_shipping",
            format!(
                "warehouse {pickup} has no SEND_BY_SELLER delivery option: enable seller shipping for it in Seller Center, \
                 otherwise Katana deliveries cannot be reported to TikTok as shipped"
            ),
        );
        return None;
    }
    r.push(
        Status::Ok,
        "tiktok.seller_shipping",
        format!(
            "seller shipping offered: {}",
            list(&seller, |o| format!("{:?} (id {})", o.name, o.id))
        ),
    );
    let mut providers = Vec::new();
    for o in &seller {
        match client.shipping_providers(&o.id).await {
            Ok(ps) => providers.extend(ps.into_iter().map(|p| Listed {
                id: p.id,
                name: p.name,
                kind: String::new(),
            })),
            Err(e) => {
                r.push(
                    Status::Fail,
                    "tiktok.shipping_providers",
                    format!("delivery option {}: {e}", o.id),
                );
                return None;
            }
        }
    }
    r.shipping_providers = providers.clone();
    if providers.is_empty() {
        let status = if settings.tiktok.push_fulfillment {
            Status::Fail
        } else {
            Status::Warn
        };
        r.push(
            status,
            "tiktok.shipping_providers",
            "seller shipping offers no shipping provider: a shipment cannot name its carrier",
        );
    } else {
        r.push(
            Status::Ok,
            "tiktok.shipping_providers",
            list(&providers, |p| format!("{:?} (id {})", p.name, p.id)),
        );
    }
    Some(providers)
}

/// `[carriers]` maps Katana carrier names to provider ids; an id TikTok does not
/// offer would make every shipment with that carrier fail.
fn check_carriers(r: &mut CheckReport, settings: &Settings, providers: Option<&[Listed]>) {
    let carriers = &settings.carriers;
    let Some(providers) = providers else {
        if !carriers.is_empty() {
            r.push(
                Status::Warn,
                "carriers",
                "cannot verify [carriers]: the shipping providers could not be read",
            );
        }
        return;
    };
    let known: BTreeSet<&str> = providers.iter().map(|p| p.id.as_str()).collect();
    let unknown: Vec<(&String, &String)> = carriers
        .iter()
        .filter(|(_, id)| !known.contains(id.as_str()))
        .collect();
    if !unknown.is_empty() {
        r.push(
            Status::Fail,
            "carriers",
            format!(
                "[carriers] names provider ids TikTok does not offer for the pickup warehouse: {}; known: {}",
                list(&unknown, |(name, id)| format!("{name:?} = {id:?}")),
                list(providers, |p| format!("{} = {:?}", p.id, p.name))
            ),
        );
    } else if carriers.is_empty() {
        r.push(
            Status::Ok,
            "carriers",
            "no [carriers] overrides: Katana carrier names are matched to TikTok provider names",
        );
    } else {
        r.push(
            Status::Ok,
            "carriers",
            format!(
                "{} [carriers] entr(ies) name known providers",
                carriers.len()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wh(id: &str, t: &str, status: &str) -> Warehouse {
        Warehouse {
            id: id.into(),
            name: format!("W{id}"),
            effect_status: status.into(),
            warehouse_type: t.into(),
            sub_type: None,
            is_default: false,
        }
    }

    #[test]
    fn a_warehouse_must_exist_have_the_right_type_and_be_enabled() {
        let all = vec![
            wh("1", "SALES_WAREHOUSE", "ENABLED"),
            wh("2", "SALES_WAREHOUSE", "DISABLED"),
            wh("3", "RETURN_WAREHOUSE", "ENABLED"),
        ];
        let mut r = CheckReport::default();
        let primary = Scope::primary(&Settings::default());
        assert_eq!(
            check_warehouse(&mut r, &primary, &all, "1", WarehouseRole::Pickup),
            Some("1".into())
        );
        check_warehouse(&mut r, &primary, &all, "2", WarehouseRole::Pickup);
        check_warehouse(&mut r, &primary, &all, "3", WarehouseRole::Pickup);
        assert_eq!(
            check_warehouse(&mut r, &primary, &all, "9", WarehouseRole::Pickup),
            None
        );
        check_warehouse(&mut r, &primary, &all, "", WarehouseRole::Return);
        let s: Vec<Status> = r.findings.iter().map(|f| f.status).collect();
        assert_eq!(
            s,
            vec![
                Status::Ok,
                Status::Fail,
                Status::Fail,
                Status::Fail,
                Status::Warn
            ]
        );
        assert!(r.findings[1].detail.contains("DISABLED (needs ENABLED)"));
        assert!(r.findings[2]
            .detail
            .contains("RETURN_WAREHOUSE (needs SALES_WAREHOUSE)"));
        // The fix is in the message: the warehouses that would do.
        assert!(
            r.findings[3].detail.contains("1 (\"W1\", ENABLED)"),
            "{}",
            r.findings[3].detail
        );
    }
}
