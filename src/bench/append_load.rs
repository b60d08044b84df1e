//! `tks debug append-load`: many writers appending to one database as fast as it
//! acknowledges, each acknowledged event printed.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use crate::store::{EventMeta, EventStore, Expected, NewEvent, SqliteStore, UnitOfWork};

/// Appends under load and prints `stream seq` for every acknowledged event, for the
/// crash test that kills the process mid-write (`tks debug append-load`).
pub fn run(db: PathBuf, writers: usize) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(load(db, writers))
}

async fn load(db: PathBuf, writers: usize) -> anyhow::Result<()> {
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
