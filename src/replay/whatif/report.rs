//! The what-if report: what differed between the recorded and the proposed run,
//! the settings on each side, the text rendering and (through `Serialize`) the JSON.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{BufferMode, FbtMode};
use crate::domain::Policy;
use crate::replay::timeline::fmt_time;

/// Settings as the recorded events reveal them; `None` where nothing shows them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Observed {
    #[serde(with = "opt_duration")]
    pub order_hold: Option<Duration>,
    #[serde(with = "opt_duration")]
    pub inventory_buffer: Option<Duration>,
    pub buffer_mode: Option<BufferMode>,
    pub safety_stock: Option<u32>,
    pub fbt_orders: Option<FbtMode>,
}

mod opt_duration {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// The proposed policy in printable form.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyView {
    pub order_hold: String,
    pub inventory_buffer: String,
    pub buffer_mode: BufferMode,
    pub safety_stock: u32,
    pub fbt_orders: FbtMode,
}

impl From<&Policy> for PolicyView {
    fn from(p: &Policy) -> Self {
        PolicyView {
            order_hold: humantime::format_duration(p.order_hold).to_string(),
            inventory_buffer: humantime::format_duration(p.inventory_buffer).to_string(),
            buffer_mode: p.buffer_mode,
            safety_stock: p.safety_stock,
            fbt_orders: p.fbt_orders,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderOutcome {
    pub order_id: String,
    pub placed_at: Option<DateTime<Utc>>,
    /// When the sales order was requested (the push decision), as recorded.
    pub recorded_push: Option<DateTime<Utc>>,
    /// ... and as it would have been under the proposed settings.
    pub proposed_push: Option<DateTime<Utc>>,
    /// Why it was not pushed, when it was not.
    pub recorded_note: Option<String>,
    pub proposed_note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Push {
    pub at: DateTime<Utc>,
    pub quantity: i64,
    /// Pushed at once (a decrease in increases_only mode), not at a window's end.
    pub immediate: bool,
    /// The shop pushed to, by its event key: none for the primary shop.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub shop: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    /// `None`: still open when the simulation ended.
    pub until: Option<DateTime<Utc>>,
    pub seconds: i64,
    /// The largest amount by which TikTok's quantity exceeded the true ATP.
    pub max_excess: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkuOutcome {
    pub sku: String,
    pub recorded_pushes: Vec<Push>,
    pub proposed_pushes: Vec<Push>,
    pub recorded_oversell: Vec<Window>,
    pub proposed_oversell: Vec<Window>,
    /// Pushes the proposal would make after the log ends (never a difference: the
    /// log cannot say what happened then).
    pub proposed_after_log: Vec<Push>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Calls {
    pub katana_lookups: u64,
    pub katana_creates: u64,
    pub tiktok_inventory: u64,
}

impl Calls {
    pub fn katana(&self) -> u64 {
        self.katana_lookups + self.katana_creates
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub events: u64,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Where the simulation's last timer fired (after `until` when the proposed
    /// settings decide later than the log reaches).
    pub simulated_until: DateTime<Utc>,
    pub recorded_settings: Observed,
    pub proposed: PolicyView,
    pub orders: Vec<OrderOutcome>,
    pub skus: Vec<SkuOutcome>,
    pub recorded_calls: Calls,
    /// Calls the proposal makes within the log's time span.
    pub proposed_calls: Calls,
    /// ... and after it (windows still open when the log ends).
    pub proposed_calls_after_log: Calls,
    /// Events the simulation could not use (undecodable, refused commands).
    pub warnings: Vec<String>,
}

/// A setting's value as written in `tks.toml` and on the command line.
fn setting<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Rows per section in the text report; `--json` lists everything.
const TEXT_ROWS: usize = 100;

fn more(out: &mut String, shown_of: usize) {
    if shown_of > TEXT_ROWS {
        let _ = writeln!(
            out,
            "  ... and {} more (--json lists them all)",
            shown_of - TEXT_ROWS
        );
    }
}

fn signed(d: chrono::Duration) -> String {
    let abs = d.abs().to_std().unwrap_or_default();
    let text = humantime::format_duration(abs).to_string();
    if d < chrono::Duration::zero() {
        format!("{text} earlier")
    } else if d > chrono::Duration::zero() {
        format!("{text} later")
    } else {
        "same time".into()
    }
}

fn opt_time(t: Option<DateTime<Utc>>, note: &Option<String>) -> String {
    match (t, note) {
        (Some(t), _) => fmt_time(t),
        (None, Some(n)) => format!("never ({n})"),
        (None, None) => "never".into(),
    }
}

fn pushes(list: &[Push]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|p| {
            format!(
                "{}{}={}{}",
                if p.shop.is_empty() {
                    String::new()
                } else {
                    format!("shop {} ", p.shop)
                },
                fmt_time(p.at),
                p.quantity,
                if p.immediate { "!" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn windows(list: &[Window]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    let total: i64 = list.iter().map(|w| w.seconds).sum();
    let max = list.iter().map(|w| w.max_excess).max().unwrap_or(0);
    let each: Vec<String> = list
        .iter()
        .map(|w| {
            format!(
                "{}..{} (+{})",
                fmt_time(w.from),
                w.until.map_or("end".to_string(), fmt_time),
                w.max_excess
            )
        })
        .collect();
    format!(
        "{} window(s), {} in all, up to {} unit(s) too many: {}",
        list.len(),
        humantime::format_duration(Duration::from_secs(total.max(0) as u64)),
        max,
        each.join(", ")
    )
}

impl Report {
    /// Everything the proposal changes, one line each: orders pushed at another time
    /// (or only on one side), inventory pushes that differ, other API call counts.
    /// Empty when the proposal changes nothing.
    pub fn differences(&self) -> Vec<String> {
        let mut out = Vec::new();
        for o in &self.orders {
            if o.recorded_push != o.proposed_push {
                out.push(format!(
                    "order {}: pushed {:?} as recorded, {:?} as proposed",
                    o.order_id, o.recorded_push, o.proposed_push
                ));
            }
        }
        for s in &self.skus {
            if s.recorded_pushes != s.proposed_pushes {
                out.push(format!(
                    "sku {}: pushes {:?} as recorded, {:?} as proposed",
                    s.sku, s.recorded_pushes, s.proposed_pushes
                ));
            }
        }
        if self.recorded_calls != self.proposed_calls {
            out.push(format!(
                "calls: {:?} as recorded, {:?} as proposed",
                self.recorded_calls, self.proposed_calls
            ));
        }
        out
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "what-if over {} events recorded {} .. {}",
            self.events,
            fmt_time(self.from),
            fmt_time(self.until)
        );
        let r = &self.recorded_settings;
        let p = &self.proposed;
        let seen = |v: Option<String>| v.unwrap_or_else(|| "(not visible in the log)".into());
        let _ = writeln!(out, "\n{:<18} {:<26} proposed", "setting", "recorded");
        let rows = [
            (
                "order_hold",
                seen(
                    r.order_hold
                        .map(|d| humantime::format_duration(d).to_string()),
                ),
                p.order_hold.clone(),
            ),
            (
                "inventory_buffer",
                seen(
                    r.inventory_buffer
                        .map(|d| humantime::format_duration(d).to_string()),
                ),
                p.inventory_buffer.clone(),
            ),
            (
                "buffer_mode",
                seen(r.buffer_mode.map(|m| setting(&m))),
                setting(&p.buffer_mode),
            ),
            (
                "safety_stock",
                seen(r.safety_stock.map(|s| s.to_string())),
                p.safety_stock.to_string(),
            ),
            (
                "fbt_orders",
                seen(r.fbt_orders.map(|m| setting(&m))),
                setting(&p.fbt_orders),
            ),
        ];
        for (name, rec, prop) in rows {
            let _ = writeln!(out, "{name:<18} {rec:<26} {prop}");
        }
        let earlier = self
            .orders
            .iter()
            .filter(|o| matches!((o.recorded_push, o.proposed_push), (Some(a), Some(b)) if b < a))
            .count();
        let later = self
            .orders
            .iter()
            .filter(|o| matches!((o.recorded_push, o.proposed_push), (Some(a), Some(b)) if b > a))
            .count();
        let gained = self
            .orders
            .iter()
            .filter(|o| o.recorded_push.is_none() && o.proposed_push.is_some())
            .count();
        let lost = self
            .orders
            .iter()
            .filter(|o| o.recorded_push.is_some() && o.proposed_push.is_none())
            .count();
        let changed: Vec<&OrderOutcome> = self
            .orders
            .iter()
            .filter(|o| o.recorded_push != o.proposed_push)
            .collect();
        let _ = writeln!(
            out,
            "\norders ({}): {earlier} pushed earlier, {later} later, {gained} pushed only under the proposal, {lost} only as recorded, {} unchanged",
            self.orders.len(),
            self.orders.len() - changed.len()
        );
        for o in changed.iter().take(TEXT_ROWS) {
            let delta = match (o.recorded_push, o.proposed_push) {
                (Some(a), Some(b)) => format!("  [{}]", signed(b - a)),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {}: recorded {}, proposed {}{delta}",
                o.order_id,
                opt_time(o.recorded_push, &o.recorded_note),
                opt_time(o.proposed_push, &o.proposed_note)
            );
        }
        more(&mut out, changed.len());
        let differing: Vec<&SkuOutcome> = self
            .skus
            .iter()
            .filter(|s| s.recorded_pushes != s.proposed_pushes)
            .collect();
        let _ = writeln!(
            out,
            "\ninventory pushed to TikTok (time=quantity, ! = at once): {} of {} SKUs differ",
            differing.len(),
            self.skus.len()
        );
        for s in differing.iter().take(TEXT_ROWS) {
            let _ = writeln!(out, "  {}:", s.sku);
            let _ = writeln!(out, "    recorded: {}", pushes(&s.recorded_pushes));
            let _ = writeln!(out, "    proposed: {}", pushes(&s.proposed_pushes));
        }
        more(&mut out, differing.len());
        let rc = &self.recorded_calls;
        let pc = &self.proposed_calls;
        let _ = writeln!(
            out,
            "\n{:<30} {:>9} {:>9}",
            "API calls", "recorded", "proposed"
        );
        let _ = writeln!(
            out,
            "{:<30} {:>9} {:>9}",
            "Katana (lookup + create per SO)",
            rc.katana(),
            pc.katana()
        );
        let _ = writeln!(
            out,
            "{:<30} {:>9} {:>9}",
            "TikTok inventory updates", rc.tiktok_inventory, pc.tiktok_inventory
        );
        let _ = writeln!(
            out,
            "\noversell windows (TikTok showed more than Katana's ATP)"
        );
        let oversold: Vec<&SkuOutcome> = self
            .skus
            .iter()
            .filter(|s| !s.recorded_oversell.is_empty() || !s.proposed_oversell.is_empty())
            .collect();
        for s in oversold.iter().take(TEXT_ROWS) {
            let _ = writeln!(out, "  {}:", s.sku);
            let _ = writeln!(out, "    recorded: {}", windows(&s.recorded_oversell));
            let _ = writeln!(out, "    proposed: {}", windows(&s.proposed_oversell));
        }
        more(&mut out, oversold.len());
        if oversold.is_empty() {
            let _ = writeln!(out, "  none under either setting");
        }
        if self.simulated_until > self.until {
            let _ = writeln!(
                out,
                "\n(the proposed settings keep deciding until {}, after the log ends)",
                fmt_time(self.simulated_until)
            );
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\nwarnings:");
            for w in &self.warnings {
                let _ = writeln!(out, "  {w}");
            }
        }
        f.write_str(&out)
    }
}
