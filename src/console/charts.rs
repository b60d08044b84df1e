//! Charts drawn on the server as inline SVG: readable without JavaScript, no
//! asset to fetch, and a screenshot shows exactly what the operator saw.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

const W: f64 = 900.0;
const H: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

/// A series of (time, value) points drawn as steps: a value holds until the next.
pub struct Series<'a> {
    pub label: &'a str,
    pub color: &'a str,
    pub points: Vec<(DateTime<Utc>, f64)>,
    pub dashed: bool,
}

/// A shaded span of time, e.g. an oversell window.
pub struct Band {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// The axis top: four equal steps of 1, 2, 2.5 or 5 times a power of ten, so every
/// tick is a whole number of units.
fn nice_max(v: f64) -> f64 {
    let quarter = (v / 4.0).max(1.0);
    let mag = 10f64.powf(quarter.log10().floor());
    // 2.5 only from tens up, where 2.5 × 10ⁿ is still whole.
    let steps: &[f64] = if mag >= 10.0 {
        &[1.0, 2.0, 2.5, 5.0, 10.0]
    } else {
        &[1.0, 2.0, 5.0, 10.0]
    };
    let step = steps
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= quarter)
        .unwrap_or(10.0 * mag);
    step * 4.0
}

fn axis_label(t: DateTime<Utc>, span_secs: i64) -> String {
    if span_secs > 2 * 86_400 {
        t.format("%m-%d %H:%M").to_string()
    } else if span_secs > 600 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

/// Step lines over time with shaded bands, drawn up to `until` (now) when that is
/// later than the last point, so the chart ends where the reader stands.
pub fn steps(
    title: &str,
    series: &[Series<'_>],
    bands: &[Band],
    band_label: &str,
    until: Option<DateTime<Utc>>,
) -> Markup {
    let times: Vec<DateTime<Utc>> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let (Some(t0), Some(t1)) = (times.iter().min().copied(), times.iter().max().copied()) else {
        return html! { p.muted { "No data for " (title) " yet." } };
    };
    let t1 = until.map_or(t1, |u| u.max(t1));
    let t1 = if t1 <= t0 {
        t0 + chrono::Duration::seconds(1)
    } else {
        t1
    };
    let span = (t1 - t0).num_milliseconds().max(1) as f64;
    let vmax = nice_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let x =
        |t: DateTime<Utc>| LEFT + (t - t0).num_milliseconds() as f64 / span * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - v / vmax) * (H - TOP - BOTTOM);
    let path = |pts: &[(DateTime<Utc>, f64)]| {
        let mut d = String::new();
        for (i, (t, v)) in pts.iter().enumerate() {
            if i == 0 {
                d.push_str(&format!("M{:.1},{:.1}", x(*t), y(*v)));
            } else {
                d.push_str(&format!(" H{:.1} V{:.1}", x(*t), y(*v)));
            }
        }
        if let Some((_, v)) = pts.last() {
            d.push_str(&format!(" H{:.1} V{:.1}", x(t1), y(*v)));
        }
        d
    };
    let span_secs = (t1 - t0).num_seconds();
    let ticks = 5;
    html! {
        svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for b in bands {
                rect x=(format!("{:.1}", x(b.from.max(t0)))) y=(TOP)
                     width=(format!("{:.1}", (x(b.until.min(t1)) - x(b.from.max(t0))).max(1.5)))
                     height=(H - TOP - BOTTOM) fill="#c53030" fill-opacity="0.15" class="band" {}
            }
            @for i in 0..=4 {
                @let v = vmax * f64::from(i) / 4.0;
                line x1=(LEFT) x2=(W - RIGHT) y1=(format!("{:.1}", y(v))) y2=(format!("{:.1}", y(v))) stroke="#e3e6ec" {}
                text x=(LEFT - 6.0) y=(format!("{:.1}", y(v) + 4.0)) font-size="11" text-anchor="end" fill="#5b6474" { (format!("{v:.0}")) }
            }
            @for i in 0..=ticks {
                @let t = t0 + chrono::Duration::milliseconds((span * f64::from(i) / f64::from(ticks)) as i64);
                @let anchor = if i == 0 { "start" } else if i == ticks { "end" } else { "middle" };
                text x=(format!("{:.1}", x(t))) y=(H - 10.0) font-size="11" text-anchor=(anchor) fill="#5b6474" { (axis_label(t, span_secs)) }
            }
            @for s in series {
                path d=(path(&s.points)) fill="none" stroke=(s.color) stroke-width="2"
                     stroke-dasharray=[s.dashed.then_some("6 4")] {}
            }
        }
        div.legend {
            @for s in series { span { i style=(format!("background:{}", s.color)) {} (s.label) } }
            @if !bands.is_empty() {
                span { i style="background:rgba(197,48,48,.3)" {} (band_label) " (" (bands.len()) ")" }
            }
        }
    }
}

/// Vertical bars, one per labelled bucket.
pub fn bars(title: &str, buckets: &[(String, f64)], color: &str) -> Markup {
    let vmax = nice_max(buckets.iter().map(|b| b.1).fold(0.0, f64::max));
    let n = buckets.len().max(1) as f64;
    let slot = (W - LEFT - RIGHT) / n;
    let y = |v: f64| TOP + (1.0 - v / vmax) * (H - TOP - BOTTOM);
    html! {
        svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for i in 0..=4 {
                @let v = vmax * f64::from(i) / 4.0;
                line x1=(LEFT) x2=(W - RIGHT) y1=(format!("{:.1}", y(v))) y2=(format!("{:.1}", y(v))) stroke="#e3e6ec" {}
                text x=(LEFT - 6.0) y=(format!("{:.1}", y(v) + 4.0)) font-size="11" text-anchor="end" fill="#5b6474" { (format!("{v:.0}")) }
            }
            @for (i, (label, v)) in buckets.iter().enumerate() {
                @let x = LEFT + slot * i as f64;
                rect x=(format!("{:.1}", x + 2.0)) y=(format!("{:.1}", y(*v))) width=(format!("{:.1}", (slot - 4.0).max(1.0)))
                     height=(format!("{:.1}", H - BOTTOM - y(*v))) fill=(color) {
                    title { (label) ": " (v) }
                }
                @if i % 3 == 0 {
                    text x=(format!("{:.1}", x + slot / 2.0)) y=(H - 10.0) font-size="11" text-anchor="middle" fill="#5b6474" { (label) }
                }
            }
        }
    }
}

/// Two bar groups side by side per category: recorded vs proposed.
pub fn compare(title: &str, rows: &[(&str, f64, f64)]) -> Markup {
    let vmax = nice_max(rows.iter().map(|r| r.1.max(r.2)).fold(0.0, f64::max));
    let n = rows.len().max(1) as f64;
    let slot = (W - LEFT - RIGHT) / n;
    let y = |v: f64| TOP + (1.0 - v / vmax) * (H - TOP - BOTTOM);
    html! {
        svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for i in 0..=4 {
                @let v = vmax * f64::from(i) / 4.0;
                line x1=(LEFT) x2=(W - RIGHT) y1=(format!("{:.1}", y(v))) y2=(format!("{:.1}", y(v))) stroke="#e3e6ec" {}
                text x=(LEFT - 6.0) y=(format!("{:.1}", y(v) + 4.0)) font-size="11" text-anchor="end" fill="#5b6474" { (format!("{v:.0}")) }
            }
            @for (i, (label, a, b)) in rows.iter().enumerate() {
                @let x = LEFT + slot * i as f64;
                @let bw = (slot / 2.0 - 8.0).max(2.0);
                rect x=(format!("{:.1}", x + 6.0)) y=(format!("{:.1}", y(*a))) width=(format!("{bw:.1}")) height=(format!("{:.1}", H - BOTTOM - y(*a))) fill="#5b6474" { title { (label) " recorded: " (a) } }
                rect x=(format!("{:.1}", x + 6.0 + bw + 4.0)) y=(format!("{:.1}", y(*b))) width=(format!("{bw:.1}")) height=(format!("{:.1}", H - BOTTOM - y(*b))) fill="#2457c5" { title { (label) " proposed: " (b) } }
                text x=(format!("{:.1}", x + slot / 2.0)) y=(H - 10.0) font-size="11" text-anchor="middle" fill="#5b6474" { (label) }
            }
        }
        div.legend {
            span { i style="background:#5b6474" {} "what happened" }
            span { i style="background:#2457c5" {} "proposed settings" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::nice_max;

    #[test]
    fn axis_tops_split_into_four_whole_steps() {
        for (v, top) in [
            (0.0, 4.0),
            (1.0, 4.0),
            (5.0, 8.0),
            (40.0, 40.0),
            (41.0, 80.0),
            (90.0, 100.0),
            (999.0, 1000.0),
        ] {
            assert_eq!(nice_max(v), top, "{v}");
        }
    }
}
