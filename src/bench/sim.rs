//! `tks bench sim`: seeded shop days, one line per seed, and the replay command of
//! each failing one.

use std::path::Path;

/// `tks bench sim`: one line per seed, totals as key=value lines, and a non-zero
/// exit naming each failing seed's replay command.
pub async fn run(dir: &Path, seeds: u64, first_seed: u64, steps: u32) -> anyhow::Result<()> {
    use crate::sandbox::sim::{run_seeds, DaySize};
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
