//! A what-if that changes no setting reports no difference: over the golden logs,
//! a log a flow test recorded on a manual clock, and a sandbox log on the real
//! clock.

use std::path::Path;
use std::time::Duration;

use tks::domain::observed::Quantity;
use tks::replay::source;
use tks::replay::whatif::{what_if, Proposal};

use crate::flows::spawn_app;

const MIN: Duration = Duration::from_secs(60);

fn identity(store: &dyn tks::store::EventStore, what: &str) {
    let report = what_if(store, &Proposal::default(), &mut |_| {}).unwrap();
    let differences = report.differences();
    assert!(
        differences.is_empty(),
        "{what}: a what-if with no setting changed reports\n{}\n\n{report}",
        differences.join("\n")
    );
}

#[test]
fn no_setting_changed_is_no_difference_over_the_golden_orders_log() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let name = "v1-orders-and-skus.jsonl";
    let log = source::open(&dir.join(name), &mut |_, _| {}).unwrap();
    identity(log.store(), name);
}

#[actix::test]
async fn no_setting_changed_is_no_difference_over_a_flow_test_log() {
    let t = spawn_app(|s| s.sync.inventory_buffer = 10 * MIN).await;
    t.place_past_hold(&[("A", 2), ("B", 1)]).await;
    t.place(&[("A", 1)]);
    t.settle().await;
    t.katana
        .set_stock(t.variants["A"], t.main_location, Quantity::from_units(4))
        .unwrap();
    t.settle().await;
    t.advance(70 * MIN, 5 * MIN).await;
    identity(t.store().as_ref(), "flow test");
    t.stop().await;
}

#[test]
fn no_setting_changed_is_no_difference_over_a_sandbox_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sandbox.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tks"))
        .args([
            "sandbox", "--exit", "--orders", "6", "--speed", "600", "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = source::open(&db, &mut |_, _| {}).unwrap();
    identity(log.store(), "sandbox");
}
