//! The flow rules between aggregates and the outside world, as data: what the
//! service does in answer to each recorded event. The connector subscribers
//! perform these reactions against the real APIs; what-if performs the same ones
//! against a simulated world, so a rule changes in one place for both.
//!
//! A reaction names the effect, not how it is done: whether a connector is
//! switched on, which client call it takes and what the answer turns into are the
//! performer's business.

use crate::domain::codec::DomainEvent;
use crate::domain::order::{
    FulfillmentRequested, OrderEvent, ShipmentArranged, Signaller, Source,
    TrackingCorrectionRequested,
};
use crate::domain::sku::SkuEvent;

/// An effect to perform because of an order event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderReaction {
    /// Read the order from TikTok again and observe what it says.
    Reread { source: Source },
    /// Create the requested sales order in Katana.
    CreateSalesOrder,
    /// The buyer cancelled after the SO was pushed: delete or flag it in Katana.
    CancelSalesOrder,
    /// Read the order's Katana fulfillments (Katana signalled a change).
    ReadFulfillments,
    /// Tell every SKU the order ever had how many of its units are not in Katana.
    SyncDemand,
    /// Ship the delivered units on TikTok.
    PushShipment(FulfillmentRequested),
    /// Correct a shipment's tracking on TikTok.
    CorrectTracking(TrackingCorrectionRequested),
    /// Write TikTok's tracking to the Katana fulfillments of an arranged package.
    WriteTrackingToKatana(ShipmentArranged),
}

/// An effect to perform because of a SKU event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkuReaction {
    /// Read the SKU's Katana stock; `only_if_unknown` when it is wanted only
    /// because demand arrived for a SKU whose stock was never read.
    ReadStock { only_if_unknown: bool },
    /// Push this ATP to the shop of this event key (empty: the primary shop).
    PushInventory { atp: i64, shop: String },
    /// The SKU got its Katana variant: orders waiting only for mappings go on.
    RetryBlockedOrders,
}

/// Whether events of this type change the units an order holds back from its
/// SKUs. Decided by type alone so a subscriber can skip decoding the many events
/// that do not (each order event carries a snapshot).
pub fn moves_demand(event_type: &str) -> bool {
    matches!(
        event_type,
        "OrderPlaced"
            | "OrderEdited"
            | "OrderCancelled"
            | "OrderSkipped"
            | "SoCreated"
            | "SoDeleted"
    )
}

/// Whether events of this type ask for a shipment push or a tracking correction
/// on TikTok ([`OrderReaction::PushShipment`], [`OrderReaction::CorrectTracking`]).
/// By type alone, like [`moves_demand`]: the TikTok writer sees every order event
/// and only these two need decoding.
pub fn ships_on_tiktok(event_type: &str) -> bool {
    matches!(
        event_type,
        "FulfillmentRequested" | "TrackingCorrectionRequested"
    )
}

/// What the service does after `event` was recorded on an order.
pub fn order_reactions(event: &OrderEvent) -> Vec<OrderReaction> {
    let mut out = Vec::new();
    match event {
        OrderEvent::OrderSignalled(s) => match s.by {
            Signaller::TikTok => out.push(OrderReaction::Reread {
                source: Source::Webhook,
            }),
            // A new SO has no fulfillments yet, a deleted one none to ship.
            Signaller::Katana
                if !matches!(
                    s.what.as_str(),
                    "sales_order.created" | "sales_order.deleted"
                ) =>
            {
                out.push(OrderReaction::ReadFulfillments)
            }
            _ => {}
        },
        OrderEvent::HoldExpired(_) => out.push(OrderReaction::Reread {
            source: Source::HoldReread,
        }),
        OrderEvent::SoRequested(_) => out.push(OrderReaction::CreateSalesOrder),
        OrderEvent::OrderCancelled(c) if c.after_push => out.push(OrderReaction::CancelSalesOrder),
        OrderEvent::FulfillmentRequested(r) => out.push(OrderReaction::PushShipment(r.clone())),
        OrderEvent::TrackingCorrectionRequested(r) => {
            out.push(OrderReaction::CorrectTracking(r.clone()))
        }
        OrderEvent::ShipmentArranged(a) => {
            out.push(OrderReaction::WriteTrackingToKatana(a.clone()))
        }
        _ => {}
    }
    if moves_demand(event.event_type()) {
        out.push(OrderReaction::SyncDemand);
    }
    // The TikTok writer skips by type what `ships_on_tiktok` does not name: every
    // event of every test run checks that the two agree.
    debug_assert_eq!(
        ships_on_tiktok(event.event_type()),
        out.iter().any(|r| matches!(
            r,
            OrderReaction::PushShipment(_) | OrderReaction::CorrectTracking(_)
        )),
        "ships_on_tiktok disagrees with the reactions of {}",
        event.event_type()
    );
    out
}

/// What the service does after `event` was recorded on a SKU.
pub fn sku_reactions(event: &SkuEvent) -> Vec<SkuReaction> {
    match event {
        SkuEvent::SkuSignalled(_) => vec![SkuReaction::ReadStock {
            only_if_unknown: false,
        }],
        SkuEvent::DemandChanged(_) => vec![SkuReaction::ReadStock {
            only_if_unknown: true,
        }],
        SkuEvent::BufferFlushed(f) => vec![SkuReaction::PushInventory {
            atp: f.atp,
            shop: f.shop.clone(),
        }],
        SkuEvent::SkuMapped(_) => vec![SkuReaction::RetryBlockedOrders],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::{HoldExpired, OrderCancelled, OrderSignalled, SoRequested};
    use crate::domain::sku::{BufferFlushed, DemandChanged, SkuMapped, SkuSignalled};
    use crate::domain::testkit::t0;

    fn signalled(by: Signaller, what: &str) -> OrderEvent {
        OrderEvent::OrderSignalled(OrderSignalled {
            by,
            delivery_id: "d1".into(),
            what: what.into(),
            shop: String::new(),
        })
    }

    #[test]
    fn a_tiktok_signal_and_the_end_of_the_hold_reread_the_order_each_with_its_source() {
        assert_eq!(
            order_reactions(&signalled(Signaller::TikTok, "ORDER_STATUS_CHANGE")),
            vec![OrderReaction::Reread {
                source: Source::Webhook
            }]
        );
        assert_eq!(
            order_reactions(&OrderEvent::HoldExpired(HoldExpired { at: t0() })),
            vec![OrderReaction::Reread {
                source: Source::HoldReread
            }]
        );
    }

    #[test]
    fn katana_signals_read_fulfillments_except_for_a_new_or_deleted_so() {
        for what in ["sales_order.delivered", "sales_order.updated"] {
            assert_eq!(
                order_reactions(&signalled(Signaller::Katana, what)),
                vec![OrderReaction::ReadFulfillments],
                "{what}"
            );
        }
        for what in ["sales_order.created", "sales_order.deleted"] {
            assert!(order_reactions(&signalled(Signaller::Katana, what)).is_empty());
        }
    }

    #[test]
    fn a_requested_so_is_created_and_a_cancellation_reaches_katana_only_after_the_push() {
        let requested = OrderEvent::SoRequested(SoRequested {
            rows: vec![],
            as_done: false,
        });
        assert_eq!(
            order_reactions(&requested),
            vec![OrderReaction::CreateSalesOrder]
        );
        let cancelled = |after_push| OrderEvent::OrderCancelled(OrderCancelled { after_push });
        assert_eq!(
            order_reactions(&cancelled(true)),
            vec![OrderReaction::CancelSalesOrder, OrderReaction::SyncDemand]
        );
        assert_eq!(
            order_reactions(&cancelled(false)),
            vec![OrderReaction::SyncDemand]
        );
    }

    #[test]
    fn sku_events_read_stock_push_the_flushed_atp_and_retry_blocked_orders() {
        let signalled = SkuEvent::SkuSignalled(SkuSignalled {
            delivery_id: "d".into(),
            what: "current_inventory.product_updated".into(),
        });
        assert_eq!(
            sku_reactions(&signalled),
            vec![SkuReaction::ReadStock {
                only_if_unknown: false
            }]
        );
        let demand = SkuEvent::DemandChanged(DemandChanged {
            shop: String::new(),
            order_id: "1".into(),
            units: 2,
        });
        assert_eq!(
            sku_reactions(&demand),
            vec![SkuReaction::ReadStock {
                only_if_unknown: true
            }]
        );
        let flushed = SkuEvent::BufferFlushed(BufferFlushed {
            shop: String::new(),
            atp: 7,
            immediate: false,
        });
        assert_eq!(
            sku_reactions(&flushed),
            vec![SkuReaction::PushInventory {
                atp: 7,
                shop: String::new()
            }]
        );
        let mapped = SkuEvent::SkuMapped(SkuMapped { variant_id: 3 });
        assert_eq!(
            sku_reactions(&mapped),
            vec![SkuReaction::RetryBlockedOrders]
        );
    }
}
