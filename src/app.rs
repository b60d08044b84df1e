//! The composition root: opens the store, starts the aggregate registries, the
//! timer service, the connector subscribers and pollers, and the HTTP server. Tests
//! and the sandbox call [`start`] with their own clock and a port-0 listener.

use crate::connectors::tiktok::shops::TikTokShops;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::actors::aggregate::Env;
use crate::actors::{spawn_feed, FeedHealth, Registry, TimerService};
use crate::catalogue::{Catalogue, SkuRules};
use crate::clock::Clock;
use crate::config::Settings;
use crate::connectors::katana::client::{KatanaClient, KatanaConfig};
use crate::connectors::ports::{KatanaPorts, PollerPorts, TikTokPorts};
use crate::connectors::tiktok::auth::{token_file_for, FileTokenStore, TokenStore};
use crate::connectors::tiktok::client::{ClientOptions, TikTokClient};
use crate::connectors::tiktok::sellers::SellerFiles;
use crate::console::ports::ConsolePorts;
use crate::domain::Policy;
use crate::http::ports::{ApiPorts, OAuthPorts, WebhookPorts};
use crate::metrics::Metrics;
use crate::ports::Commands;
use crate::store::{SharedStore, SqliteStore};

/// Everything the composition root wires together. Nothing below this module
/// sees it: each subscriber, poller and handler is given its own ports.
pub struct Services {
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub store: SharedStore,
    pub commands: Commands,
    /// `None` until TikTok credentials are configured.
    pub tiktok: Option<TikTokClient>,
    /// Every served shop's connection; `None` with `tiktok`.
    pub shops: Option<Arc<TikTokShops>>,
    /// `None` until a Katana API key is configured.
    pub katana: Option<KatanaClient>,
    pub catalogue: Arc<Catalogue>,
    pub metrics: Arc<Metrics>,
    /// Which feed subscribers are retrying an event right now.
    pub feeds: Arc<FeedHealth>,
    pub tokens: Arc<dyn TokenStore>,
    /// Verifies Katana's webhooks: the configured token, or the one Katana gave
    /// when the service registered its webhook itself.
    pub katana_webhook_token: Arc<parking_lot::RwLock<crate::config::Secret>>,
    /// The operator console's sessions and read model.
    pub console: Arc<crate::console::Console>,
    /// The Katana subscribers' ports, shared with the Katana polls.
    pub katana_ports: Option<Arc<KatanaPorts>>,
    /// What the reconciliation polls are given (tests and the sandbox run them
    /// on demand).
    pub pollers: Arc<PollerPorts>,
}

/// What the service subscribes to when it registers its own Katana webhook.
pub const KATANA_WEBHOOK_EVENTS: &[&str] = &[
    "sales_order.delivered",
    "sales_order.updated",
    "sales_order.deleted",
    "current_inventory.product_updated",
];

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
        let token_file = options
            .token_file
            .clone()
            .unwrap_or_else(|| token_file_for(&settings.store.path));
        let tokens: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(token_file.clone()));
        let tiktok = if settings.tiktok.app_key.is_empty() || settings.tiktok.app_secret.is_empty()
        {
            None
        } else {
            Some(TikTokClient::new(
                &settings.primary_tiktok(),
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
        let commands = Commands::new(Registry::start(env.clone()), Registry::start(env));
        let catalogue = Arc::new(Catalogue::new(SkuRules::from_settings(&settings.sync)));
        let metrics = Arc::new(Metrics::with_clock(clock.clone()));
        let shops = match tiktok.clone() {
            Some(t) => Some(Arc::new(TikTokShops::new(
                &settings,
                t,
                catalogue.clone(),
                SellerFiles::Beside(token_file),
            )?)),
            None => None,
        };
        let katana_ports = katana.clone().map(|katana| {
            Arc::new(KatanaPorts {
                commands: commands.clone(),
                katana,
                store: store.clone(),
                shops: shops.clone(),
                catalogue: catalogue.clone(),
                metrics: metrics.clone(),
                settings: settings.clone(),
                clock: clock.clone(),
            })
        });
        let pollers = Arc::new(PollerPorts {
            commands: commands.clone(),
            store: store.clone(),
            tiktok: tiktok.clone(),
            shops: shops.clone(),
            katana: katana_ports.clone(),
            catalogue: catalogue.clone(),
            metrics: metrics.clone(),
            settings: settings.clone(),
            clock: clock.clone(),
        });
        Ok(Arc::new(Services {
            shops,
            commands,
            catalogue,
            metrics,
            feeds: Arc::new(FeedHealth::default()),
            console: Arc::new(crate::console::Console::new(&settings, clock.clone())),
            katana_webhook_token: Arc::new(parking_lot::RwLock::new(
                settings.katana.webhook_token.clone(),
            )),
            katana_ports,
            pollers,
            settings,
            clock,
            store,
            tiktok,
            katana,
            tokens,
        }))
    }

    /// The TikTok subscribers' ports, when TikTok is configured.
    fn tiktok_ports(&self) -> Option<Arc<TikTokPorts>> {
        Some(Arc::new(TikTokPorts {
            commands: self.commands.clone(),
            shops: self.shops.clone()?,
            catalogue: self.catalogue.clone(),
            metrics: self.metrics.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
        }))
    }

    fn webhook_ports(&self) -> WebhookPorts {
        WebhookPorts {
            commands: self.commands.clone(),
            store: self.store.clone(),
            catalogue: self.catalogue.clone(),
            metrics: self.metrics.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
            katana_webhook_token: self.katana_webhook_token.clone(),
            shops: self.settings.shop_stock(),
        }
    }

    fn api_ports(&self) -> ApiPorts {
        ApiPorts {
            commands: self.commands.clone(),
            store: self.store.clone(),
            catalogue: self.catalogue.clone(),
            metrics: self.metrics.clone(),
            feeds: self.feeds.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
            shops: self.shops.clone(),
            katana_configured: self.katana.is_some(),
        }
    }

    fn console_ports(&self) -> ConsolePorts {
        ConsolePorts {
            console: self.console.clone(),
            commands: self.commands.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
            tokens: self.tokens.clone(),
            tiktok_configured: self.tiktok.is_some(),
            katana: self.katana.clone(),
            shops: self.shops.clone(),
        }
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
        .route("order", services.commands.orders.clone())
        .route("sku", services.commands.skus.clone());
    tasks.push(actix::spawn(timers.run(stopped.clone())));

    tasks.push(spawn_feed(
        store.clone(),
        crate::actors::policies::DemandPolicy::new(
            services.commands.clone(),
            crate::domain::Policy::from(&*services.settings).shops,
        ),
        services.feeds.clone(),
        stopped.clone(),
    ));
    tasks.push(spawn_feed(
        store.clone(),
        crate::actors::metrics_projection::MetricsProjection::new(
            services.metrics.clone(),
            &services.settings.shop_stock(),
        ),
        services.feeds.clone(),
        stopped.clone(),
    ));
    if let Some(ports) = services.tiktok_ports() {
        tasks.push(spawn_feed(
            store.clone(),
            crate::connectors::tiktok::actor::TikTokReader::new(ports.clone()),
            services.feeds.clone(),
            stopped.clone(),
        ));
        tasks.push(spawn_feed(
            store.clone(),
            crate::connectors::tiktok::actor::TikTokWriter::new(ports),
            services.feeds.clone(),
            stopped.clone(),
        ));
    }
    if let Some(ports) = &services.katana_ports {
        tasks.push(spawn_feed(
            store.clone(),
            crate::connectors::katana::actor::KatanaWriter::new(ports.clone()),
            services.feeds.clone(),
            stopped.clone(),
        ));
        tasks.push(spawn_feed(
            store.clone(),
            crate::connectors::katana::actor::KatanaReader::new(ports.clone()),
            services.feeds.clone(),
            stopped.clone(),
        ));
    }
    if options.pollers {
        tasks.extend(crate::connectors::pollers::spawn_all(
            services.pollers.clone(),
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
        let token = services.katana_webhook_token.clone();
        tasks.push(actix::spawn(async move {
            match katana.register_webhook(&url, KATANA_WEBHOOK_EVENTS).await {
                Ok(w) => {
                    tracing::info!(%url, id = w.id, "Katana webhook registered");
                    *token.write() = crate::config::Secret::new(w.token);
                }
                Err(e) => tracing::error!(%url, error = %e, "Katana webhook not registered; polling still reconciles"),
            }
        }));
    }

    let addr = listener.local_addr()?;
    let server = crate::http::server(
        crate::http::Surfaces {
            webhooks: services.webhook_ports(),
            api: services.api_ports(),
            oauth: OAuthPorts {
                shops: services.shops.clone(),
            },
            console: services.console_ports(),
        },
        listener,
    )?;
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
