//! The simulator's HTTP layer: TikTok's gateway checks in TikTok's order (throttling, path,
//! method, app key, timestamp window, signature, token, shop cipher, scope, parameters), the
//! API and token endpoints, and the JSON control surface under `/_sim`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::packages::{self, LabelFetch};
use super::shop::ShopEntry;
use super::state::{self, ApiErr, Notification};
use super::{Faults, Inner, SimControl};
use crate::connectors::tiktok::sign;
use crate::domain::observed::TikTokOrderStatus;

pub(super) fn build(
    inner: Arc<Inner>,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(inner);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(1 << 20))
            .service(control_scope())
            .default_service(web::to(api))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

const INVALID_PARAM: i64 = 36009004;

fn envelope(http: u16, code: i64, message: &str, data: Option<Value>) -> HttpResponse {
    let mut body = json!({
        "code": code,
        "message": message,
        "request_id": uuid::Uuid::new_v4().simple().to_string(),
    });
    if let (Some(d), Some(obj)) = (data, body.as_object_mut()) {
        obj.insert("data".into(), d);
    }
    let status =
        actix_web::http::StatusCode::from_u16(http).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status).json(body)
}

fn err(http: u16, code: i64, message: impl Into<String>) -> ApiErr {
    ApiErr {
        http,
        code,
        message: message.into(),
    }
}

struct RouteDef {
    method: &'static str,
    pattern: &'static str,
    shop_scoped: bool,
    /// Query parameters accepted besides the common ones.
    params: &'static [&'static str],
}

const ROUTES: &[RouteDef] = &[
    RouteDef {
        method: "GET",
        pattern: "/authorization/202309/shops",
        shop_scoped: false,
        params: &[],
    },
    RouteDef {
        method: "GET",
        pattern: "/seller/202309/shops",
        shop_scoped: false,
        params: &[],
    },
    RouteDef {
        method: "POST",
        pattern: "/order/202309/orders/search",
        shop_scoped: true,
        params: &["page_size", "page_token", "sort_field", "sort_order"],
    },
    RouteDef {
        method: "GET",
        pattern: "/order/202309/orders",
        shop_scoped: true,
        params: &["ids"],
    },
    RouteDef {
        method: "POST",
        pattern: "/fulfillment/202309/orders/{}/packages",
        shop_scoped: true,
        params: &[],
    },
    RouteDef {
        method: "POST",
        pattern: "/fulfillment/202309/packages/{}/ship",
        shop_scoped: true,
        params: &[],
    },
    RouteDef {
        method: "GET",
        pattern: "/fulfillment/202309/packages/{}/handover_time_slots",
        shop_scoped: true,
        params: &[],
    },
    RouteDef {
        method: "GET",
        pattern: "/fulfillment/202309/packages/{}/shipping_documents",
        shop_scoped: true,
        params: &["document_type", "document_size"],
    },
    RouteDef {
        method: "POST",
        pattern: "/fulfillment/202309/orders/{}/shipping_info/update",
        shop_scoped: true,
        params: &[],
    },
    RouteDef {
        method: "POST",
        pattern: "/fulfillment/202309/packages/{}/shipping_info/update",
        shop_scoped: true,
        params: &[],
    },
    RouteDef {
        method: "GET",
        pattern: "/fulfillment/202309/orders/split_attributes",
        shop_scoped: true,
        params: &["order_ids"],
    },
    RouteDef {
        method: "POST",
        pattern: "/fulfillment/202309/orders/{}/split",
        shop_scoped: true,
        params: &[],
    },
    RouteDef {
        method: "GET",
        pattern: "/logistics/202309/warehouses",
        shop_scoped: true,
        params: &[],
    },
    RouteDef {
        method: "GET",
        pattern: "/logistics/202309/warehouses/{}/delivery_options",
        shop_scoped: true,
        params: &["scope"],
    },
    RouteDef {
        method: "GET",
        pattern: "/logistics/202309/delivery_options/{}/shipping_providers",
        shop_scoped: true,
        params: &[],
    },
    RouteDef {
        method: "POST",
        pattern: "/product/202502/products/search",
        shop_scoped: true,
        params: &["page_size", "page_token"],
    },
    RouteDef {
        method: "POST",
        pattern: "/product/202309/products/{}/inventory/update",
        shop_scoped: true,
        params: &[],
    },
    RouteDef {
        method: "POST",
        pattern: "/product/202309/inventory/search",
        shop_scoped: true,
        params: &[],
    },
];

const COMMON_PARAMS: [&str; 4] = ["app_key", "timestamp", "sign", "shop_cipher"];

/// Matches a path against the table; returns the route and its `{}` segments.
fn match_route<'a>(
    path: &'a str,
    method: &str,
) -> Result<(&'static RouteDef, Vec<&'a str>), ApiErr> {
    let segs: Vec<&str> = path.split('/').collect();
    let mut path_known = false;
    for r in ROUTES {
        let pat: Vec<&str> = r.pattern.split('/').collect();
        if pat.len() != segs.len() {
            continue;
        }
        let mut captures = Vec::new();
        let ok = pat.iter().zip(&segs).all(|(p, s)| {
            if *p == "{}" {
                captures.push(*s);
                !s.is_empty()
            } else {
                p == s
            }
        });
        if ok {
            path_known = true;
            if r.method == method {
                return Ok((r, captures));
            }
        }
    }
    if path_known {
        Err(err(405, 36009010, "Invalid method"))
    } else {
        Err(err(404, 36009009, "Invalid path"))
    }
}

struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(qs: &str) -> Self {
        Query {
            pairs: form_urlencoded::parse(qs.as_bytes()).into_owned().collect(),
        }
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    /// Repeated keys grouped and comma-joined, as TikTok reads arrays.
    fn joined(&self, k: &str) -> Option<String> {
        let vs: Vec<&str> = self
            .pairs
            .iter()
            .filter(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
            .collect();
        (!vs.is_empty()).then(|| vs.join(","))
    }
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiErr> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiErr::invalid_param(e.to_string()))
}

fn page_size(q: &Query, max: u32) -> Result<usize, ApiErr> {
    let raw = q
        .get("page_size")
        .ok_or_else(|| ApiErr::invalid_param("page_size is required"))?;
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n as usize),
        _ => Err(ApiErr::invalid_param(format!(
            "page_size must be 1..={max}, got {raw}"
        ))),
    }
}

/// Opaque page tokens that contain `+` and `/` like TikTok's, bound to the query they page.
fn page_token(offset: usize, fingerprint: &str) -> String {
    format!("pt+{offset}/{fingerprint}")
}

fn page_offset(q: &Query, fingerprint: &str) -> Result<usize, ApiErr> {
    let Some(t) = q.get("page_token").filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    t.strip_prefix("pt+")
        .and_then(|r| r.split_once('/'))
        .filter(|(_, f)| *f == fingerprint)
        .and_then(|(o, _)| o.parse().ok())
        .ok_or_else(|| ApiErr::invalid_param("page_token is invalid"))
}

fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0]);
    }
    hex::encode(&h.finalize()[..6])
}

fn paginate(items: Vec<Value>, offset: usize, size: usize, fp: &str, key: &str) -> Value {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(size).collect();
    let next = if offset + size < total {
        page_token(offset + size, fp)
    } else {
        String::new()
    };
    json!({ key: page, "next_page_token": next, "total_count": total })
}

async fn api(req: HttpRequest, body: web::Bytes, data: web::Data<Arc<Inner>>) -> HttpResponse {
    let inner = data.get_ref().clone();
    *inner.request_count.lock() += 1;
    inner
        .request_log
        .lock()
        .push(format!("{} {}", req.method(), req.path()));
    let delay = inner.faults.lock().delay_ms;
    if delay > 0 {
        // Real time on purpose: this exercises the client's socket timeout, not business time.
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match handle(&inner, &req, &body) {
        Ok((data, notes, shop_id)) => {
            if let Some(shop_id) = shop_id {
                inner.emit(&shop_id, notes);
            }
            envelope(200, 0, "Success", Some(data))
        }
        Err(e) => envelope(e.http, e.code, &e.message, None),
    }
}

fn throttle(inner: &Inner) -> Result<(), ApiErr> {
    let limit = {
        let mut f = inner.faults.lock();
        if f.throttle_next > 0 {
            f.throttle_next -= 1;
            return Err(err(429, 36009002, "Too many requests"));
        }
        if f.fail_next > 0 {
            f.fail_next -= 1;
            return Err(err(500, 36009003, "Internal error"));
        }
        f.qps_limit.unwrap_or(0)
    };
    if limit > 0 {
        let now = inner.now();
        let mut rate = inner.rate.lock();
        if rate.0 != now {
            *rate = (now, 0);
        }
        rate.1 += 1;
        if rate.1 > limit {
            return Err(err(429, 36009002, "Too many requests"));
        }
    }
    Ok(())
}

type Handled = Result<(Value, Vec<Notification>), ApiErr>;

/// The answer, the notifications it causes and the shop they are about.
type HandledForShop = Result<(Value, Vec<Notification>, Option<String>), ApiErr>;

fn handle(inner: &Arc<Inner>, req: &HttpRequest, body: &[u8]) -> HandledForShop {
    throttle(inner)?;
    let path = req.path();
    let method = req.method().as_str();
    let q = Query::parse(req.query_string());
    if let Some(kind) = path.strip_prefix("/api/v2/token/") {
        if method != "GET" {
            return Err(err(405, 36009010, "Invalid method"));
        }
        return token_endpoint(inner, kind, &q).map(|v| (v, vec![], None));
    }
    let (route, captures) = match_route(path, method)?;
    *inner
        .route_calls
        .lock()
        .entry(format!("{} {}", route.method, route.pattern))
        .or_default() += 1;
    let cfg = &inner.cfg;

    if q.get("app_key") != Some(cfg.app_key.as_str()) {
        return Err(err(400, INVALID_PARAM, "Invalid app_key"));
    }
    let now = inner.now();
    match q.get("timestamp").map(str::parse::<i64>) {
        Some(Ok(ts)) if ts < now - 300 => {
            return Err(err(
                200,
                INVALID_PARAM,
                "Invalid timestamp: must not be earlier than 5 minutes before the current time",
            ))
        }
        Some(Ok(ts)) if ts > now + 30 => {
            return Err(err(
                200,
                INVALID_PARAM,
                "Invalid timestamp: must not be more than 30 seconds in the future",
            ))
        }
        Some(Ok(_)) => {}
        _ => return Err(err(200, INVALID_PARAM, "Invalid timestamp")),
    }
    let Some(given) = q.get("sign") else {
        return Err(err(200, 106001, "Missing sign"));
    };
    // TikTok only accepts lowercase hex.
    if given.len() != 64
        || !given
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(err(200, 106001, "Invalid sign"));
    }
    let signed_body = (!body.is_empty()).then_some(body);
    if sign::sign(&cfg.app_secret, path, &q.pairs, signed_body) != given {
        return Err(err(200, 106001, "Invalid sign"));
    }
    if method == "POST" {
        let ct = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/json") {
            return Err(err(200, 36009023, "Invalid Content-Type"));
        }
    }
    let token = req
        .headers()
        .get("x-tts-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if token.is_empty() {
        return Err(err(200, 101000, "Invalid x-tts-access-token header"));
    }
    let seller = inner.credentials.lock().seller_of(token, now)?;
    let shop = match (route.shop_scoped, q.get("shop_cipher")) {
        (true, None) => {
            return Err(err(
                200,
                106013,
                "Missing identifier. The shop_cipher query parameter is required",
            ))
        }
        // The cipher must name a shop this token's seller authorised. The API reference
        // (§1, §4) gives 106013 for a missing cipher only and no code for an unknown or
        // foreign one, so both get the overloaded invalid-param code 36009004 (§4 table).
        (true, Some(c)) => match inner
            .shops
            .iter()
            .find(|s| s.cipher == c && s.seller == seller)
        {
            Some(shop) => Some(shop),
            None => return Err(err(200, INVALID_PARAM, "Invalid shop_cipher")),
        },
        (false, Some(_)) => {
            return Err(err(
                200,
                INVALID_PARAM,
                "invalid param: shop_cipher is not accepted on this path",
            ))
        }
        (false, None) => None,
    };
    if let Some(prefix) = inner.faults.lock().deny_scope_prefix.clone() {
        if path.starts_with(&prefix) {
            return Err(err(
                200,
                105005,
                "Access denied: you should apply auth pkg for this api",
            ));
        }
    }
    for (k, _) in &q.pairs {
        if !COMMON_PARAMS.contains(&k.as_str()) && !route.params.contains(&k.as_str()) {
            return Err(ApiErr::invalid_param(format!(
                "unknown query parameter {k}"
            )));
        }
    }
    let call = Call {
        pattern: route.pattern,
        captures: &captures,
        q: &q,
        body,
        now,
    };
    match shop {
        Some(shop) => {
            let (v, notes) = dispatch_shop(shop, &call)?;
            Ok((v, notes, Some(shop.id.clone())))
        }
        None => dispatch_account(inner, seller, &call).map(|v| (v, vec![], None)),
    }
}

/// A gateway-checked call: route, path ids, query and body.
struct Call<'a> {
    pattern: &'static str,
    captures: &'a [&'a str],
    q: &'a Query,
    body: &'a [u8],
    now: i64,
}

/// Calls without a shop cipher: they answer about the token's seller.
fn dispatch_account(inner: &Inner, seller: usize, call: &Call) -> Result<Value, ApiErr> {
    let shops = inner.shops_of(seller);
    match call.pattern {
        "/authorization/202309/shops" => Ok(json!({
            "shops": shops.iter().map(|s| json!({
                "id": s.id, "name": s.name, "region": s.region, "code": format!("US{}", &s.id[s.id.len().saturating_sub(6)..]),
                "cipher": s.cipher, "seller_type": "LOCAL",
            })).collect::<Vec<_>>()
        })),
        "/seller/202309/shops" => Ok(json!({
            "shops": shops.iter().map(|s| json!({"id": s.id, "region": s.region})).collect::<Vec<_>>()
        })),
        _ => Err(err(404, 36009009, "Invalid path")),
    }
}

/// Shop-scoped calls act on the shop the cipher selected.
fn dispatch_shop(shop: &ShopEntry, call: &Call) -> Handled {
    let Call {
        pattern,
        captures,
        q,
        body,
        now,
    } = *call;
    let cap = |i: usize| captures.get(i).copied().unwrap_or_default();
    let none = |v: Value| Ok((v, vec![]));
    match pattern {
        "/order/202309/orders/search" => {
            let size = page_size(q, 100)?;
            let sort_field = q.get("sort_field").unwrap_or("create_time");
            let sort_order = q.get("sort_order").unwrap_or("DESC");
            let by_update = match sort_field {
                "create_time" => false,
                "update_time" => true,
                other => return Err(ApiErr::invalid_param(format!("sort_field {other}"))),
            };
            let asc = match sort_order {
                "ASC" => true,
                "DESC" => false,
                other => return Err(ApiErr::invalid_param(format!("sort_order {other}"))),
            };
            let filter: state::OrderSearchRequest = parse_body(body)?;
            let fp = fingerprint(&[body, sort_field.as_bytes(), sort_order.as_bytes()]);
            let offset = page_offset(q, &fp)?;
            let orders = shop.state.lock().search_orders(&filter, by_update, asc);
            none(paginate(orders, offset, size, &fp, "orders"))
        }
        "/order/202309/orders" => {
            let ids: Vec<String> = q
                .joined("ids")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if ids.is_empty() || ids.len() > 50 {
                return Err(ApiErr::invalid_param(format!(
                    "ids must hold 1..=50 order ids, got {}",
                    ids.len()
                )));
            }
            let st = shop.state.lock();
            none(
                json!({"orders": ids.iter().filter_map(|id| st.orders.get(id)).map(state::SimOrder::wire).collect::<Vec<_>>()}),
            )
        }
        "/fulfillment/202309/orders/{}/packages" => {
            let req: state::MarkShippedRequest = parse_body(body)?;
            shop.state.lock().mark_shipped(cap(0), req, now)
        }
        "/fulfillment/202309/packages/{}/ship" => {
            let req: packages::ShipPackageRequest = parse_body(body)?;
            shop.state.lock().ship_package(cap(0), req, now)
        }
        "/fulfillment/202309/packages/{}/handover_time_slots" => {
            none(shop.state.lock().handover_time_slots(cap(0), now)?)
        }
        "/fulfillment/202309/packages/{}/shipping_documents" => {
            none(shop.state.lock().shipping_document(
                cap(0),
                q.get("document_type"),
                q.get("document_size"),
                now,
            )?)
        }
        "/fulfillment/202309/orders/{}/shipping_info/update" => {
            let req: packages::ShippingInfoUpdateRequest = parse_body(body)?;
            none(
                shop.state
                    .lock()
                    .update_order_shipping_info(cap(0), req, now)?,
            )
        }
        "/fulfillment/202309/packages/{}/shipping_info/update" => {
            let req: packages::ShippingInfoUpdateRequest = parse_body(body)?;
            none(
                shop.state
                    .lock()
                    .update_shipping_info(cap(0), "package", req, now)?,
            )
        }
        "/fulfillment/202309/orders/split_attributes" => {
            let ids: Vec<String> = q
                .joined("order_ids")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if ids.is_empty() || ids.len() > 50 {
                return Err(ApiErr::invalid_param(format!(
                    "order_ids must hold 1..=50 order ids, got {}",
                    ids.len()
                )));
            }
            none(shop.state.lock().split_attributes(&ids))
        }
        "/fulfillment/202309/orders/{}/split" => {
            let req: packages::SplitRequest = parse_body(body)?;
            shop.state.lock().split(cap(0), req, now)
        }
        "/logistics/202309/warehouses" => {
            let st = shop.state.lock();
            none(json!({"warehouses": st.warehouses.iter().map(|w| json!({
                "id": w.id, "entity_id": w.id, "name": w.name, "effect_status": w.effect_status,
                "type": w.warehouse_type, "sub_type": "DOMESTIC_WAREHOUSE", "is_default": w.is_default,
                "address": {"region": "United States", "region_code": "US", "state": "Illinois", "city": "Springfield",
                            "postal_code": "62701", "address_line1": "10 Depot Rd", "full_address": "10 Depot Rd, Springfield, IL 62701"}
            })).collect::<Vec<_>>()}))
        }
        "/logistics/202309/warehouses/{}/delivery_options" => {
            if let Some(scope) = q.get("scope") {
                if scope != "WAREHOUSE" && scope != "PRODUCT" {
                    return Err(ApiErr::invalid_param(format!("scope {scope}")));
                }
            }
            let st = shop.state.lock();
            let wid = cap(0);
            if !st.warehouses.iter().any(|w| w.id == wid) {
                return Err(ApiErr::new(
                    state::sim_codes::NOT_FOUND,
                    format!("warehouse {wid} not found"),
                ));
            }
            none(
                json!({"delivery_options": st.delivery_options.iter().filter(|d| d.warehouse_id == wid).map(|d| json!({
                "id": d.id, "name": d.name, "type": d.option_type, "description": d.name,
                "platform": ["TIKTOK_SHOP"],
            })).collect::<Vec<_>>()}),
            )
        }
        "/logistics/202309/delivery_options/{}/shipping_providers" => {
            let st = shop.state.lock();
            let did = cap(0);
            if !st.delivery_options.iter().any(|d| d.id == did) {
                return Err(ApiErr::new(
                    state::sim_codes::NOT_FOUND,
                    format!("delivery option {did} not found"),
                ));
            }
            none(
                json!({"shipping_providers": st.providers.iter().filter(|p| p.delivery_option_id == did)
                .map(|p| json!({"id": p.id, "name": p.name})).collect::<Vec<_>>()}),
            )
        }
        "/product/202502/products/search" => {
            let size = page_size(q, 100)?;
            let filter: state::ProductSearchRequest = parse_body(body)?;
            for (name, list) in [
                ("seller_skus", &filter.seller_skus),
                ("sku_ids", &filter.sku_ids),
            ] {
                if list.as_ref().is_some_and(|l| l.len() > 10) {
                    return Err(ApiErr::invalid_param(format!(
                        "{name} holds at most 10 values"
                    )));
                }
            }
            let fp = fingerprint(&[body]);
            let offset = page_offset(q, &fp)?;
            let products = shop.state.lock().search_products(&filter);
            none(paginate(products, offset, size, &fp, "products"))
        }
        "/product/202309/products/{}/inventory/update" => {
            let req: state::InventoryUpdateRequest = parse_body(body)?;
            none(shop.state.lock().update_inventory(cap(0), req, now)?)
        }
        "/product/202309/inventory/search" => {
            let req: super::stock::InventorySearchRequest = parse_body(body)?;
            none(shop.state.lock().inventory_search(&req)?)
        }
        _ => Err(err(404, 36009009, "Invalid path")),
    }
}

fn token_endpoint(inner: &Inner, kind: &str, q: &Query) -> Result<Value, ApiErr> {
    let cfg = &inner.cfg;
    if q.get("app_key") != Some(cfg.app_key.as_str()) {
        return Err(err(400, INVALID_PARAM, "Invalid app_key"));
    }
    if q.get("app_secret") != Some(cfg.app_secret.as_str()) {
        return Err(err(200, INVALID_PARAM, "Invalid app_secret"));
    }
    let now = inner.now();
    let issued = match kind {
        "get" => {
            if q.get("grant_type") != Some("authorized_code") {
                return Err(ApiErr::invalid_param("grant_type must be authorized_code"));
            }
            let code = q.get("auth_code").unwrap_or("");
            inner.credentials.lock().exchange(code, now)?
        }
        "refresh" => {
            if q.get("grant_type") != Some("refresh_token") {
                return Err(ApiErr::invalid_param("grant_type must be refresh_token"));
            }
            let rt = q.get("refresh_token").unwrap_or("");
            inner.credentials.lock().refresh(rt, now)?
        }
        _ => return Err(err(404, 36009009, "Invalid path")),
    };
    let seller = cfg.sellers().into_iter().nth(issued.grant.seller);
    Ok(json!({
        "access_token": issued.access_token,
        "access_token_expire_in": issued.access_token_expire_in,
        "refresh_token": issued.refresh_token,
        "refresh_token_expire_in": issued.refresh_token_expire_in,
        // open_id names the seller; the main seller keeps the id it always had.
        "open_id": match issued.grant.seller {
            0 => "sim_open_id".to_string(),
            n => format!("sim_open_id_{n}"),
        },
        "seller_name": seller.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
        "seller_base_region": seller.as_ref().and_then(|s| s.shops.first()).map(|s| s.region.clone()).unwrap_or_default(),
        "user_type": issued.grant.user_type,
        "granted_scopes": ["seller.order.info", "seller.fulfillment.basic", "seller.product.basic", "seller.logistics"],
    }))
}

// ----- control surface -----------------------------------------------------------------------

fn control(data: &web::Data<Arc<Inner>>) -> SimControl {
    SimControl {
        inner: data.get_ref().clone(),
    }
}

/// `?shop_id=` on a control route that acts on shop data; without it, the main shop.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ShopQuery {
    shop_id: Option<String>,
}

fn no_such_shop(shop_id: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({"message": format!("no such shop {shop_id}")}))
}

/// Runs `f` on the shop the query names (the main shop without `shop_id`).
fn on_shop(
    d: &web::Data<Arc<Inner>>,
    q: &ShopQuery,
    f: impl FnOnce(&super::ShopSim<'_>) -> HttpResponse,
) -> HttpResponse {
    let control = control(d);
    let shop = match &q.shop_id {
        None => Some(control.main_shop()),
        Some(id) => control.shop(id),
    };
    match shop {
        Some(shop) => f(&shop),
        None => no_such_shop(q.shop_id.as_deref().unwrap_or_default()),
    }
}

fn ctl_result<T: serde::Serialize>(r: Result<T, ApiErr>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::BadRequest().json(json!({"code": e.code, "message": e.message})),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct CancelBody {
    line_item_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: TikTokOrderStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct AuthCodeBody {
    user_type: i64,
    /// 0 = the main seller, `i` = `other_sellers[i - 1]`.
    seller: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StockBody {
    sku_id: String,
    warehouse_id: String,
    available_quantity: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShopBody {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct WebhookUrlBody {
    url: Option<String>,
}

type Data = web::Data<Arc<Inner>>;
type Shop = web::Query<ShopQuery>;

fn control_scope() -> actix_web::Scope {
    web::scope("/_sim")
        .route(
            "/orders",
            web::post().to(|d: Data, q: Shop, b: web::Json<state::NewOrder>| async move {
                on_shop(&d, &q, |s| ctl_result(s.create_order(b.into_inner()).map(|o| o.wire())))
            }),
        )
        .route(
            "/orders/{id}",
            web::get().to(|d: Data, q: Shop, id: web::Path<String>| async move {
                on_shop(&d, &q, |s| match s.order(&id) {
                    Some(o) => HttpResponse::Ok().json(o.wire()),
                    None => HttpResponse::NotFound().json(json!({"message": "no such order"})),
                })
            }),
        )
        .route(
            "/orders/{id}/edit",
            web::post().to(
                |d: Data, q: Shop, id: web::Path<String>, b: web::Json<state::OrderEdit>| async move {
                    on_shop(&d, &q, |s| ctl_result(s.edit_order(&id, b.into_inner()).map(|o| o.wire())))
                },
            ),
        )
        .route(
            "/orders/{id}/cancel",
            web::post().to(|d: Data, q: Shop, id: web::Path<String>, b: web::Json<CancelBody>| async move {
                on_shop(&d, &q, |s| {
                    ctl_result(s.cancel_order(&id, b.into_inner().line_item_ids).map(|o| o.wire()))
                })
            }),
        )
        .route(
            "/orders/{id}/status",
            web::post().to(|d: Data, q: Shop, id: web::Path<String>, b: web::Json<StatusBody>| async move {
                on_shop(&d, &q, |s| ctl_result(s.set_order_status(&id, b.status).map(|o| o.wire())))
            }),
        )
        .route(
            "/catalogue",
            web::put().to(|d: Data, q: Shop, b: web::Json<Vec<state::NewProduct>>| async move {
                on_shop(&d, &q, |s| ctl_result(s.set_catalogue(b.into_inner())))
            }),
        )
        .route(
            "/catalogue",
            web::get().to(|d: Data, q: Shop| async move {
                on_shop(&d, &q, |s| HttpResponse::Ok().json(s.products()))
            }),
        )
        // The demo catalogue's fixed ids and warehouses are the main shop's: no shop_id.
        .route(
            "/catalogue/demo",
            web::post().to(|d: Data| async move {
                HttpResponse::Ok().json(control(&d).seed_demo_catalogue())
            }),
        )
        .route(
            "/shops",
            web::get().to(|d: Data| async move { HttpResponse::Ok().json(control(&d).shop_ids()) }),
        )
        .route(
            "/auth_code",
            web::post().to(|d: Data, b: web::Json<AuthCodeBody>| async move {
                let control = control(&d);
                let code = if b.seller == 0 {
                    control.issue_auth_code_for(b.user_type)
                } else {
                    control.issue_auth_code_for_seller(b.seller)
                };
                HttpResponse::Ok().json(json!({"code": code}))
            }),
        )
        .route(
            "/sellers/{seller}/revoke",
            web::post().to(|d: Data, seller: web::Path<usize>| async move {
                control(&d).revoke_seller(seller.into_inner());
                HttpResponse::Ok().json(json!({}))
            }),
        )
        .route(
            "/expire_access_token",
            web::post().to(|d: Data| async move {
                control(&d).expire_access_tokens();
                HttpResponse::Ok().json(json!({}))
            }),
        )
        .route(
            "/shipments",
            web::get().to(|d: Data, q: Shop| async move {
                on_shop(&d, &q, |s| HttpResponse::Ok().json(s.shipments()))
            }),
        )
        .route(
            "/tracking_updates",
            web::get().to(|d: Data, q: Shop| async move {
                on_shop(&d, &q, |s| HttpResponse::Ok().json(s.tracking_updates()))
            }),
        )
        .route(
            "/labels",
            web::get().to(|d: Data, q: Shop| async move {
                on_shop(&d, &q, |s| HttpResponse::Ok().json(s.labels()))
            }),
        )
        // A document URL is what a label printer fetches: its token alone finds the shop.
        .route(
            "/labels/{token}",
            web::get().to(|d: Data, token: web::Path<String>| async move {
                let now = d.now();
                let fetched = d
                    .shops
                    .iter()
                    .map(|s| s.state.lock().label(&token, now))
                    .find(|f| !matches!(f, LabelFetch::Unknown))
                    .unwrap_or(LabelFetch::Unknown);
                match fetched {
                    LabelFetch::Valid(l) => HttpResponse::Ok().content_type("application/pdf").body(format!(
                        "%PDF-1.4\n% TikTok Shop simulator {} ({}) for package {}, tracking {}\n%%EOF\n",
                        l.document_type, l.document_size, l.package_id, l.tracking_number
                    )),
                    LabelFetch::Expired => HttpResponse::Gone().json(json!({"message": "this document URL has expired (24 hours)"})),
                    LabelFetch::Unknown => HttpResponse::NotFound().json(json!({"message": "no such document"})),
                }
            }),
        )
        .route(
            "/orders/{id}/packages",
            web::get().to(|d: Data, q: Shop, id: web::Path<String>| async move {
                on_shop(&d, &q, |s| HttpResponse::Ok().json(s.order_packages(&id)))
            }),
        )
        .route(
            "/calls",
            web::get().to(|d: Data| async move { HttpResponse::Ok().json(control(&d).call_counts()) }),
        )
        .route(
            "/shop",
            web::post().to(|d: Data, q: Shop, b: web::Json<ShopBody>| async move {
                on_shop(&d, &q, |s| {
                    s.rename_shop(&b.name);
                    HttpResponse::Ok().json(json!({}))
                })
            }),
        )
        .route(
            "/stock",
            web::post().to(|d: Data, q: Shop, b: web::Json<StockBody>| async move {
                let b = b.into_inner();
                on_shop(&d, &q, |s| {
                    ctl_result(s.set_available(&b.sku_id, &b.warehouse_id, b.available_quantity))
                })
            }),
        )
        .route(
            "/inventory_pushes",
            web::get().to(|d: Data, q: Shop| async move {
                on_shop(&d, &q, |s| HttpResponse::Ok().json(s.inventory_pushes()))
            }),
        )
        .route(
            "/webhooks",
            web::get().to(|d: Data| async move { HttpResponse::Ok().json(control(&d).webhook_attempts()) }),
        )
        .route(
            "/webhook_url",
            web::post().to(|d: Data, b: web::Json<WebhookUrlBody>| async move {
                control(&d).set_webhook_url(b.into_inner().url);
                HttpResponse::Ok().json(json!({}))
            }),
        )
        .route(
            "/faults",
            web::get().to(|d: Data| async move { HttpResponse::Ok().json(control(&d).faults()) }),
        )
        .route(
            "/faults",
            web::post().to(|d: Data, b: web::Json<Faults>| async move {
                control(&d).set_faults(b.into_inner());
                HttpResponse::Ok().json(json!({}))
            }),
        )
}
