//! What each connector's subscribers and pollers are given: the command
//! dispatcher, the client they call, and the few shared handles they read.

use std::sync::Arc;

use crate::catalogue::Catalogue;
use crate::clock::Clock;
use crate::config::Settings;
use crate::connectors::katana::client::KatanaClient;
use crate::connectors::tiktok::client::TikTokClient;
use crate::connectors::tiktok::shops::TikTokShops;
use crate::metrics::Metrics;
use crate::ports::Commands;
use crate::store::SharedStore;

/// The TikTok reader and writer: they call TikTok and report back to aggregates.
pub struct TikTokPorts {
    pub commands: Commands,
    /// Every served shop with its client and listings.
    pub shops: Arc<TikTokShops>,
    pub catalogue: Arc<Catalogue>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
}

/// The Katana writer and reader: they call Katana and report back to aggregates.
pub struct KatanaPorts {
    pub commands: Commands,
    pub katana: KatanaClient,
    pub store: SharedStore,
    /// Read only for each shop's name, prefix and locations, which go on its SOs
    /// and name its generic customer.
    pub shops: Option<Arc<TikTokShops>>,
    pub catalogue: Arc<Catalogue>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
}

/// The reconciliation pollers: each polls the side it needs, when configured.
/// Katana's polls share the Katana subscribers' reads, so they get their ports.
pub struct PollerPorts {
    pub commands: Commands,
    pub store: SharedStore,
    pub tiktok: Option<TikTokClient>,
    pub shops: Option<Arc<TikTokShops>>,
    pub katana: Option<Arc<KatanaPorts>>,
    pub catalogue: Arc<Catalogue>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
}
