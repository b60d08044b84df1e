//! Periodic reconciliation (F13): webhooks get lost, so both sides are polled with
//! overlapping windows, the catalogues refreshed, and open exceptions retried.
//! Every loop sleeps through the injected clock.

use super::is_retryable;
use super::tiktok::shops::ShopConnection;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::katana::actor::{retry_blocked_orders, settle_duplicates};
use super::katana::budget::Priority;
use super::katana::model::SalesOrder;
use super::katana::reads::{last_fulfillment_sweep, sweep_fulfillments};
use super::katana::stock::read_stock;
use crate::actors::Execute;
use crate::connectors::ports::{KatanaPorts, PollerPorts};
use crate::domain::order::{Order, OrderCommand, Source};
use crate::domain::sku::SkuCommand;
use crate::domain::Aggregate;
use crate::names::{self, lookup};
use crate::seam::SeamError;
use crate::store::{EventMeta, LookupEntry, UnitOfWork};

/// Polls look this far behind their last run: TikTok's update times can drift
/// outside a window while an order is still being refreshed.
const OVERLAP: Duration = Duration::from_secs(10 * 60);
/// How far back the very first poll looks.
const FIRST_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

pub fn spawn_all(
    ports: Arc<PollerPorts>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let katana_every = ports.settings.katana.poll_interval;
    let tiktok_every = ports.settings.tiktok.poll_interval;
    let mut tasks = Vec::new();
    if ports.katana.is_some() {
        // The stock read follows the catalogue in one job: read before the first
        // refresh, no SKU would be matched yet and the stock of every SKU would
        // stay unknown for a whole interval.
        tasks.push(every(
            ports.clone(),
            katana_every,
            shutdown.clone(),
            "catalogue-and-stock",
            |s| async move {
                refresh_catalogue(&s).await?;
                poll_stock(&s).await
            },
        ));
        tasks.push(every(
            ports.clone(),
            katana_every,
            shutdown.clone(),
            "katana-orders",
            |s| async move { poll_katana_orders(&s).await },
        ));
        tasks.push(every(
            ports.clone(),
            katana_every,
            shutdown.clone(),
            "exceptions",
            |s| async move { retry_exceptions(&s).await },
        ));
    }
    if ports.tiktok.is_some() {
        tasks.push(every(
            ports.clone(),
            tiktok_every,
            shutdown,
            "tiktok-orders",
            |s| async move { poll_tiktok_orders(&s).await },
        ));
    }
    tasks
}

/// Runs `job` now and then every `interval` of the clock, until shutdown.
fn every<F, Fut>(
    ports: Arc<PollerPorts>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
    name: &'static str,
    job: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Arc<PollerPorts>) -> Fut + 'static,
    Fut: Future<Output = Result<(), SeamError>> + 'static,
{
    actix::spawn(async move {
        loop {
            if *shutdown.borrow() {
                return;
            }
            // A poll is its own retry: whatever failed, the next run does it over, so
            // the kind only decides how loudly to say so.
            match job(ports.clone()).await {
                Ok(()) => {}
                Err(SeamError::Retry(e)) => {
                    tracing::warn!(poller = name, error = %e, "poll failed; next run retries")
                }
                Err(SeamError::Refused(e)) => {
                    tracing::warn!(poller = name, error = %e, "poll refused; next run tries again")
                }
                Err(SeamError::Bug(e)) => {
                    tracing::error!(poller = name, error = %e, "poll cannot go on; next run tries again")
                }
            }
            tokio::select! {
                _ = ports.clock.sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    })
}

fn root(ports: &PollerPorts) -> EventMeta {
    EventMeta::root(ports.clock.now())
}

async fn cursor(ports: &PollerPorts, name: &str) -> Result<DateTime<Utc>, String> {
    let saved = ports
        .store
        .lookup(lookup::CURSOR, name)
        .map_err(|e| e.to_string())?
        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
        .map(|t| t.with_timezone(&Utc));
    let first = chrono::Duration::from_std(FIRST_LOOKBACK).unwrap_or_default();
    Ok(saved.unwrap_or_else(|| ports.clock.now() - first))
}

async fn save_cursor(ports: &PollerPorts, name: &str, at: DateTime<Utc>) -> Result<(), SeamError> {
    ports
        .store
        .commit(UnitOfWork {
            lookup_put: vec![LookupEntry {
                kind: lookup::CURSOR.into(),
                key: name.into(),
                value: at.to_rfc3339(),
            }],
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| SeamError::Retry(e.to_string()))
}

/// Both catalogues, and a `SkuMapped` for every TikTok SKU with a Katana variant.
pub async fn refresh_catalogue(ports: &PollerPorts) -> Result<(), SeamError> {
    if let (Some(k), true) = (&ports.katana, ports.settings.katana.pull_products) {
        let variants = k.katana.all_variants().await;
        ports
            .metrics
            .api_call("katana", "variants", variants.is_ok());
        ports
            .catalogue
            .set_katana_variants(&variants.map_err(|e| e.to_string())?);
    }
    // Each shop on its own: one whose authorisation fails keeps only itself from
    // a fresh catalogue.
    let mut failed = None;
    for shop in ports.shops.iter().flat_map(|s| s.iter()) {
        // The shop's name goes on every SO (F1) and the seller can rename the shop:
        // read with the catalogue, a failed read keeps the name last known.
        let named = shop.client.refresh_shop().await;
        ports
            .metrics
            .tiktok_call(&shop.settings.id, "authorized_shops", named.is_ok());
        if let Err(e) = named {
            tracing::warn!(shop = %shop.settings.id, error = %e, "authorised shops not read; the shop name stays as last known");
        }
        if ports.settings.tiktok.push_products {
            let entries = shop.client.catalogue().await;
            ports
                .metrics
                .tiktok_call(&shop.settings.id, "search_products", entries.is_ok());
            match entries {
                Ok(entries) => shop.catalogue.set_tiktok(entries),
                Err(e) => {
                    tracing::warn!(shop = %shop.settings.id, error = %e, "TikTok catalogue not read");
                    // A shop whose seller is not (or no longer) connected waits for
                    // the seller; the others' SKUs are mapped all the same.
                    if is_retryable(&e) {
                        failed.get_or_insert(SeamError::Retry(format!(
                            "catalogue of shop {}: {e}",
                            shop.settings.id
                        )));
                    }
                }
            }
        }
    }
    let cause = root(ports);
    for (sku, variant_id) in ports.catalogue.matched() {
        ports
            .commands
            .skus
            .execute(
                &sku,
                Execute::new(SkuCommand::MapVariant { variant_id }).caused_by(&cause),
            )
            .await?;
    }
    for sku in &ports.settings.sync.sync_disabled_skus {
        ports
            .commands
            .skus
            .execute(
                sku,
                Execute::new(SkuCommand::ToggleSync { enabled: false }).caused_by(&cause),
            )
            .await?;
    }
    failed.map_or(Ok(()), Err)
}

pub async fn poll_tiktok_orders(ports: &PollerPorts) -> Result<(), SeamError> {
    let Some(shops) = &ports.shops else {
        return Ok(());
    };
    if !ports.settings.tiktok.pull_orders {
        return Ok(());
    }
    let mut failed = None;
    for shop in shops.iter() {
        if let Err(e) = poll_shop_orders(ports, shop).await {
            tracing::warn!(shop = %shop.settings.id, error = %e, "TikTok orders not polled");
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// One shop's orders changed since its own cursor (the primary shop's keeps the
/// cursor's old name).
async fn poll_shop_orders(ports: &PollerPorts, shop: &ShopConnection) -> Result<(), SeamError> {
    let cursor_name = if shop.key.is_empty() {
        names::cursor::TIKTOK_ORDERS.to_string()
    } else {
        format!("{}:{}", names::cursor::TIKTOK_ORDERS, shop.key)
    };
    let started = ports.clock.now();
    let since = cursor(ports, &cursor_name).await?;
    let orders = shop.client.orders_updated_since(since, OVERLAP).await;
    ports
        .metrics
        .tiktok_call(&shop.settings.id, "search_orders", orders.is_ok());
    let cause = root(ports);
    for mut snapshot in orders.map_err(|e| e.to_string())? {
        snapshot.shop_id = shop.key.clone();
        let id = snapshot.order_id.clone();
        ports
            .commands
            .orders
            .execute(
                &id,
                Execute::new(OrderCommand::observe(snapshot, Source::Poll)).caused_by(&cause),
            )
            .await?;
    }
    save_cursor(ports, &cursor_name, started).await
}

/// Sales orders Katana changed since the last poll (every new SO, for late
/// duplicates), then the fulfillments changed since the last list: a second partial
/// delivery or a tracking edit may move neither the SO's `updated_at` nor fire a
/// webhook, so re-reading SOs whose `updated_at` moved would miss it.
pub async fn poll_katana_orders(ports: &PollerPorts) -> Result<(), SeamError> {
    let Some(k) = &ports.katana else {
        return Ok(());
    };
    let started = ports.clock.now();
    let since = cursor(ports, names::cursor::KATANA_ORDERS).await?
        - chrono::Duration::from_std(OVERLAP).unwrap_or_default();
    let changed = k.katana.list_sales_orders_updated_since(since).await;
    ports
        .metrics
        .api_call("katana", "list_sales_orders", changed.is_ok());
    let cause = root(ports);
    let changed = changed.map_err(|e| e.to_string())?;
    settle_late_duplicates(k, &changed, &cause).await?;
    // A list a webhook asked for in the last half interval covered the same
    // changes; the backstop is for when no webhook came. Urgent like theirs: during
    // a sale creates fill the window, and this list is what ships the deliveries
    // Katana announced to nobody.
    let interval =
        chrono::Duration::from_std(ports.settings.katana.poll_interval / 2).unwrap_or_default();
    let recent = last_fulfillment_sweep(k)?.is_some_and(|t| t > started - interval);
    if !recent {
        sweep_fulfillments(k, Priority::Urgent, &cause).await?;
    }
    save_cursor(ports, names::cursor::KATANA_ORDERS, started).await
}

/// Every new SO shows up in the poll's list, so a create that committed in Katana
/// after we stopped waiting for it (and after our own SO was recorded) is found
/// here without a call of its own: a live TikTok SO that is not the one its order
/// recorded is a duplicate, and is settled like one found right after a create.
async fn settle_late_duplicates(
    ports: &KatanaPorts,
    changed: &[SalesOrder],
    cause: &EventMeta,
) -> Result<(), SeamError> {
    for so in changed {
        let (None, Some(ext)) = (&so.deleted_at, so.ecommerce_order_id.as_deref()) else {
            continue;
        };
        if so.ecommerce_order_type.as_deref() != Some("tiktok") {
            continue;
        }
        let stream = format!("{}-{ext}", Order::STREAM_PREFIX);
        if ports.store.stream_seq(&stream).map_err(|e| e.to_string())? == 0 {
            continue;
        }
        let (order, _) = ports.commands.orders.state(ext).await?;
        match order.so_id() {
            Some(kept)
                if kept != so.id && !order.duplicate_sos.get(&so.id).copied().unwrap_or(false) =>
            {
                settle_duplicates(ports, ext, kept, std::slice::from_ref(so), cause).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Stock of every matched SKU, the backstop for lost inventory webhooks.
pub async fn poll_stock(ports: &PollerPorts) -> Result<(), SeamError> {
    let (Some(k), true) = (&ports.katana, ports.settings.katana.pull_inventory) else {
        return Ok(());
    };
    let skus: Vec<String> = ports
        .catalogue
        .matched()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    read_stock(k, &skus, &root(ports), Priority::Low).await
}

/// Exceptions whose cause may be gone are retried: unmatched SKUs (after a catalogue
/// refresh), refused shipments (after a carrier mapping was added) and deferred ones
/// (the rest of their package may have been cancelled since).
pub async fn retry_exceptions(ports: &PollerPorts) -> Result<(), SeamError> {
    let cause = root(ports);
    if let Some(k) = &ports.katana {
        retry_blocked_orders(k, &cause).await?;
    }
    let open = ports
        .store
        .lookup_all(lookup::EXCEPTION)
        .map_err(|e| e.to_string())?;
    for entry in open {
        let Some((stream, key)) = entry.key.split_once('#') else {
            continue;
        };
        let (Some(order_id), Some(fid)) = (
            stream.strip_prefix(&format!("{}-", Order::STREAM_PREFIX)),
            key.strip_prefix("fulfillment-rejected-")
                .or_else(|| key.strip_prefix("shipment-deferred-"))
                .and_then(|f| f.parse::<i64>().ok()),
        ) else {
            continue;
        };
        let msg = Execute::new(OrderCommand::RetryFulfillment {
            fulfillment_id: fid,
        })
        .caused_by(&cause);
        if let Err(e) = ports.commands.orders.execute(order_id, msg).await {
            tracing::warn!(order_id, error = %e, "fulfillment retry not accepted");
        }
    }
    Ok(())
}
