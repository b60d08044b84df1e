//! Seeded shop days with faults and crashes, checked against every invariant; a
//! failing seed names the command that plays it again.

use tks::sandbox::sim::{run_seeds, DaySize};

#[actix::test]
async fn seeded_shop_days_with_faults_and_crashes_keep_every_invariant() {
    let seeds: u64 = std::env::var("TKS_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let size = DaySize { steps: 12 };
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let (mut crashes, mut faults, mut orders) = (0, 0, 0);
    for report in run_seeds(1..=seeds, size, dir.path()).await.unwrap() {
        let seed = report.seed;
        crashes += report.crashes;
        faults += report.faults;
        orders += report.orders;
        if !report.violations.is_empty() {
            failures.push(format!(
                "seed {seed}: {:?}\n  replay: {}",
                report.violations,
                report.replay_command(size)
            ));
        }
    }
    assert!(
        orders > 0 && crashes > 0 && faults > 0,
        "the days did something"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
