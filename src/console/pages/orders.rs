//! `/orders`: the paged, filterable orders list with a progress bar per order.
//! Filters are query parameters (`state`, `from`, `until`, `sku`, `q`, `shop`, `page`) so a
//! filtered list is a link.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{html, Markup};

use crate::console::pages::order::urlencode;
use crate::console::ports::ConsolePorts;
use crate::console::readmodel::{OrderFilter, OrderState};
use crate::console::{gate, given, layout, ok, parse_form, Refused};

pub const PAGE_SIZE: u64 = 50;
/// Deep pages cost an OFFSET scan; nobody pages this far, they filter.
const MAX_PAGE: u64 = 10_000;

/// A date (`2026-05-04`, the start of that day) or an RFC 3339 time.
fn parse_when(field: &str, s: &str, end_of_day: bool) -> Result<DateTime<Utc>, Refused> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let d = if end_of_day {
            d.succ_opt().unwrap_or(d)
        } else {
            d
        };
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    crate::replay::parse_time(s).map_err(|e| {
        Refused::BadRequest(format!(
            "{field}: expected a date like 2026-05-04 or an RFC 3339 time: {e}"
        ))
    })
}

/// The filter and page a query string asks for.
pub fn parse_query(query: &str) -> Result<(OrderFilter, u64), Refused> {
    let q = parse_form(query.as_bytes());
    let state = match given(&q, "state") {
        None => None,
        Some(s) => Some(OrderState::parse(&s).ok_or_else(|| {
            let known: Vec<&str> = OrderState::ALL.iter().map(|s| s.key()).collect();
            Refused::BadRequest(format!(
                "state: unknown state {s:?}; one of {}",
                known.join(", ")
            ))
        })?),
    };
    let from = given(&q, "from")
        .map(|s| parse_when("from", &s, false))
        .transpose()?;
    let until = given(&q, "until")
        .map(|s| parse_when("until", &s, true))
        .transpose()?;
    let page = match given(&q, "page") {
        None => 1,
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|p| (1..=MAX_PAGE).contains(p))
            .ok_or_else(|| {
                Refused::BadRequest(format!("page: expected 1 to {MAX_PAGE}, got {p:?}"))
            })?,
    };
    Ok((
        OrderFilter {
            state,
            from,
            until,
            sku: given(&q, "sku"),
            id: given(&q, "q"),
            shop: given(&q, "shop"),
        },
        page,
    ))
}

fn link(filter: &OrderFilter, page: u64) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    if let Some(v) = filter.state {
        s.append_pair("state", v.key());
    }
    if let Some(v) = filter.from {
        s.append_pair("from", &v.to_rfc3339());
    }
    if let Some(v) = filter.until {
        s.append_pair("until", &v.to_rfc3339());
    }
    if let Some(v) = &filter.sku {
        s.append_pair("sku", v);
    }
    if let Some(v) = &filter.id {
        s.append_pair("q", v);
    }
    if let Some(v) = &filter.shop {
        s.append_pair("shop", v);
    }
    s.append_pair("page", &page.to_string());
    format!("/orders?{}", s.finish())
}

pub fn render(ports: &ConsolePorts, csrf: &str, query: &str) -> Result<Markup, Refused> {
    let (filter, page) = parse_query(query)?;
    // Shops are chosen (and linked) by id; the log knows the primary one by no key.
    let rules = ports.settings.shop_stock();
    let several = ports.settings.shops.len() > 1;
    let mut by_key = filter.clone();
    if let Some(id) = &filter.shop {
        if rules.iter().all(|s| &s.shop_id != id) {
            let ids: Vec<&str> = rules.iter().map(|s| s.shop_id.as_str()).collect();
            return Err(Refused::BadRequest(format!(
                "shop: {id:?} is not a served shop; one of {}",
                ids.join(", ")
            )));
        }
        by_key.shop = Some(rules.event_key(id).to_string());
    }
    let shop_id = |key: &str| -> String {
        rules
            .by_key(key)
            .map_or_else(|| key.to_string(), |s| s.shop_id.clone())
    };
    let (rows, total) = ports
        .console
        .read
        .orders(&by_key, (page - 1) * PAGE_SIZE, PAGE_SIZE)?;
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let raw = parse_form(query.as_bytes());
    let keep = |name: &str| given(&raw, name).unwrap_or_default();
    Ok(layout::page(
        "Orders",
        "/orders",
        csrf,
        html! {
            h1 { "Orders" }
            form.filters method="get" action="/orders" {
                label { "state"
                    select name="state" {
                        option value="" { "any" }
                        @for s in OrderState::ALL {
                            option value=(s.key()) selected[filter.state == Some(s)] { (s.label()) }
                        }
                    }
                }
                label { "placed from" input type="date" name="from" value=(keep("from")); }
                label { "until" input type="date" name="until" value=(keep("until")); }
                label { "SKU" input type="text" name="sku" value=(keep("sku")) placeholder="seller SKU"; }
                label { "order id" input type="search" name="q" value=(keep("q")) placeholder="starts with"; }
                @if several {
                    label { "shop"
                        select name="shop" {
                            option value="" { "any" }
                            @for s in rules.iter() {
                                option value=(s.shop_id) selected[keep("shop") == s.shop_id] { (s.shop_id) }
                            }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
            p.muted #order-count { (total) " orders" @if pages > 1 { ", page " (page) " of " (pages) } }
            table #orders {
                tr { th { "order" } @if several { th { "shop" } } th { "placed" } th { "SKUs" } th { "state" } th { "progress" br; span.stages { (crate::console::readmodel::STAGES.join(" → ")) } } th { "Katana SO" } }
                @for r in &rows {
                    tr {
                        td { a.order-link href=(format!("/orders/{}", urlencode(&r.order_id))) { (r.order_id) } }
                        @if several { td.shop { (shop_id(&r.shop)) } }
                        td { (layout::time(r.placed_at)) }
                        td { (r.skus) }
                        td { span.pill { (OrderState::parse(&r.state).map_or(r.state.as_str(), |s| s.label())) } }
                        td { (layout::progress(r.stage)) }
                        td { @if let Some(id) = r.so_id { (id) } @else { span.muted { "-" } } }
                    }
                }
            }
            div.pager {
                @if page > 1 { a href=(link(&filter, page - 1)) { "← newer" } }
                @if page < pages { a href=(link(&filter, page + 1)) { "older →" } }
            }
        },
    ))
}

pub async fn get(req: HttpRequest, ports: web::Data<ConsolePorts>) -> HttpResponse {
    let session = match gate(&req, &ports) {
        Ok(s) => s,
        Err(r) => return r.response(),
    };
    match render(&ports, &session.csrf, req.query_string()) {
        Ok(page) => ok(page),
        Err(r) => r.response(),
    }
}
