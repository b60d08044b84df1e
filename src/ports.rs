//! The handles the flows are given instead of the whole service: a command
//! dispatcher for orders and SKUs. Each subscriber, poller and handler takes this
//! and the one or two clients it calls, so what a piece can touch is in its type.

use crate::actors::{CommandError, Execute, Registry};
use crate::domain::order::{Order, OrderCommand};
use crate::domain::sku::{Sku, SkuCommand};
use crate::seam::SeamError;
use crate::store::EventMeta;

/// Sends commands to order and SKU aggregates and reads their state.
#[derive(Clone)]
pub struct Commands {
    pub orders: Registry<Order>,
    pub skus: Registry<Sku>,
}

impl Commands {
    pub fn new(orders: Registry<Order>, skus: Registry<Sku>) -> Self {
        Commands { orders, skus }
    }

    /// Runs a command a connector or policy derived from `cause`, optionally moving
    /// a subscriber checkpoint in the same transaction. A command the order no
    /// longer accepts (it moved on meanwhile) is done, not an error.
    pub async fn order_command(
        &self,
        order_id: &str,
        command: OrderCommand,
        cause: &EventMeta,
        checkpoint: Option<(String, u64)>,
    ) -> Result<(), SeamError> {
        let mut msg = Execute::new(command).caused_by(cause);
        msg.checkpoint = checkpoint;
        match self.orders.execute(order_id, msg).await {
            Ok(_) => Ok(()),
            Err(CommandError::Rejected(reason)) => {
                tracing::info!(order_id, %reason, "command no longer applies");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The SKU counterpart of [`Commands::order_command`]; a SKU's refusal is
    /// refused for good.
    pub async fn sku_command(
        &self,
        sku: &str,
        command: SkuCommand,
        cause: &EventMeta,
    ) -> Result<(), SeamError> {
        self.skus
            .execute(sku, Execute::new(command).caused_by(cause))
            .await
            .map(|_| ())
            .map_err(SeamError::from)
    }
}
