//! What each group of HTTP handlers is given: webhooks record signals, the
//! operator API reads state and sends a few commands, the OAuth callback connects
//! TikTok. Each group is registered as its own app data, so a handler can reach
//! only what its group holds.

use crate::connectors::tiktok::shops::TikTokShops;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::actors::FeedHealth;
use crate::catalogue::Catalogue;
use crate::clock::Clock;
use crate::config::{Secret, Settings};
use crate::metrics::Metrics;
use crate::ports::Commands;
use crate::store::SharedStore;

/// `POST /webhooks/*`: verify, then record durably as signals or in the inbox.
pub struct WebhookPorts {
    pub commands: Commands,
    pub store: SharedStore,
    pub catalogue: Arc<Catalogue>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    /// The configured Katana webhook token, or the one Katana gave when the
    /// service registered its webhook itself.
    pub katana_webhook_token: Arc<RwLock<Secret>>,
    /// The shops served, read once from the settings: every TikTok webhook is
    /// routed by them.
    pub shops: crate::domain::allocation::Shops,
}

/// `/api/*`, `/health` and `/metrics`.
pub struct ApiPorts {
    pub commands: Commands,
    pub store: SharedStore,
    pub catalogue: Arc<Catalogue>,
    pub metrics: Arc<Metrics>,
    pub feeds: Arc<FeedHealth>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    /// Every served shop's connection; `None` until TikTok credentials are configured.
    pub shops: Option<Arc<TikTokShops>>,
    pub katana_configured: bool,
}

/// `GET /oauth/tiktok/callback`.
pub struct OAuthPorts {
    /// `None` until TikTok credentials are configured.
    pub shops: Option<Arc<TikTokShops>>,
}
