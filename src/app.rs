//! The composition root: opens the store, starts the aggregate registries, the
//! timer service, the connector subscribers and pollers, and the HTTP server. Tests
//! and the sandbox call [`start`] with their own clock and a port-0 listener.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::actors::aggregate::Env;
use crate::actors::{spawn_feed, CommandError, Execute, FeedHealth, Registry, TimerService};
use crate::catalogue::{Catalogue, SkuRules};
use crate::clock::Clock;
use crate::config::Settings;
use crate::connectors::katana::client::{KatanaClient, KatanaConfig};
use crate::connectors::tiktok::auth::{FileTokenStore, TokenStore};
use crate::connectors::tiktok::client::{ClientOptions, TikTokClient};
use crate::domain::order::{Order, OrderCommand};
use crate::domain::sku::{Sku, SkuCommand};
use crate::domain::Policy;
use crate::metrics::Metrics;
use crate::seam::SeamError;
use crate::store::{EventMeta, SharedStore, SqliteStore};

/// Everything the flows, the HTTP handlers and the operator commands share.
pub struct Services {
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub store: SharedStore,
    pub orders: Registry<Order>,
    pub skus: Registry<Sku>,
    /// `None` until TikTok credentials are configured.
    pub tiktok: Option<TikTokClient>,
    /// `None` until a Katana API key is configured.
    pub katana: Option<KatanaClient>,
    pub catalogue: Arc<Catalogue>,
    pub metrics: Arc<Metrics>,
    /// Which feed subscribers are retrying an event right now.
    pub feeds: Arc<FeedHealth>,
    pub tokens: Arc<dyn TokenStore>,
    /// Verifies Katana's webhooks: the configured token, or the one Katana gave
    /// when the service registered its webhook itself.
    pub katana_webhook_token: parking_lot::RwLock<crate::config::Secret>,
    /// The operator console's sessions and read model.
    pub console: crate::console::Console,
}

/// What the service subscribes to when it registers its own Katana webhook.
pub const KATANA_WEBHOOK_EVENTS: &[&str] = &[
    "sales_order.delivered",
    "sales_order.updated",
    "sales_order.deleted",
    "current_inventory.product_updated",
];

impl Services {
    /// Runs a command a connector or policy derived from `cause`, optionally moving
    /// a subscriber checkpoint in the same transaction. A command the order no
    /// longer accepts (it moved on meanwhile) is done, not an error.
    pub async fn order_command(
        &self,
        order_id: &str,
        command: OrderCommand,
        cause: &EventMeta,
        checkpoint: Option<(String, u64)>,
    ) -> Result<(), SeamError> {
        let mut msg = Execute::new(command).caused_by(cause);
        msg.checkpoint = checkpoint;
        match self.orders.execute(order_id, msg).await {
            Ok(_) => Ok(()),
            Err(CommandError::Rejected(reason)) => {
                tracing::info!(order_id, %reason, "command no longer applies");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The SKU counterpart of [`Services::order_command`]; a SKU's refusal is
    /// refused for good.
    pub async fn sku_command(
        &self,
        sku: &str,
        command: SkuCommand,
        cause: &EventMeta,
    ) -> Result<(), SeamError> {
        self.skus
            .execute(sku, Execute::new(command).caused_by(cause))
            .await
            .map(|_| ())
            .map_err(SeamError::from)
    }
}

/// Knobs the sandbox and tests turn; production uses the defaults.
#[derive(Clone, Debug)]
pub struct StartOptions {
    pub tiktok_client: ClientOptions,
    pub katana_timeout: Duration,
    /// Where TikTok tokens are kept (default: next to the database).
    pub token_file: Option<PathBuf>,
    /// Run the periodic reconciliation pollers.
    pub pollers: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            tiktok_client: ClientOptions::default(),
            katana_timeout: Duration::from_secs(30),
            token_file: None,
            pollers: true,
        }
    }
}

/// The token file for a database path: `tks.db` -> `tks.tokens.json`.
pub fn token_file_for(db: &str) -> PathBuf {
    let p = PathBuf::from(db);
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tks".into());
    p.with_file_name(format!("{stem}.tokens.json"))
}

impl Services {
    /// Builds the shared services (registries need a running actix system).
    pub fn build(
        settings: Settings,
        clock: Clock,
        store: SharedStore,
        options: &StartOptions,
    ) -> anyhow::Result<Arc<Services>> {
        let settings = Arc::new(settings);
        let env = Env {
            store: store.clone(),
            clock: clock.clone(),
            policy: Arc::new(Policy::from(settings.as_ref())),
            settings: settings.actors.clone(),
        };
        let tokens: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(
            options
                .token_file
                .clone()
                .unwrap_or_else(|| token_file_for(&settings.store.path)),
        ));
        let tiktok = if settings.tiktok.app_key.is_empty() || settings.tiktok.app_secret.is_empty()
        {
            None
        } else {
            Some(TikTokClient::new(
                &settings.tiktok,
                clock.clone(),
                tokens.clone(),
                options.tiktok_client,
            )?)
        };
        let katana = if settings.katana.api_key.is_empty() {
            None
        } else {
            let mut cfg = KatanaConfig::from_settings(&settings.katana);
            cfg.timeout = options.katana_timeout;
            Some(KatanaClient::new(cfg, clock.clone())?)
        };
        Ok(Arc::new(Services {
            orders: Registry::start(env.clone()),
            skus: Registry::start(env),
            catalogue: Arc::new(Catalogue::new(SkuRules::from_settings(&settings.sync))),
            metrics: Arc::new(Metrics::with_clock(clock.clone())),
            feeds: Arc::new(FeedHealth::default()),
            console: crate::console::Console::new(&settings, clock.clone()),
            katana_webhook_token: parking_lot::RwLock::new(settings.katana.webhook_token.clone()),
            settings,
            clock,
            store,
            tiktok,
            katana,
            tokens,
        }))
    }
}

/// A running service.
pub struct AppHandle {
    pub services: Arc<Services>,
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: actix_web::dev::ServerHandle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl AppHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops as a crash would: every background task is dropped wherever it is
    /// waiting (mid-call, mid-retry), nothing is finished. What was committed stays.
    pub async fn kill(self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
        self.server.stop(false).await;
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Stops the HTTP server and every background task.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.server.stop(true).await;
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts the whole service on `listener`. Must run inside an actix system.
pub async fn start(
    settings: Settings,
    clock: Clock,
    listener: TcpListener,
    options: StartOptions,
) -> anyhow::Result<AppHandle> {
    let store: SharedStore = Arc::new(SqliteStore::open(&settings.store.path)?);
    start_on(store, settings, clock, listener, options).await
}

/// [`start`] on a store the caller opened (tests wrap one to inject faults).
pub async fn start_on(
    store: SharedStore,
    settings: Settings,
    clock: Clock,
    listener: TcpListener,
    options: StartOptions,
) -> anyhow::Result<AppHandle> {
    crate::console::health::log_missing(&settings);
    let services = Services::build(settings, clock.clone(), store.clone(), &options)?;
    let (shutdown, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(crate::console::readmodel::spawn(
        store.clone(),
        PathBuf::from(&services.settings.store.path),
        stopped.clone(),
    ));

    let timers = TimerService::new(store.clone(), clock.clone())
        .route("order", services.orders.clone())
        .route("sku", services.skus.clone());
    tasks.push(actix::spawn(timers.run(stopped.clone())));

    tasks.push(spawn_feed(
        store.clone(),
        crate::actors::policies::DemandPolicy::new(services.clone()),
        services.feeds.clone(),
        stopped.clone(),
    ));
    tasks.push(spawn_feed(
        store.clone(),
        crate::actors::policies::MetricsProjection::new(services.clone()),
        services.feeds.clone(),
        stopped.clone(),
    ));
    if services.tiktok.is_some() {
        tasks.push(spawn_feed(
            store.clone(),
            crate::connectors::tiktok::actor::TikTokReader::new(services.clone()),
            services.feeds.clone(),
            stopped.clone(),
        ));
        tasks.push(spawn_feed(
            store.clone(),
            crate::connectors::tiktok::actor::TikTokWriter::new(services.clone()),
            services.feeds.clone(),
            stopped.clone(),
        ));
    }
    if services.katana.is_some() {
        tasks.push(spawn_feed(
            store.clone(),
            crate::connectors::katana::actor::KatanaWriter::new(services.clone()),
            services.feeds.clone(),
            stopped.clone(),
        ));
        tasks.push(spawn_feed(
            store.clone(),
            crate::connectors::katana::actor::KatanaReader::new(services.clone()),
            services.feeds.clone(),
            stopped.clone(),
        ));
    }
    if options.pollers {
        tasks.extend(crate::connectors::pollers::spawn_all(
            services.clone(),
            stopped.clone(),
        ));
    }

    if let (Some(katana), false) = (
        &services.katana,
        services.settings.server.public_url.is_empty(),
    ) {
        let url = format!(
            "{}/webhooks/katana",
            services.settings.server.public_url.trim_end_matches('/')
        );
        let katana = katana.clone();
        let services = services.clone();
        tasks.push(actix::spawn(async move {
            match katana.register_webhook(&url, KATANA_WEBHOOK_EVENTS).await {
                Ok(w) => {
                    tracing::info!(%url, id = w.id, "Katana webhook registered");
                    *services.katana_webhook_token.write() = crate::config::Secret::new(w.token);
                }
                Err(e) => tracing::error!(%url, error = %e, "Katana webhook not registered; polling still reconciles"),
            }
        }));
    }

    let addr = listener.local_addr()?;
    let server = crate::http::server(services.clone(), listener)?;
    let server_handle = server.handle();
    tasks.push(actix::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }));
    tracing::info!(%addr, "tks is serving");
    Ok(AppHandle {
        services,
        addr,
        shutdown,
        server: server_handle,
        tasks,
    })
}
