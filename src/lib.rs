//! # tiktok-katana-sync
//!
//! An event-sourced actor system that syncs a TikTok Shop store with Katana MRP.
//!
//! # Layout
//!
//! - `clock`: the injected clock, the only reader of wall time.
//! - `config`: typed settings from TOML and `TKS_*` environment variables.
//! - `domain`: the pure business rules: order and SKU aggregates (`decide`/`apply`),
//!   the events they record, exceptions. No I/O, no async, no clock reads.
//! - `store`: the append-only event log (SQLite with one writer and group commit, or
//!   in memory), timers, inbox, checkpoints, snapshots and lookups.
//! - `actors`: actix shells around the aggregates, the registry that routes commands
//!   to them, the feed of committed events, the durable timer service, and the
//!   policies that turn one aggregate's events into another's commands.
//! - `connectors`: TikTok and Katana clients, wire models, mappings and webhook
//!   verification; their feed subscribers (`actor`); the reconciliation pollers;
//!   the retry classification both share.
//! - `catalogue`: which TikTok SKU is which Katana variant.
//! - `ports`: the command dispatcher the flows are given instead of the whole service.
//! - `seam`: what an error at a seam means next: retry, refused for good, or a bug.
//! - `app`: the composition root that starts everything.
//! - `http`: webhooks, the OAuth callback, the operator API and metrics.
//! - `console`: the operator console: HTML pages, sessions, its read model.
//! - `metrics`: the Prometheus counters and gauges.
//! - `names`: lookup kinds, subscriber checkpoints and poll cursors, one spelling each.
//! - `sandbox`: strict HTTP simulators of both APIs and the `tks sandbox` scenario.
//! - `replay`: rebuild and verify, timelines, time travel, captures and what-if.
//! - `check`: the `tks check` prerequisites report.
//! - `commands`: each `tks` operator command from parsed arguments to its output.
//! - `operator`: operator commands shared by CLI and API (exceptions, connecting TikTok).
//! - `bench`: the `tks bench` measurements (and the load `tks debug append-load` makes).
//! - `fuzz`: mutation fuzzing of every parser that reads outside input.

pub mod actors;
pub mod app;
pub mod bench;
pub mod catalogue;
pub mod check;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connectors;
pub mod console;
pub mod domain;
pub mod fuzz;
pub mod http;
pub mod metrics;
pub mod names;
pub mod operator;
pub mod ports;
pub mod replay;
pub mod sandbox;
pub mod seam;
pub mod store;
