//! The page frame every console page shares: head, embedded stylesheet, the
//! navigation with the logout form, and small building blocks (tables, notices,
//! progress bars, times).

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::readmodel::STAGES;

/// Embedded so the binary needs no asset directory and the page no second request.
const CSS: &str = r#"
:root { --fg:#1d2330; --muted:#5b6474; --line:#d9dde5; --bg:#f6f7f9; --card:#fff;
        --accent:#2457c5; --ok:#1f8a4c; --warn:#b7791f; --bad:#c53030; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { background:#1d2330; color:#fff; padding:.6rem 1.2rem; display:flex; align-items:center; gap:1.2rem; flex-wrap:wrap; }
header a { color:#dfe6f5; text-decoration:none; }
header a.on { color:#fff; font-weight:600; border-bottom:2px solid #7aa2ff; }
header .brand { font-weight:700; color:#fff; margin-right:.6rem; }
header form { margin-left:auto; }
main { padding:1.2rem; max-width:1200px; margin:0 auto; }
h1 { font-size:1.45rem; margin:.2rem 0 1rem; }
h2 { font-size:1.1rem; margin:1.4rem 0 .6rem; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(260px, 1fr)); gap:1rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:.9rem 1rem; }
table { border-collapse:collapse; width:100%; background:var(--card); }
th, td { text-align:left; padding:.35rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:.8rem; text-transform:uppercase; letter-spacing:.03em; color:var(--muted); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
a { color:var(--accent); }
.muted { color:var(--muted); }
.notice { border-left:4px solid var(--warn); background:#fff8e6; padding:.5rem .8rem; margin:.4rem 0; }
.notice.bad { border-color:var(--bad); background:#fdecec; }
.notice.ok { border-color:var(--ok); background:#e9f7ef; }
.pill { display:inline-block; padding:0 .45rem; border-radius:999px; font-size:.8rem; background:#e8ecf4; }
.pill.ok { background:#dcf3e5; color:#14532d; } .pill.warn { background:#fdf0d5; color:#7a4b00; }
.pill.bad { background:#fbe0e0; color:#7f1d1d; }
.progress { display:flex; gap:2px; min-width:220px; }
.progress span { flex:1; height:.55rem; background:#dde2ea; border-radius:2px; }
.progress span.done { background:var(--ok); }
.progress-labels { display:flex; gap:.4rem; font-size:.7rem; color:var(--muted); }
.progress-labels span { flex:1; }
.stages { text-transform:none; letter-spacing:0; font-weight:normal; }
form.inline { display:inline; }
input, select, button { font:inherit; padding:.25rem .45rem; border:1px solid var(--line); border-radius:4px; background:#fff; }
button { background:var(--accent); color:#fff; border-color:var(--accent); cursor:pointer; }
header button { background:transparent; border-color:#5b6474; color:#dfe6f5; }
.filters { display:flex; gap:.6rem; flex-wrap:wrap; align-items:end; margin-bottom:.8rem; }
.filters label { display:flex; flex-direction:column; font-size:.8rem; color:var(--muted); }
details { margin:.1rem 0; }
details pre { background:#f1f3f7; padding:.5rem; overflow:auto; font-size:.8rem; }
.kind { font-size:.75rem; color:var(--muted); text-transform:uppercase; }
svg { max-width:100%; height:auto; background:var(--card); border:1px solid var(--line); border-radius:6px; }
.legend span { margin-right:1rem; font-size:.85rem; }
.legend i { display:inline-block; width:.8rem; height:.8rem; margin-right:.3rem; vertical-align:middle; }
.pager { margin-top:.6rem; display:flex; gap:1rem; }
.login { max-width:380px; margin:4rem auto; }
.login input { width:100%; margin:.4rem 0 .8rem; }
.side { display:grid; grid-template-columns:1fr 1fr; gap:1rem; }
"#;

/// The navigation entries: (path, label).
const NAV: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/orders", "Orders"),
    ("/skus", "SKUs"),
    ("/exceptions", "Exceptions"),
    ("/what-if", "What-if"),
    ("/setup", "Setup"),
];

/// A page for a logged-in operator.
pub fn page(title: &str, active: &str, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tks console" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    span.brand { "tks" }
                    @for (path, label) in NAV {
                        a href=(path) class=[(path == active).then_some("on")] { (label) }
                    }
                    form.inline method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" id="logout" { "Log out" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page without navigation (login, refusals).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tks console" }
                style { (PreEscaped(CSS)) }
            }
            body { main { (body) } }
        }
    }
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "never".into())
}

/// Placed → Hold released → In Katana → Delivered → Shipped on TikTok.
pub fn progress(stage: u8) -> Markup {
    let reached = STAGES
        .get(usize::from(stage).saturating_sub(1))
        .copied()
        .unwrap_or("Not placed");
    html! {
        div.progress title=(format!("{reached} ({stage} of {})", STAGES.len())) aria-label=(reached) {
            @for (i, label) in STAGES.iter().enumerate() {
                span class=[(i < usize::from(stage)).then_some("done")] title=(label) {}
            }
        }
    }
}

pub fn progress_labels() -> Markup {
    html! {
        div.progress-labels { @for s in STAGES { span { (s) } } }
    }
}

/// A warning box per connector that is not configured.
pub fn missing_connectors(missing: &[super::health::Missing]) -> Markup {
    html! {
        @for m in missing {
            div.notice.bad.missing-connector {
                strong { (m.connector) " not configured: " } (m.meaning)
                " " span.muted { (m.fix) }
            }
        }
    }
}
