//! `tks sandbox` and `tks bench flow` end to end: the scripted shop day played fast
//! against both simulators (asserted on what the simulators hold, not on the log
//! text alone), the real binary once, and the flow bench's two measurements.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use tks::bench::{flow_throughput, katana_calls_per_order};
use tks::domain::observed::TikTokOrderStatus;
use tks::sandbox::run::{default_timeout, play, SandboxOptions, World, WorldOptions};
use tks::sandbox::scenario::{Role, Script, UNMATCHED_SKU};

/// Fast enough for a test (the 60 minute hold lasts 1.8 s), slow enough that a
/// webhook round trip is small next to every scripted delay.
const SPEED: f64 = 2000.0;

fn events(world: &World, order_id: &str) -> Vec<String> {
    world
        .store()
        .read_stream(&format!("order-{order_id}"), 0)
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

/// Every SO the Katana simulator ever held for `order_id`, deleted ones included.
fn sos_of(world: &World, order_id: &str) -> Vec<Value> {
    world
        .katana
        .sales_orders()
        .into_iter()
        .filter(|so| so["ecommerce_order_id"] == order_id)
        .collect()
}

/// (seller SKU -> quantity) of an SO, through the variant ids the world seeded.
fn rows(world: &World, so: &Value) -> BTreeMap<String, u32> {
    let sku_of: BTreeMap<i64, String> = world
        .variants
        .lock()
        .iter()
        .map(|(s, v)| (*v, s.clone()))
        .collect();
    let mut out = BTreeMap::new();
    for r in so["sales_order_rows"].as_array().unwrap() {
        let sku = sku_of[&r["variant_id"].as_i64().unwrap()].clone();
        let q: f64 = match &r["quantity"] {
            Value::String(s) => s.parse().unwrap(),
            n => n.as_f64().unwrap(),
        };
        *out.entry(sku).or_default() += q as u32;
    }
    out
}

fn expected_rows(items: &[(&str, u32)], less: Option<&str>) -> BTreeMap<String, u32> {
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    for (sku, q) in items {
        *out.entry(sku.to_string()).or_default() += q;
    }
    if let Some(sku) = less {
        *out.get_mut(sku).unwrap() -= 1;
    }
    out
}

#[actix::test]
async fn the_scripted_day_ends_with_every_order_where_it_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::sandbox(dir.path().join("tks.db"), SPEED, 1)
        .await
        .unwrap();
    let script = Script::new(6);
    let mut log = Vec::new();
    let outcome = play(
        &world,
        &script,
        SPEED,
        default_timeout(&script, SPEED),
        &mut log,
    )
    .await
    .unwrap();
    let log = String::from_utf8(log).unwrap();
    assert!(outcome.completed, "{:?}\n{log}", outcome.missing);
    assert_eq!(outcome.orders.len(), 6);

    let shipments = world.tiktok.shipments();
    for (number, role, id) in &outcome.orders {
        let scripted = &script.orders[number - 1];
        let sos = sos_of(&world, id);
        let order = world.tiktok.order(id).unwrap();
        match role {
            Role::Normal | Role::Unmatched | Role::EditedInHold => {
                assert_eq!(sos.len(), 1, "order #{number}: {sos:?}");
                assert!(sos[0]["deleted_at"].is_null());
                let less = (*role == Role::EditedInHold).then_some("TOTE-NAT");
                assert_eq!(
                    rows(&world, &sos[0]),
                    expected_rows(&scripted.items, less),
                    "order #{number}"
                );
                // Every unit still ordered went out in a package with UPS tracking.
                let live: Vec<&String> = order
                    .units
                    .iter()
                    .filter(|u| !u.cancelled)
                    .map(|u| &u.id)
                    .collect();
                let mut shipped: Vec<&String> = shipments
                    .iter()
                    .filter(|s| &s.order_id == id)
                    .flat_map(|s| s.line_item_ids.iter())
                    .collect();
                shipped.sort();
                let mut want = live.clone();
                want.sort();
                assert_eq!(shipped, want, "order #{number}");
                for s in shipments.iter().filter(|s| &s.order_id == id) {
                    assert!(s.tracking_number.starts_with("1Z"), "{s:?}");
                }
                assert_eq!(order.status, TikTokOrderStatus::AwaitingCollection);
                if scripted.partial_delivery {
                    let packages = shipments.iter().filter(|s| &s.order_id == id).count();
                    assert_eq!(packages, 2, "order #{number} was delivered in two parts");
                }
            }
            Role::CancelledInHold => {
                assert!(sos.is_empty(), "a cancelled order reached Katana: {sos:?}");
                let ev = events(&world, id);
                assert!(ev.contains(&"OrderCancelled".to_string()), "{ev:?}");
                assert!(ev.contains(&"HoldExpired".to_string()), "{ev:?}");
            }
            Role::FulfilledByTikTok => {
                assert!(sos.is_empty(), "an FBT order reached Katana: {sos:?}");
                assert!(events(&world, id).contains(&"OrderSkipped".to_string()));
            }
            Role::TikTokShipping => {
                assert_eq!(sos.len(), 1, "order #{number}: {sos:?}");
                let mine: Vec<_> = shipments.iter().filter(|s| &s.order_id == id).collect();
                assert_eq!(mine.len(), 1, "one package arranged: {mine:?}");
                assert_eq!(mine[0].method, "tiktok_label");
                assert!(mine[0].tracking_number.starts_with("TT"), "{mine:?}");
                let ev = events(&world, id);
                assert!(
                    ev.contains(&"TrackingWrittenToKatana".to_string()),
                    "{ev:?}"
                );
                assert_eq!(order.status, TikTokOrderStatus::AwaitingCollection);
            }
        }
    }
    assert!(outcome
        .orders
        .iter()
        .any(|(_, r, _)| *r == Role::FulfilledByTikTok));

    // The unmatched order: an exception first, then pushed by itself once the
    // merchant added the variant, with the variant's id on its row.
    let (_, _, unmatched) = outcome
        .orders
        .iter()
        .find(|(_, r, _)| *r == Role::Unmatched)
        .unwrap();
    let ev = events(&world, unmatched);
    let raised = ev
        .iter()
        .position(|e| e == "SoBlocked")
        .expect("blocked first");
    let created = ev.iter().position(|e| e == "SoCreated").unwrap();
    assert!(raised < created, "{ev:?}");
    assert!(ev.contains(&"ExceptionResolved".to_string()), "{ev:?}");
    let candle = world.variants.lock()[UNMATCHED_SKU];
    let so = &sos_of(&world, unmatched)[0];
    assert!(so["sales_order_rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["variant_id"] == candle));
    assert_eq!(outcome.summary.exceptions_open, 0);
    assert_eq!(outcome.summary.pushed_after_exception, 1);

    // The multi-warehouse SKU: the 3PL's own count survives every push of ours.
    let stock = world.tiktok.stock();
    let tote = world
        .tiktok
        .products()
        .into_iter()
        .flat_map(|p| p.skus)
        .find(|s| s.seller_sku == tks::sandbox::scenario::MULTI_WAREHOUSE_SKU)
        .unwrap()
        .id;
    assert_eq!(
        stock[&tote][tks::sandbox::tiktok::SECOND_WAREHOUSE],
        5,
        "{stock:?}"
    );
    assert!(outcome.summary.multi_warehouse_pushes >= 1);
    assert_eq!(
        outcome.summary.other_warehouse_kept, outcome.summary.multi_warehouse_pushes,
        "every push sent the 3PL its current quantity"
    );

    // Stock reached TikTok: each scripted stock change was pushed or found
    // unchanged, and the sim holds quantities for the matched SKUs.
    assert!(!world.tiktok.inventory_pushes().is_empty());
    assert_eq!(
        outcome.summary.katana_429, 0,
        "the scaled budget overran Katana"
    );

    // The narration told the same story.
    for needle in [
        "created in Katana",
        "TikTok shipment",
        "has no Katana variant -> exception",
        "exception resolved, SO",
        "fulfilled by TikTok -> recorded as skipped",
        "cancelled on TikTok during the hold",
        // Whether the edit shows as its own event depends on whether the service
        // read the order before the buyer's edit; the SO line says it either way.
        "1 unit(s) cancelled in the hold left out",
        "buffer flushed -> TikTok shows",
        "every scripted order reached its final state",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in\n{log}");
    }
    world.stop().await;
}

#[test]
fn the_binary_runs_a_short_sandbox_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sandbox.db");
    let out = Command::new(env!("CARGO_BIN_EXE_tks"))
        .args([
            "sandbox", "--exit", "--orders", "4", "--speed", "2000", "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("created in Katana"), "{stdout}");
    assert!(stdout.contains("TikTok shipment"), "{stdout}");
    assert!(
        stdout.contains(&format!("--db {}", db.display())),
        "{stdout}"
    );
    assert!(db.is_file());
}

#[test]
fn the_binary_refuses_bad_options_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("old.db");
    std::fs::write(&existing, b"").unwrap();
    for (args, needle) in [
        (vec!["sandbox", "--speed", "0"], "--speed must be between"),
        (vec!["sandbox", "--orders", "0"], "--orders must be between"),
        (
            vec!["sandbox", "--db", existing.to_str().unwrap()],
            "already exists",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tks"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert!(SandboxOptions {
        speed: f64::NAN,
        ..SandboxOptions::default()
    }
    .validate()
    .is_err());
}

#[actix::test]
async fn the_flow_bench_pushes_every_order_through() {
    let dir = tempfile::tempdir().unwrap();
    let run = flow_throughput(&dir.path().join("flow.db"), 30, 1)
        .await
        .unwrap();
    assert_eq!(run.orders, 30);
    assert!(run.seconds > 0.0);
}

#[actix::test]
async fn the_flow_bench_counts_katana_calls_within_the_limit() {
    // One shop, and three of one seller sharing one Katana.
    for shops in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let calls = katana_calls_per_order(&dir.path().join("limited.db"), 3, shops)
            .await
            .unwrap();
        assert_eq!(calls.orders, 3, "{shops} shop(s)");
        assert_eq!(calls.rate_limited, 0, "{shops} shop(s)");
        // Each imported order costs its create; reads triggered by webhooks may add more.
        assert!(
            calls.by_endpoint.get("post_sales_orders").copied() == Some(3),
            "{shops} shop(s): {:?}",
            calls.by_endpoint
        );
        assert!(calls.requests >= 3);
    }
}

#[actix::test]
async fn a_lifted_katana_limit_stays_lifted_after_the_simulators_headers() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(
        tks::clock::Clock::real(),
        WorldOptions {
            shops: 1,
            db_path: dir.path().join("tks.db"),
            katana_requests_per_minute: None,
            pollers: false,
        },
        |_| {},
    )
    .await
    .unwrap();
    // Startup already read the catalogue and stock, so the client has seen the
    // simulator's X-Ratelimit-* headers; a 60 there would have lowered its budget.
    assert!(world.katana.stats().requests > 0);
    let budget = world.services().katana.as_ref().unwrap().budget().limit();
    assert!(budget > 1_000_000, "budget lowered to {budget}");
    world.stop().await;
}

#[test]
fn the_sandbox_with_two_shops_lands_each_shops_orders_with_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tks"))
        .args([
            "sandbox", "--exit", "--shops", "2", "--orders", "6", "--speed", "2000", "--db",
        ])
        .arg(dir.path().join("tks.db"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("TikTok shops"))
        .unwrap_or_else(|| panic!("no shops line in\n{stdout}"));
    assert!(
        line.contains("TikTok shops") && line.contains(" 2 ("),
        "{line}"
    );
    // Both shops got SOs: neither count is zero.
    assert!(!line.contains(" 0 SOs"), "{line}");
    assert!(line.contains("US-") && line.contains("UK-"), "{line}");
}
