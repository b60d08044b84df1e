//! The `tks check` report: its lines, their statuses, and the text and JSON forms.

use std::fmt::Write;

use serde::Serialize;

use crate::catalogue::{ListingReport, MatchReport};
use crate::connectors::tiktok::model::AuthorizedShop;

/// Names listed per line before "... and N more"; the JSON form has them all.
const LIST_LIMIT: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub status: Status,
    /// What was checked, e.g. `tiktok.pickup_warehouse`.
    pub check: String,
    /// The reason, in words an operator can act on.
    pub detail: String,
}

/// Something TikTok lists (a delivery option, a shipping provider), for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub id: String,
    pub name: String,
    /// The delivery option type (`SEND_BY_SELLER`, ...); empty for providers.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    pub shop: Option<AuthorizedShop>,
    /// Delivery options of the pickup warehouse.
    pub delivery_options: Vec<Listed>,
    /// Providers of the pickup warehouse's seller-shipping options (F17).
    pub shipping_providers: Vec<Listed>,
    pub sku_match: Option<MatchReport>,
    pub listings: Option<ListingReport>,
}

impl CheckReport {
    pub(super) fn push(&mut self, status: Status, check: &str, detail: impl Into<String>) {
        self.findings.push(Finding {
            status,
            check: check.to_string(),
            detail: detail.into(),
        });
    }

    /// The worst status of any line.
    pub fn verdict(&self) -> Status {
        self.findings
            .iter()
            .map(|f| f.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// No blocking problem: the process exits 0.
    pub fn passed(&self) -> bool {
        self.verdict() != Status::Fail
    }

    pub fn count(&self, status: Status) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }

    pub fn find(&self, check: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == check)
    }

    pub fn verdict_line(&self) -> String {
        let (fails, warns) = (self.count(Status::Fail), self.count(Status::Warn));
        match self.verdict() {
            Status::Ok => format!("verdict: OK ({} checks passed)", self.findings.len()),
            Status::Warn => format!("verdict: WARN (ready to run, {warns} warning(s) to review)"),
            Status::Fail => format!(
                "verdict: FAIL ({fails} blocking problem(s), {warns} warning(s)): fix the FAIL lines before `tks serve`"
            ),
        }
    }

    /// The human form: one aligned line per finding, then the verdict.
    pub fn render(&self) -> String {
        let width = self
            .findings
            .iter()
            .map(|f| f.check.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for f in &self.findings {
            let _ = writeln!(
                out,
                "{:<4}  {:width$}  {}",
                f.status.label(),
                f.check,
                f.detail
            );
        }
        let _ = writeln!(out, "{}", self.verdict_line());
        out
    }

    /// The machine form of `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "verdict": self.verdict(),
            "passed": self.passed(),
            "checks": self.findings,
            "tiktok": {
                "shop": self.shop,
                "delivery_options": self.delivery_options,
                "shipping_providers": self.shipping_providers,
            },
            "sku_match": self.sku_match,
            "listings": self.listings,
        })
    }
}

pub(super) fn list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return "none".into();
    }
    let mut s: Vec<String> = items.iter().take(LIST_LIMIT).map(show).collect();
    if items.len() > LIST_LIMIT {
        s.push(format!("... and {} more", items.len() - LIST_LIMIT));
    }
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_is_the_worst_line() {
        let mut r = CheckReport::default();
        assert_eq!(r.verdict(), Status::Ok);
        r.push(Status::Ok, "a", "fine");
        r.push(Status::Warn, "b", "hm");
        assert_eq!(r.verdict(), Status::Warn);
        assert!(r.passed());
        r.push(Status::Fail, "c", "broken");
        assert_eq!(r.verdict(), Status::Fail);
        assert!(!r.passed());
        let text = r.render();
        assert!(text.contains("FAIL  c  broken"), "{text}");
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("verdict: FAIL (1 blocking problem(s), 1 warning(s))"),
            "{text}"
        );
        assert_eq!(r.to_json()["verdict"], "FAIL");
        assert_eq!(r.to_json()["checks"][2]["status"], "FAIL");
    }
}
