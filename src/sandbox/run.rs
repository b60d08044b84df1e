//! Runs the whole system on loopback for `tks sandbox` (and `tks bench flow`): both
//! simulators, the service connected to them, and the scripted shop day of
//! [`super::scenario`], narrated live from the service's own event log.
//!
//! The narration follows the log (every committed event is folded into order and
//! SKU state and rendered as it arrives) plus the scenario's own actions, so each
//! line says what really happened, never what a timer guessed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::katana::{KatanaSim, KatanaSimConfig, Tracking};
use super::scenario::{self, Role, Script, ScriptedOrder};
use super::tiktok::{state::SimOrder, RETURN_WAREHOUSE};
use super::tiktok::{
    NewOrder, NewProduct, NewSku, SimConfig, TikTokSim, MAIN_WAREHOUSE, SECOND_WAREHOUSE,
};
use crate::actors::policies::{decode_order, decode_sku};
use crate::app::{self, AppHandle, Services, StartOptions};
use crate::clock::Clock;
use crate::config::{Secret, Settings};
use crate::connectors::pollers;
use crate::connectors::tiktok::auth::FileTokenStore;
use crate::connectors::tiktok::client::{ClientOptions, TikTokClient};
use crate::domain::exceptions::keys;
use crate::domain::observed::{FulfillmentType, Quantity, ShippingType, TikTokOrderStatus};
use crate::domain::order::{Order, OrderEvent, SoState, Source};
use crate::domain::sku::{Sku, SkuEvent};
use crate::domain::Aggregate;
use crate::names::lookup::EXCEPTION as EXCEPTION_LOOKUP;
use crate::store::{RecordedEvent, SharedStore};

/// The operator API's bearer token in the sandbox.
pub const ADMIN_TOKEN: &str = "sandbox";

/// The durable feed subscribers of the service: all caught up and a quiet log
/// means nothing is in progress.
const SUBSCRIBERS: [&str; 5] = [
    "demand-policy",
    "tiktok-reader",
    "tiktok-writer",
    "katana-writer",
    "katana-reader",
];

/// How the world is built.
#[derive(Clone, Debug)]
pub struct WorldOptions {
    /// The service's database (must not hold another run's log).
    pub db_path: PathBuf,
    /// Katana's limit per 60 s of the clock, on the simulator and in the client's
    /// budget alike; `None` lifts it on both sides.
    pub katana_requests_per_minute: Option<u32>,
    /// Run the service's reconciliation pollers.
    pub pollers: bool,
}

/// Both simulators seeded with the sandbox catalogue, and the service connected to
/// them (TikTok authorised with an auth code, TikTok's webhook URL set as in the
/// app's settings, Katana's webhook registered by the service itself).
pub struct World {
    pub clock: Clock,
    pub tiktok: TikTokSim,
    pub katana: KatanaSim,
    pub app: AppHandle,
    /// Katana variant id per seller SKU (grows when the scenario adds one).
    pub variants: parking_lot::Mutex<BTreeMap<String, i64>>,
    pub main_location: i64,
    pub fbt_location: i64,
    pub db_path: PathBuf,
    /// What the service was started with, for a restart on the same port.
    settings: Settings,
    start_options: StartOptions,
}

fn tiktok_catalogue() -> Vec<NewProduct> {
    scenario::CATALOGUE
        .iter()
        .enumerate()
        .map(|(i, (sku, title, price))| NewProduct {
            id: Some(format!("17290000000000{:05}", i + 1)),
            title: title.to_string(),
            status: "ACTIVATE".into(),
            skus: vec![NewSku {
                id: Some(format!("17291000000000{:05}", i + 1)),
                seller_sku: sku.to_string(),
                price: price.to_string(),
                inventory: if *sku == scenario::MULTI_WAREHOUSE_SKU {
                    vec![
                        (MAIN_WAREHOUSE.to_string(), 0),
                        (
                            SECOND_WAREHOUSE.to_string(),
                            scenario::OTHER_WAREHOUSE_STOCK,
                        ),
                    ]
                } else {
                    vec![(MAIN_WAREHOUSE.to_string(), 0)]
                },
            }],
        })
        .collect()
}

/// TikTok's SKU id of a scripted seller SKU, as [`tiktok_catalogue`] numbers them.
fn tiktok_sku_id(sku: &str) -> Option<String> {
    scenario::CATALOGUE
        .iter()
        .position(|(s, _, _)| *s == sku)
        .map(|i| format!("17291000000000{:05}", i + 1))
}

fn price_of(sku: &str) -> &'static str {
    scenario::CATALOGUE
        .iter()
        .find(|(s, _, _)| *s == sku)
        .map_or("10.00", |(_, _, p)| p)
}

fn title_of(sku: &str) -> &'static str {
    scenario::CATALOGUE
        .iter()
        .find(|(s, _, _)| *s == sku)
        .map_or("Product", |(_, t, _)| t)
}

impl World {
    /// Starts everything on 127.0.0.1 with `clock`; `tune` adjusts the settings
    /// (hold, buffer, poll intervals...) before the service starts.
    pub async fn start(
        clock: Clock,
        options: WorldOptions,
        tune: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<World> {
        let tiktok = TikTokSim::start(SimConfig::demo(), clock.clone())
            .context("starting the TikTok simulator")?;
        tiktok
            .set_catalogue(tiktok_catalogue())
            .map_err(|e| anyhow::anyhow!("seeding the TikTok catalogue: {e:?}"))?;
        // Lifting the limit means the simulator's too: it advertises its limit in
        // `X-Ratelimit-Limit`, and the client rightly lowers its budget to a
        // smaller server-side limit.
        let katana_cfg = KatanaSimConfig {
            rate_limit: options
                .katana_requests_per_minute
                .unwrap_or(u32::MAX)
                .max(1),
            ..KatanaSimConfig::default()
        };
        let katana =
            KatanaSim::start(katana_cfg, clock.clone()).context("starting the Katana simulator")?;
        if options.katana_requests_per_minute.is_none() {
            katana.set_rate_limit(false, None);
        }
        let main_location = katana.add_location("Main warehouse", true);
        let fbt_location = katana.add_location("TikTok FBT", true);
        let mut variants = BTreeMap::new();
        for (sku, stock) in scenario::KATANA_STOCK {
            let id = katana
                .add_product(title_of(sku), &[(sku, price_of(sku))])
                .map_err(|e| anyhow::anyhow!("seeding Katana product {sku}: {e}"))?[0];
            katana
                .set_stock(id, main_location, Quantity::from_units(*stock))
                .map_err(|e| anyhow::anyhow!("seeding Katana stock of {sku}: {e}"))?;
            variants.insert(sku.to_string(), id);
        }

        let listener = TcpListener::bind("127.0.0.1:0").context("binding the service")?;
        let demo = SimConfig::demo();
        let mut s = Settings::default();
        s.server.public_url = format!("http://{}", listener.local_addr()?);
        s.store.path = options.db_path.to_string_lossy().into_owned();
        s.server.bind = "127.0.0.1:0".into();
        s.server.admin_token = Secret::new(ADMIN_TOKEN);
        s.tiktok.api_base = tiktok.base_url();
        s.tiktok.auth_base = tiktok.auth_base_url();
        s.tiktok.app_key = demo.app_key;
        s.tiktok.app_secret = Secret::new(demo.app_secret);
        s.tiktok.shop_id = demo.shop_id;
        s.tiktok.shop_cipher = demo.shop_cipher;
        s.katana.api_base = katana.base_url().to_string();
        s.katana.api_key = Secret::new(katana.api_key());
        s.katana.requests_per_minute = options.katana_requests_per_minute.unwrap_or(u32::MAX);
        s.warehouses.pickup_warehouse_id = MAIN_WAREHOUSE.into();
        s.warehouses.return_warehouse_id = RETURN_WAREHOUSE.into();
        s.warehouses.pickup_location_id = main_location;
        s.warehouses.return_location_id = main_location;
        s.warehouses.fbt_location_id = fbt_location;
        tune(&mut s);

        // What `tks connect tiktok --auth-code` does: the service finds the tokens.
        let tokens = Arc::new(FileTokenStore::new(app::token_file_for(&s.store.path)));
        TikTokClient::new(&s.tiktok, clock.clone(), tokens, ClientOptions::default())
            .context("building the TikTok client")?
            .exchange_auth_code(&tiktok.issue_auth_code())
            .await
            .context("connecting TikTok with an auth code")?;

        let start = StartOptions {
            pollers: options.pollers,
            katana_timeout: Duration::from_secs(10),
            ..StartOptions::default()
        };
        let settings = s.clone();
        let app = app::start(s, clock.clone(), listener, start.clone()).await?;
        tiktok.set_webhook_url(Some(format!("{}/webhooks/tiktok", app.base_url())));
        // TikTok's webhook URL lives in the app's Partner Center settings; the
        // Katana one the service registers itself (public_url is set).
        let registered = tokio::time::Instant::now() + Duration::from_secs(10);
        while !katana
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/webhooks" && r.status < 300)
        {
            if tokio::time::Instant::now() > registered {
                app.stop().await;
                anyhow::bail!("the service did not register its Katana webhook");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // What the pollers do first thing; done here too so the catalogue is mapped
        // before the first order, with or without pollers.
        pollers::refresh_catalogue(&app.services)
            .await
            .map_err(|e| anyhow::anyhow!("first catalogue refresh: {e}"))?;
        pollers::poll_stock(&app.services)
            .await
            .map_err(|e| anyhow::anyhow!("first stock read: {e}"))?;
        Ok(World {
            clock,
            tiktok,
            katana,
            app,
            variants: parking_lot::Mutex::new(variants),
            main_location,
            fbt_location,
            db_path: options.db_path,
            settings,
            start_options: start,
        })
    }

    /// Kills the service as a crash would and starts it again on the same database
    /// and port; the simulators notice no more than dropped connections.
    pub async fn crash_and_restart(self) -> anyhow::Result<World> {
        let World {
            clock,
            tiktok,
            katana,
            app,
            variants,
            main_location,
            fbt_location,
            db_path,
            settings,
            start_options,
        } = self;
        let addr = app.addr;
        app.kill().await;
        // The old listener is closed; the port may take a moment to be free again.
        let mut listener = TcpListener::bind(addr);
        for _ in 0..200 {
            if listener.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            listener = TcpListener::bind(addr);
        }
        let listener = listener.with_context(|| format!("binding {addr} again"))?;
        let app = app::start(
            settings.clone(),
            clock.clone(),
            listener,
            start_options.clone(),
        )
        .await?;
        Ok(World {
            clock,
            tiktok,
            katana,
            app,
            variants,
            main_location,
            fbt_location,
            db_path,
            settings,
            start_options,
        })
    }

    /// The sandbox's world: the real clock, Katana's limit and every business
    /// duration scaled by `speed`, pollers on.
    pub async fn sandbox(db_path: PathBuf, speed: f64) -> anyhow::Result<World> {
        World::start(
            Clock::real(),
            WorldOptions {
                db_path,
                katana_requests_per_minute: Some(scaled_rate(60, speed)),
                pollers: true,
            },
            |s| sandbox_settings(s, speed),
        )
        .await
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.app.services
    }

    pub fn store(&self) -> &SharedStore {
        &self.app.services.store
    }

    /// Every durable subscriber has handled the whole log.
    pub fn caught_up(&self) -> bool {
        let head = self.store().head();
        SUBSCRIBERS
            .iter()
            .all(|n| self.store().checkpoint(n).is_ok_and(|c| c >= head))
    }

    /// Waits (in real time, at most `limit`) until the service has done all it can
    /// at this instant of a manual clock: the log stopped growing, and every
    /// subscriber has handled it or waits for Katana's window to move on the clock
    /// with no Katana request in flight. Returns whether it got there.
    ///
    /// [`World::settle`] with a short limit let a bench move the clock on while a
    /// slow machine still had requests in flight: a create that then hit its
    /// real-time timeout waited `katana.create_settle` of clock time, which the
    /// bench burnt through in seconds, once per slow request.
    pub async fn settle_on_clock(&self, limit: Duration) -> bool {
        let budget = self.services().katana.as_ref().map(|k| k.budget().clone());
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = u64::MAX;
        let mut quiet = 0;
        while tokio::time::Instant::now() < deadline {
            let head = self.store().head();
            let waits_for_clock = budget.as_ref().is_some_and(|b| {
                let (urgent_or_high, low) = b.waiting();
                b.in_flight() == 0 && (urgent_or_high + low > 0 || b.paused_until().is_some())
            });
            if head == last && (self.caught_up() || waits_for_clock) {
                quiet += 1;
                if quiet >= 4 {
                    return true;
                }
            } else {
                quiet = 0;
            }
            last = head;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        false
    }

    /// Waits (in real time, at most `limit`) until every subscriber has handled
    /// the whole log and the log stayed unchanged for a few checks. Returns
    /// whether it settled.
    pub async fn settle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut quiet = 0;
        let mut last = u64::MAX;
        while tokio::time::Instant::now() < deadline {
            let head = self.store().head();
            let caught_up = SUBSCRIBERS
                .iter()
                .all(|n| self.store().checkpoint(n).is_ok_and(|c| c >= head));
            if caught_up && head == last {
                quiet += 1;
                // Webhooks are in flight for a millisecond or two on loopback.
                if quiet >= 4 {
                    return true;
                }
            } else {
                quiet = 0;
            }
            last = head;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        false
    }

    /// A buyer places an order on TikTok (paid, awaiting shipment).
    pub fn place(
        &self,
        items: &[(&str, u32)],
        fulfillment: FulfillmentType,
    ) -> anyhow::Result<SimOrder> {
        self.place_shipped_by(items, fulfillment, ShippingType::Seller)
    }

    /// [`Self::place`] for an order shipped with TikTok's label or the seller's carrier.
    pub fn place_shipped_by(
        &self,
        items: &[(&str, u32)],
        fulfillment: FulfillmentType,
        shipping: ShippingType,
    ) -> anyhow::Result<SimOrder> {
        let mut new = NewOrder::of(items, TikTokOrderStatus::AwaitingShipment);
        new.fulfillment_type = Some(fulfillment);
        if fulfillment == FulfillmentType::FulfillmentBySeller {
            let wire = match shipping {
                ShippingType::Seller => "SELLER",
                ShippingType::Tiktok => "TIKTOK",
            };
            new.shipping_type = Some(wire.into());
        }
        self.tiktok
            .create_order(new)
            .map_err(|e| anyhow::anyhow!("TikTok simulator refused the order: {e:?}"))
    }

    /// The merchant adds a product for `sku` in Katana with stock at the main location.
    pub fn add_katana_variant(&self, sku: &str, stock: i64) -> anyhow::Result<i64> {
        let id = self
            .katana
            .add_product(title_of(sku), &[(sku, price_of(sku))])
            .map_err(|e| anyhow::anyhow!("Katana simulator refused product {sku}: {e}"))?[0];
        self.katana
            .set_stock(id, self.main_location, Quantity::from_units(stock))
            .map_err(|e| anyhow::anyhow!("Katana simulator refused stock of {sku}: {e}"))?;
        self.variants.lock().insert(sku.to_string(), id);
        Ok(id)
    }

    /// A warehouse worker sets the stock of `sku` at the main location.
    pub fn set_katana_stock(&self, sku: &str, in_stock: i64) -> anyhow::Result<()> {
        let id = self
            .variants
            .lock()
            .get(sku)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("no Katana variant for {sku}"))?;
        self.katana
            .set_stock(id, self.main_location, Quantity::from_units(in_stock))
            .map_err(|e| anyhow::anyhow!("Katana simulator refused stock of {sku}: {e}"))
    }

    pub async fn stop(self) {
        self.app.stop().await;
        self.tiktok.stop().await;
        self.katana.stop().await;
    }
}

// ------------------------------------------------------------------ sandbox run

/// What `tks sandbox` was asked for.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    pub orders: usize,
    /// How much faster than a real shop time runs (120: a 60 minute hold lasts 30 s).
    pub speed: f64,
    /// Where the database goes (default: a new temporary directory that is kept).
    pub db: Option<PathBuf>,
    /// Real time after which the run gives up (default: derived from the script).
    pub timeout: Option<Duration>,
    /// After the summary, keep the service (and its console) up until Ctrl-C.
    pub keep_serving: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            orders: 12,
            speed: 120.0,
            db: None,
            timeout: None,
            keep_serving: false,
        }
    }
}

pub const MAX_ORDERS: usize = 1000;
pub const MAX_SPEED: f64 = 10_000.0;

impl SandboxOptions {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.orders == 0 || self.orders > MAX_ORDERS {
            anyhow::bail!("--orders must be between 1 and {MAX_ORDERS}");
        }
        if !self.speed.is_finite() || !(1.0..=MAX_SPEED).contains(&self.speed) {
            anyhow::bail!("--speed must be between 1 (real time) and {MAX_SPEED}");
        }
        if let Some(db) = &self.db {
            if db.exists() {
                anyhow::bail!(
                    "{}: already exists; the sandbox needs a new database because its simulators start empty",
                    db.display()
                );
            }
        }
        Ok(())
    }
}

/// A merchant duration divided by the speed.
pub fn scaled(d: Duration, speed: f64) -> Duration {
    d.div_f64(speed)
}

/// The sandbox's settings on top of [`World`]'s: every business duration and
/// every rate limit scaled by `speed`, so the shop runs `speed` times faster
/// without changing its proportions.
pub fn sandbox_settings(s: &mut Settings, speed: f64) {
    let defaults = Settings::default();
    s.sync.order_hold = scaled(defaults.sync.order_hold, speed);
    s.sync.inventory_buffer = scaled(defaults.sync.inventory_buffer, speed);
    s.tiktok.poll_interval = scaled(defaults.tiktok.poll_interval, speed);
    s.katana.poll_interval = scaled(defaults.katana.poll_interval, speed);
    s.katana.coalesce_stock_reads = scaled(defaults.katana.coalesce_stock_reads, speed);
    s.katana.coalesce_fulfillment_reads = scaled(defaults.katana.coalesce_fulfillment_reads, speed);
    s.katana.requests_per_minute = scaled_rate(defaults.katana.requests_per_minute, speed);
    s.tiktok.requests_per_second = scaled_rate(defaults.tiktok.requests_per_second, speed);
}

fn scaled_rate(per_unit: u32, speed: f64) -> u32 {
    (f64::from(per_unit) * speed)
        .round()
        .clamp(1.0, f64::from(u32::MAX)) as u32
}

/// Runs `tks sandbox`: starts the world on the real clock, plays the script with a
/// live log on `out`, prints the summary and stops everything. The outcome says
/// whether every scripted order reached its final state.
pub async fn run<W: Write>(options: SandboxOptions, out: W) -> anyhow::Result<Outcome> {
    options.validate()?;
    let (db_path, made_dir) = match &options.db {
        Some(p) => (p.clone(), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("tks-sandbox-")
                .tempdir()
                .context("creating a directory for the sandbox database")?
                // Kept on purpose: the summary tells the user to replay it.
                .keep();
            (dir.join("tks.db"), Some(dir))
        }
    };
    let speed = options.speed;
    let world = match World::sandbox(db_path, speed).await {
        Ok(w) => w,
        Err(e) => {
            // Nothing worth replaying was written.
            if let Some(dir) = made_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(e);
        }
    };
    let script = Script::new(options.orders);
    let timeout = options
        .timeout
        .unwrap_or_else(|| default_timeout(&script, speed));
    let mut out = out;
    let outcome = play(&world, &script, speed, timeout, &mut out).await;
    if options.keep_serving {
        let _ = writeln!(
            out,
            "the console stays up at {}/ (token \"{ADMIN_TOKEN}\"); Ctrl-C to stop (--exit ends after the summary)",
            world.app.base_url()
        );
        let _ = out.flush();
        let _ = tokio::signal::ctrl_c().await;
    }
    world.stop().await;
    outcome
}

/// Plays `script` against a running world with the live log and summary on
/// `out`, until every scripted order is final or `timeout` (real time) passed.
pub async fn play<W: Write>(
    world: &World,
    script: &Script,
    speed: f64,
    timeout: Duration,
    out: W,
) -> anyhow::Result<Outcome> {
    let mut runner = Runner::new(world, script, speed, out);
    runner.header();
    runner.play(timeout).await
}

/// Generous: three times what the script needs in merchant time, plus half a minute.
pub fn default_timeout(script: &Script, speed: f64) -> Duration {
    let last_stock = script
        .stock_changes
        .iter()
        .map(|c| c.at)
        .max()
        .unwrap_or_default();
    let hold = Settings::default().sync.order_hold;
    let merchant = script.last_arrival().max(last_stock) + hold + Duration::from_secs(30 * 60);
    scaled(merchant, speed) * 3 + Duration::from_secs(30)
}

/// What the run achieved, read back from the log and the simulators.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub placed: usize,
    pub pushed: usize,
    pub pushed_after_exception: usize,
    pub skipped: usize,
    pub cancelled: usize,
    pub edited: usize,
    pub exceptions_raised: usize,
    pub exceptions_resolved: usize,
    pub exceptions_open: usize,
    /// Non-deleted TikTok SOs in the Katana simulator.
    pub sales_orders_in_katana: usize,
    /// Packages TikTok's simulator recorded, and their line items.
    pub shipments: usize,
    pub shipped_line_items: usize,
    /// Of those, shipments TikTok arranged with its own label.
    pub tiktok_label_shipments: usize,
    /// Pushes of the multi-warehouse SKU, and how many of them sent the 3PL
    /// warehouse the quantity TikTok held for it at that moment.
    pub multi_warehouse_pushes: usize,
    pub other_warehouse_kept: usize,
    /// Inventory quantities TikTok's simulator accepted.
    pub inventory_pushes: usize,
    pub katana_requests: usize,
    pub katana_429: usize,
    /// `METHOD /path` (ids as `{id}`) -> requests, most called first.
    pub katana_by_endpoint: Vec<(String, usize)>,
}

/// The end of a run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Every scripted order reached its final state before the timeout.
    pub completed: bool,
    /// What was still missing at the timeout, one line each.
    pub missing: Vec<String>,
    pub elapsed: Duration,
    pub summary: Summary,
    /// (number, role, TikTok order id) of every placed order.
    pub orders: Vec<(usize, Role, String)>,
    pub db_path: PathBuf,
}

#[derive(Clone, Debug)]
enum Action {
    Place(usize),
    CancelOneUnit(usize),
    Cancel(usize),
    AddVariant,
    Deliver {
        order: usize,
        so_id: i64,
        order_no: String,
        rows: Option<Vec<(i64, u32)>>,
        part: u32,
    },
    SetStock(usize),
    SetOtherWarehouse(usize),
}

/// A scripted order once placed.
struct Tracked {
    id: String,
    /// (seller SKU, line item id) of every unit.
    units: Vec<(String, String)>,
}

/// A scripted stock change and whether the service has followed it through.
#[derive(Default)]
struct StockWatch {
    done_action: bool,
    seen: bool,
    settled: bool,
}

struct Runner<'a, W: Write> {
    world: &'a World,
    script: &'a Script,
    speed: f64,
    out: W,
    t0: DateTime<Utc>,
    queue: BTreeMap<(DateTime<Utc>, u64), Action>,
    seq: u64,
    tracked: Vec<Option<Tracked>>,
    by_id: HashMap<String, usize>,
    orders: HashMap<String, Order>,
    skus: BTreeMap<String, Sku>,
    position: u64,
    /// Events up to here happened before the script started: folded, not told.
    live_from: u64,
    stock: Vec<StockWatch>,
    variant_scheduled: bool,
    /// Event ids of Katana stock webhooks recorded on SKU streams, to tell a
    /// re-read the webhook caused from one the reconciliation poll made.
    stock_signals: HashSet<uuid::Uuid>,
    exceptions_raised: usize,
    exceptions_resolved: usize,
    pushed_after_exception: usize,
    /// When the 3PL's quantity was set (unix seconds) and to what.
    other_warehouse_set: Vec<(i64, i64)>,
}

fn fmt_items(items: &[(&str, u32)]) -> String {
    items
        .iter()
        .map(|(s, q)| format!("{s} x{q}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn status_name(s: TikTokOrderStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{s:?}"))
}

/// `mm:ss` of `t` since the start of the run.
fn stamp(t0: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let s = (t - t0).num_milliseconds().max(0) / 1000;
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// The order waited for a SKU mapping before this SO (the retry moved it from
/// blocked back to requested, so the open exception is what tells).
fn was_blocked(o: &Order) -> bool {
    matches!(o.so, SoState::Blocked { .. }) || o.exceptions.contains_key(keys::UNMATCHED_SKU)
}

fn units(q: Quantity) -> i64 {
    q.floor_units()
}

/// `unit 5000...1 (TOTE-NAT) cancelled` -> `1 unit of TOTE-NAT cancelled`.
fn readable_changes(changes: &[String]) -> String {
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    let mut other = Vec::new();
    for c in changes {
        let parsed = c.strip_prefix("unit ").and_then(|rest| {
            let (_, rest) = rest.split_once(" (")?;
            let (sku, what) = rest.split_once(") ")?;
            Some(format!("{sku} {what}"))
        });
        match parsed {
            Some(k) => *counted.entry(k).or_default() += 1,
            None => other.push(c.clone()),
        }
    }
    let mut out: Vec<String> = counted
        .into_iter()
        .map(|(k, n)| {
            let (sku, what) = k.split_once(' ').unwrap_or((&k, ""));
            let noun = if n == 1 { "unit" } else { "units" };
            format!("{n} {noun} of {sku} {what}")
        })
        .collect();
    out.extend(other);
    out.join(", ")
}

impl<'a, W: Write> Runner<'a, W> {
    fn new(world: &'a World, script: &'a Script, speed: f64, out: W) -> Self {
        let t0 = world.clock.now();
        let mut r = Runner {
            world,
            script,
            speed,
            out,
            t0,
            queue: BTreeMap::new(),
            seq: 0,
            tracked: script.orders.iter().map(|_| None).collect(),
            by_id: HashMap::new(),
            orders: HashMap::new(),
            skus: BTreeMap::new(),
            position: 0,
            live_from: world.store().head(),
            stock: script
                .stock_changes
                .iter()
                .map(|_| StockWatch::default())
                .collect(),
            variant_scheduled: false,
            stock_signals: HashSet::new(),
            exceptions_raised: 0,
            exceptions_resolved: 0,
            pushed_after_exception: 0,
            other_warehouse_set: Vec::new(),
        };
        for (i, o) in script.orders.iter().enumerate() {
            r.schedule_merchant(o.arrives, Action::Place(i));
            match o.role {
                Role::EditedInHold => r.schedule_merchant(
                    o.arrives + script.delays.edit_after,
                    Action::CancelOneUnit(i),
                ),
                Role::CancelledInHold => {
                    r.schedule_merchant(o.arrives + script.delays.cancel_after, Action::Cancel(i))
                }
                _ => {}
            }
        }
        for (i, c) in script.stock_changes.iter().enumerate() {
            r.schedule_merchant(c.at, Action::SetStock(i));
        }
        for (i, c) in script.other_warehouse.iter().enumerate() {
            r.schedule_merchant(c.at, Action::SetOtherWarehouse(i));
        }
        r
    }

    fn real(&self, merchant: Duration) -> chrono::Duration {
        chrono::Duration::from_std(scaled(merchant, self.speed)).unwrap_or(chrono::Duration::MAX)
    }

    /// At `merchant` time from the start of the run.
    fn schedule_merchant(&mut self, merchant: Duration, action: Action) {
        let at = self.t0 + self.real(merchant);
        self.schedule_at(at, action);
    }

    /// `merchant` time from now.
    fn schedule_in(&mut self, merchant: Duration, action: Action) {
        let at = self.world.clock.now() + self.real(merchant);
        self.schedule_at(at, action);
    }

    fn schedule_at(&mut self, at: DateTime<Utc>, action: Action) {
        self.seq += 1;
        self.queue.insert((at, self.seq), action);
    }

    fn stamp_of(&self, t: DateTime<Utc>) -> String {
        stamp(self.t0, t)
    }

    fn say(&mut self, line: impl AsRef<str>) {
        let stamp = self.stamp_of(self.world.clock.now());
        // A closed stdout (e.g. piped into `head`) must not stop the run.
        let _ = writeln!(self.out, "[{stamp}] {}", line.as_ref());
        let _ = self.out.flush();
    }

    fn plain(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", line.as_ref());
        let _ = self.out.flush();
    }

    fn header(&mut self) {
        let s = &self.world.services().settings;
        let hold = s.sync.order_hold;
        let buffer = s.sync.inventory_buffer;
        let poll = s.katana.poll_interval;
        let service = self.world.app.base_url();
        let db = self.world.db_path.display().to_string();
        let tiktok_skus: Vec<&str> = scenario::CATALOGUE.iter().map(|(s, _, _)| *s).collect();
        let katana_stock: Vec<String> = scenario::KATANA_STOCK
            .iter()
            .map(|(s, q)| format!("{s} {q}"))
            .collect();
        let script = self.script;
        let lines = [
            format!(
                "tks sandbox: TikTok Shop and Katana simulators and the service on 127.0.0.1, time x{}",
                self.speed
            ),
            format!(
                "  hold 60m -> {:.1}s, inventory buffer 60m -> {:.1}s, polls every {:.2}s, Katana 60 calls/min -> {}/min",
                hold.as_secs_f64(),
                buffer.as_secs_f64(),
                poll.as_secs_f64(),
                s.katana.requests_per_minute
            ),
            format!("  TikTok shop \"{}\" sells {}", self.world.tiktok.config().shop_name, tiktok_skus.join(", ")),
            format!(
                "  {} is also stocked on TikTok in a 3PL's warehouse ({} available) that the service does not own",
                scenario::MULTI_WAREHOUSE_SKU,
                scenario::OTHER_WAREHOUSE_STOCK
            ),
            format!(
                "  Katana \"Main warehouse\" stocks {} ({} has no Katana variant yet)",
                katana_stock.join(", "),
                scenario::UNMATCHED_SKU
            ),
            format!("  console {service}/ : log in with the admin token \"{ADMIN_TOKEN}\""),
            format!("  service {service} (operator token \"{ADMIN_TOKEN}\"), TikTok connected with an auth code, Katana webhook registered by the service"),
            format!("  database {db}"),
            format!(
                "  script: {} orders ({} normal, {} fulfilled by TikTok, {} shipped with TikTok's label, {} with an unmatched SKU, {} edited and {} cancelled in the hold), {} stock changes",
                script.orders.len(),
                script.count(Role::Normal),
                script.count(Role::FulfilledByTikTok),
                script.count(Role::TikTokShipping),
                script.count(Role::Unmatched),
                script.count(Role::EditedInHold),
                script.count(Role::CancelledInHold),
                script.stock_changes.len()
            ),
        ];
        for l in lines {
            self.plain(l);
        }
    }

    fn label(&self, order_id: &str) -> String {
        match self.by_id.get(order_id) {
            Some(i) => format!("order #{}", i + 1),
            None => format!("order {order_id}"),
        }
    }

    // ------------------------------------------------------------ the loop

    async fn play(&mut self, timeout: Duration) -> anyhow::Result<Outcome> {
        let deadline =
            self.t0 + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let store = self.world.store().clone();
        let mut head = store.watch_head();
        let completed = loop {
            head.mark_unchanged();
            loop {
                let batch = store.read_all(self.position, 512)?;
                if batch.is_empty() {
                    break;
                }
                for e in &batch {
                    self.on_event(e);
                    self.position = e.position;
                }
            }
            let now = self.world.clock.now();
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let action = entry.remove();
                self.perform(action);
            }
            if self.pending().is_empty() {
                break true;
            }
            if now >= deadline {
                break false;
            }
            let next = self
                .queue
                .keys()
                .next()
                .map_or(deadline, |(t, _)| *t)
                .min(deadline);
            tokio::select! {
                _ = head.changed() => {}
                _ = self.world.clock.sleep_until(next) => {}
            }
        };
        let elapsed = (self.world.clock.now() - self.t0)
            .to_std()
            .unwrap_or_default();
        let missing = self.pending();
        if !completed {
            self.say(format!(
                "timed out after {:.0}s; still waiting for:",
                timeout.as_secs_f64()
            ));
            for m in &missing {
                self.plain(format!("  - {m}"));
            }
        }
        let summary = self.summary();
        let orders: Vec<(usize, Role, String)> = self
            .tracked
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                t.as_ref()
                    .map(|t| (i + 1, self.script.orders[i].role, t.id.clone()))
            })
            .collect();
        let outcome = Outcome {
            completed,
            missing,
            elapsed,
            summary,
            orders,
            db_path: self.world.db_path.clone(),
        };
        self.print_summary(&outcome);
        Ok(outcome)
    }

    // ------------------------------------------------------------ scenario actions

    fn perform(&mut self, action: Action) {
        if let Err(e) = self.try_perform(action) {
            self.say(format!("scenario step failed: {e:#}"));
        }
    }

    fn try_perform(&mut self, action: Action) -> anyhow::Result<()> {
        match action {
            Action::Place(i) => {
                let o: &ScriptedOrder = &self.script.orders[i];
                let fulfillment = if o.role == Role::FulfilledByTikTok {
                    FulfillmentType::FulfillmentByTiktok
                } else {
                    FulfillmentType::FulfillmentBySeller
                };
                let shipping = if o.role == Role::TikTokShipping {
                    ShippingType::Tiktok
                } else {
                    ShippingType::Seller
                };
                let placed = self
                    .world
                    .place_shipped_by(&o.items, fulfillment, shipping)?;
                let extra = match o.role {
                    Role::FulfilledByTikTok => ", fulfilled by TikTok",
                    Role::TikTokShipping => ", shipped with TikTok's label",
                    _ => "",
                };
                let line = format!(
                    "TikTok: buyer places order #{} {} ({}{extra})",
                    o.number,
                    placed.id,
                    fmt_items(&o.items)
                );
                self.by_id.insert(placed.id.clone(), i);
                self.tracked[i] = Some(Tracked {
                    id: placed.id.clone(),
                    units: placed
                        .units
                        .iter()
                        .map(|u| (u.seller_sku.clone(), u.id.clone()))
                        .collect(),
                });
                self.say(line);
            }
            Action::CancelOneUnit(i) => {
                let t = self.tracked[i].as_ref().context("order not placed yet")?;
                // The last unit of the SKU with the most units: the order keeps every SKU.
                let mut count: BTreeMap<&str, usize> = BTreeMap::new();
                for (sku, _) in &t.units {
                    *count.entry(sku).or_default() += 1;
                }
                let sku = count
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(s, _)| s.to_string())
                    .context("order has no units")?;
                let unit = t
                    .units
                    .iter()
                    .rev()
                    .find(|(s, _)| *s == sku)
                    .map(|(_, id)| id.clone())
                    .context("no unit to cancel")?;
                let id = t.id.clone();
                self.world
                    .tiktok
                    .cancel_order(&id, Some(vec![unit]))
                    .map_err(|e| anyhow::anyhow!("TikTok refused the unit cancellation: {e:?}"))?;
                self.say(format!(
                    "TikTok: buyer of order #{} cancels 1 unit of {sku} (still in the hold)",
                    i + 1
                ));
            }
            Action::Cancel(i) => {
                let id = self.tracked[i]
                    .as_ref()
                    .context("order not placed yet")?
                    .id
                    .clone();
                self.world
                    .tiktok
                    .cancel_order(&id, None)
                    .map_err(|e| anyhow::anyhow!("TikTok refused the cancellation: {e:?}"))?;
                self.say(format!(
                    "TikTok: buyer cancels order #{} (still in the hold)",
                    i + 1
                ));
            }
            Action::AddVariant => {
                let sku = scenario::UNMATCHED_SKU;
                let id = self
                    .world
                    .add_katana_variant(sku, scenario::UNMATCHED_SKU_STOCK)?;
                self.say(format!(
                    "Katana: merchant adds product {sku} (variant {id}, stock {}); the next catalogue refresh finds it",
                    scenario::UNMATCHED_SKU_STOCK
                ));
            }
            Action::Deliver {
                order,
                so_id,
                order_no,
                rows,
                part,
            } => {
                let n = order + 1;
                // A parcel shipped with TikTok's label gets its tracking from TikTok.
                let own_carrier = self.script.orders[order].role != Role::TikTokShipping;
                let tracking = format!(
                    "1Z9SB403{part:02}{:08}",
                    (so_id * 100 + n as i64) % 100_000_000
                );
                let t = Tracking {
                    tracking_number: own_carrier.then(|| tracking.clone()),
                    tracking_url: None,
                    tracking_carrier: own_carrier.then(|| "UPS".into()),
                };
                let carrier = if own_carrier {
                    format!("UPS {tracking}")
                } else {
                    "tracking to come from TikTok".to_string()
                };
                let what = match &rows {
                    Some(r) => {
                        let units: u32 = r.iter().map(|(_, q)| q).sum();
                        format!("{units} unit(s) now, the rest later")
                    }
                    None if part > 1 => "the rest".to_string(),
                    None => "everything".to_string(),
                };
                let quantities: Option<Vec<(i64, Quantity)>> = rows.map(|r| {
                    r.iter()
                        .map(|(row, q)| (*row, Quantity::from_units(i64::from(*q))))
                        .collect()
                });
                self.world
                    .katana
                    .deliver(so_id, quantities.as_deref(), t)
                    .map_err(|e| {
                        anyhow::anyhow!("Katana refused the delivery of SO {so_id}: {e}")
                    })?;
                self.say(format!(
                    "Katana: warehouse delivers SO {order_no} of order #{n}: {what} ({carrier})"
                ));
            }
            Action::SetStock(i) => {
                let c = &self.script.stock_changes[i];
                let before = self
                    .world
                    .variants
                    .lock()
                    .get(c.sku)
                    .map(|v| units(self.world.katana.stock(*v, self.world.main_location).0));
                self.world.set_katana_stock(c.sku, c.in_stock)?;
                self.stock[i].done_action = true;
                let before = before.map_or_else(|| "?".to_string(), |b| b.to_string());
                self.say(format!(
                    "Katana: {} stock {before} -> {} ({})",
                    c.sku, c.in_stock, c.why
                ));
            }
            Action::SetOtherWarehouse(i) => {
                let c = &self.script.other_warehouse[i];
                let sku = scenario::MULTI_WAREHOUSE_SKU;
                let sku_id = tiktok_sku_id(sku).context("multi-warehouse SKU not listed")?;
                self.world
                    .tiktok
                    .set_available(&sku_id, SECOND_WAREHOUSE, c.available)
                    .map_err(|e| anyhow::anyhow!("TikTok refused the 3PL count: {e:?}"))?;
                self.other_warehouse_set
                    .push((self.world.clock.now().timestamp(), c.available));
                self.say(format!(
                    "TikTok: the 3PL warehouse now has {} {sku} available ({}); the service owns only the main warehouse",
                    c.available, c.why
                ));
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ following the log

    fn on_event(&mut self, e: &RecordedEvent) {
        let live = e.position > self.live_from;
        if let Some((order_id, ev)) = decode_order(e) {
            let before = self.orders.get(&order_id).cloned().unwrap_or_default();
            let mut after = before.clone();
            after.apply(&ev);
            self.orders.insert(order_id.clone(), after.clone());
            if !live {
                return;
            }
            self.count_exceptions_order(&ev, &before);
            self.react(&order_id, &before, &ev);
            if let Some(line) = self.render_order(&order_id, &before, &after, &ev) {
                self.say(line);
            }
        } else if let Some((sku, ev)) = decode_sku(e) {
            let before = self.skus.get(&sku).cloned().unwrap_or_default();
            let mut after = before.clone();
            after.apply(&ev);
            self.skus.insert(sku.clone(), after.clone());
            if !live {
                return;
            }
            match &ev {
                SkuEvent::ExceptionRaised(_) => self.exceptions_raised += 1,
                SkuEvent::ExceptionResolved(_) => self.exceptions_resolved += 1,
                _ => {}
            }
            if matches!(ev, SkuEvent::SkuSignalled(_)) {
                self.stock_signals.insert(e.meta.event_id);
            }
            let by_webhook = e
                .meta
                .causation_id
                .is_some_and(|c| self.stock_signals.contains(&c));
            if let Some(line) = self.watch_stock(&sku, &ev, &after, by_webhook) {
                self.say(line);
            }
            if let Some(line) = self.render_sku(&sku, &after, &ev) {
                self.say(line);
            }
        }
    }

    fn count_exceptions_order(&mut self, ev: &OrderEvent, before: &Order) {
        match ev {
            OrderEvent::ExceptionRaised(_) => self.exceptions_raised += 1,
            OrderEvent::ExceptionResolved(_) => self.exceptions_resolved += 1,
            OrderEvent::SoCreated(_) if was_blocked(before) => self.pushed_after_exception += 1,
            _ => {}
        }
    }

    /// The scenario's reactions: deliver what Katana received, add the missing
    /// variant once the exception shows.
    fn react(&mut self, order_id: &str, before: &Order, ev: &OrderEvent) {
        let Some(&i) = self.by_id.get(order_id) else {
            return;
        };
        let o = &self.script.orders[i];
        match ev {
            OrderEvent::SoCreated(so) if o.role.ships() && before.so_id().is_none() => {
                let rows: Vec<(i64, u32)> =
                    so.rows.iter().map(|r| (r.row_id, r.quantity)).collect();
                let delays = self.script.delays;
                let first = o
                    .partial_delivery
                    .then(|| scenario::first_part(&rows))
                    .flatten();
                let deliver = |rows, part| Action::Deliver {
                    order: i,
                    so_id: so.so_id,
                    order_no: so.order_no.clone(),
                    rows,
                    part,
                };
                match first {
                    Some(first) => {
                        self.schedule_in(delays.deliver_after, deliver(Some(first), 1));
                        self.schedule_in(
                            delays.deliver_after + delays.rest_after,
                            deliver(None, 2),
                        );
                    }
                    None => self.schedule_in(delays.deliver_after, deliver(None, 1)),
                }
            }
            OrderEvent::SoBlocked(_) if o.role == Role::Unmatched && !self.variant_scheduled => {
                self.variant_scheduled = true;
                self.schedule_in(self.script.delays.add_variant_after, Action::AddVariant);
            }
            _ => {}
        }
    }

    /// Follows a scripted stock change through the service; says when the
    /// service has read the new stock.
    fn watch_stock(
        &mut self,
        sku: &str,
        ev: &SkuEvent,
        after: &Sku,
        by_webhook: bool,
    ) -> Option<String> {
        let how = if by_webhook {
            "Katana's webhook"
        } else {
            "the reconciliation poll"
        };
        let mut line = None;
        let t0 = self.t0;
        for (i, c) in self.script.stock_changes.iter().enumerate() {
            let w = &mut self.stock[i];
            if c.sku != sku || !w.done_action || w.settled {
                continue;
            }
            match ev {
                SkuEvent::StockChanged(s) if !w.seen && units(s.in_stock) == c.in_stock => {
                    w.seen = true;
                    let window = match after.buffer_due {
                        Some(due) => format!("buffer open until [{}]", stamp(t0, due)),
                        None => "no buffer open".into(),
                    };
                    line = Some(format!(
                        "SKU {sku}: {how} -> stock re-read: {} in stock, {} committed ({window})",
                        c.in_stock,
                        units(s.committed)
                    ));
                }
                SkuEvent::InventoryPushed(_) | SkuEvent::BufferClosed(_) if w.seen => {
                    w.settled = true
                }
                _ => {}
            }
        }
        line
    }

    fn render_order(
        &self,
        order_id: &str,
        before: &Order,
        after: &Order,
        ev: &OrderEvent,
    ) -> Option<String> {
        let who = self.label(order_id);
        Some(match ev {
            OrderEvent::OrderPlaced(p) => {
                let how = match p.source {
                    Source::Webhook => "from TikTok's webhook",
                    Source::Poll => "by the reconciliation poll",
                    Source::HoldReread | Source::Unknown => "",
                };
                format!(
                    "{who}: recorded {how}, held until [{}]",
                    self.stamp_of(p.hold_until)
                )
            }
            OrderEvent::OrderSkipped(_) => {
                format!("{who}: fulfilled by TikTok -> recorded as skipped, never pushed to Katana")
            }
            OrderEvent::OrderEdited(e) => {
                if e.snapshot.status == TikTokOrderStatus::Cancelled {
                    return None;
                }
                let only_status = e.changes.iter().all(|c| c.starts_with("status "));
                if e.after_push && only_status {
                    format!(
                        "{who}: TikTok now shows it {}",
                        status_name(e.snapshot.status)
                    )
                } else if e.changes.iter().all(|c| c == "shipping progress") {
                    return None;
                } else if e.after_push {
                    format!(
                        "{who}: edited on TikTok after the push: {}",
                        readable_changes(&e.changes)
                    )
                } else {
                    format!(
                        "{who}: edit seen during the hold: {}",
                        readable_changes(&e.changes)
                    )
                }
            }
            OrderEvent::OrderCancelled(c) => {
                if c.after_push {
                    format!("{who}: cancelled on TikTok after the push")
                } else {
                    format!(
                        "{who}: cancelled on TikTok during the hold -> it will never reach Katana"
                    )
                }
            }
            OrderEvent::HoldExpired(_) if after.cancelled => {
                format!("{who}: hold over; the order is cancelled -> nothing sent to Katana")
            }
            OrderEvent::SoBlocked(b) => format!(
                "{who}: hold over, but SKU {} has no Katana variant -> exception, the SO waits",
                b.unmatched.join(", ")
            ),
            OrderEvent::SoCreated(so) => {
                let rows = so
                    .rows
                    .iter()
                    .map(|r| format!("{} x{}", r.seller_sku, r.quantity))
                    .collect::<Vec<_>>()
                    .join(", ");
                let left_out = after
                    .snapshot
                    .as_ref()
                    .map_or(0, |s| s.units.iter().filter(|u| u.cancelled).count());
                let note = if left_out > 0 {
                    format!("; {left_out} unit(s) cancelled in the hold left out")
                } else {
                    String::new()
                };
                if was_blocked(before) {
                    format!(
                        "{who}: the variant exists now -> exception resolved, SO {} created in Katana ({rows}){note}",
                        so.order_no
                    )
                } else {
                    format!(
                        "{who}: hold expired -> SO {} created in Katana ({rows}){note}",
                        so.order_no
                    )
                }
            }
            OrderEvent::SoCreateFailed(f) if f.retryable => {
                format!("{who}: SO not created yet ({}); retrying", f.reason)
            }
            OrderEvent::SoCreateFailed(f) => format!("{who}: Katana refused the SO: {}", f.reason),
            OrderEvent::SoDeleted(d) => format!("{who}: SO {} deleted in Katana", d.so_id),
            OrderEvent::SoDelivered(d) if d.line_item_ids.is_empty() => format!(
                "{who}: Katana fulfillment {} has no unshipped TikTok unit left",
                d.fulfillment.fulfillment_id
            ),
            OrderEvent::FulfillmentPushed(p) => {
                let SoState::Created { order_no, rows, .. } = &after.so else {
                    return None;
                };
                let total: u32 = rows.iter().map(|r| r.quantity).sum();
                let delivered: i64 = after
                    .deliveries
                    .values()
                    .flat_map(|d| d.fulfillment.rows.iter())
                    .map(|(_, q)| units(*q))
                    .sum();
                let d = after.deliveries.get(&p.fulfillment_id)?;
                let items = d.line_item_ids.len();
                let (carrier, tracking) = match after.arranged_packages.get(&p.package_id) {
                    Some(t) => ("TikTok's label", t.as_str()),
                    None => (
                        d.fulfillment.tracking_carrier.as_deref().unwrap_or("no carrier"),
                        d.fulfillment.tracking_number.as_deref().unwrap_or("no tracking"),
                    ),
                };
                let noun = if items == 1 {
                    "line item"
                } else {
                    "line items"
                };
                format!(
                    "{who}: SO {order_no} delivered {delivered} of {total} -> TikTok shipment, {items} {noun} ({carrier} {tracking})"
                )
            }
            OrderEvent::ShipmentArranged(a) => format!(
                "{who}: TikTok arranges the shipment ({}, {}) and issues its label, tracking {}",
                a.handover_method.to_lowercase().replace('_', "-"),
                if a.shipping_provider.is_empty() {
                    "TikTok's carrier"
                } else {
                    a.shipping_provider.as_str()
                },
                a.tracking_number
            ),
            OrderEvent::TrackingWrittenToKatana(w) => format!(
                "{who}: Katana fulfillment {} gets TikTok's tracking {}: the warehouse prints TikTok's label",
                w.fulfillment_id, w.tracking_number
            ),
            OrderEvent::ExceptionRaised(x) if x.key != keys::UNMATCHED_SKU => {
                format!("{who}: exception {}: {}", x.key, x.message)
            }
            OrderEvent::ExceptionResolved(x) if x.key != keys::UNMATCHED_SKU => {
                format!("{who}: exception {} resolved", x.key)
            }
            _ => return None,
        })
    }

    fn render_sku(&self, sku: &str, after: &Sku, ev: &SkuEvent) -> Option<String> {
        let in_stock: i64 = after.locations.values().map(|l| units(l.in_stock)).sum();
        let committed: i64 = after.locations.values().map(|l| units(l.committed)).sum();
        let held: i64 = after.demand.values().map(|u| i64::from(*u)).sum();
        Some(match ev {
            SkuEvent::SkuMapped(m) => format!(
                "SKU {sku}: found in Katana (variant {}) -> mapped; orders waiting for it are retried",
                m.variant_id
            ),
            SkuEvent::BufferOpened(b) => format!(
                "SKU {sku}: stock or held demand changed -> inventory buffer open until [{}]",
                self.stamp_of(b.due_at)
            ),
            SkuEvent::InventoryPushed(p) => {
                let held = if held > 0 {
                    format!(" - {held} in orders still held")
                } else {
                    String::new()
                };
                format!(
                    "SKU {sku}: buffer flushed -> TikTok shows {} ({in_stock} in stock - {committed} committed{held})",
                    p.quantity
                )
            }
            SkuEvent::BufferClosed(c) => format!(
                "SKU {sku}: buffer closed, TikTok already shows {} -> nothing pushed",
                c.atp
            ),
            SkuEvent::ExceptionRaised(x) => format!("SKU {sku}: exception {}: {}", x.key, x.message),
            SkuEvent::ExceptionResolved(x) => format!("SKU {sku}: exception {} resolved", x.key),
            SkuEvent::ChannelSyncToggled(t) => format!(
                "SKU {sku}: inventory sync {}",
                if t.enabled { "enabled" } else { "disabled" }
            ),
            _ => return None,
        })
    }

    // ------------------------------------------------------------ completion

    /// What is not final yet, one readable line each (empty: the run is done).
    fn pending(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, o) in self.script.orders.iter().enumerate() {
            let n = o.number;
            let Some(t) = &self.tracked[i] else {
                out.push(format!(
                    "order #{n} ({}): not placed yet",
                    o.role.describe()
                ));
                continue;
            };
            let Some(state) = self.orders.get(&t.id) else {
                out.push(format!(
                    "order #{n} {}: the service has not recorded it",
                    t.id
                ));
                continue;
            };
            if let Some(why) = Self::not_final(o.role, state) {
                out.push(format!(
                    "order #{n} {} ({}): {why}",
                    t.id,
                    o.role.describe()
                ));
            }
        }
        for (i, c) in self.script.stock_changes.iter().enumerate() {
            let w = &self.stock[i];
            let why = if !w.done_action {
                "not made yet"
            } else if !w.seen {
                "not seen by the service yet"
            } else if !w.settled {
                "inventory buffer not flushed yet"
            } else {
                continue;
            };
            out.push(format!(
                "stock change of {} to {}: {why}",
                c.sku, c.in_stock
            ));
        }
        out
    }

    fn not_final(role: Role, o: &Order) -> Option<String> {
        match role {
            Role::FulfilledByTikTok => o.skipped.is_none().then(|| "not skipped yet".into()),
            Role::CancelledInHold => {
                if o.so != SoState::None {
                    Some(format!("pushed although cancelled: {:?}", o.so))
                } else if !o.cancelled {
                    Some("cancellation not seen yet".into())
                } else if !o.hold_expired {
                    Some("hold not over yet".into())
                } else {
                    None
                }
            }
            Role::TikTokShipping => {
                let waiting = o
                    .deliveries
                    .values()
                    .filter(|d| d.package_id.is_some() && d.tracking_written.is_none())
                    .count();
                match Self::not_final(Role::Normal, o) {
                    Some(why) => Some(why),
                    None if waiting > 0 => Some("TikTok's tracking not in Katana yet".to_string()),
                    None => None,
                }
            }
            Role::Normal | Role::Unmatched | Role::EditedInHold => {
                let live: Vec<&str> = o
                    .snapshot
                    .as_ref()
                    .map(|s| {
                        s.units
                            .iter()
                            .filter(|u| !u.cancelled)
                            .map(|u| u.line_item_id.as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                let shipped: Vec<&str> = o
                    .deliveries
                    .values()
                    .filter(|d| d.package_id.is_some())
                    .flat_map(|d| d.line_item_ids.iter().map(String::as_str))
                    .collect();
                let unshipped = live.iter().filter(|u| !shipped.contains(u)).count();
                match &o.so {
                    SoState::Created { .. } if unshipped == 0 && !live.is_empty() => None,
                    SoState::Created { .. } => Some(format!(
                        "{unshipped} of {} unit(s) not shipped on TikTok yet",
                        live.len()
                    )),
                    SoState::None if !o.hold_expired => Some("still in the hold".into()),
                    SoState::None => Some("hold over, SO not requested".into()),
                    SoState::Requested { last_error, .. } => Some(format!(
                        "SO requested, not created yet{}",
                        last_error
                            .as_ref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )),
                    SoState::Blocked { reason } => Some(format!("SO blocked: {reason}")),
                    SoState::Deleted { .. } => Some("SO deleted".into()),
                }
            }
        }
    }

    // ------------------------------------------------------------ summary

    fn summary(&self) -> Summary {
        let mut s = Summary {
            exceptions_raised: self.exceptions_raised,
            exceptions_resolved: self.exceptions_resolved,
            pushed_after_exception: self.pushed_after_exception,
            ..Summary::default()
        };
        for (i, t) in self.tracked.iter().enumerate() {
            let Some(t) = t else { continue };
            s.placed += 1;
            let Some(o) = self.orders.get(&t.id) else {
                continue;
            };
            if matches!(o.so, SoState::Created { .. }) {
                s.pushed += 1;
            }
            if o.skipped.is_some() {
                s.skipped += 1;
            }
            if o.cancelled {
                s.cancelled += 1;
            }
            if self.script.orders[i].role == Role::EditedInHold
                && o.snapshot
                    .as_ref()
                    .is_some_and(|x| x.units.iter().any(|u| u.cancelled))
            {
                s.edited += 1;
            }
        }
        s.exceptions_open = self
            .world
            .store()
            .lookup_all(EXCEPTION_LOOKUP)
            .map_or(0, |v| v.len());
        s.sales_orders_in_katana = self
            .world
            .katana
            .sales_orders()
            .iter()
            .filter(|so| so["deleted_at"].is_null() && so["ecommerce_order_type"] == "tiktok")
            .count();
        let shipments = self.world.tiktok.shipments();
        s.shipments = shipments.len();
        s.shipped_line_items = shipments.iter().map(|x| x.line_item_ids.len()).sum();
        s.tiktok_label_shipments = shipments
            .iter()
            .filter(|x| x.method == "tiktok_label")
            .count();
        let pushes = self.world.tiktok.inventory_pushes();
        s.inventory_pushes = pushes.len();
        let other = tiktok_sku_id(scenario::MULTI_WAREHOUSE_SKU).unwrap_or_default();
        let changes = &self.other_warehouse_set;
        for p in pushes.iter().filter(|p| p.sku_id == other) {
            if p.warehouse_id == MAIN_WAREHOUSE {
                s.multi_warehouse_pushes += 1;
            } else if p.warehouse_id == SECOND_WAREHOUSE {
                // What TikTok held for the 3PL when the update was sent.
                let expected = changes
                    .iter()
                    .filter(|(at, _)| *at <= p.time)
                    .map(|(_, q)| *q)
                    .next_back()
                    .unwrap_or(scenario::OTHER_WAREHOUSE_STOCK);
                if p.quantity == expected {
                    s.other_warehouse_kept += 1;
                }
            }
        }
        let stats = self.world.katana.stats();
        s.katana_requests = stats.requests;
        s.katana_429 = stats.rate_limited;
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for (endpoint, n) in stats.by_endpoint {
            let generic: Vec<&str> = endpoint
                .split('/')
                .map(|seg| {
                    if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                        "{id}"
                    } else {
                        seg
                    }
                })
                .collect();
            *by.entry(generic.join("/")).or_default() += n;
        }
        s.katana_by_endpoint = by.into_iter().collect();
        s.katana_by_endpoint
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        s
    }

    fn print_summary(&mut self, outcome: &Outcome) {
        let s = &outcome.summary;
        let db = outcome.db_path.display().to_string();
        let per_so = if s.pushed > 0 {
            format!("{:.1}", s.katana_requests as f64 / s.pushed as f64)
        } else {
            "-".into()
        };
        let example = outcome
            .orders
            .iter()
            .find(|(_, r, _)| *r == Role::Unmatched)
            .or_else(|| outcome.orders.first())
            .map(|(_, _, id)| id.clone());
        let verdict = if outcome.completed {
            "every scripted order reached its final state"
        } else {
            "INCOMPLETE: see the list above"
        };
        let poll = self.world.services().settings.katana.poll_interval;
        let by_endpoint = s
            .katana_by_endpoint
            .iter()
            .map(|(e, n)| format!("{e} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = |label: &str, value: String| format!("  {label:<30}{value}");
        let mut lines = vec![
            String::new(),
            format!(
                "summary after {:.0}s: {verdict}",
                outcome.elapsed.as_secs_f64()
            ),
            row("orders placed on TikTok", s.placed.to_string()),
            row(
                "pushed to Katana as SOs",
                format!(
                    "{} ({} after an exception was resolved; Katana holds {} TikTok SOs)",
                    s.pushed, s.pushed_after_exception, s.sales_orders_in_katana
                ),
            ),
            row("skipped (fulfilled by TikTok)", s.skipped.to_string()),
            row("cancelled in the hold", format!("{} (never pushed)", s.cancelled)),
            row("edited in the hold", s.edited.to_string()),
            row(
                "exceptions",
                format!(
                    "{} raised, {} resolved, {} open",
                    s.exceptions_raised, s.exceptions_resolved, s.exceptions_open
                ),
            ),
            row(
                "shipments to TikTok",
                format!(
                    "{} packages, {} line items ({} with TikTok's label)",
                    s.shipments, s.shipped_line_items, s.tiktok_label_shipments
                ),
            ),
            row("inventory pushes to TikTok", s.inventory_pushes.to_string()),
            row(
                "multi-warehouse SKU",
                format!(
                    "{}: {} pushes, the 3PL warehouse sent its current quantity in {}",
                    scenario::MULTI_WAREHOUSE_SKU,
                    s.multi_warehouse_pushes,
                    s.other_warehouse_kept
                ),
            ),
            row(
                "Katana API calls",
                format!(
                    "{} = {per_so} per SO pushed, reconciliation polls every {:.2}s included; {} answered 429",
                    s.katana_requests,
                    poll.as_secs_f64(),
                    s.katana_429
                ),
            ),
            row("  by endpoint", by_endpoint),
            row("database", db.clone()),
        ];
        if let Some(id) = example {
            lines.push(row(
                "the whole story of an order",
                format!("tks-replay timeline order {id} --db {db}"),
            ));
        }
        for l in lines {
            self.plain(l);
        }
    }
}
