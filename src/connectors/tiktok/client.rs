//! The TikTok Shop Partner API client: signing, client-side pacing, retry classification
//! and every call the sync needs (orders, fulfilment, logistics, products, inventory). The
//! tokens those calls carry (exchange, proactive and reactive refresh, persistence) are
//! `session.rs`'s.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::auth::{TokenStore, TokenStoreError, Tokens};
use super::mapping::{self, CatalogueEntry, MappingError};
use super::model::{self, AuthorizedShop, WarehouseQuantity};
use super::{inventory, sign};
use crate::clock::Clock;
use crate::config::{Secret, TikTokSettings};
use crate::connectors::{Backoff, Classify, RetryClass};
use crate::domain::observed::OrderSnapshot;

/// Envelope codes the client acts on.
pub mod codes {
    pub const SUCCESS: i64 = 0;
    pub const RATE_LIMITED: i64 = 36009002;
    pub const INTERNAL_ERROR: i64 = 36009003;
    pub const INVALID_PARAM: i64 = 36009004;
    pub const INVALID_PATH: i64 = 36009009;
    pub const INVALID_METHOD: i64 = 36009010;
    pub const INVALID_ACCESS_TOKEN_HEADER: i64 = 101000;
    pub const INVALID_CREDENTIAL: i64 = 105001;
    pub const ACCESS_TOKEN_EXPIRED: i64 = 105002;
    pub const SCOPE_NOT_GRANTED: i64 = 105005;
    pub const INVALID_SIGN: i64 = 106001;
    pub const MISSING_SHOP_CIPHER: i64 = 106013;
    pub const INVALID_AUTH_CODE: i64 = 36004004;
    pub const INVENTORY_INVALID_QUANTITY: i64 = 12019024;
    pub const INVENTORY_WAREHOUSES_INCOMPLETE: i64 = 12019028;
    pub const INVENTORY_QUANTITY_OUT_OF_LIMITS: i64 = 12052055;
}

/// Refresh the access token when it has less than this left. Ten minutes leaves room for a
/// slow refresh plus a clock skew between us and TikTok without refreshing needlessly often
/// (access tokens live about seven days).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(600);
/// TikTok caps `ids` of Get Order Detail at 50.
pub const MAX_DETAIL_IDS: usize = 50;
/// TikTok caps `page_size` of order and product search at 100.
pub const MAX_PAGE_SIZE: u32 = 100;
/// TikTok caps `sku_ids` of Inventory Search at 600.
pub const MAX_INVENTORY_SEARCH_SKUS: usize = 600;

#[derive(Debug, thiserror::Error)]
pub enum TikTokError {
    #[error("TikTok API error {code}: {message} (HTTP {http_status}, request_id {request_id})")]
    Api {
        code: i64,
        message: String,
        request_id: String,
        http_status: u16,
    },
    #[error("TikTok answered HTTP {status} without an API envelope: {body}")]
    Http { status: u16, body: String },
    #[error("TikTok request failed: {0}")]
    Transport(String),
    #[error("TikTok request timed out")]
    Timeout,
    #[error("unexpected TikTok response: {0}")]
    Decode(String),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(
        "TikTok authorisation problem: {reason}{}. Authorise the app with the shop's MAIN (owner) \
         account, not a sub-account, make sure the app's API scopes are enabled in TikTok Partner \
         Center, then re-authorise (`tks connect tiktok --auth-code CODE`)",
        code.map(|c| format!(" (code {c})")).unwrap_or_default()
    )]
    Reauthorize { code: Option<i64>, reason: String },
    #[error("not connected to TikTok: run `tks connect tiktok --auth-code CODE` first")]
    NotConnected,
    #[error("shop {wanted} is not among the shops this authorisation covers: [{available}]")]
    ShopNotAuthorized { wanted: String, available: String },
    #[error("invalid request: {0}")]
    InvalidInput(String),
    #[error(transparent)]
    TokenStore(#[from] TokenStoreError),
}

impl TikTokError {
    /// TikTok's "too many requests", as an envelope code or a bare HTTP 429.
    pub fn is_rate_limited(&self) -> bool {
        match self {
            TikTokError::Api {
                code, http_status, ..
            } => *code == codes::RATE_LIMITED || *http_status == 429,
            TikTokError::Http { status, .. } => *status == 429,
            _ => false,
        }
    }

    pub fn api_code(&self) -> Option<i64> {
        match self {
            TikTokError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl Classify for TikTokError {
    fn retry_class(&self) -> RetryClass {
        match self {
            TikTokError::Api {
                code, http_status, ..
            } => {
                if *code == codes::RATE_LIMITED
                    || *code == codes::INTERNAL_ERROR
                    || *http_status == 429
                    || *http_status >= 500
                {
                    RetryClass::Retry { after: None }
                } else {
                    RetryClass::Permanent
                }
            }
            TikTokError::Http { status, .. }
                if *status == 408 || *status == 429 || *status >= 500 =>
            {
                RetryClass::Retry { after: None }
            }
            TikTokError::Transport(_) | TikTokError::Timeout => RetryClass::Retry { after: None },
            _ => RetryClass::Permanent,
        }
    }
}

/// Tuning that tests (and the sandbox) change.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    pub backoff: Backoff,
    /// Per-request timeout (real time: it bounds a stuck socket, not business time).
    pub timeout: Duration,
    pub refresh_margin: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            backoff: Backoff::default(),
            timeout: Duration::from_secs(30),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
        }
    }
}

/// Client-side request pacing (GCRA): up to `rate` requests pass at once, then one every
/// `1/rate` seconds, all measured on the injected clock. A 429 pauses every request of
/// the client (one shop's calls share TikTok's limit), not only the one refused.
pub(super) struct Pacer {
    interval: Option<chrono::Duration>,
    tolerance: chrono::Duration,
    tat: Mutex<Option<DateTime<Utc>>>,
    paused_until: Mutex<Option<DateTime<Utc>>>,
}

/// How long every call waits after TikTok answered 429: its limits are per second.
const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);

impl Pacer {
    fn new(requests_per_second: u32) -> Self {
        if requests_per_second == 0 {
            return Pacer {
                interval: None,
                tolerance: chrono::Duration::zero(),
                tat: Mutex::new(None),
                paused_until: Mutex::new(None),
            };
        }
        let interval =
            chrono::Duration::nanoseconds(1_000_000_000 / i64::from(requests_per_second));
        Pacer {
            interval: Some(interval),
            tolerance: interval * (requests_per_second as i32 - 1),
            tat: Mutex::new(None),
            paused_until: Mutex::new(None),
        }
    }

    /// Holds every request back until `d` from now has passed.
    fn pause_for(&self, clock: &Clock, d: Duration) {
        let until = clock.now() + chrono::Duration::from_std(d).unwrap_or_default();
        let mut p = self.paused_until.lock();
        if p.map_or(true, |p| p < until) {
            *p = Some(until);
        }
    }

    /// Until when every request waits after a 429, if it still does.
    fn paused_until(&self, clock: &Clock) -> Option<DateTime<Utc>> {
        (*self.paused_until.lock()).filter(|until| *until > clock.now())
    }

    pub(super) async fn acquire(&self, clock: &Clock) {
        loop {
            let paused = *self.paused_until.lock();
            match paused {
                Some(until) if until > clock.now() => clock.sleep_until(until).await,
                _ => break,
            }
        }
        let Some(interval) = self.interval else {
            return;
        };
        let now = clock.now();
        let earliest = {
            let mut tat = self.tat.lock();
            let t = match *tat {
                Some(t) if t > now => t,
                _ => now,
            };
            *tat = Some(t + interval);
            t - self.tolerance
        };
        if earliest > now {
            clock.sleep_until(earliest).await;
        }
    }
}

pub(super) struct ApiCall {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl ApiCall {
    pub(super) fn get(path: impl Into<String>) -> Self {
        ApiCall {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    pub(super) fn post<B: Serialize>(
        path: impl Into<String>,
        body: &B,
    ) -> Result<Self, TikTokError> {
        let body =
            serde_json::to_vec(body).map_err(|e| TikTokError::InvalidInput(e.to_string()))?;
        Ok(ApiCall {
            method: Method::POST,
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
        })
    }

    pub(super) fn param(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_string(), v.into()));
        self
    }
}

/// Whether a path takes `shop_cipher`: never on authorization/seller (TikTok rejects it there
/// with 36009004) nor on the upload endpoints.
pub fn takes_shop_cipher(path: &str) -> bool {
    !(path.starts_with("/authorization/")
        || path.starts_with("/seller/")
        || path.ends_with("/images/upload")
        || path.ends_with("/files/upload"))
}

/// Path segments we interpolate must not be able to change the path.
pub(super) fn path_id<'a>(what: &str, id: &'a str) -> Result<&'a str, TikTokError> {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(id)
    } else {
        Err(TikTokError::InvalidInput(format!(
            "{what} {id:?} is not a valid id"
        )))
    }
}

/// `[since - overlap, now + 1s)`: the overlap re-reads orders whose `update_time` TikTok
/// settled late, and the exclusive upper bound still includes updates at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateWindow {
    pub update_time_ge: i64,
    pub update_time_lt: i64,
}

impl UpdateWindow {
    pub fn overlapping(since: DateTime<Utc>, overlap: Duration, now: DateTime<Utc>) -> Self {
        let overlap = i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX);
        UpdateWindow {
            update_time_ge: since.timestamp().saturating_sub(overlap).max(0),
            update_time_lt: now.timestamp().saturating_add(1),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct OrderPage {
    pub orders: Vec<model::Order>,
    /// `None` on the last page.
    pub next_page_token: Option<String>,
}

/// One SKU's new quantity at one warehouse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryChange {
    pub sku_id: String,
    pub warehouse_id: String,
    pub quantity: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkuInventoryError {
    pub sku_id: Option<String>,
    pub code: i64,
    pub message: String,
    pub warehouse_errors: Vec<model::WarehouseError>,
}

/// The per-SKU result of an inventory update: TikTok can accept some SKUs and refuse others
/// in one call with a top-level success.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InventoryUpdateOutcome {
    /// Exactly what was sent per SKU (every warehouse of the SKU).
    pub sent: Vec<(String, Vec<WarehouseQuantity>)>,
    pub sku_errors: Vec<SkuInventoryError>,
}

impl InventoryUpdateOutcome {
    pub fn is_ok(&self) -> bool {
        self.sku_errors.is_empty()
    }
}

#[derive(Clone, Debug)]
struct KnownSku {
    product_id: String,
    /// Last known quantity per warehouse, in TikTok's order.
    warehouses: Vec<WarehouseQuantity>,
}

pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    api_base: String,
    pub(super) auth_base: String,
    pub(super) app_key: String,
    pub(super) app_secret: Secret,
    pub(super) wanted_shop_id: String,
    pub(super) configured_cipher: String,
    pub(super) clock: Clock,
    pub(super) options: ClientOptions,
    /// Shared by every shop of the app: TikTok's limits are per app.
    pub(super) pacer: Arc<Pacer>,
    /// The seller's tokens, shared by the clients of each of the seller's shops;
    /// replaced when the shop's seller connects (or connects again).
    pub(super) session: RwLock<Arc<SellerSession>>,
    /// Whether this client's shop is the one recorded in the token file (the first
    /// shop bound with these tokens); the other shops of the seller are bound in
    /// memory only, from Get Authorized Shops.
    pub(super) binds_tokens: bool,
    pub(super) shop_cipher: RwLock<String>,
    /// The authorised shop as TikTok last listed it (its name goes on every SO).
    pub(super) shop: RwLock<Option<AuthorizedShop>>,
    known_skus: Mutex<HashMap<String, KnownSku>>,
}

/// One seller's authorisation: the token pair every shop it covers calls with.
pub(super) struct SellerSession {
    pub(super) store: Arc<dyn TokenStore>,
    /// An async mutex so concurrent callers wait for one refresh instead of racing (a
    /// rotated refresh token is single-use), whichever of the seller's shops calls.
    pub(super) tokens: tokio::sync::Mutex<Option<Tokens>>,
}

impl SellerSession {
    pub(super) fn new(store: Arc<dyn TokenStore>, tokens: Option<Tokens>) -> Self {
        SellerSession {
            store,
            tokens: tokio::sync::Mutex::new(tokens),
        }
    }
}

/// Cheap to clone; all clones share tokens, pacing and the inventory cache.
#[derive(Clone)]
pub struct TikTokClient {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for TikTokClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TikTokClient")
            .field("api_base", &self.inner.api_base)
            .field("app_key", &self.inner.app_key)
            .field("shop_cipher", &*self.inner.shop_cipher.read())
            .finish_non_exhaustive()
    }
}

impl TikTokClient {
    pub fn new(
        settings: &TikTokSettings,
        clock: Clock,
        store: Arc<dyn TokenStore>,
        options: ClientOptions,
    ) -> Result<Self, TikTokError> {
        if settings.app_key.is_empty() || settings.app_secret.is_empty() {
            return Err(TikTokError::InvalidInput(
                "tiktok.app_key and tiktok.app_secret must be set".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| TikTokError::Transport(e.to_string()))?;
        let tokens = store.load()?;
        let tokens_shop = tokens.as_ref().and_then(|t| t.shop.clone());
        let cipher = if !settings.shop_cipher.is_empty() {
            settings.shop_cipher.clone()
        } else {
            tokens
                .as_ref()
                .and_then(|t| t.shop.as_ref())
                .map(|s| s.cipher.clone())
                .unwrap_or_default()
        };
        Ok(TikTokClient {
            inner: Arc::new(Inner {
                http,
                api_base: settings.api_base.trim_end_matches('/').to_string(),
                auth_base: settings.auth_base.trim_end_matches('/').to_string(),
                app_key: settings.app_key.clone(),
                app_secret: settings.app_secret.clone(),
                wanted_shop_id: settings.shop_id.clone(),
                configured_cipher: settings.shop_cipher.clone(),
                clock,
                options,
                pacer: Arc::new(Pacer::new(settings.requests_per_second)),
                session: RwLock::new(Arc::new(SellerSession::new(store, tokens))),
                binds_tokens: true,
                shop_cipher: RwLock::new(cipher),
                shop: RwLock::new(tokens_shop),
                known_skus: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A client for another shop of the same seller: the same tokens (a refresh by
    /// either is seen by both), the app's pacing, its own shop binding. An empty
    /// `cipher` is learnt from Get Authorized Shops by [`Self::refresh_shop`].
    pub fn for_shop(&self, shop_id: &str, cipher: &str) -> TikTokClient {
        self.with_session(shop_id, cipher, self.session())
    }

    /// A client for a shop of another seller (or of none yet): the app's pacing,
    /// `session`'s tokens.
    pub(super) fn with_session(
        &self,
        shop_id: &str,
        cipher: &str,
        session: Arc<SellerSession>,
    ) -> TikTokClient {
        let i = &self.inner;
        TikTokClient {
            inner: Arc::new(Inner {
                http: i.http.clone(),
                api_base: i.api_base.clone(),
                auth_base: i.auth_base.clone(),
                app_key: i.app_key.clone(),
                app_secret: i.app_secret.clone(),
                wanted_shop_id: shop_id.to_string(),
                configured_cipher: cipher.to_string(),
                clock: i.clock.clone(),
                options: i.options,
                pacer: i.pacer.clone(),
                session: RwLock::new(session),
                binds_tokens: false,
                shop_cipher: RwLock::new(cipher.to_string()),
                shop: RwLock::new(None),
                known_skus: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Until when the client holds every call back after TikTok answered 429.
    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        self.inner.pacer.paused_until(&self.inner.clock)
    }

    pub fn shop_cipher(&self) -> String {
        self.inner.shop_cipher.read().clone()
    }

    // ----- transport -------------------------------------------------------------------

    pub(super) fn transport_error(e: reqwest::Error) -> TikTokError {
        if e.is_timeout() {
            TikTokError::Timeout
        } else if e.is_builder() {
            // The request itself cannot be built (an id no URL can carry): sending it
            // again can never succeed.
            TikTokError::InvalidInput(e.without_url().to_string())
        } else {
            // Token calls carry the app secret and refresh token in the query: never let the
            // URL reach an error message or a log line.
            TikTokError::Transport(e.without_url().to_string())
        }
    }

    pub(super) async fn read_envelope(
        resp: reqwest::Response,
    ) -> Result<serde_json::Value, TikTokError> {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(Self::transport_error)?;
        let env: model::Envelope = match serde_json::from_slice(&bytes) {
            Ok(env) => env,
            Err(e) => {
                if (200..300).contains(&status) {
                    return Err(TikTokError::Decode(format!("envelope: {e}")));
                }
                let body: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
                return Err(TikTokError::Http { status, body });
            }
        };
        if env.code != codes::SUCCESS {
            return Err(TikTokError::Api {
                code: env.code,
                message: env.message,
                request_id: env.request_id,
                http_status: status,
            });
        }
        Ok(env.data.unwrap_or(serde_json::Value::Null))
    }

    pub(super) fn decode<T: DeserializeOwned>(data: serde_json::Value) -> Result<T, TikTokError> {
        // An absent `data` is treated as an empty object so all-optional DTOs still decode.
        let data = if data.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            data
        };
        serde_json::from_value(data).map_err(|e| TikTokError::Decode(e.to_string()))
    }

    async fn send_once(
        &self,
        call: &ApiCall,
        token: &Secret,
    ) -> Result<serde_json::Value, TikTokError> {
        let inner = &self.inner;
        inner.pacer.acquire(&inner.clock).await;
        let mut query: Vec<(String, String)> = vec![
            ("app_key".into(), inner.app_key.clone()),
            ("timestamp".into(), inner.clock.unix().to_string()),
        ];
        if takes_shop_cipher(&call.path) {
            let cipher = self.shop_cipher();
            if cipher.is_empty() {
                return Err(TikTokError::InvalidInput(
                    "no shop_cipher: set tiktok.shop_cipher or connect the shop first".into(),
                ));
            }
            query.push(("shop_cipher".into(), cipher));
        }
        query.extend(call.query.iter().cloned());
        let sign = sign::sign(
            inner.app_secret.expose(),
            &call.path,
            &query,
            call.body.as_deref(),
        );
        query.push(("sign".into(), sign));
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query.iter())
            .finish();
        let url = format!("{}{}?{}", inner.api_base, call.path, qs);
        let mut rb = inner
            .http
            .request(call.method.clone(), url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-tts-access-token", token.expose());
        if let Some(body) = &call.body {
            rb = rb.body(body.clone());
        }
        tracing::debug!(method = %call.method, path = %call.path, "tiktok request");
        let resp = rb.send().await.map_err(Self::transport_error)?;
        let result = Self::read_envelope(resp).await;
        if let Err(e) = &result {
            if e.is_rate_limited() {
                inner.pacer.pause_for(&inner.clock, RATE_LIMIT_PAUSE);
            }
        }
        result
    }

    /// Signs, sends, retries transient failures with back-off, refreshes the token first when
    /// it is about to expire and once more if TikTok says it expired, then decodes `data`.
    pub(super) async fn call<T: DeserializeOwned>(&self, call: ApiCall) -> Result<T, TikTokError> {
        let mut refreshed = false;
        loop {
            let token = self.access_token().await?;
            let res = self
                .inner
                .options
                .backoff
                .retry(&self.inner.clock, |_| self.send_once(&call, &token))
                .await;
            match res {
                Err(TikTokError::Api { code, .. })
                    if code == codes::ACCESS_TOKEN_EXPIRED && !refreshed =>
                {
                    tracing::info!(path = %call.path, "access token rejected as expired; refreshing");
                    self.refresh_if_current(&token).await?;
                    refreshed = true;
                }
                Err(TikTokError::Api { code, message, .. })
                    if code == codes::INVALID_CREDENTIAL =>
                {
                    return Err(TikTokError::Reauthorize {
                        code: Some(code),
                        reason: format!(
                            "TikTok no longer accepts the access token, most likely because the \
                             seller revoked the app ({message})"
                        ),
                    })
                }
                Err(TikTokError::Api { code, message, .. }) if code == codes::SCOPE_NOT_GRANTED => {
                    return Err(TikTokError::Reauthorize {
                        code: Some(code),
                        reason: format!(
                            "the API scope for {} is not granted ({message})",
                            call.path
                        ),
                    })
                }
                Err(e) => return Err(e),
                Ok(data) => return Self::decode(data),
            }
        }
    }

    // ----- orders ----------------------------------------------------------------------

    /// One page of `POST /order/202309/orders/search`, sorted by `update_time` ascending.
    pub async fn search_orders_page(
        &self,
        window: UpdateWindow,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<OrderPage, TikTokError> {
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(TikTokError::InvalidInput(format!(
                "page_size {page_size} outside 1..={MAX_PAGE_SIZE}"
            )));
        }
        let body = model::OrderSearchBody {
            update_time_ge: Some(window.update_time_ge),
            update_time_lt: Some(window.update_time_lt),
            ..Default::default()
        };
        let mut call = ApiCall::post("/order/202309/orders/search", &body)?
            .param("page_size", page_size.to_string())
            .param("sort_field", "update_time")
            .param("sort_order", "ASC");
        if let Some(t) = page_token {
            call = call.param("page_token", t);
        }
        let data: model::OrderListData = self.call(call).await?;
        Ok(OrderPage {
            orders: data.orders,
            next_page_token: data.next_page_token.filter(|t| !t.is_empty()),
        })
    }

    /// Every order updated in `window`, following `next_page_token` until it is empty.
    pub async fn search_orders(
        &self,
        window: UpdateWindow,
        page_size: u32,
    ) -> Result<Vec<model::Order>, TikTokError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .search_orders_page(window, page_size, token.as_deref())
                .await?;
            out.extend(page.orders);
            match page.next_page_token {
                Some(next) if Some(&next) == token.as_ref() => {
                    return Err(TikTokError::Decode(
                        "order search returned the same page token twice".into(),
                    ))
                }
                Some(next) => token = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Polling helper: orders updated since `since - overlap`, mapped to snapshots.
    pub async fn orders_updated_since(
        &self,
        since: DateTime<Utc>,
        overlap: Duration,
    ) -> Result<Vec<OrderSnapshot>, TikTokError> {
        let window = UpdateWindow::overlapping(since, overlap, self.inner.clock.now());
        let orders = self.search_orders(window, MAX_PAGE_SIZE).await?;
        orders
            .iter()
            .map(|o| mapping::map_order(o).map_err(TikTokError::from))
            .collect()
    }

    /// `GET /order/202309/orders?ids=` in chunks of at most 50 ids.
    pub async fn get_orders(&self, ids: &[String]) -> Result<Vec<model::Order>, TikTokError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_DETAIL_IDS) {
            for id in chunk {
                path_id("order id", id)?;
            }
            let call = ApiCall::get("/order/202309/orders").param("ids", chunk.join(","));
            let data: model::OrderListData = self.call(call).await?;
            out.extend(data.orders);
        }
        Ok(out)
    }

    pub async fn get_order_snapshots(
        &self,
        ids: &[String],
    ) -> Result<Vec<OrderSnapshot>, TikTokError> {
        let orders = self.get_orders(ids).await?;
        orders
            .iter()
            .map(|o| mapping::map_order(o).map_err(TikTokError::from))
            .collect()
    }

    // ----- fulfilment & logistics ------------------------------------------------------

    /// Mark Package As Shipped: the given units (a subset makes the order PARTIALLY_SHIPPING)
    /// with the seller's own carrier. Returns TikTok's package.
    pub async fn mark_package_shipped(
        &self,
        order_id: &str,
        line_item_ids: &[String],
        tracking_number: &str,
        shipping_provider_id: &str,
    ) -> Result<model::MarkShippedData, TikTokError> {
        let order_id = path_id("order id", order_id)?;
        if line_item_ids.is_empty() {
            return Err(TikTokError::InvalidInput("no line items to ship".into()));
        }
        if tracking_number.trim().is_empty() {
            return Err(TikTokError::InvalidInput("empty tracking number".into()));
        }
        path_id("shipping provider id", shipping_provider_id)?;
        let body = model::MarkShippedBody {
            order_line_item_ids: line_item_ids.to_vec(),
            tracking_number: tracking_number.trim().to_string(),
            shipping_provider_id: shipping_provider_id.to_string(),
        };
        let call = ApiCall::post(
            format!("/fulfillment/202309/orders/{order_id}/packages"),
            &body,
        )?;
        self.call(call).await
    }

    pub async fn warehouses(&self) -> Result<Vec<model::Warehouse>, TikTokError> {
        let data: model::WarehousesData = self
            .call(ApiCall::get("/logistics/202309/warehouses"))
            .await?;
        Ok(data.warehouses)
    }

    pub async fn delivery_options(
        &self,
        warehouse_id: &str,
    ) -> Result<Vec<model::DeliveryOption>, TikTokError> {
        let id = path_id("warehouse id", warehouse_id)?;
        let data: model::DeliveryOptionsData = self
            .call(ApiCall::get(format!(
                "/logistics/202309/warehouses/{id}/delivery_options"
            )))
            .await?;
        Ok(data.delivery_options)
    }

    pub async fn shipping_providers(
        &self,
        delivery_option_id: &str,
    ) -> Result<Vec<model::ShippingProvider>, TikTokError> {
        let id = path_id("delivery option id", delivery_option_id)?;
        let data: model::ShippingProvidersData = self
            .call(ApiCall::get(format!(
                "/logistics/202309/delivery_options/{id}/shipping_providers"
            )))
            .await?;
        Ok(data.shipping_providers)
    }

    // ----- products & inventory --------------------------------------------------------

    /// All products matching `filter`, paging through `POST /product/202502/products/search`.
    /// Also refreshes the per-warehouse quantities the inventory update relies on.
    pub async fn search_products(
        &self,
        filter: &model::ProductSearchBody,
    ) -> Result<Vec<model::Product>, TikTokError> {
        let mut out: Vec<model::Product> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = ApiCall::post("/product/202502/products/search", filter)?
                .param("page_size", MAX_PAGE_SIZE.to_string());
            if let Some(t) = &token {
                call = call.param("page_token", t.clone());
            }
            let data: model::ProductListData = self.call(call).await?;
            out.extend(data.products);
            match data.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if Some(&next) == token.as_ref() => {
                    return Err(TikTokError::Decode(
                        "product search returned the same page token twice".into(),
                    ))
                }
                Some(next) => token = Some(next),
                None => break,
            }
        }
        let mut known = self.inner.known_skus.lock();
        for p in &out {
            for s in &p.skus {
                known.insert(
                    s.id.clone(),
                    KnownSku {
                        product_id: p.id.clone(),
                        warehouses: s.inventory.clone(),
                    },
                );
            }
        }
        Ok(out)
    }

    /// The live catalogue (F28): one entry per SKU of every `ACTIVATE` product. Search
    /// Products without a status also returns deleted, draft and deactivated products.
    pub async fn catalogue(&self) -> Result<Vec<CatalogueEntry>, TikTokError> {
        let filter = model::ProductSearchBody {
            status: Some(mapping::LIVE_STATUS.into()),
            ..Default::default()
        };
        let products = self.search_products(&filter).await?;
        Ok(products.iter().flat_map(mapping::map_product).collect())
    }

    /// Every listing whatever its status, for `tks check` to name the inactive ones.
    pub async fn all_listings(&self) -> Result<Vec<CatalogueEntry>, TikTokError> {
        let products = self
            .search_products(&model::ProductSearchBody::default())
            .await?;
        Ok(products.iter().flat_map(mapping::map_product).collect())
    }

    /// `POST /product/202309/inventory/search` by SKU ids, in chunks TikTok accepts:
    /// each warehouse's available and committed quantity as TikTok holds them now.
    pub async fn inventory_search(
        &self,
        sku_ids: &[String],
    ) -> Result<HashMap<String, Vec<model::WarehouseInventory>>, TikTokError> {
        let mut out = HashMap::new();
        for chunk in sku_ids.chunks(MAX_INVENTORY_SEARCH_SKUS) {
            let body = model::InventorySearchBody {
                sku_ids: Some(chunk.to_vec()),
                product_ids: None,
            };
            let data: model::InventorySearchData = self
                .call(ApiCall::post("/product/202309/inventory/search", &body)?)
                .await?;
            for p in data.inventory {
                for s in p.skus {
                    out.insert(s.id, s.warehouse_inventory);
                }
            }
        }
        Ok(out)
    }

    async fn known_sku(&self, sku_id: &str, reload: bool) -> Result<Option<KnownSku>, TikTokError> {
        if !reload {
            if let Some(k) = self.inner.known_skus.lock().get(sku_id) {
                return Ok(Some(k.clone()));
            }
        }
        let filter = model::ProductSearchBody {
            sku_ids: Some(vec![sku_id.to_string()]),
            ..Default::default()
        };
        self.search_products(&filter).await?;
        Ok(self.inner.known_skus.lock().get(sku_id).cloned())
    }

    /// Sets one SKU's quantity at one warehouse. See [`Self::update_inventory_many`].
    pub async fn update_inventory(
        &self,
        product_id: &str,
        sku_id: &str,
        warehouse_id: &str,
        quantity: i64,
    ) -> Result<InventoryUpdateOutcome, TikTokError> {
        self.update_inventory_many(
            product_id,
            &[InventoryChange {
                sku_id: sku_id.to_string(),
                warehouse_id: warehouse_id.to_string(),
                quantity,
            }],
        )
        .await
    }

    /// Pushes absolute quantities for SKUs of one product. TikTok requires every warehouse
    /// of a multi-warehouse SKU in each update (F29): for the warehouses we were not asked
    /// to change, the client reads what TikTok holds right now (Inventory Search, one call
    /// for all such SKUs) and sends it back unchanged, so it never alters stock it does not
    /// own; see [`super::inventory`]. A SKU with one warehouse costs no read; if TikTok
    /// refuses it for a warehouse assigned since, it is read and sent once more. Quantities
    /// are clamped to 0..=99999. Per-SKU refusals come back in the outcome, not as an error.
    pub async fn update_inventory_many(
        &self,
        product_id: &str,
        changes: &[InventoryChange],
    ) -> Result<InventoryUpdateOutcome, TikTokError> {
        let product_id = path_id("product id", product_id)?;
        if changes.is_empty() {
            return Ok(InventoryUpdateOutcome::default());
        }
        let mut ours: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for ch in changes {
            ours.entry(ch.sku_id.clone())
                .or_default()
                .insert(ch.warehouse_id.clone(), ch.quantity);
        }
        let mut assigned: BTreeMap<String, Vec<WarehouseQuantity>> = BTreeMap::new();
        for (sku_id, wanted) in &ours {
            let mut known = self.known_sku(sku_id, false).await?;
            let stale = match &known {
                Some(k) => {
                    k.product_id != product_id
                        || wanted
                            .keys()
                            .any(|w| !k.warehouses.iter().any(|x| &x.warehouse_id == w))
                }
                None => true,
            };
            if stale {
                known = self.known_sku(sku_id, true).await?;
            }
            match known {
                Some(k) if k.product_id == product_id => {
                    assigned.insert(sku_id.clone(), k.warehouses);
                }
                Some(k) => {
                    return Err(TikTokError::InvalidInput(format!(
                        "SKU {sku_id} belongs to product {}, not {product_id}",
                        k.product_id
                    )))
                }
                None => {
                    return Err(TikTokError::InvalidInput(format!(
                        "SKU {sku_id} is not in the TikTok catalogue"
                    )))
                }
            }
        }
        let shared: Vec<String> = assigned
            .iter()
            .filter(|(_, ws)| ws.len() > 1)
            .map(|(id, _)| id.clone())
            .collect();
        if !shared.is_empty() {
            let now = self.inventory_search(&shared).await?;
            for id in &shared {
                let read = now.get(id).ok_or_else(|| {
                    TikTokError::Decode(format!("Inventory Search did not return SKU {id}"))
                })?;
                assigned.insert(id.clone(), inventory::current_available(read));
            }
        }
        let mut per_sku: BTreeMap<String, Vec<WarehouseQuantity>> = BTreeMap::new();
        for (sku_id, wanted) in &ours {
            let current = assigned.get(sku_id).map(Vec::as_slice).unwrap_or_default();
            let ws = inventory::warehouse_quantities(sku_id, current, wanted)
                .map_err(|e| TikTokError::InvalidInput(e.to_string()))?;
            per_sku.insert(sku_id.clone(), ws);
        }
        let mut sku_errors = self.send_inventory(product_id, &per_sku).await?;
        // A SKU we knew with one warehouse may have been given another since the
        // catalogue read: read what TikTok has now and send that SKU once more,
        // instead of leaving it refused until the next change.
        let widened: Vec<String> = sku_errors
            .iter()
            .filter(|e| e.code == codes::INVENTORY_WAREHOUSES_INCOMPLETE)
            .filter_map(|e| e.sku_id.clone())
            .filter(|id| per_sku.get(id).is_some_and(|ws| ws.len() <= 1))
            .collect();
        if !widened.is_empty() {
            let now = self.inventory_search(&widened).await?;
            let mut again: BTreeMap<String, Vec<WarehouseQuantity>> = BTreeMap::new();
            for id in &widened {
                let (Some(read), Some(wanted)) = (now.get(id), ours.get(id)) else {
                    continue;
                };
                let current = inventory::current_available(read);
                if let Ok(ws) = inventory::warehouse_quantities(id, &current, wanted) {
                    again.insert(id.clone(), ws);
                }
            }
            if !again.is_empty() {
                let retried = self.send_inventory(product_id, &again).await?;
                sku_errors.retain(|e| e.sku_id.as_ref().map_or(true, |id| !again.contains_key(id)));
                sku_errors.extend(retried);
                per_sku.extend(again);
            }
        }
        {
            let mut known = self.inner.known_skus.lock();
            for (sku, ws) in &per_sku {
                let failed = sku_errors
                    .iter()
                    .any(|e| e.sku_id.as_deref().map_or(true, |s| s == sku));
                if failed {
                    // Our picture of this SKU may be wrong (e.g. a warehouse was added):
                    // forget it so the next push re-reads it.
                    known.remove(sku);
                } else {
                    known.insert(
                        sku.clone(),
                        KnownSku {
                            product_id: product_id.to_string(),
                            warehouses: ws.clone(),
                        },
                    );
                }
            }
        }
        for e in &sku_errors {
            tracing::warn!(sku = ?e.sku_id, code = e.code, message = %e.message, "TikTok refused an inventory update");
        }
        Ok(InventoryUpdateOutcome {
            sent: per_sku.into_iter().collect(),
            sku_errors,
        })
    }

    /// One Update Inventory call; TikTok's per-SKU refusals are the answer.
    async fn send_inventory(
        &self,
        product_id: &str,
        per_sku: &BTreeMap<String, Vec<WarehouseQuantity>>,
    ) -> Result<Vec<SkuInventoryError>, TikTokError> {
        let body = model::InventoryUpdateBody {
            skus: per_sku
                .iter()
                .map(|(id, ws)| model::InventoryUpdateSku {
                    id: id.clone(),
                    inventory: ws.clone(),
                })
                .collect(),
        };
        let call = ApiCall::post(
            format!("/product/202309/products/{product_id}/inventory/update"),
            &body,
        )?;
        let data: model::InventoryUpdateData = self.call(call).await?;
        Ok(data
            .errors
            .into_iter()
            .map(|e| {
                let detail = e.detail.unwrap_or_default();
                SkuInventoryError {
                    sku_id: detail.sku_id,
                    code: e.code,
                    message: e.message,
                    warehouse_errors: detail.extra_errors,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn classification() {
        let api = |code, http_status| TikTokError::Api {
            code,
            message: String::new(),
            request_id: String::new(),
            http_status,
        };
        let retry = RetryClass::Retry { after: None };
        assert_eq!(api(36009002, 200).retry_class(), retry);
        assert_eq!(api(36009003, 500).retry_class(), retry);
        assert_eq!(api(12345, 429).retry_class(), retry);
        assert_eq!(api(12345, 503).retry_class(), retry);
        assert_eq!(api(106001, 200).retry_class(), RetryClass::Permanent);
        assert_eq!(api(105002, 200).retry_class(), RetryClass::Permanent);
        assert_eq!(TikTokError::Timeout.retry_class(), retry);
        assert_eq!(TikTokError::Transport("reset".into()).retry_class(), retry);
        assert_eq!(
            TikTokError::Http {
                status: 502,
                body: String::new()
            }
            .retry_class(),
            retry
        );
        assert_eq!(
            TikTokError::Http {
                status: 400,
                body: String::new()
            }
            .retry_class(),
            RetryClass::Permanent
        );
    }

    #[test]
    fn reauthorize_message_tells_the_user_what_to_do() {
        let e = TikTokError::Reauthorize {
            code: Some(105005),
            reason: "scope".into(),
        };
        let m = e.to_string();
        assert!(
            m.contains("MAIN") && m.contains("105005") && m.contains("re-authorise"),
            "{m}"
        );
    }

    #[test]
    fn shop_cipher_is_never_sent_to_authorization_or_seller() {
        assert!(!takes_shop_cipher("/authorization/202309/shops"));
        assert!(!takes_shop_cipher("/seller/202309/shops"));
        assert!(!takes_shop_cipher("/product/202309/images/upload"));
        assert!(takes_shop_cipher("/order/202309/orders"));
        assert!(takes_shop_cipher("/logistics/202309/warehouses"));
    }

    #[test]
    fn windows_overlap_backwards_and_include_now() {
        let m = ManualClock::at_epoch();
        let now = m.now();
        let w = UpdateWindow::overlapping(
            now - chrono::Duration::hours(1),
            Duration::from_secs(7200),
            now,
        );
        assert_eq!(w.update_time_ge, now.timestamp() - 3 * 3600);
        assert_eq!(w.update_time_lt, now.timestamp() + 1);
    }

    #[test]
    fn path_ids_cannot_inject_paths() {
        assert!(path_id("x", "576461413038785752").is_ok());
        assert!(path_id("x", "../seller").is_err());
        assert!(path_id("x", "").is_err());
        assert!(path_id("x", "1?a=b").is_err());
    }

    #[tokio::test]
    async fn a_pause_holds_every_caller_until_it_ends_even_unpaced() {
        let m = ManualClock::at_epoch();
        let clock = m.clock();
        let pacer = Arc::new(Pacer::new(0));
        pacer.pause_for(&clock, Duration::from_secs(1));
        let p = pacer.clone();
        let c = clock.clone();
        let waiting = tokio::spawn(async move { p.acquire(&c).await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        m.advance(Duration::from_millis(1000));
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn pacer_lets_a_burst_through_then_paces_on_the_clock() {
        let m = ManualClock::at_epoch();
        let clock = m.clock();
        let pacer = Arc::new(Pacer::new(2));
        pacer.acquire(&clock).await;
        pacer.acquire(&clock).await;
        let p = pacer.clone();
        let c = clock.clone();
        let third = tokio::spawn(async move { p.acquire(&c).await });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        m.advance(Duration::from_millis(500));
        tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .unwrap()
            .unwrap();
    }
}
