//! The `tks` operator commands as the terminal sees them: settings loaded, the
//! library called, the answer printed, and how a failure ends the process.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::replay::capture::{write_capture, Selection};

/// Operator commands end with one readable line on failure, not a trace.
pub fn exit_on_error<T>(result: anyhow::Result<T>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Prints the report; returns whether it has no FAIL line.
pub fn check(config: Option<PathBuf>, json: bool) -> anyhow::Result<bool> {
    let settings = crate::config::Settings::load(config.as_deref())?;
    let report = runtime()?.block_on(crate::check::run(
        &settings,
        crate::clock::Clock::real(),
        &crate::check::CheckOptions::default(),
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

pub fn exceptions(config: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let settings = crate::config::Settings::load(config.as_deref())?;
    let list = crate::operator::exceptions_in(Path::new(&settings.store.path))?;
    let mut out = std::io::stdout().lock();
    if json {
        let body = crate::operator::exceptions_json(&list);
        writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?;
    } else {
        write!(out, "{}", crate::operator::render_exceptions(&list))?;
    }
    out.flush()?;
    Ok(())
}

pub fn connect_tiktok(auth_code: &str, config: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = crate::config::Settings::load(config.as_deref())?;
    let options = crate::connectors::tiktok::ClientOptions {
        // Someone is waiting at the terminal: give up within seconds.
        backoff: crate::connectors::Backoff {
            base: std::time::Duration::from_millis(500),
            max: std::time::Duration::from_secs(4),
            max_attempts: 3,
        },
        ..Default::default()
    };
    let connected = runtime()?.block_on(crate::operator::connect_tiktok(
        &settings,
        crate::clock::Clock::real(),
        auth_code,
        options,
        None,
    ))?;
    print!("{}", connected.render());
    Ok(())
}

/// `tks sandbox`: exits non-zero when the script did not finish in time.
pub fn sandbox(
    orders: usize,
    speed: f64,
    db: Option<PathBuf>,
    exit: bool,
    shops: usize,
) -> anyhow::Result<()> {
    let options = crate::sandbox::run::SandboxOptions {
        orders,
        speed,
        shops,
        db,
        timeout: None,
        keep_serving: !exit,
    };
    let outcome = actix::System::new()
        .block_on(crate::sandbox::run::run(options, std::io::stdout().lock()))?;
    if !outcome.completed {
        anyhow::bail!(
            "the sandbox timed out with {} scripted step(s) unfinished",
            outcome.missing.len()
        );
    }
    Ok(())
}

/// Writes the capture to `out` (or stdout). A partial file is removed on failure,
/// so a half-written capture is never mistaken for a complete one.
pub fn capture(db: &Path, selection: &Selection, out: Option<&Path>) -> anyhow::Result<()> {
    if !db.is_file() {
        anyhow::bail!("{}: no such database", db.display());
    }
    let log = crate::replay::source::open(db, &mut |_, _| {})?;
    let header = match out {
        Some(path) => {
            let file = crate::store::private_file::create(path)
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

/// `tks serve`: the service on the real clock until Ctrl-C or SIGTERM.
pub fn serve(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = crate::config::Settings::load(config)?;
    actix::System::new().block_on(async move {
        let listener = std::net::TcpListener::bind(&settings.server.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.server.bind))?;
        let app = crate::app::start(
            settings,
            crate::clock::Clock::real(),
            listener,
            crate::app::StartOptions::default(),
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
