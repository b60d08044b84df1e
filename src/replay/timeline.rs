//! The audit trail of one order or SKU: every event of its stream plus the events
//! elsewhere in the log that caused them, were caused by them, or name the same
//! order or SKU, oldest first, each with its time, position, correlation and
//! causation and a one-line summary.
//!
//! Deliberately generic: an entry is built from the stored type, version and JSON
//! payload, never from a match over the domain enums, so new event types show up
//! (with a generic summary) without touching this file. The two small tables below
//! ([`KINDS`] and [`SUMMARIES`]) are where a new type can get nicer wording.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::observed::Quantity;
use crate::store::{EventStore, RecordedEvent, StoreError};

/// What an event is, for the reader of a timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Something the outside world told us: a webhook, a poll result.
    Observation,
    /// Something the system concluded.
    Decision,
    /// A call to TikTok or Katana, or its response.
    Outbound,
    /// A problem raised for (or resolved by) the operator.
    Exception,
    Other,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Observation => "observation",
            Kind::Decision => "decision",
            Kind::Outbound => "outbound",
            Kind::Exception => "exception",
            Kind::Other => "other",
        }
    }
}

/// The kind of each known event type. Types not listed are classified by name.
pub const KINDS: &[(&str, Kind)] = &[
    ("OrderPlaced", Kind::Observation),
    ("OrderEdited", Kind::Observation),
    ("OrderCancelled", Kind::Observation),
    ("SoDelivered", Kind::Observation),
    ("StockChanged", Kind::Observation),
    ("SkuMapped", Kind::Observation),
    ("ChannelSyncToggled", Kind::Observation),
    ("OrderSignalled", Kind::Observation),
    ("SkuSignalled", Kind::Observation),
    ("HoldExpired", Kind::Decision),
    ("SoBlocked", Kind::Decision),
    ("FulfillmentRequested", Kind::Decision),
    ("OrderSkipped", Kind::Decision),
    ("SoRequested", Kind::Decision),
    ("DemandChanged", Kind::Decision),
    ("BufferOpened", Kind::Decision),
    ("BufferFlushed", Kind::Decision),
    ("BufferClosed", Kind::Decision),
    ("SoCreated", Kind::Outbound),
    ("SoCreateFailed", Kind::Outbound),
    ("SoCreateAttempted", Kind::Outbound),
    ("SoDeleted", Kind::Outbound),
    ("FulfillmentPushed", Kind::Outbound),
    ("InventoryPushed", Kind::Outbound),
];

/// The kind of `event_type`: from [`KINDS`], else guessed from words in its name.
pub fn kind_of(event_type: &str) -> Kind {
    if let Some((_, k)) = KINDS.iter().find(|(t, _)| *t == event_type) {
        return *k;
    }
    let has = |words: &[&str]| words.iter().any(|w| event_type.contains(w));
    if has(&["Exception", "Alert"]) {
        Kind::Exception
    } else if has(&[
        "Call", "Request", "Response", "Pushed", "Sent", "Failed", "Rejected",
    ]) {
        Kind::Outbound
    } else if has(&[
        "Observed", "Received", "Webhook", "Polled", "Changed", "Placed", "Edited",
    ]) {
        Kind::Observation
    } else if has(&[
        "Expired",
        "Decided",
        "Flushed",
        "Opened",
        "Closed",
        "Skipped",
        "Requested",
    ]) {
        Kind::Decision
    } else {
        Kind::Other
    }
}

type Summarize = fn(&Value) -> Option<String>;

/// Wording for known event types. A function that finds the payload not shaped as
/// it expects returns `None` and the generic summary is used instead.
pub const SUMMARIES: &[(&str, Summarize)] = &[
    ("OrderPlaced", |p| {
        let snap = p.get("snapshot")?;
        Some(format!(
            "placed, {}, {}; hold until {}",
            snap.get("status")?.as_str()?,
            units(snap.get("units")?)?,
            time_str(p.get("hold_until")?)?
        ))
    }),
    ("OrderEdited", |p| {
        let changes: Vec<&str> = p
            .get("changes")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let when = if p.get("after_push")?.as_bool()? {
            "edited after the push"
        } else {
            "edited"
        };
        Some(format!("{when}: {}", changes.join("; ")))
    }),
    ("OrderCancelled", |p| {
        Some(if p.get("after_push")?.as_bool()? {
            "cancelled on TikTok after the sales order was created".into()
        } else {
            "cancelled on TikTok before the push".into()
        })
    }),
    ("HoldExpired", |p| {
        Some(format!("hold expired at {}", time_str(p.get("at")?)?))
    }),
    ("OrderSkipped", |p| {
        Some(format!("not pushed: {}", p.get("reason")?.as_str()?))
    }),
    ("SoRequested", |p| {
        let rows: Vec<String> = p
            .get("rows")?
            .as_array()?
            .iter()
            .map(|r| {
                Some(format!(
                    "{}×{}",
                    r.get("seller_sku")?.as_str()?,
                    r.get("quantity")?.as_u64()?
                ))
            })
            .collect::<Option<_>>()?;
        let done = if p.get("as_done")?.as_bool()? {
            " (as Done)"
        } else {
            ""
        };
        Some(format!("sales order requested{done}: {}", rows.join(", ")))
    }),
    ("SoCreated", |p| {
        Some(format!(
            "Katana sales order {} ({}) created",
            p.get("so_id")?.as_i64()?,
            p.get("order_no")?.as_str()?
        ))
    }),
    ("SoCreateFailed", |p| {
        let retry = if p.get("retryable")?.as_bool()? {
            "will retry"
        } else {
            "permanent"
        };
        Some(format!(
            "sales order creation failed ({retry}): {}",
            p.get("reason")?.as_str()?
        ))
    }),
    ("SoDelivered", |p| {
        let f = p.get("fulfillment")?;
        let tracking = f
            .get("tracking_number")
            .and_then(Value::as_str)
            .unwrap_or("no tracking number");
        let carrier = f
            .get("tracking_carrier")
            .and_then(Value::as_str)
            .unwrap_or("no carrier");
        let n = p.get("line_item_ids")?.as_array()?.len();
        Some(format!(
            "Katana fulfillment {} delivered ({tracking}, {carrier}): {n} TikTok unit(s){}",
            f.get("fulfillment_id")?.as_i64()?,
            match p.get("unmatched_units")?.as_u64()? {
                0 => String::new(),
                u => format!(", {u} unit(s) unmatched"),
            }
        ))
    }),
    ("FulfillmentPushed", |p| {
        Some(format!(
            "fulfillment {} marked shipped on TikTok, package {}",
            p.get("fulfillment_id")?.as_i64()?,
            p.get("package_id")?.as_str()?
        ))
    }),
    ("SkuMapped", |p| {
        Some(format!(
            "matched Katana variant {}",
            p.get("variant_id")?.as_i64()?
        ))
    }),
    ("StockChanged", |p| {
        Some(format!(
            "Katana location {}: in stock {}, committed {}",
            p.get("location_id")?.as_i64()?,
            quantity(p.get("in_stock")?)?,
            quantity(p.get("committed")?)?
        ))
    }),
    ("DemandChanged", |p| {
        Some(format!(
            "order {} holds {} unit(s) not yet in Katana",
            p.get("order_id")?.as_str()?,
            p.get("units")?.as_u64()?
        ))
    }),
    ("BufferOpened", |p| {
        Some(format!(
            "inventory buffer open until {}",
            time_str(p.get("due_at")?)?
        ))
    }),
    ("BufferFlushed", |p| {
        let how = if p.get("immediate")?.as_bool()? {
            "at once (a decrease)"
        } else {
            "at the end of the buffer"
        };
        Some(format!("ATP {} to push {how}", p.get("atp")?.as_i64()?))
    }),
    ("BufferClosed", |p| {
        Some(format!(
            "buffer closed, ATP {} unchanged: nothing pushed",
            p.get("atp")?.as_i64()?
        ))
    }),
    ("InventoryPushed", |p| {
        Some(format!(
            "TikTok inventory set to {}",
            p.get("quantity")?.as_i64()?
        ))
    }),
    ("ChannelSyncToggled", |p| {
        Some(if p.get("enabled")?.as_bool()? {
            "inventory sync enabled".into()
        } else {
            "inventory sync disabled".into()
        })
    }),
];

fn time_str(v: &Value) -> Option<String> {
    let t: DateTime<Utc> = v.as_str()?.parse().ok()?;
    Some(fmt_time(t))
}

pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A [`Quantity`] payload (hundred-thousandths) in plain decimal: `7`, `2.5`.
fn quantity(v: &Value) -> Option<String> {
    let s = Quantity(v.as_i64()?).to_string();
    Some(s.trim_end_matches('0').trim_end_matches('.').to_string())
}

/// `3 units (A×2, B×1)`, counting units not cancelled.
fn units(v: &Value) -> Option<String> {
    let mut per_sku: BTreeMap<&str, u32> = BTreeMap::new();
    let mut cancelled = 0;
    for u in v.as_array()? {
        if u.get("cancelled").and_then(Value::as_bool) == Some(true) {
            cancelled += 1;
            continue;
        }
        *per_sku.entry(u.get("seller_sku")?.as_str()?).or_insert(0) += 1;
    }
    let total: u32 = per_sku.values().sum();
    let list: Vec<String> = per_sku.iter().map(|(s, n)| format!("{s}×{n}")).collect();
    let mut out = format!("{total} unit(s) ({})", list.join(", "));
    if cancelled > 0 {
        let _ = write!(out, ", {cancelled} cancelled");
    }
    Some(out)
}

const SUMMARY_LIMIT: usize = 160;

/// A one-line summary of any payload: the table's wording when there is one,
/// otherwise its fields, compactly.
pub fn summarize(event_type: &str, payload: &Value) -> String {
    let special = SUMMARIES
        .iter()
        .find(|(t, _)| *t == event_type)
        .and_then(|(_, f)| f(payload));
    let mut s = special.unwrap_or_else(|| generic(payload, 0));
    // With several shops, which one an event concerns is part of the story; the
    // primary shop's events name none.
    if let Some(shop) = shop_named(event_type, payload) {
        s = format!("shop {shop}: {s}");
    }
    if s.chars().count() > SUMMARY_LIMIT {
        s = s.chars().take(SUMMARY_LIMIT - 1).collect::<String>() + "…";
    }
    s
}

/// The shop an event names: its `shop` field, or an order snapshot's `shop_id`.
fn shop_named<'a>(event_type: &str, payload: &'a Value) -> Option<&'a str> {
    let shop = match event_type {
        "OrderPlaced" | "OrderEdited" => payload.get("snapshot")?.get("shop_id")?,
        _ => payload.get("shop")?,
    };
    shop.as_str().filter(|s| !s.is_empty())
}

fn generic(v: &Value, depth: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Array(a) if depth > 0 || a.len() > 3 => format!("[{} items]", a.len()),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(|x| generic(x, depth + 1)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(m) if depth > 1 => format!("{{{} fields}}", m.len()),
        Value::Object(m) => {
            let fields: Vec<String> = m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k}={}", generic(v, depth + 1)))
                .collect();
            if depth == 0 {
                fields.join(", ")
            } else {
                format!("{{{}}}", fields.join(", "))
            }
        }
    }
}

/// Payload fields that name an order or a SKU, per stream prefix: an event in
/// another stream with one of them equal to this stream's id belongs to its story.
const REFERENCE_KEYS: &[(&str, &[&str])] = &[
    ("order", &["order_id", "tiktok_order_id"]),
    ("sku", &["seller_sku", "sku"]),
];

fn references(stream: &str) -> Option<(&'static [&'static str], &str)> {
    let (prefix, id) = stream.split_once('-')?;
    REFERENCE_KEYS
        .iter()
        .find(|(p, _)| *p == prefix)
        .map(|(_, keys)| (*keys, id))
}

fn names(payload: &str, keys: &[&str], id: &str) -> bool {
    // Cheap substring test first: most events of a large log never mention the id.
    if !payload.contains(id) {
        return false;
    }
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(payload) else {
        return false;
    };
    keys.iter()
        .any(|k| m.get(*k).and_then(Value::as_str) == Some(id))
}

/// The events of `stream` and, from the rest of the log, those that caused them
/// (transitively), those they caused (transitively), and those whose payload
/// names the same order or SKU; in log order. Events merely sharing a
/// correlation id are left out: one poll can correlate a hundred orders.
/// `progress` gets the number of events scanned.
pub fn story(
    store: &dyn EventStore,
    stream: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<RecordedEvent>, StoreError> {
    let own = store.read_stream(stream, 0)?;
    if own.is_empty() {
        return Ok(own);
    }
    let mut linked: HashSet<Uuid> = own.iter().map(|e| e.meta.event_id).collect();
    let mut wanted_causes: Vec<Uuid> = own
        .iter()
        .filter_map(|e| e.meta.causation_id)
        .filter(|c| !linked.contains(c))
        .collect();
    let reference = references(stream);
    // Parent links of every other event, to walk causes backwards after the scan.
    let mut parents: HashMap<Uuid, (Option<Uuid>, u64)> = HashMap::new();
    let mut out: Vec<RecordedEvent> = Vec::new();
    let mut after = 0;
    let mut scanned = 0u64;
    loop {
        let batch = store.read_all(after, 8192)?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        scanned += batch.len() as u64;
        for e in batch {
            if e.stream == stream {
                continue;
            }
            parents.insert(e.meta.event_id, (e.meta.causation_id, e.position));
            // Causes precede effects in the log, so one forward pass closes the set.
            let caused = e.meta.causation_id.is_some_and(|c| linked.contains(&c));
            let named = reference.is_some_and(|(keys, id)| names(&e.payload, keys, id));
            if caused || named {
                linked.insert(e.meta.event_id);
                out.push(e);
            }
        }
        progress(scanned);
    }
    let mut seen: HashSet<Uuid> = HashSet::new();
    let mut cause_positions = Vec::new();
    while let Some(id) = wanted_causes.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some((parent, position)) = parents.get(&id) {
            cause_positions.push(*position);
            if let Some(p) = parent {
                wanted_causes.push(*p);
            }
        }
    }
    for position in cause_positions {
        if let Some(e) = store
            .read_all(position.saturating_sub(1), 1)?
            .into_iter()
            .next()
        {
            if !linked.contains(&e.meta.event_id) {
                linked.insert(e.meta.event_id);
                out.push(e);
            }
        }
    }
    out.extend(own);
    out.sort_by_key(|e| e.position);
    Ok(out)
}

/// One line of a timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub position: u64,
    pub stream: String,
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: u32,
    pub kind: Kind,
    pub summary: String,
    pub event_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// In the requested stream (false: linked from elsewhere in the log).
    pub own: bool,
    pub payload: Value,
}

impl Entry {
    pub fn from_recorded(e: &RecordedEvent, own_stream: &str) -> Entry {
        let payload = serde_json::from_str(&e.payload).unwrap_or(Value::String(e.payload.clone()));
        Entry {
            position: e.position,
            stream: e.stream.clone(),
            seq: e.seq,
            recorded_at: e.meta.recorded_at,
            event_type: e.event_type.clone(),
            version: e.version,
            kind: kind_of(&e.event_type),
            summary: summarize(&e.event_type, &payload),
            event_id: e.meta.event_id,
            correlation_id: e.meta.correlation_id,
            causation_id: e.meta.causation_id,
            own: e.stream == own_stream,
            payload,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    pub stream: String,
    pub entries: Vec<Entry>,
}

/// The timeline of `stream` (empty when the log has no such stream).
pub fn timeline(
    store: &dyn EventStore,
    stream: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Timeline, StoreError> {
    let events = story(store, stream, progress)?;
    Ok(Timeline {
        stream: stream.to_string(),
        entries: events
            .iter()
            .map(|e| Entry::from_recorded(e, stream))
            .collect(),
    })
}

/// The last eight hex digits: enough to tell ids apart by eye in one story.
fn short(id: &Uuid) -> String {
    let s = id.simple().to_string();
    s[s.len() - 8..].to_string()
}

impl std::fmt::Display for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let own = self.entries.iter().filter(|e| e.own).count();
        writeln!(
            f,
            "{}: {} events ({own} in the stream, {} linked from other streams)",
            self.stream,
            self.entries.len(),
            self.entries.len() - own
        )?;
        let positions: HashMap<Uuid, u64> = self
            .entries
            .iter()
            .map(|e| (e.event_id, e.position))
            .collect();
        for e in &self.entries {
            let cause = match e.causation_id {
                None => "-".to_string(),
                Some(c) => match positions.get(&c) {
                    Some(p) => format!("pos {p}"),
                    None => format!("{} (not in this story)", short(&c)),
                },
            };
            let place = if e.own {
                format!("seq {}", e.seq)
            } else {
                format!("{}#{}", e.stream, e.seq)
            };
            writeln!(
                f,
                "{}  pos {:<6} {:<11} {:<12} {} v{}  {}",
                fmt_time(e.recorded_at),
                e.position,
                place,
                e.kind.label(),
                e.event_type,
                e.version,
                e.summary
            )?;
            writeln!(
                f,
                "{:22}event {} correlation {} caused by {cause}",
                "",
                short(&e.event_id),
                short(&e.correlation_id),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_types_get_their_wording_and_unknown_ones_a_generic_line() {
        assert_eq!(
            summarize(
                "StockChanged",
                &json!({"location_id": 3, "in_stock": 250_000, "committed": 100_000})
            ),
            "Katana location 3: in stock 2.5, committed 1"
        );
        assert_eq!(
            summarize(
                "ExceptionRaised",
                &json!({"code": "unmatched_sku", "sku": "X-1", "details": {"hint": "map it"}, "n": null})
            ),
            "code=unmatched_sku, details={hint=map it}, sku=X-1"
        );
        // Another shop's events say which shop; the primary's say none.
        assert_eq!(
            summarize("InventoryPushed", &json!({"quantity": 5, "shop": "7494"})),
            "shop 7494: TikTok inventory set to 5"
        );
        assert_eq!(
            summarize("InventoryPushed", &json!({"quantity": 5})),
            "TikTok inventory set to 5"
        );
        // A known type whose payload changed shape falls back instead of failing.
        assert_eq!(summarize("BufferFlushed", &json!({"value": 3})), "value=3");
        let long = summarize("Blob", &json!({"text": "x".repeat(500)}));
        assert_eq!(long.chars().count(), SUMMARY_LIMIT);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn new_event_types_are_classified_by_their_name() {
        assert_eq!(kind_of("ExceptionRaised"), Kind::Exception);
        assert_eq!(kind_of("ExceptionResolved"), Kind::Exception);
        assert_eq!(kind_of("TikTokWebhookReceived"), Kind::Observation);
        assert_eq!(kind_of("InventoryPushFailed"), Kind::Outbound);
        assert_eq!(kind_of("OrderPlaced"), Kind::Observation);
        assert_eq!(kind_of("BufferFlushed"), Kind::Decision);
        assert_eq!(kind_of("Zzz"), Kind::Other);
    }
}
