//! What the operator must know about the connectors: which are not configured and
//! what that means (logged at start-up, on `/health`, the overview and `/setup`),
//! and how each configured one is doing (last good call, recent errors, Katana's
//! budget, TikTok's token expiry).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::console::ports::ConsolePorts;

/// A connector the settings leave unconfigured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub connector: &'static str,
    /// What the service cannot do without it.
    pub meaning: &'static str,
    /// How to configure it.
    pub fix: &'static str,
}

/// The same rule `ConsolePorts::build` applies to decide whether a client exists.
pub fn missing(settings: &Settings) -> Vec<Missing> {
    let mut out = Vec::new();
    if settings.tiktok.app_key.is_empty() || settings.tiktok.app_secret.is_empty() {
        out.push(Missing {
            connector: "TikTok",
            meaning: "no orders will be pulled, and no stock levels or shipments will reach TikTok",
            fix: "set tiktok.app_key and TKS_TIKTOK__APP_SECRET (and tiktok.shop_id), then run `tks connect tiktok --auth-code CODE`",
        });
    }
    if settings.katana.api_key.is_empty() {
        out.push(Missing {
            connector: "Katana",
            meaning: "no sales orders will be created and no stock will be read, so TikTok gets no inventory",
            fix: "set TKS_KATANA__API_KEY (Katana: Settings > API)",
        });
    }
    out
}

/// Says at start-up what an unconfigured connector means, once per connector.
pub fn log_missing(settings: &Settings) {
    for m in missing(settings) {
        tracing::warn!(fix = m.fix, "{} not configured: {}", m.connector, m.meaning);
    }
    if settings.server.admin_token.expose().is_empty() {
        tracing::warn!(
            "no admin token: the console and /api stay closed; set TKS_SERVER__ADMIN_TOKEN"
        );
    }
}

/// The `/health` fields for unconfigured connectors.
pub fn missing_json(settings: &Settings) -> serde_json::Value {
    serde_json::to_value(missing(settings)).unwrap_or(serde_json::Value::Null)
}

/// How one connector is doing.
#[derive(Clone, Debug)]
pub struct Health {
    pub connector: &'static str,
    pub configured: bool,
    pub last_ok: Option<DateTime<Utc>>,
    pub last_error: Option<DateTime<Utc>>,
    pub errors_last_hour: usize,
    pub calls_ok: u64,
    pub calls_failed: u64,
    /// Katana: (used in the current window, limit per minute).
    pub budget: Option<(usize, usize)>,
    /// TikTok: when the access token and the refresh token expire.
    pub token_expiry: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// TikTok configured but never connected (no tokens).
    pub not_connected: bool,
}

fn base(ports: &ConsolePorts, name: &'static str, metric: &str, configured: bool) -> Health {
    let times = ports.metrics.call_times(metric);
    let (ok, failed) = ports.metrics.api_outcomes(metric);
    Health {
        connector: name,
        configured,
        last_ok: times.last_ok,
        last_error: times.last_error,
        errors_last_hour: times.recent_errors.len(),
        calls_ok: ok,
        calls_failed: failed,
        budget: None,
        token_expiry: None,
        not_connected: false,
    }
}

pub fn connectors(ports: &ConsolePorts) -> Vec<Health> {
    let mut tiktok = base(ports, "TikTok", "tiktok", ports.tiktok_configured);
    if tiktok.configured {
        match ports.tokens.load() {
            Ok(Some(t)) => {
                let at = |s| crate::operator::unix_time(s).unwrap_or(DateTime::<Utc>::MIN_UTC);
                tiktok.token_expiry =
                    Some((at(t.access_token_expire_in), at(t.refresh_token_expire_in)));
            }
            Ok(None) | Err(_) => tiktok.not_connected = true,
        }
    }
    let mut katana = base(ports, "Katana", "katana", ports.katana.is_some());
    if let Some(k) = &ports.katana {
        katana.budget = Some((k.budget().used(), k.budget().limit()));
    }
    vec![tiktok, katana]
}
