//! `tks check`: reads both APIs with the configured credentials and reports, line by
//! line, whether the prerequisites of the flows hold (F2, F16, F17): TikTok tokens,
//! the pickup and return warehouses, seller shipping and its providers, the
//! `[carriers]` table, the Katana key and mapped locations, how the two catalogues
//! match, which SKUs have no live TikTok listing or several (F28), and the shop name
//! sales orders carry. A FAIL is a problem that blocks a flow; a WARN works but
//! deserves a look. Nothing is written anywhere except a refreshed TikTok token.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::app::token_file_for;
use crate::catalogue::{Catalogue, ListingReport, MatchReport, SkuRules};
use crate::clock::Clock;
use crate::config::{ArrangeShipmentOn, CustomerMode, HandoverMethod};
use crate::config::{FbtMode, Settings};
use crate::connectors::katana::client::{KatanaClient, KatanaConfig};
use crate::connectors::katana::mapping::store_name;
use crate::connectors::katana::model::{Location, Variant};
use crate::connectors::tiktok::auth::{FileTokenStore, TokenStore};
use crate::connectors::tiktok::client::{ClientOptions, TikTokClient};
use crate::connectors::tiktok::mapping::CatalogueEntry;
use crate::connectors::tiktok::market;
use crate::connectors::tiktok::model::{AuthorizedShop, Warehouse};
use crate::connectors::Backoff;
use crate::operator::unix_time;

/// A refresh token closer than this to expiry is a warning: when it lapses the
/// seller has to authorise the app again by hand.
pub const REFRESH_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);
/// Names listed per line before "... and N more"; the JSON form has them all.
const LIST_LIMIT: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub status: Status,
    /// What was checked, e.g. `tiktok.pickup_warehouse`.
    pub check: String,
    /// The reason, in words an operator can act on.
    pub detail: String,
}

/// Something TikTok lists (a delivery option, a shipping provider), for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub id: String,
    pub name: String,
    /// The delivery option type (`SEND_BY_SELLER`, ...); empty for providers.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    pub shop: Option<AuthorizedShop>,
    /// Delivery options of the pickup warehouse.
    pub delivery_options: Vec<Listed>,
    /// Providers of the pickup warehouse's seller-shipping options (F17).
    pub shipping_providers: Vec<Listed>,
    pub sku_match: Option<MatchReport>,
    pub listings: Option<ListingReport>,
}

impl CheckReport {
    fn push(&mut self, status: Status, check: &str, detail: impl Into<String>) {
        self.findings.push(Finding {
            status,
            check: check.to_string(),
            detail: detail.into(),
        });
    }

    /// The worst status of any line.
    pub fn verdict(&self) -> Status {
        self.findings
            .iter()
            .map(|f| f.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// No blocking problem: the process exits 0.
    pub fn passed(&self) -> bool {
        self.verdict() != Status::Fail
    }

    pub fn count(&self, status: Status) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }

    pub fn find(&self, check: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == check)
    }

    pub fn verdict_line(&self) -> String {
        let (fails, warns) = (self.count(Status::Fail), self.count(Status::Warn));
        match self.verdict() {
            Status::Ok => format!("verdict: OK ({} checks passed)", self.findings.len()),
            Status::Warn => format!("verdict: WARN (ready to run, {warns} warning(s) to review)"),
            Status::Fail => format!(
                "verdict: FAIL ({fails} blocking problem(s), {warns} warning(s)): fix the FAIL lines before `tks serve`"
            ),
        }
    }

    /// The human form: one aligned line per finding, then the verdict.
    pub fn render(&self) -> String {
        let width = self
            .findings
            .iter()
            .map(|f| f.check.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for f in &self.findings {
            let _ = writeln!(
                out,
                "{:<4}  {:width$}  {}",
                f.status.label(),
                f.check,
                f.detail
            );
        }
        let _ = writeln!(out, "{}", self.verdict_line());
        out
    }

    /// The machine form of `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "verdict": self.verdict(),
            "passed": self.passed(),
            "checks": self.findings,
            "tiktok": {
                "shop": self.shop,
                "delivery_options": self.delivery_options,
                "shipping_providers": self.shipping_providers,
            },
            "sku_match": self.sku_match,
            "listings": self.listings,
        })
    }
}

/// Client tuning for a check; tests shorten the timeouts.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub tiktok_client: ClientOptions,
    pub katana_timeout: Duration,
    pub katana_backoff: Backoff,
    /// Where TikTok tokens are kept (default: next to the database).
    pub token_file: Option<PathBuf>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        // A check should answer in seconds: one quick retry, not the service's
        // patient back-off.
        let backoff = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(2),
            max_attempts: 2,
        };
        CheckOptions {
            tiktok_client: ClientOptions {
                backoff,
                timeout: Duration::from_secs(15),
                // Refresh only a token that has actually expired: refreshing rotates
                // the refresh token, and a running `tks serve` would still hold the
                // old one.
                refresh_margin: Duration::ZERO,
            },
            katana_timeout: Duration::from_secs(15),
            katana_backoff: backoff,
            token_file: None,
        }
    }
}

fn list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return "none".into();
    }
    let mut s: Vec<String> = items.iter().take(LIST_LIMIT).map(show).collect();
    if items.len() > LIST_LIMIT {
        s.push(format!("... and {} more", items.len() - LIST_LIMIT));
    }
    s.join(", ")
}

fn date(secs: i64) -> String {
    unix_time(secs)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("unix {secs}"))
}

/// Runs every check. Never fails as a whole: what cannot be checked is a line.
pub async fn run(settings: &Settings, clock: Clock, options: &CheckOptions) -> CheckReport {
    let (tiktok, katana) = futures::join!(
        tiktok_checks(settings, clock.clone(), options),
        katana_checks(settings, clock, options)
    );
    let mut report = tiktok.report;
    report.findings.extend(katana.report.findings);
    match (tiktok.catalogue, katana.variants) {
        (Some(entries), Some(variants)) => sku_match(&mut report, settings, entries, &variants),
        _ => report.push(
            Status::Warn,
            "sku_match",
            "skipped: needs both the TikTok catalogue and the Katana variants (see the lines above)",
        ),
    }
    report
}

struct TikTokPart {
    report: CheckReport,
    catalogue: Option<Vec<CatalogueEntry>>,
}

async fn tiktok_checks(settings: &Settings, clock: Clock, options: &CheckOptions) -> TikTokPart {
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
    let s = &settings.tiktok;
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
    let now = clock.unix();
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
            "tiktok.token",
            format!("the refresh token expired at {refresh_at}: authorise the app again and run `tks connect tiktok --auth-code CODE`"),
        );
        return None;
    } else if refresh_left < REFRESH_WARNING.as_secs() as i64 {
        r.push(
            Status::Warn,
            "tiktok.token",
            format!(
                "{access}; the refresh token expires at {refresh_at} ({} day(s)): authorise again before then",
                refresh_left / 86_400
            ),
        );
    } else {
        r.push(
            Status::Ok,
            "tiktok.token",
            format!("{access}; refresh token valid until {refresh_at}"),
        );
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

    let w = &settings.warehouses;
    let pickup = check_warehouse(
        r,
        &warehouses,
        &w.pickup_warehouse_id,
        WarehouseRole::Pickup,
    );
    check_warehouse(
        r,
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
enum WarehouseRole {
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
            WarehouseRole::Pickup => "warehouses.pickup_warehouse_id",
            WarehouseRole::Return => "warehouses.return_warehouse_id",
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
fn check_warehouse(
    r: &mut CheckReport,
    all: &[Warehouse],
    id: &str,
    role: WarehouseRole,
) -> Option<String> {
    let wanted = role.wanted_type();
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
            role.check(),
            format!("{} is not set; {wanted}s: {}", role.key(), options()),
        );
        return None;
    }
    let Some(found) = all.iter().find(|w| w.id == id) else {
        r.push(
            Status::Fail,
            role.check(),
            format!(
                "{} = {id}: no such TikTok warehouse; {wanted}s: {}",
                role.key(),
                options()
            ),
        );
        return None;
    };
    let mut problems = Vec::new();
    if found.warehouse_type != wanted {
        problems.push(format!(
            "is a {} (needs {wanted})",
            if found.warehouse_type.is_empty() {
                "warehouse of unknown type"
            } else {
                &found.warehouse_type
            }
        ));
    }
    if found.effect_status != "ENABLED" {
        problems.push(format!(
            "is {} (needs ENABLED)",
            if found.effect_status.is_empty() {
                "of unknown status"
            } else {
                &found.effect_status
            }
        ));
    }
    if problems.is_empty() {
        r.push(
            Status::Ok,
            role.check(),
            format!("{id} {:?}: {wanted}, ENABLED", found.name),
        );
    } else {
        r.push(
            Status::Fail,
            role.check(),
            format!(
                "{} = {id} {:?} {}; {wanted}s: {}",
                role.key(),
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

struct KatanaPart {
    report: CheckReport,
    variants: Option<Vec<Variant>>,
}

async fn katana_checks(settings: &Settings, clock: Clock, options: &CheckOptions) -> KatanaPart {
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

fn sku_match(
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
    fn verdict_is_the_worst_line() {
        let mut r = CheckReport::default();
        assert_eq!(r.verdict(), Status::Ok);
        r.push(Status::Ok, "a", "fine");
        r.push(Status::Warn, "b", "hm");
        assert_eq!(r.verdict(), Status::Warn);
        assert!(r.passed());
        r.push(Status::Fail, "c", "broken");
        assert_eq!(r.verdict(), Status::Fail);
        assert!(!r.passed());
        let text = r.render();
        assert!(text.contains("FAIL  c  broken"), "{text}");
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("verdict: FAIL (1 blocking problem(s), 1 warning(s))"),
            "{text}"
        );
        assert_eq!(r.to_json()["verdict"], "FAIL");
        assert_eq!(r.to_json()["checks"][2]["status"], "FAIL");
    }

    #[test]
    fn a_warehouse_must_exist_have_the_right_type_and_be_enabled() {
        let all = vec![
            wh("1", "SALES_WAREHOUSE", "ENABLED"),
            wh("2", "SALES_WAREHOUSE", "DISABLED"),
            wh("3", "RETURN_WAREHOUSE", "ENABLED"),
        ];
        let mut r = CheckReport::default();
        assert_eq!(
            check_warehouse(&mut r, &all, "1", WarehouseRole::Pickup),
            Some("1".into())
        );
        check_warehouse(&mut r, &all, "2", WarehouseRole::Pickup);
        check_warehouse(&mut r, &all, "3", WarehouseRole::Pickup);
        assert_eq!(
            check_warehouse(&mut r, &all, "9", WarehouseRole::Pickup),
            None
        );
        check_warehouse(&mut r, &all, "", WarehouseRole::Return);
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
