//! The Katana HTTP client: every call goes through the shared [`RequestBudget`],
//! errors are classified for [`Backoff`], lists are followed to their last page, and
//! sales-order creation is made safe to retry by looking before creating.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::budget::{parse_reset, Priority, RequestBudget};
use super::mapping;
use super::model::*;
use crate::clock::Clock;
use crate::config::{KatanaSettings, Secret};
use crate::connectors::{Backoff, Classify, RetryClass};
use crate::domain::observed::{KatanaFulfillment, StockLevel};

/// Katana's maximum page size.
pub const MAX_PAGE_SIZE: u32 = 250;
/// Keys per request for repeated-key filters (`sku=..&sku=..`), keeping URLs short.
const FILTER_CHUNK: usize = 50;
/// A list longer than this many pages is treated as a server bug, not followed forever.
const MAX_PAGES: u64 = 10_000;

#[derive(Clone, Debug)]
pub struct KatanaConfig {
    /// Ends with `/v1`, no trailing slash needed.
    pub base_url: String,
    pub api_key: Secret,
    pub requests_per_minute: u32,
    /// Per-request timeout (connect + response).
    pub timeout: Duration,
    pub backoff: Backoff,
    pub page_size: u32,
}

impl KatanaConfig {
    pub fn new(base_url: impl Into<String>, api_key: Secret) -> Self {
        KatanaConfig {
            base_url: base_url.into(),
            api_key,
            requests_per_minute: 60,
            timeout: Duration::from_secs(30),
            backoff: Backoff::default(),
            page_size: MAX_PAGE_SIZE,
        }
    }

    pub fn from_settings(s: &KatanaSettings) -> Self {
        KatanaConfig {
            requests_per_minute: s.requests_per_minute,
            ..KatanaConfig::new(s.api_base.clone(), s.api_key.clone())
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum KatanaError {
    /// Katana answered with an error status; `message` already names the offending
    /// fields of a 422.
    #[error("Katana {request} -> {status} {name}: {message}")]
    Api {
        /// `METHOD /path`
        request: String,
        status: u16,
        name: String,
        message: String,
        fields: Vec<String>,
        retry_after: Option<Duration>,
    },
    #[error("Katana {request} timed out after {timeout:?}")]
    Timeout { request: String, timeout: Duration },
    #[error("cannot reach Katana ({request}): {message}")]
    Transport {
        request: String,
        message: String,
        /// The connection was never made, so Katana cannot have seen the request.
        unsent: bool,
    },
    #[error("unexpected Katana response to {request}: {message}")]
    Decode { request: String, message: String },
    /// The caller asked for something that cannot be sent.
    #[error("invalid Katana request: {0}")]
    Invalid(String),
    /// Katana's data does not fit together (e.g. a fulfillment row of another order).
    #[error(transparent)]
    Mapping(#[from] mapping::MappingError),
}

impl KatanaError {
    /// Whether Katana may have applied the request although we did not learn it: a
    /// timeout, a connection lost after sending, or a server error (a gateway's 502
    /// or 504 can hide a commit). A 429, a 4xx or an unsent request was not applied.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            KatanaError::Timeout { .. } => true,
            KatanaError::Transport { unsent, .. } => !unsent,
            KatanaError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            KatanaError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// For a 422: the request fields Katana rejected.
    pub fn fields(&self) -> &[String] {
        match self {
            KatanaError::Api { fields, .. } => fields,
            _ => &[],
        }
    }
}

impl Classify for KatanaError {
    fn retry_class(&self) -> RetryClass {
        match self {
            KatanaError::Api {
                status,
                retry_after,
                ..
            } if *status == 408 || *status == 429 || *status >= 500 => RetryClass::Retry {
                after: *retry_after,
            },
            KatanaError::Timeout { .. } | KatanaError::Transport { .. } => {
                RetryClass::Retry { after: None }
            }
            _ => RetryClass::Permanent,
        }
    }
}

/// What [`KatanaClient::create_sales_order_once`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// This call's POST created it.
    Created(SalesOrder),
    /// It already existed (an earlier attempt, a crashed run or another process).
    Existing(SalesOrder),
}

impl CreateOutcome {
    pub fn sales_order(&self) -> &SalesOrder {
        match self {
            CreateOutcome::Created(s) | CreateOutcome::Existing(s) => s,
        }
    }
    pub fn was_created(&self) -> bool {
        matches!(self, CreateOutcome::Created(_))
    }
}

/// A webhook subscription as Katana keeps it; `token` verifies its deliveries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredWebhook {
    pub id: i64,
    pub token: String,
}

/// Cheap to clone; clones share the HTTP pool and the request budget.
#[derive(Clone, Debug)]
pub struct KatanaClient {
    http: reqwest::Client,
    cfg: KatanaConfig,
    base: String,
    budget: RequestBudget,
    clock: Clock,
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl KatanaClient {
    pub fn new(cfg: KatanaConfig, clock: Clock) -> Result<Self, KatanaError> {
        let budget = RequestBudget::new(cfg.requests_per_minute, clock.clone());
        Self::with_budget(cfg, clock, budget)
    }

    /// A client sharing an existing budget (several clients, one API key).
    pub fn with_budget(
        cfg: KatanaConfig,
        clock: Clock,
        budget: RequestBudget,
    ) -> Result<Self, KatanaError> {
        if cfg.api_key.is_empty() {
            return Err(KatanaError::Invalid("katana.api_key is empty".into()));
        }
        url::Url::parse(&cfg.base_url).map_err(|e| {
            KatanaError::Invalid(format!("katana.api_base {:?}: {e}", cfg.base_url))
        })?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| KatanaError::Invalid(format!("HTTP client: {e}")))?;
        let base = cfg.base_url.trim_end_matches('/').to_string();
        Ok(KatanaClient {
            http,
            cfg,
            base,
            budget,
            clock,
        })
    }

    pub fn budget(&self) -> &RequestBudget {
        &self.budget
    }

    /// One attempt: wait for the budget, send, feed the rate-limit headers back.
    async fn send_once(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&serde_json::Value>,
        priority: Priority,
    ) -> Result<Response, KatanaError> {
        let mut url = format!("{}{}", self.base, path);
        if !query.is_empty() {
            let mut ser = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                ser.append_pair(k, v);
            }
            url.push('?');
            url.push_str(&ser.finish());
        }
        let m = method.to_string();
        let permit = self.budget.acquire(priority).await;
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(self.cfg.api_key.expose())
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let sent = req.send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                drop(permit);
                return Err(self.transport_error(&m, path, e));
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(&m, path, e));
        drop(permit);
        self.budget.observe_headers(
            header_u64(&headers, "x-ratelimit-limit"),
            header_u64(&headers, "x-ratelimit-remaining"),
            headers
                .get("x-ratelimit-reset")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_reset),
        );
        let body = body?.to_vec();
        if status.is_success() {
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        let retry_after = if status == StatusCode::TOO_MANY_REQUESTS {
            // The whole budget pauses: every caller shares the window that overflowed.
            let wait = headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(5));
            self.budget.pause_for(wait);
            Some(wait)
        } else {
            None
        };
        Err(api_error(&m, path, status, &body, retry_after))
    }

    fn transport_error(&self, method: &str, path: &str, e: reqwest::Error) -> KatanaError {
        if e.is_timeout() {
            KatanaError::Timeout {
                request: format!("{method} {path}"),
                timeout: self.cfg.timeout,
            }
        } else if e.is_builder() {
            KatanaError::Invalid(format!("{method} {path}: {e}"))
        } else {
            KatanaError::Transport {
                request: format!("{method} {path}"),
                message: e.to_string(),
                unsent: e.is_connect(),
            }
        }
    }

    /// A call that is safe to repeat (reads, deletes, lookups), retried with back-off.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&serde_json::Value>,
        priority: Priority,
    ) -> Result<Response, KatanaError> {
        self.cfg
            .backoff
            .retry(&self.clock, |_| {
                self.send_once(method.clone(), path, query, body, priority)
            })
            .await
    }

    fn decode<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        r: &Response,
    ) -> Result<T, KatanaError> {
        serde_json::from_slice(&r.body).map_err(|e| KatanaError::Decode {
            request: format!("{method} {path}"),
            message: format!("{e} (status {})", r.status),
        })
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
        priority: Priority,
    ) -> Result<T, KatanaError> {
        let r = self.send(Method::GET, path, query, None, priority).await?;
        self.decode("GET", path, &r)
    }

    /// Follows `page` until the `X-Pagination` header (or a short page) says it is the last.
    async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        filters: &[(String, String)],
        priority: Priority,
    ) -> Result<Vec<T>, KatanaError> {
        let limit = self.cfg.page_size.clamp(1, MAX_PAGE_SIZE);
        let mut out = Vec::new();
        let mut page: u64 = 1;
        loop {
            let mut q = filters.to_vec();
            q.push(("limit".into(), limit.to_string()));
            q.push(("page".into(), page.to_string()));
            let r = self.send(Method::GET, path, &q, None, priority).await?;
            let body: ListBody<T> = self.decode("GET", path, &r)?;
            let got = body.data.len();
            out.extend(body.data);
            let pg = r
                .headers
                .get("x-pagination")
                .and_then(|v| v.to_str().ok())
                .and_then(Pagination::parse);
            let last = match pg {
                Some(Pagination {
                    last_page: Some(l), ..
                }) => l,
                Some(Pagination {
                    total_pages: Some(t),
                    ..
                }) => page >= t,
                _ => (got as u64) < u64::from(limit),
            };
            if last || got == 0 {
                return Ok(out);
            }
            page += 1;
            if page > MAX_PAGES {
                return Err(KatanaError::Decode {
                    request: format!("GET {path}"),
                    message: format!("more than {MAX_PAGES} pages"),
                });
            }
        }
    }

    // ------------------------------------------------------------ sales orders

    /// Creates the sales order unless one with the same `ecommerce_order_id` exists
    /// (Katana has no idempotency keys, so the lookup comes first).
    ///
    /// The POST is never repeated once Katana may have applied it: a timeout, a
    /// connection lost after sending or a server error comes back as an error whose
    /// [`KatanaError::outcome_unknown`] is true, and the caller waits until such a
    /// request can no longer commit before looking up again. Only refusals that
    /// certainly left nothing behind (429, a connection never made) are retried here.
    pub async fn create_sales_order_once(
        &self,
        req: &CreateSalesOrder,
    ) -> Result<CreateOutcome, KatanaError> {
        self.create_sales_order(req, false).await
    }

    /// Like [`Self::create_sales_order_once`], but without the lookup: for callers
    /// that recorded durably that no earlier attempt for this order was ever
    /// started. This saves one call of Katana's 60 per minute on every order.
    pub async fn create_sales_order_first_attempt(
        &self,
        req: &CreateSalesOrder,
    ) -> Result<CreateOutcome, KatanaError> {
        self.create_sales_order(req, true).await
    }

    async fn create_sales_order(
        &self,
        req: &CreateSalesOrder,
        known_unseen: bool,
    ) -> Result<CreateOutcome, KatanaError> {
        let ext = req
            .ecommerce_order_id
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                KatanaError::Invalid("create_sales_order_once needs ecommerce_order_id".into())
            })?;
        if req.sales_order_rows.is_empty() {
            return Err(KatanaError::Invalid(format!(
                "sales order for {ext} has no rows"
            )));
        }
        let body = serde_json::to_value(req).map_err(|e| KatanaError::Invalid(e.to_string()))?;
        if !known_unseen {
            if let Some(existing) = self.find_sales_order_by_ecommerce_id(&ext).await? {
                return Ok(CreateOutcome::Existing(existing));
            }
        }
        let backoff = self.cfg.backoff;
        let mut attempt = 1;
        loop {
            let sent = self
                .send_once(
                    Method::POST,
                    "/sales_orders",
                    &[],
                    Some(&body),
                    Priority::High,
                )
                .await;
            match sent {
                Ok(r) => {
                    let so: SalesOrder = self.decode("POST", "/sales_orders", &r)?;
                    return Ok(CreateOutcome::Created(so));
                }
                Err(e) if e.outcome_unknown() || attempt >= backoff.max_attempts => return Err(e),
                Err(e) => match e.retry_class() {
                    RetryClass::Retry { after } => {
                        let wait = backoff.delay(attempt, after);
                        tracing::warn!(attempt, ?wait, error = %e, "create refused; retrying");
                        self.clock.sleep(wait).await;
                        attempt += 1;
                    }
                    RetryClass::Permanent => return Err(e),
                },
            }
        }
    }

    /// Every live SO Katana holds for a TikTok order id, oldest first.
    pub async fn live_sales_orders_for(&self, ext: &str) -> Result<Vec<SalesOrder>, KatanaError> {
        self.cfg
            .backoff
            .retry(&self.clock, |_| self.live_by_ecommerce_id(ext))
            .await
    }

    async fn live_by_ecommerce_id(&self, ext: &str) -> Result<Vec<SalesOrder>, KatanaError> {
        let q = vec![
            ("ecommerce_order_id".to_string(), ext.to_string()),
            ("limit".to_string(), MAX_PAGE_SIZE.to_string()),
        ];
        let r = self
            .send_once(Method::GET, "/sales_orders", &q, None, Priority::High)
            .await?;
        let body: ListBody<SalesOrder> = self.decode("GET", "/sales_orders", &r)?;
        // Filters Katana does not know are silently ignored, so match client-side too.
        let mut live: Vec<SalesOrder> = body
            .data
            .into_iter()
            .filter(|s| s.ecommerce_order_id.as_deref() == Some(ext) && s.deleted_at.is_none())
            .collect();
        live.sort_by_key(|s| s.id);
        Ok(live)
    }

    async fn lookup_by_ecommerce_id(&self, ext: &str) -> Result<Option<SalesOrder>, KatanaError> {
        // The oldest wins if something else already made a duplicate.
        Ok(self.live_by_ecommerce_id(ext).await?.into_iter().next())
    }

    /// The live SO for a TikTok order id, if any.
    pub async fn find_sales_order_by_ecommerce_id(
        &self,
        ext: &str,
    ) -> Result<Option<SalesOrder>, KatanaError> {
        self.cfg
            .backoff
            .retry(&self.clock, |_| self.lookup_by_ecommerce_id(ext))
            .await
    }

    pub async fn get_sales_order(&self, id: i64) -> Result<SalesOrder, KatanaError> {
        self.get_json(&format!("/sales_orders/{id}"), &[], Priority::High)
            .await
    }

    /// Deletes a sales order; Katana answers 200 or 204, both are success. A 404 on a
    /// retry after a lost response means it is already gone, which is also success.
    pub async fn delete_sales_order(&self, id: i64) -> Result<(), KatanaError> {
        let path = format!("/sales_orders/{id}");
        let mut first = true;
        self.cfg
            .backoff
            .retry(&self.clock, |_| {
                let was_first = std::mem::replace(&mut first, false);
                let path = path.clone();
                async move {
                    match self
                        .send_once(Method::DELETE, &path, &[], None, Priority::High)
                        .await
                    {
                        Ok(_) => Ok(()),
                        Err(e) if !was_first && e.status() == Some(404) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            })
            .await
    }

    /// SOs updated at or after `since` (reconciliation polling, F13).
    pub async fn list_sales_orders_updated_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<SalesOrder>, KatanaError> {
        let q = vec![("updated_at_min".to_string(), iso(since))];
        self.list_all("/sales_orders", &q, Priority::Low).await
    }

    /// PATCH the status (e.g. `DELIVERED` for the FBT "record as done" path).
    pub async fn update_sales_order_status(
        &self,
        id: i64,
        status: SoStatus,
    ) -> Result<SalesOrder, KatanaError> {
        let path = format!("/sales_orders/{id}");
        let body = serde_json::json!({ "status": status.as_str() });
        let r = self
            .send(Method::PATCH, &path, &[], Some(&body), Priority::High)
            .await?;
        self.decode("PATCH", &path, &r)
    }

    /// Raw fulfillments of one SO, filtered client-side as well.
    pub async fn list_fulfillments(
        &self,
        sales_order_id: i64,
    ) -> Result<Vec<Fulfillment>, KatanaError> {
        let q = vec![("sales_order_id".to_string(), sales_order_id.to_string())];
        let all: Vec<Fulfillment> = self
            .list_all("/sales_order_fulfillments", &q, Priority::High)
            .await?;
        Ok(all
            .into_iter()
            .filter(|f| f.sales_order_id == sales_order_id)
            .collect())
    }

    /// Every fulfillment (of any SO) created or changed at or after `since`: one
    /// call for all SOs, which also finds a change that moved neither the SO's
    /// `updated_at` nor fired a webhook.
    pub async fn fulfillments_updated_since(
        &self,
        since: DateTime<Utc>,
        priority: Priority,
    ) -> Result<Vec<Fulfillment>, KatanaError> {
        let q = vec![("updated_at_min".to_string(), iso(since))];
        let all: Vec<Fulfillment> = self
            .list_all("/sales_order_fulfillments", &q, priority)
            .await?;
        // Checked here too: a filter Katana ignored would otherwise pass as a result.
        let changed_since = |f: &Fulfillment| {
            f.updated_at
                .as_deref()
                .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
                .map_or(true, |u| u >= since)
        };
        Ok(all.into_iter().filter(changed_since).collect())
    }

    /// The SO's fulfillments in domain terms, each row checked against the SO's rows.
    pub async fn sales_order_fulfillments(
        &self,
        so: &SalesOrder,
    ) -> Result<Vec<KatanaFulfillment>, KatanaError> {
        let raw = self.list_fulfillments(so.id).await?;
        let mut out = Vec::with_capacity(raw.len());
        for f in &raw {
            let d = mapping::fulfillment_to_domain(f);
            mapping::fulfillment_variant_quantities(&d, so)?;
            out.push(d);
        }
        Ok(out)
    }

    pub async fn create_fulfillment(
        &self,
        req: &CreateFulfillment,
    ) -> Result<Fulfillment, KatanaError> {
        let body = serde_json::to_value(req).map_err(|e| KatanaError::Invalid(e.to_string()))?;
        // Not retried blindly: a lost response would deliver twice.
        let r = self
            .send_once(
                Method::POST,
                "/sales_order_fulfillments",
                &[],
                Some(&body),
                Priority::High,
            )
            .await?;
        self.decode("POST", "/sales_order_fulfillments", &r)
    }

    /// Puts a tracking number (TikTok's, for a TikTok-shipping parcel) on a fulfillment.
    pub async fn update_fulfillment_tracking(
        &self,
        id: i64,
        tracking_number: &str,
        carrier: Option<&str>,
    ) -> Result<Fulfillment, KatanaError> {
        let path = format!("/sales_order_fulfillments/{id}");
        let mut body = serde_json::json!({ "tracking_number": tracking_number });
        if let Some(c) = carrier.filter(|c| !c.is_empty()) {
            body["tracking_carrier"] = serde_json::Value::String(c.to_string());
        }
        // Setting the same values twice changes nothing, so a retry is safe.
        let r = self
            .send(Method::PATCH, &path, &[], Some(&body), Priority::High)
            .await?;
        self.decode("PATCH", &path, &r)
    }

    // ------------------------------------------------------------ customers

    /// The name of the one customer all orders of a shop are booked on.
    pub fn generic_customer_name(shop_name: &str) -> String {
        format!("TikTok Shop {shop_name}")
    }

    /// Finds the shop's generic customer by exact name, creating it once if missing.
    pub async fn ensure_generic_customer(&self, shop_name: &str) -> Result<i64, KatanaError> {
        let name = Self::generic_customer_name(shop_name);
        self.find_or_create_customer(&name, None, Some("Created by tiktok-katana-sync"))
            .await
    }

    /// `per_buyer` customers: match by email when known, else by exact name.
    pub async fn find_or_create_customer(
        &self,
        name: &str,
        email: Option<&str>,
        comment: Option<&str>,
    ) -> Result<i64, KatanaError> {
        if name.trim().is_empty() {
            return Err(KatanaError::Invalid("customer name is empty".into()));
        }
        // Lower-cased on the way in and out: Katana's email filter may be exact.
        let email = email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
        let email = email.as_deref();
        let q = match email {
            Some(e) => vec![("email".to_string(), e.to_string())],
            None => vec![("name".to_string(), name.to_string())],
        };
        let found: Vec<Customer> = self.list_all("/customers", &q, Priority::High).await?;
        let hit = found
            .into_iter()
            .filter(|c| match email {
                Some(e) => c
                    .email
                    .as_deref()
                    .is_some_and(|ce| ce.eq_ignore_ascii_case(e)),
                None => c.name == name,
            })
            .min_by_key(|c| c.id);
        if let Some(c) = hit {
            return Ok(c.id);
        }
        let body = serde_json::to_value(CreateCustomer {
            name: name.to_string(),
            first_name: None,
            last_name: None,
            email: email.map(str::to_string),
            comment: comment.map(str::to_string),
        })
        .map_err(|e| KatanaError::Invalid(e.to_string()))?;
        let r = self
            .send_once(Method::POST, "/customers", &[], Some(&body), Priority::High)
            .await?;
        let c: Customer = self.decode("POST", "/customers", &r)?;
        Ok(c.id)
    }

    // ------------------------------------------------------------ catalogue & stock

    /// Live variants with exactly these SKUs (repeated `sku=` keys, chunked).
    pub async fn variants_by_sku(&self, skus: &[String]) -> Result<Vec<Variant>, KatanaError> {
        let mut out = Vec::new();
        for chunk in skus.chunks(FILTER_CHUNK) {
            let q: Vec<(String, String)> = chunk
                .iter()
                .map(|s| ("sku".to_string(), s.clone()))
                .collect();
            let got: Vec<Variant> = self.list_all("/variants", &q, Priority::Low).await?;
            out.extend(got.into_iter().filter(|v| {
                v.deleted_at.is_none() && v.sku.as_ref().is_some_and(|s| chunk.contains(s))
            }));
        }
        Ok(out)
    }

    pub async fn all_variants(&self) -> Result<Vec<Variant>, KatanaError> {
        self.list_all("/variants", &[], Priority::Low).await
    }

    pub async fn locations(&self) -> Result<Vec<Location>, KatanaError> {
        self.list_all("/locations", &[], Priority::Low).await
    }

    /// Stock rows; empty `variant_ids` means all variants. `location_id` narrows to one.
    pub async fn inventory(
        &self,
        variant_ids: &[i64],
        location_id: Option<i64>,
    ) -> Result<Vec<StockLevel>, KatanaError> {
        self.inventory_with(variant_ids, location_id, Priority::Low)
            .await
    }

    /// [`Self::inventory`] at `priority`: up to 50 variants (`variant_id` repeated,
    /// Katana's spelling on this endpoint) per call, 250 rows per page.
    pub async fn inventory_with(
        &self,
        variant_ids: &[i64],
        location_id: Option<i64>,
        priority: Priority,
    ) -> Result<Vec<StockLevel>, KatanaError> {
        let loc: Vec<(String, String)> = location_id
            .map(|l| vec![("location_id".to_string(), l.to_string())])
            .unwrap_or_default();
        let mut rows: Vec<InventoryRow> = Vec::new();
        if variant_ids.is_empty() {
            rows = self.list_all("/inventory", &loc, priority).await?;
        } else {
            for chunk in variant_ids.chunks(FILTER_CHUNK) {
                let mut q = loc.clone();
                q.extend(
                    chunk
                        .iter()
                        .map(|v| ("variant_id".to_string(), v.to_string())),
                );
                let got: Vec<InventoryRow> = self.list_all("/inventory", &q, priority).await?;
                rows.extend(got.into_iter().filter(|r| chunk.contains(&r.variant_id)));
            }
        }
        Ok(rows
            .iter()
            .filter(|r| location_id.map_or(true, |l| r.location_id == l))
            .map(mapping::stock_level)
            .collect())
    }

    // ------------------------------------------------------------ webhooks

    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>, KatanaError> {
        self.list_all("/webhooks", &[], Priority::Low).await
    }

    /// Subscribes `url` to `events`, reusing (and widening) an existing subscription
    /// for the same URL instead of registering a duplicate.
    pub async fn register_webhook(
        &self,
        url: &str,
        events: &[&str],
    ) -> Result<RegisteredWebhook, KatanaError> {
        if events.is_empty() {
            return Err(KatanaError::Invalid(
                "register_webhook needs at least one event".into(),
            ));
        }
        let existing = self.list_webhooks().await?;
        if let Some(w) = existing
            .iter()
            .filter(|w| w.url == url)
            .min_by_key(|w| w.id)
        {
            let missing: Vec<&str> = events
                .iter()
                .copied()
                .filter(|e| !w.subscribed_events.iter().any(|s| s == e))
                .collect();
            if missing.is_empty() && w.enabled {
                return Ok(RegisteredWebhook {
                    id: w.id,
                    token: w.token.clone(),
                });
            }
            let mut all = w.subscribed_events.clone();
            all.extend(missing.iter().map(|s| s.to_string()));
            let path = format!("/webhooks/{}", w.id);
            let body = serde_json::json!({ "subscribed_events": all, "enabled": true });
            let r = self
                .send(Method::PATCH, &path, &[], Some(&body), Priority::High)
                .await?;
            let w: Webhook = self.decode("PATCH", &path, &r)?;
            return Ok(RegisteredWebhook {
                id: w.id,
                token: w.token,
            });
        }
        let body = serde_json::to_value(CreateWebhook {
            url: url.to_string(),
            subscribed_events: events.iter().map(|s| s.to_string()).collect(),
            description: Some("tiktok-katana-sync".into()),
        })
        .map_err(|e| KatanaError::Invalid(e.to_string()))?;
        let r = self
            .send_once(Method::POST, "/webhooks", &[], Some(&body), Priority::High)
            .await?;
        let w: Webhook = self.decode("POST", "/webhooks", &r)?;
        Ok(RegisteredWebhook {
            id: w.id,
            token: w.token,
        })
    }
}

/// Builds a readable error from Katana's body (wrapped or flat, or not JSON at all).
fn api_error(
    method: &str,
    path: &str,
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
) -> KatanaError {
    let parsed = ErrorBody::parse(body);
    let (name, mut message, fields) = match &parsed {
        Some(e) => (
            e.name
                .clone()
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_string()),
            e.message.clone().unwrap_or_default(),
            e.offending_fields(),
        ),
        None => (
            status.canonical_reason().unwrap_or("Error").to_string(),
            String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            Vec::new(),
        ),
    };
    if let Some(e) = &parsed {
        let notes: Vec<String> = e
            .details
            .iter()
            .map(|d| {
                let what = d
                    .message
                    .clone()
                    .or_else(|| d.code.clone())
                    .unwrap_or_default();
                format!("{}: {what}", d.field().unwrap_or_else(|| "(body)".into()))
            })
            .collect();
        if !notes.is_empty() {
            message = format!("{message} [{}]", notes.join("; "));
        }
    }
    KatanaError::Api {
        request: format!("{method} {path}"),
        status: status.as_u16(),
        name,
        message,
        fields,
        retry_after,
    }
}
