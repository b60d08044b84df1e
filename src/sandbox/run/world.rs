//! The sandbox's world: both simulators and the service on 127.0.0.1, started,
//! settled, crashed and restarted, and the merchant's hand on the simulators.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::{sandbox_settings, scaled_rate};
use crate::app::{self, AppHandle, Services, StartOptions};
use crate::clock::Clock;
use crate::config::{Secret, Settings, ShopSettings};
use crate::domain::observed::{FulfillmentType, Quantity, ShippingType, TikTokOrderStatus};
use crate::sandbox::harness::{self, KatanaWebhook, Simulators};
use crate::sandbox::katana::{KatanaSim, KatanaSimConfig};
use crate::sandbox::scenario;
use crate::sandbox::tiktok::{state::SimOrder, RETURN_WAREHOUSE};
use crate::sandbox::tiktok::{
    NewOrder, NewProduct, NewSku, SimConfig, TikTokSim, DEMO_UK_SHOP_CIPHER, DEMO_UK_SHOP_ID,
    MAIN_WAREHOUSE, SECOND_WAREHOUSE,
};
use crate::store::SharedStore;

/// The operator API's bearer token in the sandbox.
pub const ADMIN_TOKEN: &str = "sandbox";

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
    /// TikTok shops of the demo seller selling the catalogue (the sandbox's main
    /// shop, its UK shop, then `SimConfig::demo_shops`'s).
    pub shops: usize,
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
    /// Orders placed so far: they go to the shops in turn.
    placed: std::sync::atomic::AtomicUsize,
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

/// Another shop's listings of the same seller SKUs, with ids of their own: the
/// `k`th shop (from 1) numbers them `…{k + 1:02}{i:05}`.
fn other_shop_catalogue(k: usize, warehouse: &str) -> Vec<NewProduct> {
    tiktok_catalogue()
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            p.id = Some(format!("172900000000{:02}{:05}", k + 1, i + 1));
            for sku in &mut p.skus {
                sku.id = Some(format!("172910000000{:02}{:05}", k + 1, i + 1));
                sku.inventory = vec![(warehouse.to_string(), 0)];
            }
            p
        })
        .collect()
}

/// TikTok's SKU id of a scripted seller SKU, as [`tiktok_catalogue`] numbers them.
pub(super) fn tiktok_sku_id(sku: &str) -> Option<String> {
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
        let sim_config = SimConfig::demo_shops(options.shops);
        let shop_ids: Vec<String> = sim_config.sellers()[0]
            .shops
            .iter()
            .take(options.shops.max(1))
            .map(|s| s.id.clone())
            .collect();
        let tiktok = TikTokSim::start(sim_config.clone(), clock.clone())
            .context("starting the TikTok simulator")?;
        tiktok
            .set_catalogue(tiktok_catalogue())
            .map_err(|e| anyhow::anyhow!("seeding the TikTok catalogue: {e:?}"))?;
        for (k, id) in shop_ids.iter().enumerate().skip(1) {
            let shop = tiktok.shop(id).context("the simulator's other shops")?;
            shop.set_catalogue(other_shop_catalogue(k, &shop.warehouses().main))
                .map_err(|e| anyhow::anyhow!("seeding shop {id}'s catalogue: {e:?}"))?;
        }
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
        if shop_ids.len() > 1 {
            let mut shops = vec![ShopSettings {
                id: s.tiktok.shop_id.clone(),
                cipher: s.tiktok.shop_cipher.clone(),
                pickup_warehouse_id: MAIN_WAREHOUSE.into(),
                pickup_location_id: main_location,
                return_warehouse_id: RETURN_WAREHOUSE.into(),
                return_location_id: main_location,
                fbt_location_id: fbt_location,
                order_no_prefix: "US-".into(),
                ..ShopSettings::default()
            }];
            for (k, id) in shop_ids.iter().enumerate().skip(1) {
                let own = sim_config
                    .warehouses_of(id)
                    .context("the simulator's other shops")?;
                shops.push(ShopSettings {
                    id: id.clone(),
                    cipher: if id == DEMO_UK_SHOP_ID {
                        DEMO_UK_SHOP_CIPHER.into()
                    } else {
                        String::new()
                    },
                    pickup_warehouse_id: own.main,
                    pickup_location_id: main_location,
                    return_warehouse_id: own.return_,
                    return_location_id: main_location,
                    fbt_location_id: fbt_location,
                    order_no_prefix: if id == DEMO_UK_SHOP_ID {
                        "UK-".into()
                    } else {
                        format!("S{}-", k + 1)
                    },
                    ..ShopSettings::default()
                });
            }
            s.shops = shops;
        }
        tune(&mut s);

        let start = StartOptions {
            pollers: options.pollers,
            katana_timeout: Duration::from_secs(10),
            ..StartOptions::default()
        };
        let settings = s.clone();
        // The Katana webhook the service registers itself (public_url is set).
        let app = harness::start_connected(
            s,
            &clock,
            listener,
            start.clone(),
            Simulators {
                tiktok: &tiktok,
                katana: &katana,
            },
            KatanaWebhook::RegisteredByService,
        )
        .await?;
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
            placed: std::sync::atomic::AtomicUsize::new(0),
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
            placed,
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
            placed,
        })
    }

    /// The sandbox's world: the real clock, Katana's limit and every business
    /// duration scaled by `speed`, pollers on.
    pub async fn sandbox(db_path: PathBuf, speed: f64, shops: usize) -> anyhow::Result<World> {
        World::start(
            Clock::real(),
            WorldOptions {
                db_path,
                katana_requests_per_minute: Some(scaled_rate(60, speed)),
                pollers: true,
                shops,
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

    /// Every durable subscriber has handled the whole log, and no simulator webhook
    /// is still on its way to add to it.
    pub fn caught_up(&self) -> bool {
        harness::caught_up(
            self.store(),
            Simulators {
                tiktok: &self.tiktok,
                katana: &self.katana,
            },
        )
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
            if self.caught_up() && head == last {
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
        let n = self
            .placed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Shop 0 is the simulator's main shop.
        let shops = &self.settings.shops;
        let shop = match shops.len() {
            0 | 1 => None,
            len => match n % len {
                0 => None,
                k => self.tiktok.shop(&shops[k].id),
            },
        };
        match shop {
            Some(shop) => shop.create_order(new),
            None => self.tiktok.create_order(new),
        }
        .map_err(|e| anyhow::anyhow!("TikTok simulator refused the order: {e:?}"))
    }

    /// The buyer cancels the order (or these units of it) in whichever shop it was
    /// placed.
    pub fn cancel_order(&self, id: &str, units: Option<Vec<String>>) -> anyhow::Result<()> {
        let shop = self
            .tiktok
            .shop_ids()
            .iter()
            .filter_map(|s| self.tiktok.shop(s))
            .find(|shop| shop.order(id).is_some())
            .with_context(|| format!("order {id} is in no shop of the simulator"))?;
        shop.cancel_order(id, units)
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("TikTok refused the cancellation: {e:?}"))
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
