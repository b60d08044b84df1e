//! `/skus` and `/skus/{sku}`: what we promise TikTok per SKU (stock, committed,
//! held in orders, safety stock, ATP, last push, buffer), the sync toggle, and
//! a chart over time of Katana free stock, ATP and TikTok's quantity, folded from
//! the SKU's stream (time travel over every event), oversell windows shaded.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::actors::{CommandError, Execute};
use crate::console::charts::{self, Band, Series};
use crate::console::pages::order::urlencode;
use crate::console::ports::ConsolePorts;
use crate::console::{check_csrf, gate, given, layout, off_thread, ok, parse_form, Refused};
use crate::domain::observed::Quantity;
use crate::domain::sku::{Sku, SkuCommand};
use crate::domain::Aggregate;
use crate::replay::StreamState;

/// Units free in Katana: Σ locations max(0, in stock − committed).
pub fn free_stock(s: &Sku) -> i64 {
    s.locations
        .values()
        .map(|l| Quantity(l.in_stock.0 - l.committed.0).floor_units().max(0))
        .sum()
}

pub fn committed(s: &Sku) -> i64 {
    s.locations
        .values()
        .map(|l| l.committed.floor_units())
        .sum()
}

pub fn held(s: &Sku) -> i64 {
    s.demand.values().map(|&u| i64::from(u)).sum()
}

fn buffer(s: &Sku) -> Markup {
    html! {
        @if !s.sync_enabled { span.pill.warn { "sync off" } }
        @else if let Some(due) = s.buffer_due { span.pill { "window open until " (layout::time(due)) } }
        @else { span.pill.ok { "idle" } }
    }
}

fn toggle_form(sku: &str, enabled: bool, csrf: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/skus/{}/sync", urlencode(sku))) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="enabled" value=(if enabled { "false" } else { "true" });
            button type="submit" class="sync-toggle" data-sku=(sku) {
                @if enabled { "Stop syncing" } @else { "Resume syncing" }
            }
        }
    }
}

pub fn render_list(ports: &ConsolePorts, csrf: &str) -> Result<Markup, Refused> {
    let skus = ports.console.read.skus()?;
    let safety = ports.settings.sync.safety_stock;
    Ok(layout::page(
        "SKUs",
        "/skus",
        csrf,
        html! {
            h1 { "SKUs" }
            p.muted { "ATP = Katana free stock − units held in orders not yet in Katana − safety stock (" (safety) ")." }
            table #skus {
                tr { th { "SKU" } th.num { "Katana free" } th.num { "committed" } th.num { "held in orders" }
                     th.num { "safety" } th.num { "ATP" } th.num { "TikTok shows" } th { "buffer" } th { "sync" } }
                @for (sku, s, _) in &skus {
                    tr {
                        td { a.sku-link href=(format!("/skus/{}", urlencode(sku))) { (sku) } }
                        td.num { (free_stock(s)) }
                        td.num { (committed(s)) }
                        td.num { (held(s)) }
                        td.num { (safety) }
                        td.num { strong { (s.atp(safety)) } }
                        td.num { (s.last_pushed.map_or("-".to_string(), |v| v.to_string())) }
                        td { (buffer(s)) }
                        td { (toggle_form(sku, s.sync_enabled, csrf)) }
                    }
                }
            }
        },
    ))
}

/// The chart's points, one per event of the stream, and the oversell windows.
pub struct History {
    pub free: Vec<(DateTime<Utc>, f64)>,
    pub atp: Vec<(DateTime<Utc>, f64)>,
    pub tiktok: Vec<(DateTime<Utc>, f64)>,
    pub oversell: Vec<Band>,
    pub last_push: Option<(DateTime<Utc>, i64)>,
    pub state: Sku,
    pub events: usize,
}

/// Folds the SKU's stream with the production `apply`, sampling after each event.
/// Oversold: TikTok shows more than the true ATP (free stock minus held units,
/// without safety stock), as the what-if report counts it.
pub fn history(ports: &ConsolePorts, sku: &str) -> Result<Option<History>, Refused> {
    let stream = Sku::stream_id(sku);
    let events = ports.store.read_stream(&stream, 0)?;
    if events.is_empty() {
        return Ok(None);
    }
    let safety = ports.settings.sync.safety_stock;
    let mut state = StreamState::Sku(Box::default());
    let mut h = History {
        free: Vec::new(),
        atp: Vec::new(),
        tiktok: Vec::new(),
        oversell: Vec::new(),
        last_push: None,
        state: Sku::default(),
        events: events.len(),
    };
    let mut open: Option<DateTime<Utc>> = None;
    for e in &events {
        state
            .apply_recorded(&e.raw())
            .map_err(|r| Refused::Unavailable(format!("{stream} seq {}: {r}", e.seq)))?;
        let StreamState::Sku(s) = &state else { break };
        let t = e.meta.recorded_at;
        let free = free_stock(s);
        h.free.push((t, free as f64));
        h.atp.push((t, s.atp(safety) as f64));
        if let Some(v) = s.last_pushed {
            h.tiktok.push((t, v as f64));
            if e.event_type == "InventoryPushed" {
                h.last_push = Some((t, v));
            }
        }
        let oversold = s.last_pushed.is_some_and(|v| v > free - held(s));
        match (oversold, open) {
            (true, None) => open = Some(t),
            (false, Some(from)) => {
                h.oversell.push(Band { from, until: t });
                open = None;
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        h.oversell.push(Band {
            from,
            until: ports.clock.now().max(from),
        });
    }
    if let StreamState::Sku(s) = state {
        h.state = *s;
    }
    // Thousands of steps draw no better than a few hundred: keep every n-th point
    // and the last one.
    for series in [&mut h.free, &mut h.atp, &mut h.tiktok] {
        thin(series, 600);
    }
    Ok(Some(h))
}

fn thin(points: &mut Vec<(DateTime<Utc>, f64)>, max: usize) {
    if points.len() <= max {
        return;
    }
    let step = points.len().div_ceil(max);
    let last = points.last().copied();
    let mut kept: Vec<_> = points.iter().step_by(step).copied().collect();
    if kept.last() != last.as_ref() {
        kept.extend(last);
    }
    *points = kept;
}

pub fn chart(h: History, now: DateTime<Utc>) -> Markup {
    let series = [
        Series {
            label: "Katana free stock",
            color: "#5b6474",
            points: h.free,
            dashed: false,
        },
        Series {
            label: "ATP",
            color: "#1f8a4c",
            points: h.atp,
            dashed: false,
        },
        Series {
            label: "TikTok shows",
            color: "#2457c5",
            points: h.tiktok,
            dashed: true,
        },
    ];
    charts::steps(
        "Stock over time",
        &series,
        &h.oversell,
        "oversell windows",
        Some(now),
    )
}

pub fn render(ports: &ConsolePorts, csrf: &str, sku: &str) -> Result<Markup, Refused> {
    let Some(h) = history(ports, sku)? else {
        return Err(Refused::NotFound(format!("no events for SKU {sku}")));
    };
    let safety = ports.settings.sync.safety_stock;
    let s = h.state.clone();
    let last_push = h.last_push;
    let events = h.events;
    let windows = h.oversell.len();
    Ok(layout::page(
        &format!("SKU {sku}"),
        "/skus",
        csrf,
        html! {
            h1 { "SKU " (sku) " " (buffer(&s)) }
            div.grid {
                div.card {
                    table #atp {
                        tr { td { "Katana free stock" } td.num { (free_stock(&s)) } }
                        tr { td { "Katana committed" } td.num { (committed(&s)) } }
                        tr { td { "held in orders not yet in Katana" } td.num { (held(&s)) } }
                        tr { td { "safety stock" } td.num { (safety) } }
                        tr { th { "ATP" } th.num #atp-value { (s.atp(safety)) } }
                    }
                }
                div.card {
                    p { "TikTok shows " strong #tiktok-value { (s.last_pushed.map_or("nothing pushed yet".to_string(), |v| v.to_string())) } }
                    p { "Last push: " @match last_push { Some((t, v)) => { (v) " at " (layout::time(t)) }, None => "never" } }
                    p { "Katana variant " (s.variant_id.map_or("not mapped".to_string(), |v| v.to_string())) }
                    p #sync-state { "Sync " @if s.sync_enabled { "on" } @else { "off: TikTok's quantity is left as it is" } " " (toggle_form(sku, s.sync_enabled, csrf)) }
                }
            }
            @for (key, message) in &s.exceptions { p.notice.bad { strong { (key) } ": " (message) } }
            h2 { "Over time" }
            (chart(h, ports.clock.now()))
            p.muted { (events) " events in the stream; " (windows) " oversell window(s): TikTok showed more than Katana could supply." }
        },
    ))
}

pub async fn list(req: HttpRequest, ports: web::Data<ConsolePorts>) -> HttpResponse {
    let session = match gate(&req, &ports) {
        Ok(s) => s,
        Err(r) => return r.response(),
    };
    match render_list(&ports, &session.csrf) {
        Ok(page) => ok(page),
        Err(r) => r.response(),
    }
}

pub async fn get(
    req: HttpRequest,
    ports: web::Data<ConsolePorts>,
    sku: web::Path<String>,
) -> HttpResponse {
    let session = match gate(&req, &ports) {
        Ok(s) => s,
        Err(r) => return r.response(),
    };
    let sku = sku.into_inner();
    off_thread(&ports, move |s| render(s, &session.csrf, &sku)).await
}

/// The same command `POST /api/skus/{sku}/sync` runs, then back to the SKU page.
pub async fn toggle(
    req: HttpRequest,
    ports: web::Data<ConsolePorts>,
    sku: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let session = match gate(&req, &ports) {
        Ok(s) => s,
        Err(r) => return r.response(),
    };
    let form = parse_form(&body);
    if let Err(r) = check_csrf(&session, &form) {
        return r.response();
    }
    let sku = sku.into_inner();
    let enabled = match given(&form, "enabled").as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => return Refused::BadRequest("enabled must be true or false".into()).response(),
    };
    match ports.store.stream_seq(&Sku::stream_id(&sku)) {
        Ok(0) => return Refused::NotFound(format!("no events for SKU {sku}")).response(),
        Ok(_) => {}
        Err(e) => return Refused::from(e).response(),
    }
    match ports
        .commands
        .skus
        .execute(&sku, Execute::new(SkuCommand::ToggleSync { enabled }))
        .await
    {
        Ok(_) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/skus/{}", urlencode(&sku))))
            .finish(),
        Err(CommandError::Rejected(reason)) => Refused::BadRequest(reason.to_string()).response(),
        Err(e) => Refused::Unavailable(e.to_string()).response(),
    }
}
