//! `/exceptions`: open exceptions grouped by kind, each with its cause, what
//! will resolve it, and a link to its order or SKU.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use crate::console::pages::order::urlencode;
use crate::console::pages::overview::exception_kind;
use crate::console::ports::ConsolePorts;
use crate::console::{gate, layout, ok, Refused};
use crate::operator::OpenException;

/// What makes an exception of `kind` go away. The service resolves each by itself
/// once its cause is gone; this says what the operator does to get there.
pub fn resolution(kind: &str) -> &'static str {
    match kind {
        "unmatched-sku" => "Create the SKU in Katana (same SKU code as the TikTok seller SKU); the next catalogue refresh maps it and the blocked sales order is created.",
        "so-rejected" => "Fix what Katana refused (see the cause: customer, location, product), then the order is retried on its next signal or poll.",
        "cancelled-after-push" => "The buyer cancelled after the sales order reached Katana: delete or cancel the SO in Katana (or set katana.on_cancel = \"delete\").",
        "edited-after-push" => "The buyer changed the order after the push: update the Katana sales order by hand to match TikTok.",
        "inventory-rejected" => "TikTok refused the stock update: check the SKU and warehouse on TikTok; the next buffer window pushes again.",
        "missing-tracking" => "Add a tracking number to the Katana fulfillment; the shipment then reaches TikTok.",
        "fulfillment-rejected" => "TikTok refused the shipment: check carrier mapping ([carriers]) and the tracking number, then it is retried.",
        "shipment-deferred" => "TikTok ships this order's package whole and will not split it: the delivered units leave with the rest of the order's delivery, or by themselves if the rest is cancelled.",
        "tracking-writeback" => "TikTok's tracking number could not be written to the Katana fulfillment: enter it there by hand (GET /api/orders/{id}/label shows it).",
        "tracking-correction" => "The tracking changed in Katana after TikTok's 72-hour correction window (or TikTok refused it): correct it in TikTok Seller Center.",
        _ => "See the cause; the exception resolves itself when the cause is gone.",
    }
}

fn link(e: &OpenException) -> Markup {
    html! {
        @if e.kind == "order" { a href=(format!("/orders/{}", urlencode(&e.id))) { "order " (e.id) } }
        @else if e.kind == "sku" { a href=(format!("/skus/{}", urlencode(&e.id))) { "SKU " (e.id) } }
        @else { (e.stream) }
    }
}

pub fn render(ports: &ConsolePorts, csrf: &str) -> Result<Markup, Refused> {
    let list = crate::operator::open_exceptions(ports.store.as_ref())?;
    let mut groups: BTreeMap<&str, Vec<&OpenException>> = BTreeMap::new();
    for e in &list {
        groups.entry(exception_kind(&e.key)).or_default().push(e);
    }
    Ok(layout::page(
        "Exceptions",
        "/exceptions",
        csrf,
        html! {
            h1 { "Exceptions" }
            @if groups.is_empty() { p.notice.ok #no-exceptions { "No open exceptions." } }
            @for (kind, items) in &groups {
                section.exception-group id=(kind) {
                    h2 { (kind) " " span.pill.bad { (items.len()) } }
                    p { strong { "What resolves it: " } (resolution(kind)) }
                    table {
                        tr { th { "where" } th { "cause" } }
                        @for e in items { tr { td { (link(e)) } td { (e.message) } } }
                    }
                }
            }
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
