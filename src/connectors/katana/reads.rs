//! Katana reads in lists, coalesced: the fulfillments of every SO changed since the
//! last look in one call, and the stock of every SKU a webhook named in one
//! `GET /inventory`. Many webhooks within a short window share the next read.
//!
//! Katana's 60 requests a minute are mostly creates during a live sale, one per order
//! and no batch endpoint; a re-read per webhook would take the rest and more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::budget::Priority;
use super::mapping;
use crate::actors::policies::id_of;
use crate::connectors::is_retryable;
use crate::connectors::ports::KatanaPorts;
use crate::domain::observed::KatanaFulfillment;
use crate::domain::order::{Order, OrderCommand};
use crate::names::{cursor, lookup};
use crate::seam::SeamError;
use crate::store::{EventMeta, LookupEntry, UnitOfWork};

/// Each list looks this far behind the previous one's start: Katana stamps
/// `updated_at` with its own clock, and a change committed while the previous list
/// was being answered must not fall between two lists.
const FULFILLMENT_OVERLAP: Duration = Duration::from_secs(60);

/// A read a task makes at its window's end is tried this often, this far apart.
const DEFERRED_ATTEMPTS: u32 = 3;
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// How far back the very first list looks.
const FIRST_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// When the last list of changed fulfillments started, if ever.
pub fn last_fulfillment_sweep(ports: &KatanaPorts) -> Result<Option<DateTime<Utc>>, String> {
    Ok(ports
        .store
        .lookup(lookup::CURSOR, cursor::KATANA_FULFILLMENTS)
        .map_err(|e| e.to_string())?
        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// Lists every fulfillment changed since the last list and gives each order the
/// ones of its SO. A partial list is what `decide_fulfillments` expects anyway: it
/// skips fulfillments it has recorded and decides on the others.
pub async fn sweep_fulfillments(
    ports: &KatanaPorts,
    priority: Priority,
    cause: &EventMeta,
) -> Result<(), SeamError> {
    let katana = &ports.katana;
    let started = ports.clock.now();
    let since = match last_fulfillment_sweep(ports)? {
        Some(last) => last - chrono_of(FULFILLMENT_OVERLAP),
        None => started - chrono_of(FIRST_LOOKBACK),
    };
    let changed = katana.fulfillments_updated_since(since, priority).await;
    ports
        .metrics
        .api_call("katana", "list_changed_fulfillments", changed.is_ok());
    let changed = match changed {
        Ok(list) => list,
        Err(e) if is_retryable(&e) => return Err(SeamError::Retry(e.to_string())),
        Err(e) => {
            // Retrying cannot help (the connector's health shows the failed call);
            // the cursor stays, so the next list covers the same changes.
            tracing::error!(error = %e, "the list of changed fulfillments was refused");
            return Ok(());
        }
    };
    let mut by_so: BTreeMap<i64, Vec<KatanaFulfillment>> = BTreeMap::new();
    for f in &changed {
        by_so
            .entry(f.sales_order_id)
            .or_default()
            .push(mapping::fulfillment_to_domain(f));
    }
    for (so_id, fulfillments) in by_so {
        let Some(stream) = ports
            .store
            .lookup(lookup::SO, &so_id.to_string())
            .map_err(|e| e.to_string())?
        else {
            // Not an SO of ours.
            continue;
        };
        let Some(order_id) = id_of::<Order>(&stream) else {
            continue;
        };
        ports
            .commands
            .order_command(
                order_id,
                OrderCommand::ObserveFulfillments(fulfillments),
                cause,
                None,
            )
            .await?;
    }
    ports
        .store
        .commit(UnitOfWork {
            lookup_put: vec![LookupEntry {
                kind: lookup::CURSOR.into(),
                key: cursor::KATANA_FULFILLMENTS.into(),
                value: started.to_rfc3339(),
            }],
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| SeamError::Retry(e.to_string()))
}

/// What a coalesced read still has to cover.
#[derive(Default)]
struct Pending {
    /// The last read started then: the next one not before `window` after it.
    last_start: Option<DateTime<Utc>>,
    /// A later read is scheduled and will cover whatever is asked until it starts.
    scheduled: bool,
    /// SKUs asked for since the last read started (stock reads only).
    skus: BTreeSet<String>,
}

/// Which read a [`Coalesced`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadKind {
    Fulfillments,
    Stock,
}

/// One kind of read, at most once per `window`: the first ask after a quiet window
/// reads at once (in the caller, so its errors are retried like any other), asks
/// within the window wait for one read at its end, made by a task of its own.
#[derive(Clone)]
pub struct Coalesced {
    kind: ReadKind,
    window: Duration,
    pending: Arc<Mutex<Pending>>,
}

impl Coalesced {
    pub fn new(kind: ReadKind, window: Duration) -> Self {
        Coalesced {
            kind,
            window,
            pending: Arc::new(Mutex::new(Pending::default())),
        }
    }

    /// Asks for a read covering `skus` (stock) or every SO's fulfillments. Returns
    /// once the read is made or scheduled.
    pub async fn ask(
        &self,
        ports: &Arc<KatanaPorts>,
        skus: &[String],
        cause: &EventMeta,
    ) -> Result<(), SeamError> {
        let now = ports.clock.now();
        let due = {
            let mut p = self.pending.lock();
            p.skus.extend(skus.iter().cloned());
            if p.scheduled {
                return Ok(());
            }
            match p.last_start {
                Some(last) if now < last + chrono_of(self.window) => {
                    p.scheduled = true;
                    Some(last + chrono_of(self.window))
                }
                _ => None,
            }
        };
        match due {
            None => self.read(ports, cause).await,
            Some(at) => {
                let this = self.clone();
                let ports = ports.clone();
                actix::spawn(async move {
                    ports.clock.sleep_until(at).await;
                    for attempt in 1..=DEFERRED_ATTEMPTS {
                        let cause = EventMeta::root(ports.clock.now());
                        match this.read(&ports, &cause).await {
                            Ok(()) => return,
                            // After the last attempt the next ask reads again, and
                            // the reconciliation poll lists the same changes: nothing
                            // is lost, only later.
                            Err(e) => tracing::warn!(
                                read = ?this.kind, attempt, error = %e,
                                "coalesced Katana read failed"
                            ),
                        }
                        ports.clock.sleep(RETRY_AFTER.max(this.window)).await;
                    }
                });
                Ok(())
            }
        }
    }

    async fn read(&self, ports: &KatanaPorts, cause: &EventMeta) -> Result<(), SeamError> {
        let skus: Vec<String> = {
            let mut p = self.pending.lock();
            p.last_start = Some(ports.clock.now());
            p.scheduled = false;
            std::mem::take(&mut p.skus).into_iter().collect()
        };
        let result = match self.kind {
            ReadKind::Fulfillments => sweep_fulfillments(ports, Priority::Urgent, cause).await,
            ReadKind::Stock => {
                super::stock::read_stock(ports, &skus, cause, Priority::Urgent).await
            }
        };
        if result.is_err() {
            // Asked again by the caller's retry or the next ask.
            self.pending.lock().skus.extend(skus);
        }
        result
    }
}
