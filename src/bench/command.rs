//! `tks bench`'s targets and their options, and the runtime each target runs on.

use std::path::PathBuf;

/// What `tks bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
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

impl Target {
    /// These print their own results on stdout while the service runs in-process,
    /// so the service's logs must only speak when something is wrong.
    pub fn runs_the_service(self) -> bool {
        matches!(
            self,
            Target::Flow
                | Target::Webhooks
                | Target::Restart
                | Target::Sim
                | Target::Console
                | Target::Peak
        )
    }
}

/// Every target's knobs; each target reads the ones it needs.
#[derive(Clone, Debug)]
pub struct Options {
    pub seconds: u64,
    pub events: u64,
    /// Where the benchmark databases go (default: a temporary directory).
    pub dir: Option<PathBuf>,
    pub orders: usize,
    pub limited_orders: usize,
    pub inputs: u64,
    pub seed: u64,
    pub seeds: u64,
    pub first_seed: u64,
    pub steps: u32,
    /// TikTok shops `flow` spreads its orders over.
    pub shops: usize,
}

/// The log size the console's page times are promised for.
const CONSOLE_BENCH_ORDERS: u64 = 100_000;

/// Runs one target to the end. The targets that start the service need an actix
/// system; the store and replay measurements a multi-threaded tokio runtime.
pub fn run(target: Target, o: Options) -> anyhow::Result<()> {
    match target {
        Target::Flow => on_actix(super::flow(o.orders, o.limited_orders, o.shops)),
        Target::Peak => on_actix(super::peak::peak(o.orders)),
        Target::Webhooks => {
            let tmp = dir(o.dir)?;
            on_actix(super::webhooks(tmp.path(), o.seconds))
        }
        Target::Restart => {
            let tmp = dir(o.dir)?;
            on_actix(super::restart(tmp.path(), o.orders as u64))
        }
        Target::Fuzz => super::fuzz::run(o.inputs, o.seed),
        Target::Sim => {
            let tmp = dir(o.dir)?;
            on_actix(super::sim::run(tmp.path(), o.seeds, o.first_seed, o.steps))
        }
        Target::Console => {
            let tmp = dir(o.dir)?;
            on_actix(crate::console::bench::run(tmp.path(), CONSOLE_BENCH_ORDERS))
        }
        Target::Store | Target::Replay => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let tmp = dir(o.dir)?;
                if target == Target::Store {
                    super::store(tmp.path(), o.seconds, o.events).await
                } else {
                    super::replay(tmp.path(), o.events).await
                }
            })
        }
    }
}

fn on_actix(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    actix::System::new().block_on(f)
}

/// A fresh directory for benchmark files, removed when the benchmark ends.
pub fn dir(dir: Option<PathBuf>) -> anyhow::Result<tempfile::TempDir> {
    let base = dir.unwrap_or_else(std::env::temp_dir);
    Ok(tempfile::Builder::new()
        .prefix("tks-bench-")
        .tempdir_in(base)?)
}
