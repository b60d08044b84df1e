//! What the console's pages are given: sessions and the read model, the log, the
//! SKU commands of the sync toggle, and what the connector health and shop cards
//! show.

use std::sync::Arc;

use super::Console;
use crate::clock::Clock;
use crate::config::Settings;
use crate::connectors::katana::client::KatanaClient;
use crate::connectors::tiktok::auth::TokenStore;
use crate::connectors::tiktok::shops::TikTokShops;
use crate::metrics::Metrics;
use crate::ports::Commands;
use crate::store::SharedStore;

pub struct ConsolePorts {
    pub console: Arc<Console>,
    pub commands: Commands,
    pub store: SharedStore,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub tokens: Arc<dyn TokenStore>,
    pub tiktok_configured: bool,
    /// For the budget on Katana's health card; `None` until configured.
    pub katana: Option<KatanaClient>,
    /// Every served shop's connection, for the overview's shops card; `None` until
    /// TikTok is configured.
    pub shops: Option<Arc<TikTokShops>>,
}
