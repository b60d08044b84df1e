//! `tks-replay`: offline audit of an event log. Never calls TikTok or Katana.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use tks::replay::{rebuild, Rebuilt};
use tks::store::{EventStore, SqliteStore};

#[derive(Parser)]
#[command(
    name = "tks-replay",
    version,
    about = "Rebuild, verify and audit a tks event log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fold the whole log and print a state hash per stream and one for all.
    Rebuild {
        #[arg(long)]
        db: PathBuf,
        /// Print only the summary, not one line per stream.
        #[arg(long)]
        summary: bool,
    },
    /// Rebuild and compare with the live snapshots; non-zero exit on any difference,
    /// gap or undecodable event.
    Verify {
        #[arg(long)]
        db: PathBuf,
    },
}

fn open(db: &PathBuf) -> Result<SqliteStore, String> {
    if !db.exists() {
        return Err(format!("{}: no such file", db.display()));
    }
    SqliteStore::open(db).map_err(|e| format!("{}: {e}", db.display()))
}

fn fold_with_progress(store: &SqliteStore, check_snapshots: bool) -> Result<Rebuilt, String> {
    let total = store.head();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if total < 200_000 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let snapshots = if check_snapshots {
        store.all_snapshots().map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let result = rebuild(store, &snapshots, |n| bar.set_position(n)).map_err(|e| e.to_string());
    bar.finish_and_clear();
    result
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Rebuild { db, summary } => open(&db).and_then(|store| {
            let r = fold_with_progress(&store, false)?;
            if !summary {
                for (stream, (seq, hash)) in &r.streams {
                    println!("{stream} seq={seq} hash={hash}");
                }
            }
            println!(
                "events={} streams={} total_hash={}",
                r.events,
                r.streams.len(),
                r.total_hash
            );
            report_problems(&r)
        }),
        Command::Verify { db } => open(&db).and_then(|store| {
            let r = fold_with_progress(&store, true)?;
            println!(
                "events={} streams={} snapshots_checked={} total_hash={}",
                r.events,
                r.streams.len(),
                r.snapshots_checked,
                r.total_hash
            );
            report_problems(&r)?;
            println!("verified: the log rebuilds to the live state");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tks-replay: {e}");
            ExitCode::FAILURE
        }
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
