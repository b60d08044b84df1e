//! `/`: orders by state, open exceptions by kind, connector health, each shop's
//! orders and exceptions when several are served, and orders per hour over the
//! last day, all from the read model and in-memory state.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use crate::console::ports::ConsolePorts;
use crate::console::readmodel::OrderState;
use crate::console::{charts, gate, health, layout, ok, Refused};
use crate::metrics::{Metrics, ShopCounts};

/// `missing-tracking-42` and `missing-tracking-43` are one kind of exception.
pub fn exception_kind(key: &str) -> &str {
    match key.rsplit_once('-') {
        Some((kind, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => kind,
        _ => key,
    }
}

pub fn connector_table(list: &[health::Health]) -> Markup {
    html! {
        table #connectors {
            tr { th { "connector" } th { "status" } th { "last good call" } th.num { "errors (1h)" }
                 th.num { "calls ok / failed" } th { "budget / token" } }
            @for h in list {
                tr {
                    td { (h.connector) }
                    td {
                        @if !h.configured { span.pill.bad { "not configured" } }
                        @else if h.not_connected { span.pill.bad { "not connected" } }
                        @else if h.errors_last_hour > 0 { span.pill.warn { "errors" } }
                        @else { span.pill.ok { "ok" } }
                    }
                    td { (layout::opt_time(h.last_ok)) }
                    td.num { (h.errors_last_hour) }
                    td.num { (h.calls_ok) " / " (h.calls_failed) }
                    td {
                        @if let Some((used, limit)) = h.budget {
                            "Katana budget " (used) " of " (limit) " per minute"
                        }
                        @if let Some((access, refresh)) = h.token_expiry {
                            "access token expires " (layout::time(access)) br;
                            "refresh token expires " (layout::time(refresh))
                        }
                        @if h.not_connected { "run `tks connect tiktok --auth-code CODE`" }
                    }
                }
            }
        }
    }
}

/// One served shop as the overview's shops card shows it.
struct ShopLine {
    id: String,
    name: Option<String>,
    authorised: bool,
    counts: ShopCounts,
}

fn shop_lines(ports: &ConsolePorts) -> Vec<ShopLine> {
    let rules = ports.settings.shop_stock();
    ports
        .settings
        .served_shops()
        .into_iter()
        .map(|shop| {
            let key = rules.event_key(&shop.id);
            let listed = ports
                .shops
                .as_ref()
                .and_then(|s| s.by_key(key))
                .and_then(|c| c.client.shop());
            ShopLine {
                counts: ports.metrics.shop_counts(Metrics::shop_label(&shop.id)),
                name: listed.as_ref().map(|s| s.name.clone()),
                authorised: listed.is_some(),
                id: shop.id,
            }
        })
        .collect()
}

fn shops_card(lines: &[ShopLine]) -> Markup {
    html! {
        h2 { "Shops" }
        table #shops {
            tr { th { "shop" } th { "status" } th.num { "orders" } th.num { "open exceptions" }
                 th.num { "TikTok calls ok / failed" } }
            @for l in lines {
                tr {
                    td { (l.name.as_deref().unwrap_or("")) " " span.muted { (l.id) } }
                    td {
                        @if l.authorised { span.pill.ok { "authorised" } }
                        @else { span.pill.bad { "not authorised" } }
                    }
                    td.num { (l.counts.orders) }
                    td.num { (l.counts.open_exceptions) }
                    td.num { (l.counts.tiktok_calls_ok) " / " (l.counts.tiktok_calls_failed) }
                }
            }
        }
    }
}

pub fn render(ports: &ConsolePorts, csrf: &str) -> Result<Markup, Refused> {
    let read = &ports.console.read;
    let by_state: BTreeMap<String, u64> = read.orders_by_state()?.into_iter().collect();
    let total: u64 = by_state.values().sum();
    let per_hour = read.orders_per_hour(ports.clock.now())?;
    let exceptions = crate::operator::open_exceptions(ports.store.as_ref())?;
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &exceptions {
        *by_kind.entry(exception_kind(&e.key)).or_insert(0) += 1;
    }
    let missing = health::missing(&ports.settings);
    let connectors = health::connectors(ports);
    // One shop's line would repeat the totals above it.
    let shops = shop_lines(ports);
    let position = read.position()?;
    let head = ports.store.head();
    let buckets: Vec<(String, f64)> = per_hour
        .iter()
        .map(|(t, n)| (t.format("%H:00").to_string(), *n as f64))
        .collect();
    Ok(layout::page(
        "Overview",
        "/",
        csrf,
        html! {
            h1 { "Overview" }
            (layout::missing_connectors(&missing))
            div.grid {
                div.card {
                    h2 { "Orders by state" }
                    table #orders-by-state {
                        @for s in OrderState::ALL {
                            tr {
                                td { a href=(format!("/orders?state={}", s.key())) { (s.label()) } }
                                td.num { (by_state.get(s.key()).copied().unwrap_or(0)) }
                            }
                        }
                        tr { th { "all orders" } th.num { (total) } }
                    }
                }
                div.card {
                    h2 { "Open exceptions" }
                    @if by_kind.is_empty() { p.muted #no-exceptions { "None: nothing needs an operator." } }
                    @else {
                        table #exceptions-by-kind {
                            @for (kind, n) in &by_kind {
                                tr { td { a href=(format!("/exceptions#{kind}")) { (kind) } } td.num { (n) } }
                            }
                        }
                    }
                }
            }
            h2 { "Connectors" }
            (connector_table(&connectors))
            @if shops.len() > 1 { (shops_card(&shops)) }
            h2 { "Orders per hour, last 24 hours" }
            (charts::bars("Orders placed per hour", &buckets, "#2457c5"))
            p.muted { "Read model at log position " (position) " of " (head) "." }
        },
    ))
}

pub async fn get(req: HttpRequest, ports: web::Data<ConsolePorts>) -> HttpResponse {
    let session = match gate(&req, &ports) {
        Ok(s) => s,
        Err(r) => return r.response(),
    };
    match render(&ports, &session.csrf) {
        Ok(page) => ok(page),
        Err(r) => r.response(),
    }
}
