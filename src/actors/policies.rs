//! Subscribers that turn one aggregate's events into commands for another.

use futures::future::LocalBoxFuture;

use super::{Execute, Subscriber};
use crate::domain::allocation::Shops;
use crate::domain::order::{Order, OrderEvent};
use crate::domain::reactions::{moves_demand, order_reactions, OrderReaction};
use crate::domain::sku::{Sku, SkuCommand, SkuEvent};
use crate::domain::{Aggregate, DomainEvent};
use crate::names::subscriber;
use crate::ports::Commands;
use crate::seam::SeamError;
use crate::store::RecordedEvent;

/// The aggregate id of an order or SKU stream (`order-123` -> `123`).
pub fn id_of<A: Aggregate>(stream: &str) -> Option<&str> {
    stream
        .strip_prefix(A::STREAM_PREFIX)
        .and_then(|rest| rest.strip_prefix('-'))
}

/// An order event for observers that may look past what they cannot read (a
/// progress display); a subscriber acting on the log uses [`order_event`].
pub fn decode_order(e: &RecordedEvent) -> Option<(String, OrderEvent)> {
    order_event(e).ok().flatten()
}

/// The SKU counterpart of [`decode_order`].
pub fn decode_sku(e: &RecordedEvent) -> Option<(String, SkuEvent)> {
    sku_event(e).ok().flatten()
}

/// The order event at `e`, `None` on another aggregate's stream. An order event
/// this build cannot decode is a bug: skipping it would move the subscriber's
/// checkpoint past an effect it never performed.
pub fn order_event(e: &RecordedEvent) -> Result<Option<(String, OrderEvent)>, SeamError> {
    decoded::<Order, OrderEvent>(e)
}

/// The SKU counterpart of [`order_event`].
pub fn sku_event(e: &RecordedEvent) -> Result<Option<(String, SkuEvent)>, SeamError> {
    decoded::<Sku, SkuEvent>(e)
}

fn decoded<A: Aggregate, E: DomainEvent>(
    e: &RecordedEvent,
) -> Result<Option<(String, E)>, SeamError> {
    let Some(id) = id_of::<A>(&e.stream) else {
        return Ok(None);
    };
    match E::decode(&e.event_type, e.version, &e.payload) {
        Ok(ev) => Ok(Some((id.to_string(), ev))),
        Err(error) => Err(SeamError::undecodable(e, &error)),
    }
}

/// Units sold on TikTok but not yet in Katana hold stock back from the ATP pushed
/// to TikTok (F10): whenever an order's pending units may have changed, each SKU it
/// ever had is told the order's current count.
pub struct DemandPolicy {
    commands: Commands,
    shops: Shops,
}

impl DemandPolicy {
    pub fn new(commands: Commands, shops: Shops) -> Self {
        DemandPolicy { commands, shops }
    }

    async fn handle_event(&self, event: &RecordedEvent) -> Result<(), SeamError> {
        // By type first: most events do not move demand, and decoding them (an
        // order snapshot each) would only be thrown away.
        if !moves_demand(&event.event_type) {
            return Ok(());
        }
        let Some((order_id, ev)) = order_event(event)? else {
            return Ok(());
        };
        for reaction in order_reactions(&ev) {
            if reaction == OrderReaction::SyncDemand {
                self.sync_demand(&order_id, event).await?;
            }
        }
        Ok(())
    }

    async fn sync_demand(&self, order_id: &str, event: &RecordedEvent) -> Result<(), SeamError> {
        let (order, _) = self.commands.orders.state(order_id).await?;
        let shop_id = order.snapshot.as_ref().map_or("", |s| s.shop_id.as_str());
        let shop = self.shops.event_key(shop_id);
        for (sku, units) in order.pending_units() {
            let msg = Execute::new(SkuCommand::SetDemand {
                order_id: order_id.to_string(),
                units,
                shop: shop.to_string(),
            })
            .caused_by(&event.meta);
            self.commands.skus.execute(&sku, msg).await?;
        }
        Ok(())
    }
}

impl Subscriber for DemandPolicy {
    fn name(&self) -> &str {
        subscriber::DEMAND_POLICY
    }

    fn handle<'a>(
        &'a mut self,
        event: &'a RecordedEvent,
    ) -> LocalBoxFuture<'a, Result<(), SeamError>> {
        Box::pin(self.handle_event(event))
    }
}
