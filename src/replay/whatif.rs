//! What-if: re-runs the decisions over the recorded observations with other
//! settings and reports what would have differed: when each order would have been
//! pushed to Katana, which inventory values would have reached TikTok and when, how
//! many API calls that takes, and the oversell windows under both settings.
//!
//! `simulate` runs the real aggregates and stands in for the service's effects;
//! `report` holds what it found and renders it.

mod report;
mod simulate;

pub use report::{Calls, Observed, OrderOutcome, PolicyView, Push, Report, SkuOutcome, Window};
pub use simulate::{effective_policy, what_if, Proposal, WhatIfError};
