//! `tks`: the service and its operator commands. Thin: parse, set up logging, call
//! into the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use tks::commands::exit_on_error;
use tks::replay::capture::Selection;

#[derive(Parser)]
#[command(name = "tks", version, about = "TikTok Shop <-> Katana MRP sync")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// The TOML settings file (default: tks.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run everything on this machine against built-in TikTok and Katana simulators:
    /// a scripted stream of orders with a live log, then a summary. Needs no
    /// configuration.
    Sandbox {
        /// How many orders the script places on TikTok.
        #[arg(long, default_value_t = 12)]
        orders: usize,
        /// How many times faster than a real shop time runs (120: the 60 minute hold
        /// lasts 30 s).
        #[arg(long, default_value_t = 120.0)]
        speed: f64,
        /// Where the database goes (a new file; default: a new temporary directory).
        #[arg(long)]
        db: Option<PathBuf>,
        /// End after the summary instead of keeping the console up until Ctrl-C.
        #[arg(long)]
        exit: bool,
        /// How many TikTok shops of one seller sell the catalogue; orders are
        /// placed in each in turn.
        #[arg(long, default_value_t = 1)]
        shops: usize,
    },
    /// Measure this machine (prints key=value lines).
    Bench {
        #[arg(value_enum)]
        what: tks::bench::Target,
        /// Seconds per throughput measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Events in the log that rebuild is measured on.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Where the benchmark databases go (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Orders pushed through the whole pipeline by `flow` with Katana's limit lifted;
        /// for `peak`, the orders of the live sale.
        #[arg(long, default_value_t = 500)]
        orders: usize,
        /// Orders `flow` runs with Katana's 60/min limit on, to count calls per order.
        #[arg(long, default_value_t = 60)]
        limited_orders: usize,
        /// TikTok shops (one seller, one Katana) `flow` places its orders in, in turn.
        #[arg(long, default_value_t = 1)]
        shops: usize,
        /// Inputs `fuzz` feeds the parsers.
        #[arg(long, default_value_t = 1_000_000)]
        inputs: u64,
        /// The seed of `fuzz`'s random inputs (a run is repeatable from it).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Shop days `sim` plays, one per seed.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// The first seed `sim` plays; the others follow it.
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
        /// Five-minute steps of activity in each of `sim`'s days.
        #[arg(long, default_value_t = 24)]
        steps: u32,
    },
    /// Export events as JSONL (a capture) for `tks-replay` on any machine.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["kind", "since"])))]
    Capture {
        /// What to capture: `order ID` or `sku SKU` (or use --since).
        #[arg(value_enum, requires = "id")]
        kind: Option<CaptureKind>,
        /// TikTok order id or seller SKU.
        id: Option<String>,
        /// Every stream with an event recorded at or after this RFC 3339 time.
        #[arg(long, value_parser = tks::replay::parse_time, conflicts_with = "kind")]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// The database to read.
        #[arg(long, default_value = "tks.db")]
        db: PathBuf,
        /// Where to write the capture (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Connectivity and prerequisites report; exits non-zero when anything blocks.
    Check {
        /// The settings file (default: tks.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the open exceptions recorded in the database (store.path).
    Exceptions {
        /// The settings file (default: tks.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connect an account: exchange an authorisation code and store the tokens.
    Connect {
        #[command(subcommand)]
        what: ConnectTarget,
    },
    /// Tools for testing the service itself.
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        what: DebugCommand,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CaptureKind {
    Order,
    Sku,
}

#[derive(Subcommand)]
enum ConnectTarget {
    /// Exchange a TikTok Shop authorisation code; tokens go next to the database.
    Tiktok {
        /// The `code` TikTok appended to the Redirect URL after consent.
        #[arg(long)]
        auth_code: String,
        /// The settings file (default: tks.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Appends under load and prints `stream seq` for every acknowledged event,
    /// for the crash test that kills this process mid-write.
    AppendLoad {
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value_t = 32)]
        writers: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The sandbox and the benches that run the service own stdout (a live log,
    // key=value lines): the service's own logs stay on stderr and only say
    // something when wrong.
    let quiet = match &cli.command {
        Command::Sandbox { .. } => true,
        Command::Bench { what, .. } => what.runs_the_service(),
        _ => false,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| if quiet { "warn" } else { "info" }.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve { config } => tks::commands::serve(config.as_deref()),
        Command::Sandbox {
            orders,
            speed,
            db,
            exit,
            shops,
        } => tks::commands::sandbox(orders, speed, db, exit, shops),
        Command::Bench {
            what,
            seconds,
            events,
            dir,
            orders,
            limited_orders,
            inputs,
            seed,
            seeds,
            first_seed,
            steps,
            shops,
        } => tks::bench::run(
            what,
            tks::bench::Options {
                seconds,
                events,
                dir,
                orders,
                limited_orders,
                inputs,
                seed,
                seeds,
                first_seed,
                steps,
                shops,
            },
        ),
        Command::Capture {
            kind,
            id,
            since,
            db,
            out,
        } => {
            let selection = match (kind, id, since) {
                (Some(CaptureKind::Order), Some(id), _) => Selection::Order(id),
                (Some(CaptureKind::Sku), Some(id), _) => Selection::Sku(id),
                (_, _, Some(t)) => Selection::Since(t),
                _ => anyhow::bail!("give `order ID`, `sku SKU` or --since TIME"),
            };
            tks::commands::capture(&db, &selection, out.as_deref())
        }
        Command::Check { config, json } => {
            if !exit_on_error(tks::commands::check(config, json)) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Exceptions { config, json } => {
            exit_on_error(tks::commands::exceptions(config, json));
            Ok(())
        }
        Command::Connect {
            what: ConnectTarget::Tiktok { auth_code, config },
        } => {
            exit_on_error(tks::commands::connect_tiktok(&auth_code, config));
            Ok(())
        }
        Command::Debug {
            what: DebugCommand::AppendLoad { db, writers },
        } => tks::bench::append_load::run(db, writers),
    }
}
