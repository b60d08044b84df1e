//! `tks`: the service and its operator commands. Thin: parse, set up logging, call
//! into the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use tks::replay::capture::{write_capture, Selection};
use tks::store::{EventMeta, EventStore, Expected, NewEvent, SqliteStore, UnitOfWork};

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
    },
    /// Measure this machine (prints key=value lines).
    Bench {
        #[arg(value_enum)]
        what: BenchTarget,
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
enum BenchTarget {
    Store,
    Replay,
    Flow,
    Webhooks,
    Restart,
    Fuzz,
    Sim,
    /// Console page times with 100,000 orders in the log.
    Console,
    /// A live sale of `--orders` orders in an hour against Katana's 60 a minute.
    Peak,
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

/// The log size the console's page times are promised for.
const CONSOLE_BENCH_ORDERS: u64 = 100_000;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The sandbox and the flow bench own stdout (a live log, key=value lines):
    // the service's own logs stay on stderr and only say something when wrong.
    let quiet = matches!(
        cli.command,
        Command::Sandbox { .. }
            | Command::Bench {
                what: BenchTarget::Flow
                    | BenchTarget::Webhooks
                    | BenchTarget::Restart
                    | BenchTarget::Sim
                    | BenchTarget::Console
                    | BenchTarget::Peak,
                ..
            }
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| if quiet { "warn" } else { "info" }.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve { config } => return serve(config.as_deref()),
        Command::Sandbox {
            orders,
            speed,
            db,
            exit,
        } => return sandbox(orders, speed, db, exit),
        Command::Bench {
            what: BenchTarget::Flow,
            orders,
            limited_orders,
            ..
        } => return actix::System::new().block_on(tks::bench::flow(orders, limited_orders)),
        Command::Bench {
            what: BenchTarget::Peak,
            orders,
            ..
        } => return actix::System::new().block_on(tks::bench::peak::peak(orders)),
        Command::Bench {
            what: BenchTarget::Webhooks,
            seconds,
            dir,
            ..
        } => {
            let tmp = bench_dir(dir)?;
            return actix::System::new().block_on(tks::bench::webhooks(tmp.path(), seconds));
        }
        Command::Bench {
            what: BenchTarget::Restart,
            orders,
            dir,
            ..
        } => {
            let tmp = bench_dir(dir)?;
            return actix::System::new().block_on(tks::bench::restart(tmp.path(), orders as u64));
        }
        Command::Bench {
            what: BenchTarget::Fuzz,
            inputs,
            seed,
            ..
        } => return bench_fuzz(inputs, seed),
        Command::Bench {
            what: BenchTarget::Sim,
            seeds,
            first_seed,
            steps,
            dir,
            ..
        } => {
            let tmp = bench_dir(dir)?;
            return actix::System::new().block_on(bench_sim(tmp.path(), seeds, first_seed, steps));
        }
        Command::Bench {
            what: BenchTarget::Console,
            dir,
            ..
        } => {
            let tmp = bench_dir(dir)?;
            return actix::System::new()
                .block_on(tks::console::bench::run(tmp.path(), CONSOLE_BENCH_ORDERS));
        }
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve { .. } | Command::Sandbox { .. } => Ok(()),
        Command::Bench {
            what,
            seconds,
            events,
            dir,
            ..
        } => runtime.block_on(async {
            let tmp = bench_dir(dir)?;
            match what {
                BenchTarget::Store => tks::bench::store(tmp.path(), seconds, events).await,
                BenchTarget::Replay => tks::bench::replay(tmp.path(), events).await,
                // Handled above: they need an actix system (or no runtime at all).
                BenchTarget::Flow
                | BenchTarget::Webhooks
                | BenchTarget::Restart
                | BenchTarget::Fuzz
                | BenchTarget::Sim
                | BenchTarget::Console
                | BenchTarget::Peak => Ok(()),
            }
        }),
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
            capture(&db, &selection, out.as_deref())
        }
        Command::Check { config, json } => {
            let passed = exit_on_error(check(config, json, &runtime));
            if !passed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Exceptions { config, json } => {
            exit_on_error(exceptions(config, json));
            Ok(())
        }
        Command::Connect {
            what: ConnectTarget::Tiktok { auth_code, config },
        } => {
            exit_on_error(connect_tiktok(&auth_code, config, &runtime));
            Ok(())
        }
        Command::Debug {
            what: DebugCommand::AppendLoad { db, writers },
        } => runtime.block_on(append_load(db, writers)),
    }
}

/// Operator commands end with one readable line on failure, not a trace.
fn exit_on_error<T>(result: anyhow::Result<T>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Prints the report; returns whether it has no FAIL line.
fn check(
    config: Option<PathBuf>,
    json: bool,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<bool> {
    let settings = tks::config::Settings::load(config.as_deref())?;
    let report = runtime.block_on(tks::check::run(
        &settings,
        tks::clock::Clock::real(),
        &tks::check::CheckOptions::default(),
    ));
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.to_json())?)?;
    } else {
        write!(out, "{}", report.render())?;
    }
    out.flush()?;
    Ok(report.passed())
}

fn exceptions(config: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let settings = tks::config::Settings::load(config.as_deref())?;
    let list = tks::operator::exceptions_in(Path::new(&settings.store.path))?;
    let mut out = std::io::stdout().lock();
    if json {
        let body = tks::operator::exceptions_json(&list);
        writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?;
    } else {
        write!(out, "{}", tks::operator::render_exceptions(&list))?;
    }
    out.flush()?;
    Ok(())
}

fn connect_tiktok(
    auth_code: &str,
    config: Option<PathBuf>,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let settings = tks::config::Settings::load(config.as_deref())?;
    let options = tks::connectors::tiktok::ClientOptions {
        // Someone is waiting at the terminal: give up within seconds.
        backoff: tks::connectors::Backoff {
            base: std::time::Duration::from_millis(500),
            max: std::time::Duration::from_secs(4),
            max_attempts: 3,
        },
        ..Default::default()
    };
    let connected = runtime.block_on(tks::operator::connect_tiktok(
        &settings,
        tks::clock::Clock::real(),
        auth_code,
        options,
        None,
    ))?;
    print!("{}", connected.render());
    Ok(())
}

/// `tks bench sim`: one line per seed, totals as key=value lines, and a non-zero
/// exit naming each failing seed's replay command.
async fn bench_sim(dir: &Path, seeds: u64, first_seed: u64, steps: u32) -> anyhow::Result<()> {
    use tks::sandbox::sim::{run_seeds, DaySize};
    let size = DaySize { steps };
    let started = std::time::Instant::now();
    let (mut checks, mut orders, mut crashes, mut faults) = (0, 0, 0, 0);
    let mut failed = Vec::new();
    let reports = run_seeds(first_seed..first_seed.saturating_add(seeds), size, dir).await?;
    for r in reports {
        let seed = r.seed;
        println!(
            "seed={seed} orders={} deliveries={} stock_changes={} cancellations={} faults={} crashes={} checks={} violations={} seconds={:.1}",
            r.orders, r.deliveries, r.stock_changes, r.cancellations, r.faults, r.crashes, r.checks, r.violations.len(), r.seconds
        );
        for v in &r.violations {
            println!("  violated {}: {}", v.invariant, v.detail);
        }
        checks += r.checks;
        orders += r.orders;
        crashes += r.crashes;
        faults += r.faults;
        if r.violations.is_empty() {
            // Each day leaves a database behind; only a failing one is worth keeping.
            let _ = std::fs::remove_file(dir.join(format!("sim-{seed}.db")));
        } else {
            failed.push(r.replay_command(size));
        }
    }
    println!("sim_seeds={seeds}");
    println!("sim_orders={orders}");
    println!("sim_faults={faults}");
    println!("sim_crashes={crashes}");
    println!("sim_checks={checks}");
    println!("sim_failed_seeds={}", failed.len());
    println!("sim_seconds={:.1}", started.elapsed().as_secs_f64());
    if !failed.is_empty() {
        anyhow::bail!("failing seeds; replay each with:\n{}", failed.join("\n"));
    }
    Ok(())
}

/// `tks bench fuzz`: key=value lines, and a non-zero exit with the input when a
/// parser panicked.
fn bench_fuzz(inputs: u64, seed: u64) -> anyhow::Result<()> {
    let report = tks::fuzz::run(inputs, seed);
    println!("fuzz_seed={}", report.seed);
    for (target, n) in &report.runs {
        println!("fuzz_inputs_{}={n}", target.name());
    }
    println!("fuzz_inputs={}", report.inputs());
    println!("fuzz_panics={}", report.panics);
    println!(
        "fuzz_inputs_per_s={:.0}",
        report.inputs() as f64 / report.seconds.max(1e-9)
    );
    if let Some((target, input)) = report.first_panic {
        anyhow::bail!(
            "{} panicked on input (hex) {}",
            target.name(),
            hex::encode(input)
        );
    }
    Ok(())
}

/// Writes the capture to `out` (or stdout). A partial file is removed on failure,
/// so a half-written capture is never mistaken for a complete one.
fn capture(db: &Path, selection: &Selection, out: Option<&Path>) -> anyhow::Result<()> {
    if !db.is_file() {
        anyhow::bail!("{}: no such database", db.display());
    }
    let log = tks::replay::source::open(db, &mut |_, _| {})?;
    let header = match out {
        Some(path) => {
            let file = tks::store::private_file::create(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let result = write_capture(log.store(), selection, &mut w, &mut |_| {});
            drop(w);
            if result.is_err() {
                let _ = std::fs::remove_file(path);
            }
            result?
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            write_capture(log.store(), selection, &mut w, &mut |_| {})?
        }
    };
    eprintln!(
        "captured {}: {} events, {} stream(s) in full",
        header.selection,
        header.events,
        header.streams.len()
    );
    Ok(())
}

/// A fresh directory for benchmark files, removed when the benchmark ends.
fn bench_dir(dir: Option<PathBuf>) -> anyhow::Result<tempfile::TempDir> {
    let base = dir.unwrap_or_else(std::env::temp_dir);
    Ok(tempfile::Builder::new()
        .prefix("tks-bench-")
        .tempdir_in(base)?)
}

async fn append_load(db: PathBuf, writers: usize) -> anyhow::Result<()> {
    let store = Arc::new(SqliteStore::open(&db)?);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, u64)>();
    for w in 0..writers {
        let store = store.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let stream = format!("sku-crash-{w}");
            let mut seq = store.stream_seq(&stream).unwrap_or(0);
            loop {
                let meta = EventMeta::root(chrono::DateTime::UNIX_EPOCH);
                let events = (0..3)
                    .map(|i| NewEvent {
                        event_type: "StockChanged".into(),
                        version: 1,
                        payload: format!(
                            "{{\"location_id\":1,\"in_stock\":{},\"committed\":0}}",
                            (seq + i) * 100_000
                        ),
                        meta: meta.clone(),
                    })
                    .collect();
                let unit = UnitOfWork::append(stream.clone(), Expected::Seq(seq), events);
                match store.commit(unit).await {
                    Ok(c) => {
                        for e in c.events {
                            seq = e.seq;
                            if tx.send((e.stream, e.seq)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    while let Some((stream, seq)) = rx.recv().await {
        // Printed only after the commit was acknowledged: the test trusts each line.
        writeln!(out, "{stream} {seq}")?;
        out.flush()?;
    }
    Ok(())
}

/// `tks sandbox`: exits non-zero when the script did not finish in time.
fn sandbox(orders: usize, speed: f64, db: Option<PathBuf>, exit: bool) -> anyhow::Result<()> {
    let options = tks::sandbox::run::SandboxOptions {
        orders,
        speed,
        db,
        timeout: None,
        keep_serving: !exit,
    };
    let outcome =
        actix::System::new().block_on(tks::sandbox::run::run(options, std::io::stdout().lock()))?;
    if !outcome.completed {
        anyhow::bail!(
            "the sandbox timed out with {} scripted step(s) unfinished",
            outcome.missing.len()
        );
    }
    Ok(())
}

/// `tks serve`: the service on the real clock until Ctrl-C or SIGTERM.
fn serve(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = tks::config::Settings::load(config)?;
    actix::System::new().block_on(async move {
        let listener = std::net::TcpListener::bind(&settings.server.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.server.bind))?;
        let app = tks::app::start(
            settings,
            tks::clock::Clock::real(),
            listener,
            tks::app::StartOptions::default(),
        )
        .await?;
        // The address on stdout lets a supervisor (or a test) find a port-0 bind.
        println!("tks serving on {}", app.base_url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        app.stop().await;
        Ok(())
    })
}
