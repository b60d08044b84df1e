//! Typed settings: the TOML file of product.md, overridable key by key from the
//! environment as `TKS_<SECTION>__<KEY>`, with secrets in a type that never prints.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod shops;
pub use shops::ShopSettings;

/// A secret string. `Debug` and `Display` print a placeholder, so a settings dump or
/// a log line cannot leak it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<empty>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

/// Reads a string that may have arrived as a number: environment variables carry
/// no types, and TikTok ids (`7494726673780148744`) look like integers to figment.
fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        U(u64),
        I(i64),
        F(f64),
        B(bool),
    }
    Ok(match Text::deserialize(d)? {
        Text::S(s) => s,
        Text::U(n) => n.to_string(),
        Text::I(n) => n.to_string(),
        Text::F(n) => n.to_string(),
        Text::B(b) => b.to_string(),
    })
}

fn lenient_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    lenient_string(d).map(Secret)
}

fn lenient_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    struct Lenient(#[serde(deserialize_with = "lenient_string")] String);
    let raw: BTreeMap<String, Lenient> = BTreeMap::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub store: StoreSettings,
    pub server: ServerSettings,
    pub tiktok: TikTokSettings,
    pub katana: KatanaSettings,
    pub sync: SyncSettings,
    pub warehouses: WarehouseSettings,
    /// Katana carrier name -> TikTok `shipping_provider_id` (`default` for the rest).
    #[serde(deserialize_with = "lenient_map")]
    pub carriers: BTreeMap<String, String>,
    pub actors: ActorSettings,
    /// Several shops: one `[[shops]]` table each (see [`shops`]).
    pub shops: Vec<ShopSettings>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    pub path: String,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            path: "tks.db".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    #[serde(deserialize_with = "lenient_secret")]
    pub admin_token: Secret,
    pub public_url: String,
    /// A request must arrive whole (headers and body) within this; a sender that
    /// trickles or stops halfway gets 408 and its connection back.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: "127.0.0.1:8080".into(),
            admin_token: Secret::default(),
            public_url: String::new(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TikTokSettings {
    pub api_base: String,
    pub auth_base: String,
    #[serde(deserialize_with = "lenient_string")]
    pub app_key: String,
    #[serde(deserialize_with = "lenient_secret")]
    pub app_secret: Secret,
    #[serde(deserialize_with = "lenient_string")]
    pub shop_cipher: String,
    #[serde(deserialize_with = "lenient_string")]
    pub shop_id: String,
    pub pull_orders: bool,
    pub push_products: bool,
    pub push_inventory: bool,
    pub push_fulfillment: bool,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Requests per second this client allows itself (TikTok publishes no fixed limit).
    pub requests_per_second: u32,
    /// TikTok-shipping orders: the carrier collects (`pickup`, in a slot TikTok offers)
    /// or the warehouse drops the parcel off.
    pub handover_method: HandoverMethod,
    pub arrange_shipment_on: ArrangeShipmentOn,
}

impl Default for TikTokSettings {
    fn default() -> Self {
        TikTokSettings {
            api_base: "https://open-api.tiktokglobalshop.com".into(),
            auth_base: "https://auth.tiktok-shops.com".into(),
            app_key: String::new(),
            app_secret: Secret::default(),
            shop_cipher: String::new(),
            shop_id: String::new(),
            pull_orders: true,
            push_products: true,
            push_inventory: true,
            push_fulfillment: true,
            poll_interval: Duration::from_secs(300),
            requests_per_second: 20,
            handover_method: HandoverMethod::DropOff,
            arrange_shipment_on: crate::domain::Policy::default().arrange_shipment_on,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerMode {
    Generic,
    PerBuyer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCancel {
    Delete,
    Flag,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KatanaSettings {
    pub api_base: String,
    #[serde(deserialize_with = "lenient_secret")]
    pub api_key: Secret,
    #[serde(deserialize_with = "lenient_secret")]
    pub webhook_token: Secret,
    pub push_orders: bool,
    pub pull_products: bool,
    pub pull_inventory: bool,
    pub requests_per_minute: u32,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    pub customer: CustomerMode,
    pub order_no_prefix: String,
    pub on_cancel: OnCancel,
    /// How long a create whose outcome is unknown (timeout, lost connection, server
    /// error, restart mid-call) may still commit in Katana; the SO is looked up, and
    /// created only if absent, after this. Longer than any Katana request can take.
    #[serde(with = "humantime_serde")]
    pub create_settle: Duration,
    /// Stock re-reads Katana's webhooks ask for within this long are one
    /// `GET /inventory` for all their SKUs. Short: a stock decrease waits for it.
    #[serde(with = "humantime_serde")]
    pub coalesce_stock_reads: Duration,
    /// Fulfillment re-reads asked for within this long are one list of the
    /// fulfillments changed since the last one.
    #[serde(with = "humantime_serde")]
    pub coalesce_fulfillment_reads: Duration,
}

impl Default for KatanaSettings {
    fn default() -> Self {
        KatanaSettings {
            api_base: "https://api.katanamrp.com/v1".into(),
            api_key: Secret::default(),
            webhook_token: Secret::default(),
            push_orders: true,
            pull_products: true,
            pull_inventory: true,
            requests_per_minute: 60,
            poll_interval: Duration::from_secs(300),
            customer: CustomerMode::Generic,
            order_no_prefix: "TT-".into(),
            on_cancel: OnCancel::Delete,
            create_settle: Duration::from_secs(300),
            coalesce_stock_reads: Duration::from_secs(30),
            coalesce_fulfillment_reads: Duration::from_secs(120),
        }
    }
}

/// The decision modes are the domain's; the settings name them.
pub use crate::domain::modes::{ArrangeShipmentOn, BufferMode, FbtMode};

impl From<&Settings> for crate::domain::Policy {
    fn from(settings: &Settings) -> Self {
        let s = &settings.sync;
        crate::domain::Policy {
            order_hold: s.order_hold,
            inventory_buffer: s.inventory_buffer,
            buffer_mode: s.buffer_mode,
            safety_stock: s.safety_stock,
            fbt_orders: s.fbt_orders,
            arrange_shipment_on: settings.tiktok.arrange_shipment_on,
            shops: settings.shop_stock(),
        }
    }
}

/// How a TikTok-shipping parcel reaches the carrier (Ship Package's `handover_method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoverMethod {
    Pickup,
    #[default]
    DropOff,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkuMatch {
    Exact,
    CaseInsensitive,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    #[serde(with = "humantime_serde")]
    pub order_hold: Duration,
    #[serde(with = "humantime_serde")]
    pub inventory_buffer: Duration,
    pub buffer_mode: BufferMode,
    pub safety_stock: u32,
    pub fbt_orders: FbtMode,
    pub sku_match: SkuMatch,
    /// TikTok seller_sku -> Katana variant sku, for the exceptions exact matching misses.
    pub sku_aliases: BTreeMap<String, String>,
    /// SKUs excluded from inventory sync from the start.
    pub sync_disabled_skus: Vec<String>,
}

impl Default for SyncSettings {
    fn default() -> Self {
        // One set of defaults: the domain's policy.
        let p = crate::domain::Policy::default();
        SyncSettings {
            order_hold: p.order_hold,
            inventory_buffer: p.inventory_buffer,
            buffer_mode: p.buffer_mode,
            safety_stock: p.safety_stock,
            fbt_orders: p.fbt_orders,
            sku_match: SkuMatch::Exact,
            sku_aliases: BTreeMap::new(),
            sync_disabled_skus: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarehouseSettings {
    #[serde(deserialize_with = "lenient_string")]
    pub pickup_warehouse_id: String,
    pub pickup_location_id: i64,
    #[serde(deserialize_with = "lenient_string")]
    pub return_warehouse_id: String,
    pub return_location_id: i64,
    pub fbt_location_id: i64,
}

/// Runtime tuning that product.md leaves to us.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorSettings {
    /// An aggregate actor with no command for this long is stopped; the next command
    /// rehydrates it from its snapshot and the log.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A snapshot is written every this many events of a stream.
    pub snapshot_every: u64,
}

impl Default for ActorSettings {
    fn default() -> Self {
        ActorSettings {
            idle_timeout: Duration::from_secs(300),
            snapshot_every: 50,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Defaults, then the TOML file (if it exists), then `TKS_*` environment variables.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match path {
            Some(p) if !p.exists() => {
                return Err(ConfigError(format!("file {} does not exist", p.display())))
            }
            Some(p) => figment = figment.merge(Toml::file(p)),
            None => figment = figment.merge(Toml::file("tks.toml")),
        }
        figment = with_env_shops(figment, std::env::vars());
        figment = figment.merge(TextEnv::prefixed("TKS_"));
        // Lossy: a number or a boolean may arrive as text (every environment value
        // does), while text stays the bytes it was.
        figment
            .extract_lossy()
            .map_err(|e| ConfigError(e.to_string()))
    }
}

impl Settings {
    /// Defaults, then `text` as the TOML file, without the environment: what the
    /// file alone says (the fuzzer reads settings this way).
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(text))
            .extract_lossy()
            .map_err(|e| ConfigError(e.to_string()))
    }
}

/// `TKS_<SECTION>__<KEY>` variables as plain text. figment's own `Env` guesses
/// types (`0123456789` becomes the number 123456789, `[a]` an array), which would
/// re-type secrets and ids; here every value stays the exact string it was, and
/// numeric and boolean settings are read from text by the lossy extraction.
struct TextEnv {
    inner: Env,
}

impl TextEnv {
    fn prefixed(prefix: &str) -> Self {
        TextEnv {
            // `[[shops]]` is a list: its variables are merged by `with_env_shops`.
            inner: Env::prefixed(prefix)
                .filter(|k| !k.as_str().starts_with(SHOPS_ENV))
                .split("__"),
        }
    }
}

/// `TKS_SHOPS__<n>__<KEY>` sets `KEY` of the `n`-th `[[shops]]` table (from 0),
/// keeping the file's other keys of that shop; `n` one past the last table adds a
/// shop.
const SHOPS_ENV: &str = "shops__";

fn with_env_shops(figment: Figment, vars: impl Iterator<Item = (String, String)>) -> Figment {
    use figment::value::{Dict, Value};
    let mut by_index: BTreeMap<usize, Dict> = BTreeMap::new();
    for (key, value) in vars {
        let Some(rest) = key
            .strip_prefix("TKS_")
            .map(str::to_ascii_lowercase)
            .and_then(|k| k.strip_prefix(SHOPS_ENV).map(str::to_string))
        else {
            continue;
        };
        let Some((index, field)) = rest.split_once("__") else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let path = field.replace("__", ".");
        if let Some(nested) = figment::util::nest(&path, Value::from(value)).into_dict() {
            merge_into(by_index.entry(index).or_default(), nested);
        }
    }
    if by_index.is_empty() {
        return figment;
    }
    let mut shops: Vec<Value> = match figment.find_value("shops") {
        Ok(Value::Array(_, items)) => items,
        _ => Vec::new(),
    };
    for (index, overrides) in by_index {
        while shops.len() <= index {
            shops.push(Value::from(Dict::new()));
        }
        let mut dict = match &shops[index] {
            Value::Dict(_, d) => d.clone(),
            _ => Dict::new(),
        };
        merge_into(&mut dict, overrides);
        shops[index] = Value::from(dict);
    }
    figment.merge(Serialized::default("shops", shops))
}

impl figment::Provider for TextEnv {
    fn metadata(&self) -> figment::Metadata {
        self.inner.metadata()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (key, value) in self.inner.iter() {
            let nested = figment::util::nest(key.as_str(), figment::value::Value::from(value))
                .into_dict()
                .ok_or_else(|| figment::Error::from(format!("empty variable name {key}")))?;
            merge_into(&mut dict, nested);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

fn merge_into(into: &mut figment::value::Dict, from: figment::value::Dict) {
    use figment::value::Value;
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Dict(_, existing)), Value::Dict(_, more)) => merge_into(existing, more),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
// figment's Jail closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let mut settings = Settings::default();
        settings.katana.api_key = s;
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn toml_durations_and_env_overrides() {
        // Jail serialises tests that touch the process environment.
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "tks.toml",
                "[sync]\norder_hold = \"30m\"\nbuffer_mode = \"increases_only\"\n[carriers]\n\"UPS\" = \"7117\"\n",
            )?;
            jail.set_env("TKS_KATANA__REQUESTS_PER_MINUTE", "30");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.sync.order_hold, Duration::from_secs(1800));
            assert_eq!(s.sync.buffer_mode, BufferMode::IncreasesOnly);
            assert_eq!(s.carriers.get("UPS").map(String::as_str), Some("7117"));
            assert_eq!(s.katana.requests_per_minute, 30);
            Ok(())
        });
    }

    #[test]
    fn numeric_looking_ids_from_the_environment_stay_strings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TKS_TIKTOK__SHOP_ID", "7494726673780148744");
            jail.set_env("TKS_TIKTOK__APP_SECRET", "123456");
            jail.set_env("TKS_WAREHOUSES__PICKUP_WAREHOUSE_ID", "7300000000000000001");
            jail.set_env("TKS_CARRIERS__UPS", "6617675021119438849");
            jail.set_env("TKS_SYNC__ORDER_HOLD", "1s");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.tiktok.shop_id, "7494726673780148744");
            assert_eq!(s.tiktok.app_secret.expose(), "123456");
            assert_eq!(s.warehouses.pickup_warehouse_id, "7300000000000000001");
            // Environment keys arrive lower-cased; carrier names match case-insensitively.
            assert_eq!(
                s.carriers.get("ups").map(String::as_str),
                Some("6617675021119438849")
            );
            assert_eq!(s.sync.order_hold, Duration::from_secs(1));
            Ok(())
        });
    }

    #[test]
    fn secrets_from_the_environment_stay_byte_exact() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TKS_KATANA__WEBHOOK_TOKEN", "0123456789");
            jail.set_env("TKS_KATANA__API_KEY", "1.50");
            jail.set_env("TKS_TIKTOK__APP_SECRET", "+5");
            jail.set_env("TKS_SERVER__ADMIN_TOKEN", "[a]");
            jail.set_env("TKS_TIKTOK__APP_KEY", "'q'");
            jail.set_env("TKS_TIKTOK__SHOP_ID", "{x}");
            jail.set_env("TKS_KATANA__REQUESTS_PER_MINUTE", "45");
            jail.set_env("TKS_TIKTOK__PULL_ORDERS", "false");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.katana.webhook_token.expose(), "0123456789");
            assert_eq!(s.katana.api_key.expose(), "1.50");
            assert_eq!(s.tiktok.app_secret.expose(), "+5");
            assert_eq!(s.server.admin_token.expose(), "[a]");
            assert_eq!(s.tiktok.app_key, "'q'");
            assert_eq!(s.tiktok.shop_id, "{x}");
            assert_eq!(s.katana.requests_per_minute, 45);
            assert!(!s.tiktok.pull_orders);
            Ok(())
        });
    }

    #[test]
    fn an_unparseable_environment_value_names_its_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TKS_KATANA__REQUESTS_PER_MINUTE", "sixty");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.to_lowercase().contains("requests_per_minute"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("TKS_SYNC__ORDER_HOLD", "[1]");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.to_lowercase().contains("order_hold"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_a_clear_error() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("custom.toml", "[sync]\norder_hodl = \"30m\"\n")?;
            let err = Settings::load(Some(Path::new("custom.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("order_hodl"), "{err}");
            let missing = Settings::load(Some(Path::new("nope.toml")))
                .unwrap_err()
                .to_string();
            assert!(missing.contains("does not exist"), "{missing}");
            Ok(())
        });
    }
}
