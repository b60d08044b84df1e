//! A strict TikTok Shop Partner API simulator: a real actix-web server on loopback that checks
//! app key, timestamp window, signature, access token, shop cipher and request DTOs the way
//! TikTok does, keeps a shop's orders/catalogue/logistics, emits signed webhooks with TikTok's
//! retry schedule on the injected clock, and offers fault injection and a control surface
//! (Rust methods on [`TikTokSim`] and JSON under `/_sim/...`).
//!
//! One app serves several sellers, each with one or more shops: a token belongs to the
//! seller it was issued to and covers that seller's shops, the `shop_cipher` of a call picks
//! one of them, and every shop keeps its own orders, catalogue, warehouses and packages.

mod auth;
pub mod packages;
mod server;
pub mod shop;
pub mod state;
pub mod stock;

use std::collections::BTreeMap;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use packages::{
    Label, PackageInfo, PickupSlot, TrackingUpdate, LABEL_TTL, SHIPPING_INFO_WINDOW,
    TIKTOK_PROVIDER_ID, TIKTOK_PROVIDER_NAME,
};
pub use state::{
    sim_codes, ApiErr, InventoryPush, NewOrder, NewOrderItem, NewProduct, NewSku, OrderEdit,
    ShipmentRecord, SimAddress, MAIN_WAREHOUSE, RETURN_WAREHOUSE, SECOND_WAREHOUSE,
    SELLER_SHIPPING_OPTION,
};

use crate::clock::Clock;
use crate::connectors::tiktok::sign::webhook_signature;
use crate::domain::observed::TikTokOrderStatus;
use crate::sandbox::in_flight::InFlight;
use auth::{Credentials, Grant};
use shop::{IdCounter, ShopEntry};
pub use shop::{ShopSim, ShopWarehouses};
use state::{Notification, State};

/// How long issued credentials live, as TikTok documents them.
pub const ACCESS_TOKEN_TTL: i64 = 7 * 24 * 3600;
pub const REFRESH_TOKEN_TTL: i64 = 365 * 24 * 3600;
pub const AUTH_CODE_TTL: i64 = 30 * 60;
/// TikTok's webhook retry offsets after the first failed delivery.
pub const WEBHOOK_RETRIES: [Duration; 4] = [
    Duration::from_secs(2 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(12 * 3600),
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimShop {
    pub id: String,
    pub name: String,
    pub cipher: String,
    pub region: String,
}

/// A seller account and the shops it authorises the app for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimSeller {
    pub name: String,
    pub shops: Vec<SimShop>,
}

/// `SimConfig::demo_multi`'s second shop of the main seller.
pub const DEMO_UK_SHOP_ID: &str = "7494726673780150052";
pub const DEMO_UK_SHOP_CIPHER: &str = "ROW_sim_cipher_uk";
pub const DEMO_UK_SHOP_NAME: &str = "Sim Pottery UK";
/// `SimConfig::demo_multi`'s other seller (seller 1) and its one shop.
pub const DEMO_OTHER_SELLER_NAME: &str = "Clay Works";
pub const DEMO_OTHER_SHOP_ID: &str = "7495218830460913307";
pub const DEMO_OTHER_SHOP_CIPHER: &str = "ROW_sim_cipher_clay";
pub const DEMO_OTHER_SHOP_NAME: &str = "Clay Works US";

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub app_key: String,
    pub app_secret: String,
    pub shop_id: String,
    pub shop_cipher: String,
    pub shop_name: String,
    /// More shops of the main seller, covered by the same authorisation (cross-border
    /// sellers).
    pub extra_shops: Vec<SimShop>,
    /// Sellers besides the main one (whose shops are the main shop and `extra_shops`); seller
    /// `i` of `issue_auth_code_for_seller` is `other_sellers[i - 1]`.
    pub other_sellers: Vec<SimSeller>,
    /// Where signed notifications are POSTed, if anywhere.
    pub webhook_url: Option<String>,
    /// Requests per clock second before 429 + 36009002 (0 = unlimited).
    pub qps_limit: u32,
    /// The main shop's region (`US`, `GB`, `MY`, ...): decides whether Mark Package As
    /// Shipped exists there.
    pub region: String,
}

impl SimConfig {
    pub fn demo() -> Self {
        SimConfig {
            app_key: "sim_app_key".into(),
            app_secret: "sim_app_secret".into(),
            shop_id: "7494726673780148744".into(),
            shop_cipher: "ROW_sim_cipher_main".into(),
            shop_name: "Sim Pottery".into(),
            extra_shops: Vec::new(),
            other_sellers: Vec::new(),
            webhook_url: None,
            qps_limit: 0,
            region: "US".into(),
        }
    }

    /// The demo main seller with a second shop in the UK, plus another seller with one US
    /// shop: ids and ciphers are the `DEMO_*` constants.
    pub fn demo_multi() -> Self {
        let mut cfg = Self::demo();
        cfg.extra_shops.push(SimShop {
            id: DEMO_UK_SHOP_ID.into(),
            name: DEMO_UK_SHOP_NAME.into(),
            cipher: DEMO_UK_SHOP_CIPHER.into(),
            region: "GB".into(),
        });
        cfg.other_sellers.push(SimSeller {
            name: DEMO_OTHER_SELLER_NAME.into(),
            shops: vec![SimShop {
                id: DEMO_OTHER_SHOP_ID.into(),
                name: DEMO_OTHER_SHOP_NAME.into(),
                cipher: DEMO_OTHER_SHOP_CIPHER.into(),
                region: "US".into(),
            }],
        });
        cfg
    }

    /// The demo main seller with `n` shops in all: [`Self::demo`] for one,
    /// [`Self::demo_multi`] for two (and its other seller), then shops 3.. of the
    /// main seller in markets of their own, numbered `Sim Pottery 3`, ...
    pub fn demo_shops(n: usize) -> Self {
        if n <= 1 {
            return Self::demo();
        }
        let mut cfg = Self::demo_multi();
        const MARKETS: [&str; 8] = ["US", "GB", "ES", "IE", "MX", "DE", "FR", "IT"];
        for k in 3..=n {
            cfg.extra_shops.push(SimShop {
                id: Self::demo_shop_id(k),
                name: format!("Sim Pottery {k}"),
                cipher: format!("ROW_sim_cipher_{k}"),
                region: MARKETS[k % MARKETS.len()].into(),
            });
        }
        cfg
    }

    /// The id of [`Self::demo_shops`]'s shop `k` (from 3 on).
    pub fn demo_shop_id(k: usize) -> String {
        format!("74947266737801501{:02}", k % 100)
    }

    /// The same demo shop in another market.
    pub fn with_region(mut self, region: &str) -> Self {
        self.region = region.to_string();
        self
    }

    /// Every seller, the main one (named like its main shop) first.
    pub fn sellers(&self) -> Vec<SimSeller> {
        let mut v = vec![SimSeller {
            name: self.shop_name.clone(),
            shops: self.main_seller_shops(),
        }];
        v.extend(self.other_sellers.iter().cloned());
        v
    }

    /// A shop's warehouse ids (see [`ShopWarehouses`] for the rule), `None` for a shop the
    /// configuration does not have.
    pub fn warehouses_of(&self, shop_id: &str) -> Option<ShopWarehouses> {
        if shop_id == self.shop_id {
            return Some(ShopWarehouses::main_shop());
        }
        self.sellers()
            .iter()
            .flat_map(|s| s.shops.iter())
            .any(|s| s.id == shop_id)
            .then(|| ShopWarehouses::derived(shop_id))
    }

    fn main_seller_shops(&self) -> Vec<SimShop> {
        let mut v = vec![SimShop {
            id: self.shop_id.clone(),
            name: self.shop_name.clone(),
            cipher: self.shop_cipher.clone(),
            // TikTok reports the UK as GB.
            region: match self.region.to_ascii_uppercase().as_str() {
                "UK" => "GB".into(),
                r => r.to_string(),
            },
        }];
        v.extend(self.extra_shops.iter().cloned());
        v
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::demo()
    }
}

/// Fault-injection knobs; every field is optional in the JSON form so tests set only one.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// The next N API requests fail with HTTP 500 + 36009003.
    pub fail_next: u32,
    /// The next N API requests fail with HTTP 429 + 36009002 regardless of QPS.
    pub throttle_next: u32,
    /// Requests per clock second before throttling (overrides the config when set).
    pub qps_limit: Option<u32>,
    /// Real-time delay before each API response (to exercise client timeouts).
    pub delay_ms: u64,
    /// Drop the next N notifications entirely.
    pub drop_webhooks: u32,
    /// Deliver every notification twice (same `tts_notification_id`).
    pub duplicate_webhooks: bool,
    /// Paths starting with this prefix answer 105005 (scope not granted).
    pub deny_scope_prefix: Option<String>,
}

/// One webhook delivery attempt, for tests to read back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WebhookAttempt {
    pub notification_id: String,
    pub kind: i64,
    /// The envelope's `shop_id`: the shop the notification is about.
    #[serde(default)]
    pub shop_id: String,
    pub order_id: Option<String>,
    pub attempt: u32,
    /// HTTP status, or 0 when the connection failed.
    pub status: u16,
    pub time: i64,
}

pub(crate) struct Inner {
    pub cfg: SimConfig,
    pub clock: Clock,
    /// Every shop of every seller, the main shop first (never empty).
    pub shops: Vec<ShopEntry>,
    pub credentials: Mutex<Credentials>,
    pub faults: Mutex<Faults>,
    /// (clock second, requests in it)
    pub rate: Mutex<(i64, u32)>,
    pub webhook_url: Mutex<Option<String>>,
    pub webhook_log: Mutex<Vec<WebhookAttempt>>,
    pub webhook_tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    pub webhooks_in_flight: InFlight,
    pub request_count: Mutex<u64>,
    /// Requests per route (`"POST /fulfillment/202309/orders/{}/packages"`), counted once the
    /// path and method match, before any gateway check.
    pub route_calls: Mutex<BTreeMap<String, u64>>,
    /// `METHOD path` of every API request, in arrival order.
    pub request_log: Mutex<Vec<String>>,
    pub runtime: tokio::runtime::Handle,
    pub http: reqwest::Client,
}

impl Inner {
    pub fn now(&self) -> i64 {
        self.clock.unix()
    }

    pub fn main_shop(&self) -> &ShopEntry {
        &self.shops[0]
    }

    pub fn shop(&self, shop_id: &str) -> Option<&ShopEntry> {
        self.shops.iter().find(|s| s.id == shop_id)
    }

    /// The shops a seller authorised, under their current names.
    pub fn shops_of(&self, seller: usize) -> Vec<SimShop> {
        self.shops
            .iter()
            .filter(|s| s.seller == seller)
            .map(|s| s.state.lock().shop.clone())
            .collect()
    }

    /// Sends notifications produced by a state change of one shop (after its lock is
    /// released); the envelope names that shop.
    pub fn emit(self: &Arc<Self>, shop_id: &str, notes: Vec<Notification>) {
        let Some(url) = self.webhook_url.lock().clone() else {
            return;
        };
        for n in notes {
            let (drop, duplicate) = {
                let mut f = self.faults.lock();
                let drop = f.drop_webhooks > 0;
                if drop {
                    f.drop_webhooks -= 1;
                }
                (drop, f.duplicate_webhooks)
            };
            if drop {
                continue;
            }
            let id = uuid::Uuid::new_v4().simple().to_string();
            let body = json!({
                "type": n.kind,
                "tts_notification_id": id,
                "shop_id": shop_id,
                "timestamp": self.now(),
                "data": n.data,
            })
            .to_string();
            let order_id = n
                .data
                .get("order_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            for _ in 0..if duplicate { 2 } else { 1 } {
                let inner = self.clone();
                let delivery = Delivery {
                    url: url.clone(),
                    body: body.clone(),
                    id: id.clone(),
                    kind: n.kind,
                    shop_id: shop_id.to_string(),
                    order_id: order_id.clone(),
                };
                self.webhooks_in_flight.start();
                let task = self
                    .runtime
                    .spawn(async move { inner.deliver(delivery).await });
                self.webhook_tasks.lock().push(task.abort_handle());
            }
        }
    }

    async fn deliver(self: Arc<Self>, d: Delivery) {
        let Delivery {
            url,
            body,
            id,
            kind,
            shop_id,
            order_id,
        } = d;
        let signature = webhook_signature(&self.cfg.app_key, &self.cfg.app_secret, body.as_bytes());
        let first = self.clock.now();
        for attempt in 0..=WEBHOOK_RETRIES.len() {
            if attempt > 0 {
                let offset =
                    chrono::Duration::from_std(WEBHOOK_RETRIES[attempt - 1]).unwrap_or_default();
                self.clock.sleep_until(first + offset).await;
                self.webhooks_in_flight.start();
            }
            let status = match self
                .http
                .post(&url)
                .header("Authorization", &signature)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await
            {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            self.webhook_log.lock().push(WebhookAttempt {
                notification_id: id.clone(),
                kind,
                shop_id: shop_id.clone(),
                order_id: order_id.clone(),
                attempt: attempt as u32 + 1,
                status,
                time: self.now(),
            });
            self.webhooks_in_flight.done();
            if (200..300).contains(&status) {
                return;
            }
        }
    }
}

/// One notification on its way to the webhook URL.
struct Delivery {
    url: String,
    body: String,
    id: String,
    kind: i64,
    shop_id: String,
    order_id: Option<String>,
}

/// A running simulator. Dropping it without [`TikTokSim::stop`] leaves the server running
/// until the runtime ends.
pub struct TikTokSim {
    inner: Arc<Inner>,
    control: SimControl,
    addr: std::net::SocketAddr,
    server: actix_web::dev::ServerHandle,
}

impl TikTokSim {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime.
    pub fn start(cfg: SimConfig, clock: Clock) -> io::Result<TikTokSim> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| io::Error::other(format!("TikTokSim needs a tokio runtime: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let ids = IdCounter::default();
        let base_url = format!("http://{addr}");
        let mut shops = Vec::new();
        for (seller, s) in cfg.sellers().into_iter().enumerate() {
            for shop in s.shops {
                let part = if shop.id == cfg.shop_id && seller == 0 {
                    shop::MAIN_SHOP_PART.to_string()
                } else {
                    shop::shop_part(&shop.id)
                };
                let mut state = State::for_shop(shop.clone(), &part, ids.clone());
                state.base_url = base_url.clone();
                shops.push(ShopEntry {
                    id: shop.id,
                    cipher: shop.cipher,
                    seller,
                    state: Mutex::new(state),
                });
            }
        }
        if let Some(main) = shops.first_mut() {
            // The main shop's market as configured (`UK` and `GB` both name the UK).
            main.state.get_mut().region = cfg.region.to_ascii_uppercase();
        }
        let inner = Arc::new(Inner {
            webhook_url: Mutex::new(cfg.webhook_url.clone()),
            faults: Mutex::new(Faults {
                qps_limit: (cfg.qps_limit > 0).then_some(cfg.qps_limit),
                ..Faults::default()
            }),
            cfg,
            clock,
            shops,
            credentials: Mutex::new(Credentials::default()),
            rate: Mutex::new((0, 0)),
            webhook_log: Mutex::new(Vec::new()),
            webhook_tasks: Mutex::new(Vec::new()),
            webhooks_in_flight: InFlight::default(),
            request_count: Mutex::new(0),
            route_calls: Mutex::new(BTreeMap::new()),
            request_log: Mutex::new(Vec::new()),
            runtime: runtime.clone(),
            http,
        });
        let server = server::build(inner.clone(), listener)?;
        let handle = server.handle();
        runtime.spawn(server);
        Ok(TikTokSim {
            control: SimControl {
                inner: inner.clone(),
            },
            inner,
            addr,
            server: handle,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Token endpoints live on the same server under `/api/v2/token/...`.
    pub fn auth_base_url(&self) -> String {
        self.base_url()
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    pub async fn stop(self) {
        for t in self.inner.webhook_tasks.lock().drain(..) {
            t.abort();
        }
        self.server.stop(true).await;
    }
}

impl std::ops::Deref for TikTokSim {
    type Target = SimControl;
    fn deref(&self) -> &SimControl {
        &self.control
    }
}

/// The control surface: what tests and the sandbox scenario do to the simulated shop. The
/// same operations are served as JSON under `/_sim/...`.
#[derive(Clone)]
pub struct SimControl {
    pub(crate) inner: Arc<Inner>,
}

impl SimControl {
    /// The handle on one shop of any seller; `None` for a shop the simulator does not have.
    pub fn shop(&self, shop_id: &str) -> Option<ShopSim<'_>> {
        self.inner.shop(shop_id).map(|entry| ShopSim {
            inner: &self.inner,
            entry,
        })
    }

    /// The configured main shop, which every shop-level method of [`SimControl`] acts on.
    pub fn main_shop(&self) -> ShopSim<'_> {
        ShopSim {
            inner: &self.inner,
            entry: self.inner.main_shop(),
        }
    }

    /// Every shop of every seller, the main shop first, then the main seller's other shops,
    /// then the other sellers' in configuration order.
    pub fn shop_ids(&self) -> Vec<String> {
        self.inner.shops.iter().map(|s| s.id.clone()).collect()
    }

    /// The demo catalogue (fixed ids, main-shop warehouses), in the main shop.
    pub fn seed_demo_catalogue(&self) -> Vec<state::SimProduct> {
        self.set_catalogue(State::demo_catalogue())
            .unwrap_or_default()
    }

    pub fn set_catalogue(
        &self,
        products: Vec<NewProduct>,
    ) -> Result<Vec<state::SimProduct>, ApiErr> {
        self.main_shop().set_catalogue(products)
    }

    pub fn products(&self) -> Vec<state::SimProduct> {
        self.main_shop().products()
    }

    pub fn create_order(&self, new: NewOrder) -> Result<state::SimOrder, ApiErr> {
        self.main_shop().create_order(new)
    }

    pub fn edit_order(&self, id: &str, edit: OrderEdit) -> Result<state::SimOrder, ApiErr> {
        self.main_shop().edit_order(id, edit)
    }

    /// Cancels the whole order (`None`) or the given units.
    pub fn cancel_order(
        &self,
        id: &str,
        line_item_ids: Option<Vec<String>>,
    ) -> Result<state::SimOrder, ApiErr> {
        self.main_shop().cancel_order(id, line_item_ids)
    }

    pub fn set_order_status(
        &self,
        id: &str,
        status: TikTokOrderStatus,
    ) -> Result<state::SimOrder, ApiErr> {
        self.main_shop().set_order_status(id, status)
    }

    pub fn order(&self, id: &str) -> Option<state::SimOrder> {
        self.main_shop().order(id)
    }

    /// A single-use authorisation code for the main seller's main account (`user_type` 0).
    pub fn issue_auth_code(&self) -> String {
        self.issue_auth_code_for(0)
    }

    /// `user_type` 1 (creator) or 3 (partner) reproduces a non-seller authorisation (of the
    /// main seller's shops).
    pub fn issue_auth_code_for(&self, user_type: i64) -> String {
        self.issue_code(Grant {
            user_type,
            seller: 0,
        })
    }

    /// A single-use authorisation code of a seller's main account: 0 = the main seller,
    /// `i` = `other_sellers[i - 1]`. For a seller the configuration does not have, the code
    /// is one TikTok never issued, so exchanging it fails with 36004004.
    pub fn issue_auth_code_for_seller(&self, seller: usize) -> String {
        if seller > self.inner.cfg.other_sellers.len() {
            return format!("code_unknown_seller_{seller}");
        }
        self.issue_code(Grant {
            user_type: 0,
            seller,
        })
    }

    fn issue_code(&self, grant: Grant) -> String {
        let now = self.inner.now();
        self.inner.credentials.lock().issue_auth_code(grant, now)
    }

    /// The seller revokes the app: every access and refresh token issued to it stops
    /// working (105001), until it authorises again with a new code.
    pub fn revoke_seller(&self, seller: usize) {
        self.inner.credentials.lock().revoke_seller(seller);
    }

    /// Makes every issued access token expired as of now (refresh tokens stay valid).
    pub fn expire_access_tokens(&self) {
        let now = self.inner.now();
        self.inner.credentials.lock().expire_access_tokens(now);
    }

    /// Webhooks on the wire (a retry waiting on the clock is not).
    pub fn webhooks_in_flight(&self) -> usize {
        self.inner.webhooks_in_flight.count()
    }

    pub fn shipments(&self) -> Vec<ShipmentRecord> {
        self.main_shop().shipments()
    }

    /// Accepted Update Shipping Info calls, oldest first.
    pub fn tracking_updates(&self) -> Vec<TrackingUpdate> {
        self.main_shop().tracking_updates()
    }

    /// The order's packages (ids, units, status, tracking, handover), in unit order.
    pub fn order_packages(&self, order_id: &str) -> Vec<PackageInfo> {
        self.main_shop().order_packages(order_id)
    }

    /// Issues a shipping-label URL for an arranged TikTok-label package, as Get Shipping
    /// Document does (`SHIPPING_LABEL`, A6), without a signed call.
    pub fn issue_label(&self, package_id: &str) -> Result<String, ApiErr> {
        self.main_shop().issue_label(package_id)
    }

    /// Every shipping document URL handed out, oldest first.
    pub fn labels(&self) -> Vec<Label> {
        self.main_shop().labels()
    }

    /// Fetches a `doc_url` the way a label printer would: `(HTTP status, body)`; 410 once
    /// the URL's 24 hours (sim clock) are over.
    pub async fn fetch_label(&self, doc_url: &str) -> Result<(u16, Vec<u8>), String> {
        let r = self
            .inner
            .http
            .get(doc_url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let body = r.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, body.to_vec()))
    }

    /// How often a route was called, e.g. `calls("POST", "/fulfillment/202309/orders/{}/packages")`.
    pub fn calls(&self, method: &str, pattern: &str) -> u64 {
        self.inner
            .route_calls
            .lock()
            .get(&format!("{method} {pattern}"))
            .copied()
            .unwrap_or(0)
    }

    /// Calls per route (`"METHOD pattern"`), `{}` standing for path ids.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.inner.route_calls.lock().clone()
    }

    pub fn inventory_pushes(&self) -> Vec<InventoryPush> {
        self.main_shop().inventory_pushes()
    }

    /// (sku id -> warehouse id -> quantity) as the simulator holds it now.
    pub fn stock(&self) -> BTreeMap<String, BTreeMap<String, i64>> {
        self.main_shop().stock()
    }

    /// (sku id -> warehouse id -> units reserved by orders) as the simulator holds it now.
    pub fn committed(&self) -> BTreeMap<String, BTreeMap<String, i64>> {
        self.main_shop().committed()
    }

    /// Sets a SKU's available quantity at one of its warehouses, as a person in
    /// Seller Center or another tool would.
    pub fn set_available(
        &self,
        sku_id: &str,
        warehouse_id: &str,
        quantity: i64,
    ) -> Result<(), ApiErr> {
        self.main_shop()
            .set_available(sku_id, warehouse_id, quantity)
    }

    /// Renames the main shop, as the seller would in Seller Center.
    pub fn rename_shop(&self, name: &str) {
        self.main_shop().rename_shop(name)
    }

    pub fn webhook_attempts(&self) -> Vec<WebhookAttempt> {
        self.inner.webhook_log.lock().clone()
    }

    pub fn set_webhook_url(&self, url: Option<String>) {
        *self.inner.webhook_url.lock() = url;
    }

    pub fn faults(&self) -> Faults {
        self.inner.faults.lock().clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.lock() = faults;
    }

    /// API requests received (gateway-checked or not), for asserting retries and chunking.
    pub fn request_count(&self) -> u64 {
        *self.inner.request_count.lock()
    }

    /// How many API requests went to `path` (exact, without the query).
    pub fn requests_to(&self, path: &str) -> usize {
        self.inner
            .request_log
            .lock()
            .iter()
            .filter(|r| r.split_once(' ').is_some_and(|(_, p)| p == path))
            .count()
    }
}
