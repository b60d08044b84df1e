//! Runs the whole system on loopback for `tks sandbox` (and `tks bench flow`): both
//! simulators, the service connected to them, and the scripted shop day of
//! [`super::scenario`], narrated live from the service's own event log.
//!
//! The narration follows the log (every committed event is folded into order and
//! SKU state and rendered as it arrives) plus the scenario's own actions, so each
//! line says what really happened, never what a timer guessed.

mod narration;
mod runner;
mod summary;
mod world;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::scenario::Script;
use crate::config::Settings;
use runner::Runner;

pub use summary::{Outcome, Summary};
pub use world::{World, WorldOptions, ADMIN_TOKEN};

/// What `tks sandbox` was asked for.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    pub orders: usize,
    /// TikTok shops of one seller selling the catalogue; orders go to each in turn.
    pub shops: usize,
    /// How much faster than a real shop time runs (120: a 60 minute hold lasts 30 s).
    pub speed: f64,
    /// Where the database goes (default: a new temporary directory that is kept).
    pub db: Option<PathBuf>,
    /// Real time after which the run gives up (default: derived from the script).
    pub timeout: Option<Duration>,
    /// After the summary, keep the service (and its console) up until Ctrl-C.
    pub keep_serving: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            orders: 12,
            shops: 1,
            speed: 120.0,
            db: None,
            timeout: None,
            keep_serving: false,
        }
    }
}

pub const MAX_ORDERS: usize = 1000;
pub const MAX_SPEED: f64 = 10_000.0;
/// The simulator's demo seller has two shops.
pub const MAX_SHOPS: usize = 2;

impl SandboxOptions {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.orders == 0 || self.orders > MAX_ORDERS {
            anyhow::bail!("--orders must be between 1 and {MAX_ORDERS}");
        }
        if !(1..=MAX_SHOPS).contains(&self.shops) {
            anyhow::bail!("--shops must be between 1 and {MAX_SHOPS}");
        }
        if !self.speed.is_finite() || !(1.0..=MAX_SPEED).contains(&self.speed) {
            anyhow::bail!("--speed must be between 1 (real time) and {MAX_SPEED}");
        }
        if let Some(db) = &self.db {
            if db.exists() {
                anyhow::bail!(
                    "{}: already exists; the sandbox needs a new database because its simulators start empty",
                    db.display()
                );
            }
        }
        Ok(())
    }
}

/// A merchant duration divided by the speed.
pub fn scaled(d: Duration, speed: f64) -> Duration {
    d.div_f64(speed)
}

/// The sandbox's settings on top of [`World`]'s: every business duration and
/// every rate limit scaled by `speed`, so the shop runs `speed` times faster
/// without changing its proportions.
pub fn sandbox_settings(s: &mut Settings, speed: f64) {
    let defaults = Settings::default();
    s.sync.order_hold = scaled(defaults.sync.order_hold, speed);
    s.sync.inventory_buffer = scaled(defaults.sync.inventory_buffer, speed);
    s.tiktok.poll_interval = scaled(defaults.tiktok.poll_interval, speed);
    s.katana.poll_interval = scaled(defaults.katana.poll_interval, speed);
    s.katana.coalesce_stock_reads = scaled(defaults.katana.coalesce_stock_reads, speed);
    s.katana.coalesce_fulfillment_reads = scaled(defaults.katana.coalesce_fulfillment_reads, speed);
    s.katana.requests_per_minute = scaled_rate(defaults.katana.requests_per_minute, speed);
    s.tiktok.requests_per_second = scaled_rate(defaults.tiktok.requests_per_second, speed);
}

fn scaled_rate(per_unit: u32, speed: f64) -> u32 {
    (f64::from(per_unit) * speed)
        .round()
        .clamp(1.0, f64::from(u32::MAX)) as u32
}

/// Runs `tks sandbox`: starts the world on the real clock, plays the script with a
/// live log on `out`, prints the summary and stops everything. The outcome says
/// whether every scripted order reached its final state.
pub async fn run<W: Write>(options: SandboxOptions, out: W) -> anyhow::Result<Outcome> {
    options.validate()?;
    let (db_path, made_dir) = match &options.db {
        Some(p) => (p.clone(), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("tks-sandbox-")
                .tempdir()
                .context("creating a directory for the sandbox database")?
                // Kept on purpose: the summary tells the user to replay it.
                .keep();
            (dir.join("tks.db"), Some(dir))
        }
    };
    let speed = options.speed;
    let world = match World::sandbox(db_path, speed, options.shops).await {
        Ok(w) => w,
        Err(e) => {
            // Nothing worth replaying was written.
            if let Some(dir) = made_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(e);
        }
    };
    let script = Script::new(options.orders);
    let timeout = options
        .timeout
        .unwrap_or_else(|| default_timeout(&script, speed));
    let mut out = out;
    let outcome = play(&world, &script, speed, timeout, &mut out).await;
    if options.keep_serving {
        let _ = writeln!(
            out,
            "the console stays up at {}/ (token \"{ADMIN_TOKEN}\"); Ctrl-C to stop (--exit ends after the summary)",
            world.app.base_url()
        );
        let _ = out.flush();
        let _ = tokio::signal::ctrl_c().await;
    }
    world.stop().await;
    outcome
}

/// Plays `script` against a running world with the live log and summary on
/// `out`, until every scripted order is final or `timeout` (real time) passed.
pub async fn play<W: Write>(
    world: &World,
    script: &Script,
    speed: f64,
    timeout: Duration,
    out: W,
) -> anyhow::Result<Outcome> {
    let mut runner = Runner::new(world, script, speed, out);
    runner.header();
    runner.play(timeout).await
}

/// Generous: three times what the script needs in merchant time, plus half a minute.
pub fn default_timeout(script: &Script, speed: f64) -> Duration {
    let last_stock = script
        .stock_changes
        .iter()
        .map(|c| c.at)
        .max()
        .unwrap_or_default();
    let hold = Settings::default().sync.order_hold;
    let merchant = script.last_arrival().max(last_stock) + hold + Duration::from_secs(30 * 60);
    scaled(merchant, speed) * 3 + Duration::from_secs(30)
}
