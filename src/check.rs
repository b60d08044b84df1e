//! `tks check`: reads both APIs with the configured credentials and reports, line by
//! line, whether the prerequisites of the flows hold (F2, F16, F17): TikTok tokens,
//! the pickup and return warehouses, seller shipping and its providers, the
//! `[carriers]` table, the Katana key and mapped locations, how the two catalogues
//! match, which SKUs have no live TikTok listing or several (F28), the shop name
//! sales orders carry, and each other shop's seller, tokens, warehouses and
//! locations (F30). A FAIL is a problem that blocks a flow; a WARN works but
//! deserves a look. Nothing is written anywhere except a refreshed TikTok token.

mod katana;
mod listings;
mod report;
mod scope;
mod shops;
mod tiktok;

use std::path::PathBuf;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Settings;
use crate::connectors::tiktok::client::ClientOptions;
use crate::connectors::Backoff;

pub use report::{CheckReport, Finding, Listed, Status};
pub use tiktok::REFRESH_WARNING;

/// Client tuning for a check; tests shorten the timeouts.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub tiktok_client: ClientOptions,
    pub katana_timeout: Duration,
    pub katana_backoff: Backoff,
    /// Where TikTok tokens are kept (default: next to the database).
    pub token_file: Option<PathBuf>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        // A check should answer in seconds: one quick retry, not the service's
        // patient back-off.
        let backoff = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(2),
            max_attempts: 2,
        };
        CheckOptions {
            tiktok_client: ClientOptions {
                backoff,
                timeout: Duration::from_secs(15),
                // Refresh only a token that has actually expired: refreshing rotates
                // the refresh token, and a running `tks serve` would still hold the
                // old one.
                refresh_margin: Duration::ZERO,
            },
            katana_timeout: Duration::from_secs(15),
            katana_backoff: backoff,
            token_file: None,
        }
    }
}

/// Runs every check. Never fails as a whole: what cannot be checked is a line.
pub async fn run(settings: &Settings, clock: Clock, options: &CheckOptions) -> CheckReport {
    let mut others = CheckReport::default();
    let (tiktok, katana, ()) = futures::join!(
        tiktok::checks(settings, clock.clone(), options),
        katana::checks(settings, clock.clone(), options),
        shops::tiktok(&mut others, settings, clock, options)
    );
    let mut report = tiktok.report;
    report.findings.extend(others.findings);
    report.findings.extend(katana.report.findings);
    match (tiktok.catalogue, katana.variants) {
        (Some(entries), Some(variants)) => listings::sku_match(&mut report, settings, entries, &variants),
        _ => report.push(
            Status::Warn,
            "sku_match",
            "skipped: needs both the TikTok catalogue and the Katana variants (see the lines above)",
        ),
    }
    report
}
