//! The TikTok side of the flows, as feed subscribers: the reader re-reads orders
//! when a webhook signals a change or a hold ends; the writer pushes shipments and
//! inventory. Each records what TikTok answered back on the aggregate's stream.

use std::sync::Arc;

use futures::future::LocalBoxFuture;
use std::collections::HashMap;

use super::client::TikTokClient;
use super::market;
use super::model::ShippingProvider;
use super::shipper::{self, Shipped};
use super::shops::ShopConnection;
use crate::actors::policies::{id_of, order_event, sku_event};
use crate::actors::Subscriber;
use crate::connectors::is_retryable;
use crate::connectors::ports::TikTokPorts;
use crate::domain::exceptions::keys;
use crate::domain::order::{
    FulfillmentRequested, Order, OrderCommand, OrderEvent, Source, TrackingCorrectionRequested,
};
use crate::domain::reactions::{
    order_reactions, ships_on_tiktok, sku_reactions, OrderReaction, SkuReaction,
};
use crate::domain::sku::SkuCommand;
use crate::names::subscriber;
use crate::seam::SeamError;
use crate::store::RecordedEvent;

/// Re-reads an order after a TikTok webhook or at the end of its hold.
pub struct TikTokReader {
    ports: Arc<TikTokPorts>,
}

impl TikTokReader {
    pub fn new(ports: Arc<TikTokPorts>) -> Self {
        TikTokReader { ports }
    }

    async fn handle_event(&self, event: &RecordedEvent) -> Result<(), SeamError> {
        let Some((order_id, ev)) = order_event(event)? else {
            return Ok(());
        };
        if !self.ports.settings.tiktok.pull_orders {
            return Ok(());
        }
        for reaction in order_reactions(&ev) {
            if let OrderReaction::Reread { source } = reaction {
                let shop = match &ev {
                    OrderEvent::OrderSignalled(s) => s.shop.clone(),
                    _ => self.shop_of(&order_id).await?,
                };
                self.reread(&order_id, &shop, source, event).await?;
            }
        }
        Ok(())
    }

    /// The event key of the shop the order was placed in (empty: the primary).
    async fn shop_of(&self, order_id: &str) -> Result<String, SeamError> {
        let (order, _) = self.ports.commands.orders.state(order_id).await?;
        Ok(order.snapshot.map(|s| s.shop_id).unwrap_or_default())
    }

    async fn reread(
        &self,
        order_id: &str,
        shop: &str,
        source: Source,
        event: &RecordedEvent,
    ) -> Result<(), SeamError> {
        let order_id = order_id.to_string();
        let Some(connection) = self.ports.shops.by_key(shop) else {
            return Err(SeamError::Refused(format!(
                "order {order_id} belongs to shop {shop}, which this instance does not serve"
            )));
        };
        let result = connection
            .client
            .get_order_snapshots(std::slice::from_ref(&order_id))
            .await;
        self.ports
            .metrics
            .tiktok_call(&connection.settings.id, "get_order", result.is_ok());
        match result {
            Ok(snapshots) => {
                for mut snapshot in snapshots.into_iter().filter(|s| s.order_id == order_id) {
                    snapshot.shop_id = shop.to_string();
                    let checkpoint = Some((self.name().to_string(), event.position));
                    self.ports
                        .commands
                        .order_command(
                            &order_id,
                            OrderCommand::observe(snapshot, source),
                            &event.meta,
                            checkpoint,
                        )
                        .await?;
                }
                Ok(())
            }
            Err(e) if is_retryable(&e) => Err(SeamError::Retry(format!(
                "re-reading order {order_id}: {e}"
            ))),
            Err(e) => {
                self.ports
                    .commands
                    .order_command(
                        &order_id,
                        OrderCommand::RaiseException {
                            key: keys::TIKTOK_READ.into(),
                            message: format!(
                                "{} refused to return the order: {e}",
                                connection.label()
                            ),
                        },
                        &event.meta,
                        None,
                    )
                    .await
            }
        }
    }
}

impl Subscriber for TikTokReader {
    fn name(&self) -> &str {
        subscriber::TIKTOK_READER
    }

    fn handle<'a>(
        &'a mut self,
        event: &'a RecordedEvent,
    ) -> LocalBoxFuture<'a, Result<(), SeamError>> {
        Box::pin(self.handle_event(event))
    }
}

/// Pushes shipments (F7-F9) and inventory (F10-F12) to TikTok.
pub struct TikTokWriter {
    ports: Arc<TikTokPorts>,
    /// Each shop's providers, read once: they belong to its pickup warehouse.
    providers: tokio::sync::Mutex<HashMap<String, Arc<Vec<ShippingProvider>>>>,
}

impl TikTokWriter {
    pub fn new(ports: Arc<TikTokPorts>) -> Self {
        TikTokWriter {
            ports,
            providers: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The shipping providers of the shop's pickup warehouse's seller-shipping options.
    async fn providers(&self, shop: &ShopConnection) -> Result<Arc<Vec<ShippingProvider>>, String> {
        let mut cached = self.providers.lock().await;
        if let Some(p) = cached.get(&shop.key) {
            return Ok(p.clone());
        }
        let read =
            Arc::new(shipping_providers(&shop.client, &shop.settings.pickup_warehouse_id).await?);
        cached.insert(shop.key.clone(), read.clone());
        Ok(read)
    }

    /// The connection of the shop an order was placed in.
    async fn shop_of(&self, order_id: &str) -> Result<&ShopConnection, SeamError> {
        let (order, _) = self.ports.commands.orders.state(order_id).await?;
        let key = order.snapshot.map(|s| s.shop_id).unwrap_or_default();
        self.ports.shops.by_key(&key).ok_or_else(|| {
            SeamError::Refused(format!(
                "order {order_id} belongs to shop {key}, which this instance does not serve"
            ))
        })
    }

    /// F8: TikTok's provider list by name, then the `[carriers]` table, then its
    /// `default` entry.
    async fn provider_for(
        &self,
        shop: &ShopConnection,
        carrier: Option<&str>,
    ) -> Result<Option<String>, String> {
        let carriers = &self.ports.settings.carriers;
        let name = carrier.unwrap_or("").trim();
        if !name.is_empty() {
            let providers = self.providers(shop).await?;
            if let Some(p) = providers.iter().find(|p| p.name.eq_ignore_ascii_case(name)) {
                return Ok(Some(p.id.clone()));
            }
            if let Some((_, id)) = carriers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
                return Ok(Some(id.clone()));
            }
        }
        Ok(carriers.get("default").cloned())
    }

    /// The provider of a Katana fulfillment's carrier, or `None` once an exception
    /// under `key` says which carrier needs a `[carriers]` entry.
    async fn provider_or_raise(
        &self,
        shop: &ShopConnection,
        order_id: &str,
        fulfillment_id: i64,
        carrier: Option<&str>,
        key: &str,
        event: &RecordedEvent,
    ) -> Result<Option<String>, SeamError> {
        if let Some(provider) = self.provider_for(shop, carrier).await? {
            return Ok(Some(provider));
        }
        let message = format!(
            "carrier {:?} of Katana fulfillment {fulfillment_id} matches no TikTok shipping provider; add it under [carriers]",
            carrier.unwrap_or("")
        );
        let raise = OrderCommand::RaiseException {
            key: key.to_string(),
            message,
        };
        self.ports
            .commands
            .order_command(order_id, raise, &event.meta, None)
            .await?;
        Ok(None)
    }

    async fn push_fulfillment(
        &self,
        order_id: &str,
        req: &FulfillmentRequested,
        event: &RecordedEvent,
    ) -> Result<(), SeamError> {
        let key = keys::fulfillment_rejected(req.fulfillment_id);
        let raise = |message: String| OrderCommand::RaiseException {
            key: key.clone(),
            message,
        };
        let shop = self.shop_of(order_id).await?;
        let tiktok = &shop.client;
        let all_ids: Vec<i64> = std::iter::once(req.fulfillment_id)
            .chain(req.with_fulfillment_ids.iter().copied())
            .collect();
        let region = tiktok.shop_region().await;
        let (result, call) = if req.platform_label {
            let handover = self.ports.settings.tiktok.handover_method;
            let now = self.ports.clock.now();
            (
                shipper::arrange(tiktok, order_id, all_ids, &req.line_item_ids, handover, now)
                    .await,
                "ship_package",
            )
        } else {
            let carrier = req.carrier.as_deref();
            let Some(provider) = self
                .provider_or_raise(shop, order_id, req.fulfillment_id, carrier, &key, event)
                .await?
            else {
                return Ok(());
            };
            if market::offers_mark_package_shipped(region.as_deref()) {
                let shipped = tiktok
                    .mark_package_shipped(
                        order_id,
                        &req.line_item_ids,
                        &req.tracking_number,
                        &provider,
                    )
                    .await
                    .map(|s| Shipped::Pushed {
                        package_id: s.package_id,
                    });
                (shipped, "mark_package_shipped")
            } else {
                (
                    shipper::self_ship(
                        tiktok,
                        order_id,
                        &req.line_item_ids,
                        &req.tracking_number,
                        &provider,
                    )
                    .await,
                    "ship_package",
                )
            }
        };
        self.ports
            .metrics
            .tiktok_call(&shop.settings.id, call, result.is_ok());
        let checkpoint = Some((self.name().to_string(), event.position));
        let command = match result {
            Ok(Shipped::Pushed { package_id }) => {
                self.ports.metrics.pushed("fulfillment");
                OrderCommand::RecordFulfillmentPushed {
                    fulfillment_id: req.fulfillment_id,
                    with_fulfillment_ids: req.with_fulfillment_ids.clone(),
                    package_id,
                }
            }
            Ok(Shipped::Arranged(arranged)) => {
                self.ports.metrics.pushed("fulfillment");
                OrderCommand::RecordShipmentArranged(arranged)
            }
            Ok(Shipped::Deferred(reason)) => OrderCommand::RecordShipmentDeferred {
                fulfillment_id: req.fulfillment_id,
                reason,
            },
            Err(e) if is_retryable(&e) => {
                return Err(SeamError::Retry(format!("shipping order {order_id}: {e}")))
            }
            Err(e) => {
                let message = format!("TikTok refused the shipment: {e}");
                return self
                    .ports
                    .commands
                    .order_command(order_id, raise(message), &event.meta, None)
                    .await;
            }
        };
        self.ports
            .commands
            .order_command(order_id, command, &event.meta, checkpoint)
            .await
    }

    /// F27: Katana's tracking changed after the shipment reached TikTok.
    async fn correct_tracking(
        &self,
        order_id: &str,
        req: &TrackingCorrectionRequested,
        event: &RecordedEvent,
    ) -> Result<(), SeamError> {
        let key = keys::tracking_correction(req.fulfillment_id);
        let raise = |message: String| OrderCommand::RaiseException {
            key: key.clone(),
            message,
        };
        let carrier = req.carrier.as_deref();
        let shop = self.shop_of(order_id).await?;
        let Some(provider) = self
            .provider_or_raise(shop, order_id, req.fulfillment_id, carrier, &key, event)
            .await?
        else {
            return Ok(());
        };
        let tiktok = &shop.client;
        let package = req
            .several_packages
            .then(|| req.package_id.split(',').next().unwrap_or_default());
        let result = tiktok
            .update_shipping_info(order_id, package, &req.tracking_number, &provider)
            .await;
        self.ports
            .metrics
            .tiktok_call(&shop.settings.id, "update_shipping_info", result.is_ok());
        match result {
            Ok(()) => {
                self.ports
                    .commands
                    .order_command(
                        order_id,
                        OrderCommand::RecordTrackingCorrected {
                            fulfillment_id: req.fulfillment_id,
                            tracking_number: req.tracking_number.clone(),
                            carrier: req.carrier.clone(),
                        },
                        &event.meta,
                        Some((self.name().to_string(), event.position)),
                    )
                    .await
            }
            Err(e) if is_retryable(&e) => Err(SeamError::Retry(format!(
                "correcting the tracking of order {order_id}: {e}"
            ))),
            Err(e) => {
                let message = format!("TikTok refused the tracking correction: {e}");
                self.ports
                    .commands
                    .order_command(order_id, raise(message), &event.meta, None)
                    .await
            }
        }
    }

    /// F10 to every live listing of the SKU (F28): TikTok takes each product's
    /// inventory in its own call. The push counts only when every listing took it.
    async fn push_inventory(
        &self,
        sku: &str,
        atp: i64,
        shop: &str,
        event: &RecordedEvent,
    ) -> Result<(), SeamError> {
        let raise = |message: String| SkuCommand::RaiseException {
            key: keys::inventory_rejected(shop),
            message,
        };
        let refuse = |message: String| {
            self.ports
                .commands
                .sku_command(sku, raise(message), &event.meta)
        };
        let Some(connection) = self.ports.shops.by_key(shop) else {
            return Err(SeamError::Refused(format!(
                "inventory of {sku} for shop {shop}, which this instance does not serve"
            )));
        };
        let tiktok = &connection.client;
        let catalogue = &connection.catalogue;
        let mut listings = catalogue.tiktok_listings(sku);
        if listings.is_empty() {
            let fresh = tiktok.catalogue().await;
            self.ports.metrics.tiktok_call(
                &connection.settings.id,
                "search_products",
                fresh.is_ok(),
            );
            match fresh {
                Ok(entries) => {
                    catalogue.set_tiktok(entries);
                    listings = catalogue.tiktok_listings(sku);
                }
                Err(e) if is_retryable(&e) => return Err(SeamError::Retry(e.to_string())),
                Err(e) => {
                    let message = format!(
                        "{} refused to list its products, so {sku}'s quantity was not pushed: {e}",
                        connection.label()
                    );
                    return refuse(message).await;
                }
            }
        }
        if listings.is_empty() {
            if self.ports.shops.iter().nth(1).is_some() {
                // Of several shops each sells what it lists: a SKU this one does not
                // list is not its to offer, and an exception per SKU a shop does not
                // carry would bury the ones an operator must see.
                tracing::debug!(%sku, shop = %connection.settings.id, "not listed in this shop: nothing to push");
                return Ok(());
            }
            let message = format!(
                "SKU {sku} has no live (ACTIVATE) listing in {}",
                connection.label()
            );
            return refuse(message).await;
        }
        let warehouse = &connection.settings.pickup_warehouse_id;
        let mut refusals = Vec::new();
        for listing in &listings {
            let result = tiktok
                .update_inventory(&listing.product_id, &listing.sku_id, warehouse, atp)
                .await;
            self.ports.metrics.tiktok_call(
                &connection.settings.id,
                "update_inventory",
                result.is_ok(),
            );
            match result {
                Ok(outcome) if outcome.is_ok() => {}
                Ok(outcome) => refusals.push(format!(
                    "product {}: {}",
                    listing.product_id,
                    outcome
                        .sku_errors
                        .iter()
                        .map(|e| format!("{e:?}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                // Quantities are absolute: pushing the listings that took it again
                // on the retry changes nothing.
                Err(e) if is_retryable(&e) => {
                    return Err(SeamError::Retry(format!(
                        "pushing inventory of {sku} to product {}: {e}",
                        listing.product_id
                    )))
                }
                Err(e) => refusals.push(format!("product {}: {e}", listing.product_id)),
            }
        }
        if !refusals.is_empty() {
            let message = format!(
                "{} refused the quantity: {}",
                connection.label(),
                refusals.join(" | ")
            );
            return refuse(message).await;
        }
        self.ports.metrics.pushed("inventory");
        self.ports
            .commands
            .sku_command(
                sku,
                SkuCommand::RecordInventoryPushed {
                    quantity: atp,
                    shop: shop.to_string(),
                },
                &event.meta,
            )
            .await
    }

    async fn handle_event(&self, event: &RecordedEvent) -> Result<(), SeamError> {
        // Most order events ask nothing of this writer; decoding each (an order
        // snapshot apiece) would only be thrown away.
        if id_of::<Order>(&event.stream).is_some() && !ships_on_tiktok(&event.event_type) {
            return Ok(());
        }
        if let Some((order_id, ev)) = order_event(event)? {
            if !self.ports.settings.tiktok.push_fulfillment {
                return Ok(());
            }
            for reaction in order_reactions(&ev) {
                match reaction {
                    OrderReaction::PushShipment(req) => {
                        self.push_fulfillment(&order_id, &req, event).await?
                    }
                    OrderReaction::CorrectTracking(req) => {
                        self.correct_tracking(&order_id, &req, event).await?
                    }
                    _ => {}
                }
            }
        } else if let Some((sku, ev)) = sku_event(event)? {
            if !self.ports.settings.tiktok.push_inventory {
                return Ok(());
            }
            for reaction in sku_reactions(&ev) {
                if let SkuReaction::PushInventory { atp, shop } = reaction {
                    self.push_inventory(&sku, atp, &shop, event).await?;
                }
            }
        }
        Ok(())
    }
}

impl Subscriber for TikTokWriter {
    fn name(&self) -> &str {
        subscriber::TIKTOK_WRITER
    }

    fn handle<'a>(
        &'a mut self,
        event: &'a RecordedEvent,
    ) -> LocalBoxFuture<'a, Result<(), SeamError>> {
        Box::pin(self.handle_event(event))
    }
}

/// Providers of every seller-shipping delivery option of a warehouse.
pub async fn shipping_providers(
    tiktok: &TikTokClient,
    warehouse_id: &str,
) -> Result<Vec<ShippingProvider>, String> {
    let options = tiktok
        .delivery_options(warehouse_id)
        .await
        .map_err(|e| format!("delivery options of warehouse {warehouse_id}: {e}"))?;
    let mut out = Vec::new();
    for o in options.iter().filter(|o| o.option_type == "SEND_BY_SELLER") {
        out.extend(
            tiktok
                .shipping_providers(&o.id)
                .await
                .map_err(|e| format!("shipping providers of option {}: {e}", o.id))?,
        );
    }
    Ok(out)
}
