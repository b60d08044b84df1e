//! # tiktok-katana-sync
//!
//! # Layout
//!
//! - `clock`: the injected clock, the only reader of wall time.
//! - `config`: typed settings from TOML and `TKS_*` environment variables.
//! - `domain`: the pure business rules: order and SKU aggregates (`decide`/`apply`)
//!   and the events they record. No I/O, no async, no clock reads.
//! - `store`: the append-only event log (SQLite with one writer and group commit, or
//!   in memory), timers, inbox, checkpoints and snapshots.
//! - `actors`: actix shells around the aggregates, the registry that routes commands
//!   to them, the feed of committed events and the durable timer service.
//! - `connectors`: TikTok and Katana clients, wire models, mappings and webhook
//!   verification; shared retry classification.
//! - `sandbox`: strict HTTP simulators of both APIs.
//! - `replay`: folding the log back into state, hashing and verifying it.
//! - `bench`: the `tks bench` measurements.
//! - `check`: the `tks check` prerequisites report.
//! - `operator`: operator commands shared by CLI and API (exceptions, connecting TikTok).

pub mod actors;
pub mod app;
pub mod bench;
pub mod catalogue;
pub mod check;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod operator;
pub mod replay;
pub mod sandbox;
pub mod store;
