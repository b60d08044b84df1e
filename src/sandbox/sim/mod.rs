//! Deterministic simulation of whole shop days: a seeded generator of orders,
//! edits, cancellations, stock changes, deliveries, API faults and crashes runs
//! against both simulators on a manual clock, and after each day the invariants
//! F5, F3, F4, F7 and F10 promise are checked. A failing seed is replayed by one
//! command, since everything the day does follows from its seed.

mod day;
mod invariants;

use std::path::Path;
use std::time::Instant;

pub use day::DaySize;
pub use invariants::Violation;

/// What one seed's day did, and whether it held.
#[derive(Clone, Debug)]
pub struct SeedReport {
    pub seed: u64,
    pub orders: usize,
    pub deliveries: usize,
    pub stock_changes: usize,
    pub faults: usize,
    pub crashes: usize,
    pub cancellations: usize,
    pub checks: usize,
    pub violations: Vec<Violation>,
    pub seconds: f64,
}

impl SeedReport {
    /// The command that plays this seed again.
    pub fn replay_command(&self, size: DaySize) -> String {
        format!(
            "cargo run --release -- bench sim --seeds 1 --first-seed {} --steps {}",
            self.seed, size.steps
        )
    }
}

/// Days played at once: a day mostly waits for its service to go quiet, so a few
/// side by side keep the cores busy without slowing each other.
pub const PARALLEL_DAYS: usize = 4;

/// Plays `seeds` (in groups of [`PARALLEL_DAYS`]) and reports each, in seed order.
pub async fn run_seeds(
    seeds: impl IntoIterator<Item = u64>,
    size: DaySize,
    dir: &Path,
) -> anyhow::Result<Vec<SeedReport>> {
    let seeds: Vec<u64> = seeds.into_iter().collect();
    let mut reports = Vec::with_capacity(seeds.len());
    for group in seeds.chunks(PARALLEL_DAYS) {
        let played = futures::future::join_all(group.iter().map(|s| run_seed(*s, size, dir))).await;
        for r in played {
            reports.push(r?);
        }
    }
    Ok(reports)
}

/// Plays one seeded day in a new database under `dir` and checks it.
pub async fn run_seed(seed: u64, size: DaySize, dir: &Path) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let db = dir.join(format!("sim-{seed}.db"));
    let played = day::play(seed, size, &db).await?;
    let (checks, violations) = invariants::check(&played).await;
    let report = SeedReport {
        seed,
        orders: played.orders.len(),
        deliveries: played.deliveries,
        stock_changes: played.stock_changes,
        faults: played.faults,
        crashes: played.crashes,
        cancellations: played.cancellations,
        checks,
        violations,
        seconds: started.elapsed().as_secs_f64(),
    };
    played.world.stop().await;
    Ok(report)
}
