//! `/setup`: the `tks check` report rendered, blocking problems first, the
//! connectors that are not configured, and the settings with secrets redacted.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use crate::check::{CheckOptions, CheckReport, Status};
use crate::console::ports::ConsolePorts;
use crate::console::{gate, health, layout, ok};

fn pill(s: Status) -> Markup {
    let class = match s {
        Status::Ok => "pill ok",
        Status::Warn => "pill warn",
        Status::Fail => "pill bad",
    };
    html! { span class=(class) { (s.label()) } }
}

pub fn render(ports: &ConsolePorts, csrf: &str, report: &CheckReport) -> Markup {
    let missing = health::missing(&ports.settings);
    let mut findings = report.findings.clone();
    // What to fix first: blocking problems, then warnings, each in check order.
    findings.sort_by_key(|f| std::cmp::Reverse(f.status));
    let first = findings.first().filter(|f| f.status != Status::Ok);
    // `Secret`'s Debug form is redacted, so this never shows a key or token.
    let settings = format!("{:#?}", ports.settings);
    layout::page(
        "Setup",
        "/setup",
        csrf,
        html! {
            h1 { "Setup" }
            (layout::missing_connectors(&missing))
            p #verdict class=(match report.verdict() { Status::Ok => "notice ok", Status::Warn => "notice", Status::Fail => "notice bad" }) {
                (report.verdict_line())
            }
            @if let Some(f) = first {
                p #fix-first {
                    strong { @if f.status == Status::Fail { "Fix first: " } @else { "Review first: " } }
                    (f.check) ": " (f.detail)
                }
            }
            table #check {
                tr { th { "status" } th { "check" } th { "detail" } }
                @for f in &findings { tr { td { (pill(f.status)) } td { (f.check) } td { (f.detail) } } }
            }
            h2 { "Settings" }
            p.muted { "Secrets are shown redacted." }
            details { summary { "Effective settings" } pre #settings { (settings) } }
        },
    )
}

pub async fn get(req: HttpRequest, ports: web::Data<ConsolePorts>) -> HttpResponse {
    let session = match gate(&req, &ports) {
        Ok(s) => s,
        Err(r) => return r.response(),
    };
    let options = CheckOptions {
        token_file: Some(crate::connectors::tiktok::auth::token_file_for(
            &ports.settings.store.path,
        )),
        ..CheckOptions::default()
    };
    let report = crate::check::run(&ports.settings, ports.clock.clone(), &options).await;
    ok(render(&ports, &session.csrf, &report))
}
