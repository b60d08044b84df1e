//! `/orders/{id}`: what TikTok last showed, the Katana sales order, shipments,
//! open and resolved exceptions, and the causal timeline of `tks-replay timeline`
//! with every event expandable to its JSON.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use crate::console::ports::ConsolePorts;
use crate::console::readmodel::{classify, OrderState};
use crate::console::{gate, layout, off_thread, Refused};
use crate::domain::order::{Order, SoState};
use crate::domain::Aggregate;
use crate::replay::timeline::{timeline, Entry};
use crate::replay::travel::{state_at, At, TravelError};
use crate::replay::StreamState;

fn so_section(o: &Order) -> Markup {
    html! {
        @match &o.so {
            SoState::None => p.muted { "No sales order yet." },
            SoState::Requested { rows, as_done, last_error } => {
                p { "Requested" @if *as_done { " (as Done: fulfilled by TikTok)" } ", " (rows.len()) " row(s), not yet confirmed by Katana." }
                @if let Some(e) = last_error { p.notice { "Last attempt: " (e) } }
            }
            SoState::Blocked { reason } => p.notice.bad { "Blocked: " (reason) },
            SoState::Created { so_id, order_no, rows } => {
                p #katana-so { "Sales order " strong { (order_no) } " (id " (so_id) ")" }
                table {
                    tr { th { "row" } th { "SKU" } th.num { "quantity" } }
                    @for r in rows {
                        tr { td { (r.row_id) } td { (r.seller_sku) } td.num { (r.quantity) } }
                    }
                }
            }
            SoState::Deleted { so_id } => p { "Sales order " (so_id) " deleted in Katana (order cancelled after the push)." },
        }
    }
}

fn entry(e: &Entry) -> Markup {
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "position": e.position,
        "stream": e.stream,
        "seq": e.seq,
        "type": e.event_type,
        "version": e.version,
        "recorded_at": e.recorded_at,
        "event_id": e.event_id,
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
        "payload": e.payload,
    }))
    .unwrap_or_default();
    html! {
        details.event data-type=(e.event_type) {
            summary {
                span.muted { (layout::time(e.recorded_at)) } " "
                span.kind { (format!("{:?}", e.kind)) } " "
                strong { (e.event_type) }
                @if !e.own { " " span.pill { (e.stream) } }
                " " (e.summary)
            }
            pre { (json) }
        }
    }
}

pub fn render(ports: &ConsolePorts, csrf: &str, id: &str) -> Result<Markup, Refused> {
    let stream = Order::stream_id(id);
    let point = match state_at(ports.store.as_ref(), &stream, At::Position(u64::MAX)) {
        Ok(p) => p,
        Err(TravelError::NoSuchStream(_)) => {
            return Err(Refused::NotFound(format!("no events for order {id}")))
        }
        Err(e) => return Err(Refused::Unavailable(e.to_string())),
    };
    let StreamState::Order(o) = point.state else {
        return Err(Refused::NotFound(format!("{stream} is not an order")));
    };
    let story = timeline(ports.store.as_ref(), &stream, &mut |_| {})?;
    let resolved: Vec<&Entry> = story
        .entries
        .iter()
        .filter(|e| e.own && e.event_type == "ExceptionResolved")
        .collect();
    let (state, stage) = classify(&o);
    Ok(layout::page(
        &format!("Order {id}"),
        "/orders",
        csrf,
        html! {
            h1 { "Order " (id) " " span.pill #order-state { (state.label()) } }
            div style="max-width:640px" { (layout::progress(stage)) (layout::progress_labels()) }
            @if state == OrderState::Held {
                @if let Some(until) = o.hold_until { p.muted { "Held until " (layout::time(until)) "." } }
            }
            div.side {
                div.card {
                    h2 { "What TikTok last showed" }
                    @match &o.snapshot {
                        None => p.muted { "Not placed yet (only signals recorded)." },
                        Some(s) => {
                            p { "Status " strong #tiktok-status { (format!("{:?}", s.status)) } ", " (format!("{:?}", s.fulfillment_type))
                                ", created " (layout::time(s.create_time)) ", updated " (layout::time(s.update_time)) }
                            table #units {
                                tr { th { "line item" } th { "seller SKU" } th.num { "price" } th { "" } }
                                @for u in &s.units {
                                    tr {
                                        td { (u.line_item_id) }
                                        td { a href=(format!("/skus/{}", urlencode(&u.seller_sku))) { (u.seller_sku) } }
                                        td.num { (u.sale_price) " " (s.currency) }
                                        td { @if u.cancelled { span.pill.bad { "cancelled" } } @if u.shipped { span.pill.ok { "shipped" } } }
                                    }
                                }
                            }
                        }
                    }
                }
                div.card {
                    h2 { "Katana sales order" }
                    (so_section(&o))
                    h2 { "Shipments" }
                    @if o.deliveries.is_empty() { p.muted { "None yet." } }
                    @else {
                        table #shipments {
                            tr { th { "fulfillment" } th { "tracking" } th.num { "units" } th { "TikTok package" } }
                            @for (fid, d) in &o.deliveries {
                                tr {
                                    td { (fid) " " span.muted { (d.fulfillment.status) } }
                                    td { (d.fulfillment.tracking_number.clone().unwrap_or_else(|| "-".into()))
                                         @if let Some(c) = &d.fulfillment.tracking_carrier { " (" (c) ")" } }
                                    td.num { (d.line_item_ids.len()) }
                                    td { @match &d.package_id { Some(p) => (p), None => span.muted { @if d.requested { "requested" } @else { "not yet" } } } }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Exceptions" }
            @if o.exceptions.is_empty() && resolved.is_empty() { p.muted { "None." } }
            @for (key, message) in &o.exceptions {
                p.notice.bad { strong { (key) } ": " (message) }
            }
            @for e in &resolved {
                p.notice.ok { "Resolved " (layout::time(e.recorded_at)) ": " (e.summary) }
            }
            h2 #timeline { "Timeline" }
            p.muted { (story.entries.len()) " events: " (point.stream_events) " in the order's stream, the rest linked by cause or by naming it. Open an event for its JSON." }
            div #events { @for e in &story.entries { (entry(e)) } }
        },
    ))
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub async fn get(
    req: HttpRequest,
    ports: web::Data<ConsolePorts>,
    id: web::Path<String>,
) -> HttpResponse {
    let session = match gate(&req, &ports) {
        Ok(s) => s,
        Err(r) => return r.response(),
    };
    let id = id.into_inner();
    off_thread(&ports, move |s| render(s, &session.csrf, &id)).await
}
