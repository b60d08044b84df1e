//! `/what-if`: the what-if simulation of `tks-replay what-if` behind a form (hold,
//! buffer, buffer mode, safety stock, FBT mode, time range), its result side by
//! side with what happened, and a chart of the differences. A GET: it changes
//! nothing, and a result is a link one can share.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::config::{BufferMode, FbtMode};
use crate::console::ports::ConsolePorts;
use crate::console::{charts, gate, given, layout, ok, parse_form, Refused};
use crate::replay::whatif::{what_if, Proposal, Report, WhatIfError, Window};

/// The proposal and time range a query string asks for; `None` range ends are open.
pub type Asked = (Proposal, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn duration(q: &[(String, String)], name: &str) -> Result<Option<std::time::Duration>, Refused> {
    given(q, name)
        .map(|s| {
            humantime::parse_duration(&s).map_err(|e| {
                Refused::BadRequest(format!("{name}: expected a duration like 30m or 2h: {e}"))
            })
        })
        .transpose()
}

fn time(q: &[(String, String)], name: &str) -> Result<Option<DateTime<Utc>>, Refused> {
    given(q, name)
        .map(|s| {
            // `datetime-local` inputs send 2026-05-04T09:00 without seconds or zone.
            let full = if s.len() == 16 {
                format!("{s}:00Z")
            } else {
                s.clone()
            };
            crate::replay::parse_time(&full).map_err(|e| {
                Refused::BadRequest(format!(
                    "{name}: expected a time like 2026-05-04T09:00: {e}"
                ))
            })
        })
        .transpose()
}

pub fn parse_query(query: &str) -> Result<Option<Asked>, Refused> {
    let q = parse_form(query.as_bytes());
    if given(&q, "run").is_none() {
        return Ok(None);
    }
    let buffer_mode = match given(&q, "buffer_mode").as_deref() {
        None => None,
        Some("all") => Some(BufferMode::All),
        Some("increases_only") => Some(BufferMode::IncreasesOnly),
        Some(other) => {
            return Err(Refused::BadRequest(format!(
                "buffer_mode: expected all or increases_only, got {other:?}"
            )))
        }
    };
    let fbt_orders = match given(&q, "fbt_orders").as_deref() {
        None => None,
        Some("skip") => Some(FbtMode::Skip),
        Some("record_as_done") => Some(FbtMode::RecordAsDone),
        Some(other) => {
            return Err(Refused::BadRequest(format!(
                "fbt_orders: expected skip or record_as_done, got {other:?}"
            )))
        }
    };
    let safety_stock = given(&q, "safety_stock")
        .map(|s| {
            s.parse::<u32>().map_err(|_| {
                Refused::BadRequest(format!("safety_stock: expected a whole number, got {s:?}"))
            })
        })
        .transpose()?;
    let proposal = Proposal {
        order_hold: duration(&q, "order_hold")?,
        inventory_buffer: duration(&q, "inventory_buffer")?,
        buffer_mode,
        safety_stock,
        fbt_orders,
        shops: None,
    };
    Ok(Some((proposal, time(&q, "from")?, time(&q, "until")?)))
}

/// The numbers compared, restricted to orders placed and pushes made in the range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    pub orders: usize,
    pub earlier: usize,
    pub later: usize,
    pub same: usize,
    pub only_recorded: usize,
    pub only_proposed: usize,
    pub recorded_pushes: usize,
    pub proposed_pushes: usize,
    pub recorded_windows: usize,
    pub proposed_windows: usize,
    pub recorded_oversell_secs: i64,
    pub proposed_oversell_secs: i64,
}

pub fn compare(
    r: &Report,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Comparison {
    let inside = |t: DateTime<Utc>| from.map_or(true, |f| t >= f) && until.map_or(true, |u| t < u);
    let mut c = Comparison::default();
    for o in r.orders.iter().filter(|o| o.placed_at.is_some_and(inside)) {
        c.orders += 1;
        match (o.recorded_push, o.proposed_push) {
            (Some(a), Some(b)) if b < a => c.earlier += 1,
            (Some(a), Some(b)) if b > a => c.later += 1,
            (Some(_), Some(_)) => c.same += 1,
            (Some(_), None) => c.only_recorded += 1,
            (None, Some(_)) => c.only_proposed += 1,
            (None, None) => {}
        }
    }
    let windows = |w: &[Window]| -> (usize, i64) {
        let w: Vec<&Window> = w.iter().filter(|w| inside(w.from)).collect();
        (w.len(), w.iter().map(|w| w.seconds).sum())
    };
    for s in &r.skus {
        c.recorded_pushes += s.recorded_pushes.iter().filter(|p| inside(p.at)).count();
        c.proposed_pushes += s.proposed_pushes.iter().filter(|p| inside(p.at)).count();
        let (n, secs) = windows(&s.recorded_oversell);
        c.recorded_windows += n;
        c.recorded_oversell_secs += secs;
        let (n, secs) = windows(&s.proposed_oversell);
        c.proposed_windows += n;
        c.proposed_oversell_secs += secs;
    }
    c
}

fn keep(q: &[(String, String)], name: &str) -> String {
    given(q, name).unwrap_or_default()
}

fn form(q: &[(String, String)]) -> Markup {
    let sel = |name: &str, v: &str| given(q, name).as_deref() == Some(v);
    html! {
        form.filters #what-if-form method="get" action="/what-if" {
            input type="hidden" name="run" value="1";
            label { "order hold" input type="text" name="order_hold" value=(keep(q, "order_hold")) placeholder="as recorded, e.g. 30m"; }
            label { "inventory buffer" input type="text" name="inventory_buffer" value=(keep(q, "inventory_buffer")) placeholder="as recorded, e.g. 15m"; }
            label { "buffer mode" select name="buffer_mode" {
                option value="" { "as recorded" }
                option value="all" selected[sel("buffer_mode", "all")] { "all" }
                option value="increases_only" selected[sel("buffer_mode", "increases_only")] { "increases only" }
            } }
            label { "safety stock" input type="number" min="0" name="safety_stock" value=(keep(q, "safety_stock")) placeholder="as recorded"; }
            label { "FBT orders" select name="fbt_orders" {
                option value="" { "as recorded" }
                option value="skip" selected[sel("fbt_orders", "skip")] { "skip" }
                option value="record_as_done" selected[sel("fbt_orders", "record_as_done")] { "record as done" }
            } }
            label { "from" input type="datetime-local" name="from" value=(keep(q, "from")); }
            label { "until" input type="datetime-local" name="until" value=(keep(q, "until")); }
            button type="submit" id="run-what-if" { "Run what-if" }
        }
    }
}

fn result(r: &Report, c: &Comparison) -> Markup {
    let rows = [
        (
            "pushes to TikTok",
            c.recorded_pushes as f64,
            c.proposed_pushes as f64,
        ),
        (
            "Katana calls",
            r.recorded_calls.katana() as f64,
            r.proposed_calls.katana() as f64,
        ),
        (
            "TikTok calls",
            r.recorded_calls.tiktok_inventory as f64,
            r.proposed_calls.tiktok_inventory as f64,
        ),
        (
            "oversell windows",
            c.recorded_windows as f64,
            c.proposed_windows as f64,
        ),
    ];
    html! {
        h2 { "Result" }
        p.muted { "Simulated " (r.events) " events from " (layout::time(r.from)) " to " (layout::time(r.until))
                  " with hold " (r.proposed.order_hold) ", buffer " (r.proposed.inventory_buffer) ", "
                  (format!("{:?}", r.proposed.buffer_mode)) ", safety stock " (r.proposed.safety_stock) ", FBT " (format!("{:?}", r.proposed.fbt_orders)) "." }
        div.side {
            table #what-if-result {
                tr { th { "" } th.num { "what happened" } th.num { "proposed" } }
                tr { td { "orders in range" } td.num { (c.orders) } td.num { (c.orders) } }
                tr { td { "orders pushed to Katana earlier / later / same" } td.num { "-" } td.num #pushed-diff { (c.earlier) " / " (c.later) " / " (c.same) } }
                tr { td { "orders pushed only in one" } td.num { (c.only_recorded) } td.num { (c.only_proposed) } }
                tr { td { "inventory pushes" } td.num #recorded-pushes { (c.recorded_pushes) } td.num #proposed-pushes { (c.proposed_pushes) } }
                tr { td { "Katana calls (lookups + creates)" } td.num { (r.recorded_calls.katana()) } td.num { (r.proposed_calls.katana()) } }
                tr { td { "TikTok inventory calls" } td.num { (r.recorded_calls.tiktok_inventory) } td.num { (r.proposed_calls.tiktok_inventory) } }
                tr { td { "oversell windows" } td.num #recorded-windows { (c.recorded_windows) } td.num #proposed-windows { (c.proposed_windows) } }
                tr { td { "seconds oversold" } td.num { (c.recorded_oversell_secs) } td.num { (c.proposed_oversell_secs) } }
            }
            div { (charts::compare("What happened vs proposed", &rows)) }
        }
        @if !r.warnings.is_empty() {
            details { summary { (r.warnings.len()) " warning(s)" } ul { @for w in &r.warnings { li { (w) } } } }
        }
    }
}

pub async fn get(req: HttpRequest, ports: web::Data<ConsolePorts>) -> HttpResponse {
    let session = match gate(&req, &ports) {
        Ok(s) => s,
        Err(r) => return r.response(),
    };
    let q = parse_form(req.query_string().as_bytes());
    let asked = match parse_query(req.query_string()) {
        Ok(a) => a,
        Err(r) => return r.response(),
    };
    let outcome = match asked {
        None => None,
        Some((mut proposal, from, until)) => {
            // The log does not record the shops' rules: the running instance's are
            // the ones its pushes were decided by.
            if ports.settings.shops.len() > 1 {
                proposal.shops = Some(ports.settings.shop_stock());
            }
            let store = ports.store.clone();
            // The simulation reads the whole log: off the actix thread.
            match web::block(move || what_if(store.as_ref(), &proposal, &mut |_| {})).await {
                Ok(Ok(report)) => {
                    let c = compare(&report, from, until);
                    Some(Ok((report, c)))
                }
                Ok(Err(WhatIfError::Empty)) => {
                    Some(Err("the log is empty: nothing to simulate yet".to_string()))
                }
                Ok(Err(e)) => return Refused::Unavailable(e.to_string()).response(),
                Err(e) => return Refused::Unavailable(e.to_string()).response(),
            }
        }
    };
    ok(layout::page(
        "What-if",
        "/what-if",
        &session.csrf,
        html! {
            h1 { "What-if" }
            p { "Re-runs the recorded history with other settings. Empty fields keep what the log shows was used. "
                "The simulation always replays the whole log, so state before the range is right; the range picks the orders placed, pushes made and oversell windows opened that are compared." }
            (form(&q))
            @match &outcome {
                None => {},
                Some(Err(m)) => p.notice { (m) },
                Some(Ok((r, c))) => (result(r, c)),
            }
        },
    ))
}
