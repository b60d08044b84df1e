//! The Katana side of the flows, as feed subscribers: the writer creates (or
//! deletes) sales orders, the reader turns delivery and stock signals into
//! observations. Results go back to the aggregates as commands.

use crate::config::ShopSettings;
use crate::connectors::tiktok::shops::ShopConnection;
use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::LocalBoxFuture;

use super::mapping::{self, SalesOrderContext};
use super::model::{
    CreateFulfillment, CreateFulfillmentRow, FulfillmentStatus, SalesOrder, SoStatus,
};
use super::reads::{Coalesced, ReadKind};
use crate::actors::policies::{id_of, order_event, sku_event};
use crate::actors::Subscriber;
use crate::config::{CustomerMode, OnCancel};
use crate::connectors::is_retryable;
use crate::connectors::ports::KatanaPorts;
use crate::domain::exceptions::keys;
use crate::domain::observed::OrderSnapshot;
use crate::domain::order::{CreatedRow, Order, OrderCommand, ShipmentArranged, SoState};
use crate::domain::reactions::{order_reactions, sku_reactions, OrderReaction, SkuReaction};
use crate::names::subscriber;
use crate::seam::SeamError;
use crate::store::{EventMeta, RecordedEvent};

/// Creates sales orders (F1, F4, F5) and handles cancellations after the push (F6).
pub struct KatanaWriter {
    ports: Arc<KatanaPorts>,
    /// The generic customer of each shop, by the shop name it was found for: a
    /// renamed shop gets the customer of its new name.
    customers: tokio::sync::Mutex<BTreeMap<String, i64>>,
}

impl KatanaWriter {
    pub fn new(ports: Arc<KatanaPorts>) -> Self {
        KatanaWriter {
            ports,
            customers: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// F1: the shop's name as TikTok last listed it for the authorised shop.
    fn store_name(&self, snapshot: &OrderSnapshot) -> String {
        let connection = self.shop_of(snapshot);
        let listed = connection.and_then(|c| c.client.shop());
        let id = connection.map_or_else(
            || self.ports.settings.tiktok.shop_id.clone(),
            |c| c.settings.id.clone(),
        );
        mapping::store_name(listed.as_ref().map(|s| s.name.as_str()), &id).name
    }

    /// The connection of the shop the order was placed in.
    fn shop_of(&self, snapshot: &OrderSnapshot) -> Option<&ShopConnection> {
        self.ports
            .shops
            .as_ref()
            .and_then(|s| s.by_key(&snapshot.shop_id))
    }

    /// The order's shop's settings: its prefix and locations go on the SO.
    fn shop_settings(&self, snapshot: &OrderSnapshot) -> ShopSettings {
        self.shop_of(snapshot).map_or_else(
            || {
                let served = self.ports.settings.served_shops();
                served
                    .into_iter()
                    .find(|s| self.ports.settings.shop_stock().event_key(&s.id) == snapshot.shop_id)
                    .unwrap_or_default()
            },
            |c| c.settings.clone(),
        )
    }

    async fn customer_for(&self, snapshot: &OrderSnapshot) -> Result<i64, super::KatanaError> {
        let katana = &self.ports.katana;
        if self.ports.settings.katana.customer == CustomerMode::PerBuyer {
            if let Some(r) = &snapshot.recipient {
                let name = if r.name.trim().is_empty() {
                    format!("TikTok buyer {}", snapshot.order_id)
                } else {
                    r.name.clone()
                };
                return katana
                    .find_or_create_customer(&name, snapshot.buyer_email.as_deref(), None)
                    .await;
            }
        }
        let shop = self.store_name(snapshot);
        let mut cached = self.customers.lock().await;
        if let Some(id) = cached.get(&shop) {
            return Ok(*id);
        }
        let id = katana.ensure_generic_customer(&shop).await?;
        cached.insert(shop, id);
        Ok(id)
    }

    /// Variant ids for every SKU of the order; the ones still missing after a
    /// targeted lookup come back as the error.
    async fn variants_for(
        &self,
        skus: &[String],
    ) -> Result<Result<BTreeMap<String, i64>, Vec<String>>, String> {
        let catalogue = &self.ports.catalogue;
        let missing: Vec<String> = skus
            .iter()
            .filter(|s| catalogue.variant_for(s).is_none())
            .cloned()
            .collect();
        if !missing.is_empty() {
            let katana = &self.ports.katana;
            let keys: Vec<String> = missing
                .iter()
                .map(|s| catalogue.rules().katana_key(s))
                .collect();
            let found = katana.variants_by_sku(&keys).await;
            self.ports
                .metrics
                .api_call("katana", "variants_by_sku", found.is_ok());
            match found {
                Ok(v) => catalogue.add_katana_variants(&v),
                Err(e) if is_retryable(&e) => return Err(e.to_string()),
                Err(e) => tracing::warn!(error = %e, "variant lookup refused"),
            }
        }
        let mut map = BTreeMap::new();
        let mut unmatched = Vec::new();
        for s in skus {
            match catalogue.variant_for(s) {
                Some(v) => {
                    map.insert(s.clone(), v);
                }
                None => unmatched.push(s.clone()),
            }
        }
        Ok(if unmatched.is_empty() {
            Ok(map)
        } else {
            Err(unmatched)
        })
    }

    async fn create_so(&self, order_id: &str, event: &RecordedEvent) -> Result<(), SeamError> {
        let ports = &self.ports;
        let (order, _) = ports.commands.orders.state(order_id).await?;
        let SoState::Requested { as_done, .. } = order.so else {
            return Ok(());
        };
        if order.so_unconfirmed_until.is_some() {
            // An earlier create may still commit: its timer requests the SO again
            // once it no longer can, and that request looks it up first.
            return Ok(());
        }
        if order.so_attempt_open {
            return self
                .unconfirmed(
                    order_id,
                    event,
                    "a create was in flight when the service stopped".into(),
                )
                .await;
        }
        let (false, Some(snapshot)) = (order.cancelled, order.snapshot.clone()) else {
            return Ok(());
        };
        let mut skus: Vec<String> = snapshot
            .units
            .iter()
            .filter(|u| !u.cancelled)
            .map(|u| u.seller_sku.clone())
            .collect();
        skus.sort();
        skus.dedup();
        let variants = match self.variants_for(&skus).await? {
            Ok(v) => v,
            Err(unmatched) => {
                return ports
                    .commands
                    .order_command(
                        order_id,
                        OrderCommand::RecordSoBlocked { unmatched },
                        &event.meta,
                        Some((self.name().to_string(), event.position)),
                    )
                    .await
            }
        };
        let customer_id = match self.customer_for(&snapshot).await {
            Ok(id) => id,
            Err(e) if is_retryable(&e) => return Err(SeamError::Retry(format!("customer: {e}"))),
            Err(e) => {
                return self
                    .failed(order_id, event, format!("customer: {e}"), false)
                    .await
            }
        };
        let shop = self.shop_settings(&snapshot);
        let ctx = SalesOrderContext {
            store_name: self.store_name(&snapshot),
            order_no_prefix: shop.order_no_prefix.clone(),
            location_id: if as_done {
                shop.fbt_location_id
            } else {
                shop.stock_locations().first().copied().unwrap_or(0)
            },
            customer_id,
            variant_by_sku: variants.clone(),
            status: SoStatus::NotShipped,
        };
        let request = match mapping::sales_order_request(&snapshot, &ctx) {
            Ok(r) => r,
            Err(e) => return self.failed(order_id, event, e.to_string(), false).await,
        };
        let first = order.so_attempts == 0;
        ports
            .commands
            .order_command(order_id, OrderCommand::RecordSoAttempt, &event.meta, None)
            .await?;
        let katana = &ports.katana;
        let outcome = if first {
            katana.create_sales_order_first_attempt(&request).await
        } else {
            katana.create_sales_order_once(&request).await
        };
        ports
            .metrics
            .api_call("katana", "create_sales_order", outcome.is_ok());
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) if e.outcome_unknown() => {
                return self.unconfirmed(order_id, event, e.to_string()).await;
            }
            Err(e) => {
                let retry = is_retryable(&e);
                self.failed(order_id, event, e.to_string(), retry).await?;
                return if retry {
                    Err(SeamError::Retry(e.to_string()))
                } else {
                    Ok(())
                };
            }
        };
        let mut so = outcome.sales_order().clone();
        if !first && outcome.was_created() {
            // An earlier attempt's outcome was unknown: it may have committed after
            // the lookup, so check that this order has exactly one live SO.
            let ext = order_id.to_string();
            let live = katana.live_sales_orders_for(&ext).await;
            ports
                .metrics
                .api_call("katana", "find_sales_orders", live.is_ok());
            match live {
                Ok(live) if live.len() > 1 => {
                    so = live[0].clone();
                    settle_duplicates(ports, order_id, so.id, &live[1..], &event.meta).await?;
                }
                Ok(_) => {}
                Err(e) => {
                    // Not fatal: the reconciliation poll sees every new SO and
                    // settles a duplicate there.
                    tracing::warn!(order_id, error = %e, "duplicate check after create failed");
                }
            }
        }
        let so = &so;
        let sku_of_variant: BTreeMap<i64, &String> =
            variants.iter().map(|(s, v)| (*v, s)).collect();
        let rows: Vec<CreatedRow> = so
            .sales_order_rows
            .iter()
            .map(|r| CreatedRow {
                row_id: r.id,
                seller_sku: sku_of_variant
                    .get(&r.variant_id)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                quantity: r.quantity.floor_units().max(0) as u32,
            })
            .collect();
        if as_done && so.status != SoStatus::Delivered {
            // F4: a Done SO from the FBT location, so the main location's stock is
            // not moved twice.
            let fulfil = CreateFulfillment {
                sales_order_id: so.id,
                status: FulfillmentStatus::Delivered,
                sales_order_fulfillment_rows: so
                    .sales_order_rows
                    .iter()
                    .map(|r| CreateFulfillmentRow {
                        sales_order_row_id: r.id,
                        quantity: mapping::quantity_number(r.quantity),
                    })
                    .collect(),
                tracking_number: None,
                tracking_url: None,
                tracking_carrier: Some("Fulfilled by TikTok".into()),
            };
            let done = katana.create_fulfillment(&fulfil).await;
            ports
                .metrics
                .api_call("katana", "create_fulfillment", done.is_ok());
            if let Err(e) = done {
                if is_retryable(&e) {
                    return Err(SeamError::Retry(format!(
                        "marking FBT SO {} done: {e}",
                        so.id
                    )));
                }
                ports
                    .commands
                    .order_command(
                        order_id,
                        OrderCommand::RaiseException {
                            key: keys::SO_REJECTED.into(),
                            message: format!("FBT SO {} created but not marked done: {e}", so.id),
                        },
                        &event.meta,
                        None,
                    )
                    .await?;
            }
        }
        ports.metrics.pushed("sales_order");
        ports
            .commands
            .order_command(
                order_id,
                OrderCommand::RecordSoCreated {
                    so_id: so.id,
                    order_no: so.order_no.clone().unwrap_or_default(),
                    rows,
                },
                &event.meta,
                Some((self.name().to_string(), event.position)),
            )
            .await
    }

    /// Records that the create may still commit in Katana and moves past the event:
    /// the order's own timer asks again after `katana.create_settle`.
    async fn unconfirmed(
        &self,
        order_id: &str,
        event: &RecordedEvent,
        reason: String,
    ) -> Result<(), SeamError> {
        let settle = chrono::Duration::from_std(self.ports.settings.katana.create_settle)
            .unwrap_or(chrono::Duration::minutes(5));
        self.ports
            .commands
            .order_command(
                order_id,
                OrderCommand::RecordSoUnconfirmed {
                    reason,
                    retry_at: self.ports.clock.now() + settle,
                },
                &event.meta,
                Some((self.name().to_string(), event.position)),
            )
            .await
    }

    async fn failed(
        &self,
        order_id: &str,
        event: &RecordedEvent,
        reason: String,
        retryable: bool,
    ) -> Result<(), SeamError> {
        self.ports
            .commands
            .order_command(
                order_id,
                OrderCommand::RecordSoCreateFailed { reason, retryable },
                &event.meta,
                None,
            )
            .await
    }

    async fn cancel_after_push(
        &self,
        order_id: &str,
        event: &RecordedEvent,
    ) -> Result<(), SeamError> {
        let ports = &self.ports;
        let (order, _) = ports.commands.orders.state(order_id).await?;
        let SoState::Created {
            so_id, order_no, ..
        } = &order.so
        else {
            return Ok(());
        };
        let raise = |message: String| OrderCommand::RaiseException {
            key: keys::CANCELLED_AFTER_PUSH.into(),
            message,
        };
        if ports.settings.katana.on_cancel == OnCancel::Flag {
            let message =
                format!("cancelled on TikTok after SO {order_no} was created; cancel it in Katana");
            return ports
                .commands
                .order_command(order_id, raise(message), &event.meta, None)
                .await;
        }
        let katana = &ports.katana;
        let so = match katana.get_sales_order(*so_id).await {
            Ok(so) => so,
            Err(e) if is_retryable(&e) => return Err(SeamError::Retry(e.to_string())),
            Err(e) => {
                let message = format!("cancelled on TikTok; SO {order_no} could not be read: {e}");
                return ports
                    .commands
                    .order_command(order_id, raise(message), &event.meta, None)
                    .await;
            }
        };
        if so.status != SoStatus::NotShipped {
            let message = format!(
                "cancelled on TikTok after SO {order_no} became {}; handle it in Katana",
                so.status
            );
            return ports
                .commands
                .order_command(order_id, raise(message), &event.meta, None)
                .await;
        }
        let deleted = katana.delete_sales_order(*so_id).await;
        ports
            .metrics
            .api_call("katana", "delete_sales_order", deleted.is_ok());
        match deleted {
            Ok(()) => {
                ports
                    .commands
                    .order_command(
                        order_id,
                        OrderCommand::RecordSoDeleted,
                        &event.meta,
                        Some((self.name().to_string(), event.position)),
                    )
                    .await
            }
            Err(e) if is_retryable(&e) => Err(SeamError::Retry(e.to_string())),
            Err(e) => {
                let message = format!("cancelled on TikTok; deleting SO {order_no} failed: {e}");
                ports
                    .commands
                    .order_command(order_id, raise(message), &event.meta, None)
                    .await
            }
        }
    }

    /// F25: TikTok's tracking goes on the Katana fulfillments its package carries, so
    /// the warehouse ships with TikTok's label.
    async fn write_tracking(
        &self,
        order_id: &str,
        arranged: &ShipmentArranged,
        event: &RecordedEvent,
    ) -> Result<(), SeamError> {
        let ports = &self.ports;
        let katana = &ports.katana;
        for &fulfillment_id in &arranged.fulfillment_ids {
            let written = katana
                .update_fulfillment_tracking(
                    fulfillment_id,
                    &arranged.tracking_number,
                    Some(arranged.shipping_provider.as_str()),
                )
                .await;
            ports
                .metrics
                .api_call("katana", "update_fulfillment", written.is_ok());
            let command = match written {
                Ok(_) => OrderCommand::RecordTrackingWritten {
                    fulfillment_id,
                    tracking_number: arranged.tracking_number.clone(),
                },
                Err(e) if is_retryable(&e) => return Err(SeamError::Retry(e.to_string())),
                Err(e) => OrderCommand::RaiseException {
                    key: keys::tracking_writeback(fulfillment_id),
                    message: format!(
                        "TikTok's tracking {} could not be written to Katana fulfillment {fulfillment_id}: {e}; enter it in Katana",
                        arranged.tracking_number
                    ),
                },
            };
            ports
                .commands
                .order_command(order_id, command, &event.meta, None)
                .await?;
        }
        Ok(())
    }

    /// A SKU got its Katana variant: orders waiting only for mappings go through.
    async fn retry_blocked(&self, event: &RecordedEvent) -> Result<(), SeamError> {
        retry_blocked_orders(&self.ports, &event.meta).await
    }

    async fn handle_event(&self, event: &RecordedEvent) -> Result<(), SeamError> {
        if !self.ports.settings.katana.push_orders {
            return Ok(());
        }
        if let Some((order_id, ev)) = order_event(event)? {
            for reaction in order_reactions(&ev) {
                match reaction {
                    OrderReaction::CreateSalesOrder => self.create_so(&order_id, event).await?,
                    OrderReaction::CancelSalesOrder => {
                        self.cancel_after_push(&order_id, event).await?
                    }
                    OrderReaction::WriteTrackingToKatana(a) => {
                        self.write_tracking(&order_id, &a, event).await?
                    }
                    _ => {}
                }
            }
        } else if let Some((_, ev)) = sku_event(event)? {
            for reaction in sku_reactions(&ev) {
                if reaction == SkuReaction::RetryBlockedOrders {
                    self.retry_blocked(event).await?;
                }
            }
        }
        Ok(())
    }
}

/// Deletes the order's duplicate SOs that Katana still holds as `NOT_SHIPPED` and
/// records each one found and deleted; one that has moved on in Katana becomes an
/// exception, since deleting it would lose work done on it.
pub async fn settle_duplicates(
    ports: &KatanaPorts,
    order_id: &str,
    kept_so_id: i64,
    duplicates: &[SalesOrder],
    cause: &EventMeta,
) -> Result<(), SeamError> {
    let katana = &ports.katana;
    for dup in duplicates.iter().filter(|d| d.id != kept_so_id) {
        tracing::warn!(
            order_id,
            so_id = dup.id,
            kept_so_id,
            "duplicate sales order found"
        );
        ports
            .commands
            .order_command(
                order_id,
                OrderCommand::RecordDuplicateSo {
                    so_id: dup.id,
                    kept_so_id,
                    status: dup.status.to_string(),
                },
                cause,
                None,
            )
            .await?;
        let refusal = if dup.status == SoStatus::NotShipped {
            let deleted = katana.delete_sales_order(dup.id).await;
            ports
                .metrics
                .api_call("katana", "delete_sales_order", deleted.is_ok());
            match deleted {
                Ok(()) => None,
                Err(e) if is_retryable(&e) => return Err(SeamError::Retry(e.to_string())),
                Err(e) => Some(format!("deleting it failed: {e}")),
            }
        } else {
            Some(format!("it is already {} in Katana", dup.status))
        };
        let command = match refusal {
            None => OrderCommand::RecordDuplicateSoDeleted { so_id: dup.id },
            Some(why) => OrderCommand::RaiseException {
                key: keys::duplicate_so(dup.id),
                message: format!(
                    "Katana holds a second SO {} for this order besides {kept_so_id}; {why}: remove it in Katana",
                    dup.order_no.as_deref().unwrap_or("")
                ),
            },
        };
        ports
            .commands
            .order_command(order_id, command, cause, None)
            .await?;
    }
    Ok(())
}

/// Every order blocked on unmatched SKUs whose SKUs all map now is retried.
pub async fn retry_blocked_orders(ports: &KatanaPorts, cause: &EventMeta) -> Result<(), SeamError> {
    let open = ports
        .store
        .lookup_all(crate::names::lookup::EXCEPTION)
        .map_err(|e| e.to_string())?;
    for entry in open {
        let Some((stream, key)) = entry.key.split_once('#') else {
            continue;
        };
        if key != keys::UNMATCHED_SKU {
            continue;
        }
        let Some(order_id) = id_of::<Order>(stream) else {
            continue;
        };
        let (order, _) = ports.commands.orders.state(order_id).await?;
        let all_mapped = order.snapshot.as_ref().is_some_and(|s| {
            s.units
                .iter()
                .filter(|u| !u.cancelled)
                .all(|u| ports.catalogue.variant_for(&u.seller_sku).is_some())
        });
        if all_mapped {
            ports
                .commands
                .order_command(order_id, OrderCommand::RetrySo, cause, None)
                .await?;
        }
    }
    Ok(())
}

impl Subscriber for KatanaWriter {
    fn name(&self) -> &str {
        subscriber::KATANA_WRITER
    }

    fn handle<'a>(
        &'a mut self,
        event: &'a RecordedEvent,
    ) -> LocalBoxFuture<'a, Result<(), SeamError>> {
        Box::pin(self.handle_event(event))
    }
}

/// Reads fulfillments after a delivery signal (F7) and stock after a stock signal,
/// each coalesced with the other signals of a short window into one list call.
pub struct KatanaReader {
    ports: Arc<KatanaPorts>,
    fulfillments: Coalesced,
    stock: Coalesced,
}

impl KatanaReader {
    pub fn new(ports: Arc<KatanaPorts>) -> Self {
        let k = &ports.settings.katana;
        let fulfillments = Coalesced::new(ReadKind::Fulfillments, k.coalesce_fulfillment_reads);
        let stock = Coalesced::new(ReadKind::Stock, k.coalesce_stock_reads);
        KatanaReader {
            ports,
            fulfillments,
            stock,
        }
    }

    async fn handle_event(&self, event: &RecordedEvent) -> Result<(), SeamError> {
        if let Some((_, ev)) = order_event(event)? {
            if order_reactions(&ev).contains(&OrderReaction::ReadFulfillments) {
                return self.fulfillments.ask(&self.ports, &[], &event.meta).await;
            }
        } else if let Some((sku, ev)) = sku_event(event)? {
            if !self.ports.settings.katana.pull_inventory {
                return Ok(());
            }
            for reaction in sku_reactions(&ev) {
                let SkuReaction::ReadStock { only_if_unknown } = reaction else {
                    continue;
                };
                // Demand for a SKU whose stock was never read is read now, so the
                // window it would open has a real ATP to push.
                if only_if_unknown {
                    let (state, _) = self.ports.commands.skus.state(&sku).await?;
                    if state.stock_known() {
                        continue;
                    }
                }
                self.stock
                    .ask(&self.ports, std::slice::from_ref(&sku), &event.meta)
                    .await?;
            }
        }
        Ok(())
    }
}

impl Subscriber for KatanaReader {
    fn name(&self) -> &str {
        subscriber::KATANA_READER
    }

    fn handle<'a>(
        &'a mut self,
        event: &'a RecordedEvent,
    ) -> LocalBoxFuture<'a, Result<(), SeamError>> {
        Box::pin(self.handle_event(event))
    }
}
