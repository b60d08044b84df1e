//! `tks-replay`: offline audit of an event log (a tks database or a JSONL capture).
//! Never calls TikTok or Katana, never reads the wall clock, never writes the log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use tks::config::{BufferMode, FbtMode};
use tks::replay::source::{self, Log, LogKind};
use tks::replay::travel::{self, At};
use tks::replay::whatif::{self, Proposal};
use tks::replay::{order_stream, parse_time, rebuild, sku_stream, timeline, Rebuilt};

#[derive(Parser)]
#[command(
    name = "tks-replay",
    version,
    about = "Rebuild, verify and audit a tks event log (a database file or a JSONL capture)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct LogArg {
    /// The log: a tks database (.db) or a capture written by `tks capture` (.jsonl).
    #[arg(long, visible_alias = "log", value_name = "PATH")]
    db: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum StreamKind {
    Order,
    Sku,
}

impl StreamKind {
    fn stream(self, id: &str) -> String {
        match self {
            StreamKind::Order => order_stream(id),
            StreamKind::Sku => sku_stream(id),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Fold the whole log and print a state hash per stream and one for all.
    Rebuild {
        #[command(flatten)]
        log: LogArg,
        /// Print only the summary, not one line per stream.
        #[arg(long)]
        summary: bool,
    },
    /// Rebuild and compare with the live snapshots; non-zero exit on any difference,
    /// gap or undecodable event.
    Verify {
        #[command(flatten)]
        log: LogArg,
    },
    /// The whole story of one order or SKU, oldest first.
    Timeline {
        kind: StreamKind,
        /// TikTok order id, or seller SKU.
        id: String,
        #[command(flatten)]
        log: LogArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The state of one order or SKU at a past time or log position.
    #[command(group(ArgGroup::new("when").required(true).args(["at", "pos"])))]
    State {
        kind: StreamKind,
        /// TikTok order id, or seller SKU.
        id: String,
        #[command(flatten)]
        log: LogArg,
        /// RFC 3339 time, e.g. 2026-01-01T12:30:00Z.
        #[arg(long, value_parser = parse_time)]
        at: Option<DateTime<Utc>>,
        /// Global log position.
        #[arg(long)]
        pos: Option<u64>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Re-run the recorded observations with other settings and report what would
    /// have differed. Settings not given keep the values the log shows were used.
    WhatIf {
        #[command(flatten)]
        log: LogArg,
        /// Order hold, e.g. 30m or 0s.
        #[arg(long, value_parser = parse_duration)]
        order_hold: Option<Duration>,
        /// Inventory buffer, e.g. 15m.
        #[arg(long, value_parser = parse_duration)]
        inventory_buffer: Option<Duration>,
        /// all | increases_only
        #[arg(long, value_parser = parse_buffer_mode)]
        buffer_mode: Option<BufferMode>,
        /// Units held back from TikTok, e.g. 2.
        #[arg(long)]
        safety_stock: Option<u32>,
        /// skip | record_as_done
        #[arg(long, value_parser = parse_fbt)]
        fbt: Option<FbtMode>,
        /// The instance's settings (tks.toml): its `[[shops]]` and their allocation
        /// rules, which the log does not record. Needed for a log of several shops.
        #[arg(long, value_name = "TKS_TOML")]
        config: Option<PathBuf>,
        /// One shop's allocation to try, e.g. `7494726673780150052=share=50,max=3`
        /// (repeatable; needs --config).
        #[arg(long, value_name = "SHOP=CHANGES")]
        allocation: Vec<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (examples: 0s, 30m, 1h)"))
}

fn parse_buffer_mode(s: &str) -> Result<BufferMode, String> {
    match s.replace('-', "_").as_str() {
        "all" => Ok(BufferMode::All),
        "increases_only" => Ok(BufferMode::IncreasesOnly),
        _ => Err(format!("{s:?}: expected all or increases_only")),
    }
}

fn parse_fbt(s: &str) -> Result<FbtMode, String> {
    match s.replace('-', "_").as_str() {
        "skip" => Ok(FbtMode::Skip),
        "record_as_done" => Ok(FbtMode::RecordAsDone),
        _ => Err(format!("{s:?}: expected skip or record_as_done")),
    }
}

/// Below this many events (or bytes) a progress bar would only flicker.
const QUIET_BELOW: u64 = 200_000;

fn bar(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if total < QUIET_BELOW {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

fn open(path: &Path) -> Result<Log, String> {
    let loading = bar(0, "bytes");
    let log = source::open(path, &mut |done, total| {
        if loading.length() != Some(total) {
            loading.set_length(total);
            if total >= QUIET_BELOW * 100 {
                loading.set_draw_target(ProgressDrawTarget::stderr());
            }
        }
        loading.set_position(done);
    })
    .map_err(|e| e.to_string());
    loading.finish_and_clear();
    log
}

fn fold_with_progress(log: &Log, check_snapshots: bool) -> Result<Rebuilt, String> {
    let store = log.store();
    let progress = bar(store.head(), "events");
    let snapshots = if check_snapshots {
        log.snapshots().map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let result =
        rebuild(store, &snapshots, |n| progress.set_position(n)).map_err(|e| e.to_string());
    progress.finish_and_clear();
    result
}

fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let s = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    emit(&format!("{s}\n"))
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Rebuild { log, summary } => {
            let log = open(&log.db)?;
            let r = fold_with_progress(&log, false)?;
            emit(&if summary {
                r.totals_line()
            } else {
                r.hash_listing()
            })?;
            report_problems(&r)
        }
        Command::Verify { log } => {
            let log = open(&log.db)?;
            let r = fold_with_progress(&log, true)?;
            emit(&format!(
                "events={} streams={} snapshots_checked={} total_hash={}\n",
                r.events,
                r.streams.len(),
                r.snapshots_checked,
                r.total_hash
            ))?;
            report_problems(&r)?;
            match log.kind {
                LogKind::Database => emit("verified: the log rebuilds to the live state\n"),
                LogKind::Capture => emit(
                    "verified: the capture folds without gaps or undecodable events \
                     (a capture carries no live snapshots to compare)\n",
                ),
            }
        }
        Command::Timeline {
            kind,
            id,
            log,
            json,
        } => {
            let log = open(&log.db)?;
            let stream = kind.stream(&id);
            let progress = bar(log.store().head(), "events");
            let t = timeline::timeline(log.store(), &stream, &mut |n| progress.set_position(n))
                .map_err(|e| e.to_string());
            progress.finish_and_clear();
            let t = t?;
            if t.entries.is_empty() {
                return Err(format!(
                    "{}: the log has no stream {stream}",
                    log.path.display()
                ));
            }
            if json {
                print_json(&t)
            } else {
                emit(&t.to_string())
            }
        }
        Command::State {
            kind,
            id,
            log,
            at,
            pos,
            json,
        } => {
            let log = open(&log.db)?;
            let at = match (at, pos) {
                (Some(t), _) => At::Time(t),
                (None, Some(p)) => At::Position(p),
                (None, None) => return Err("give --at TIME or --pos N".into()),
            };
            let p = travel::state_at(log.store(), &kind.stream(&id), at)
                .map_err(|e| format!("{}: {e}", log.path.display()))?;
            if json {
                print_json(&p)
            } else {
                emit(&p.to_string())
            }
        }
        Command::WhatIf {
            log,
            order_hold,
            inventory_buffer,
            buffer_mode,
            safety_stock,
            fbt,
            config,
            allocation,
            json,
        } => {
            let shops = proposed_shops(config.as_deref(), &allocation)?;
            let log = open(&log.db)?;
            let proposal = Proposal {
                order_hold,
                inventory_buffer,
                buffer_mode,
                safety_stock,
                fbt_orders: fbt,
                shops,
            };
            let progress = bar(log.store().head(), "events");
            let report = whatif::what_if(log.store(), &proposal, &mut |n| progress.set_position(n))
                .map_err(|e| e.to_string());
            progress.finish_and_clear();
            let report = report?;
            if json {
                print_json(&report)
            } else {
                emit(&report.to_string())
            }
        }
    }
}

/// The shops a what-if simulates: the settings' `[[shops]]`, with the
/// `--allocation` changes applied.
fn proposed_shops(
    config: Option<&Path>,
    changes: &[String],
) -> Result<Option<tks::domain::allocation::Shops>, String> {
    let Some(path) = config else {
        if changes.is_empty() {
            return Ok(None);
        }
        return Err("--allocation needs --config: the log does not record the shops' rules".into());
    };
    let settings = tks::config::Settings::load(Some(path)).map_err(|e| e.to_string())?;
    let mut shops = settings.shop_stock();
    for change in changes {
        let (shop, rule) = change.split_once('=').ok_or_else(|| {
            format!("--allocation {change:?}: expected SHOP_ID=share=N,max=N,reserve=N")
        })?;
        shops = shops
            .with_allocation(shop, rule)
            .map_err(|e| format!("--allocation {change:?}: {e}"))?;
    }
    Ok(Some(shops))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tks-replay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; a reader that went away (`| head`) ends the output quietly
/// instead of crashing the tool.
fn emit(text: &str) -> Result<(), String> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(()),
    }
}

fn report_problems(r: &Rebuilt) -> Result<(), String> {
    if r.problems.is_empty() {
        return Ok(());
    }
    for p in &r.problems {
        eprintln!("problem: {p}");
    }
    Err(format!("{} problem(s) found", r.problems.len()))
}
