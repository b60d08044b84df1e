//! Given/when/then helpers and order builders for the domain's rule tests.

use chrono::{DateTime, TimeZone, Utc};

use super::observed::{FulfillmentType, LineUnit, OrderSnapshot, TikTokOrderStatus};
use super::{Aggregate, Ctx, Policy};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

pub fn mins(m: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(m)
}

/// Decide `command` at `now` on the state that `history` folds to.
pub fn given_when<A: Aggregate>(
    history: &[A::Event],
    command: A::Command,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<A::Event>, A::Error> {
    let state: A = super::fold(history);
    state.decide(&command, &Ctx { now, policy })
}

/// Runs commands in order, keeping every accepted event: the live history.
pub fn run<A: Aggregate>(
    commands: Vec<(A::Command, DateTime<Utc>)>,
    policy: &Policy,
) -> (A, Vec<A::Event>) {
    let mut state = A::default();
    let mut history = Vec::new();
    for (cmd, now) in commands {
        if let Ok(events) = state.decide(&cmd, &Ctx { now, policy }) {
            for e in events {
                state.apply(&e);
                history.push(e);
            }
        }
    }
    (state, history)
}

pub fn unit(id: &str, sku: &str) -> LineUnit {
    LineUnit {
        line_item_id: id.to_string(),
        sku_id: format!("sku-id-{sku}"),
        seller_sku: sku.to_string(),
        sale_price: "10.00".to_string(),
        cancelled: false,
        shipped: false,
    }
}

/// An order placed at t0 with the given units, paid and released.
pub fn order(units: &[(&str, &str)]) -> OrderSnapshot {
    OrderSnapshot {
        shop_id: String::new(),
        order_id: "5770001".to_string(),
        status: TikTokOrderStatus::AwaitingShipment,
        fulfillment_type: FulfillmentType::FulfillmentBySeller,
        shipping_type: Default::default(),
        create_time: t0(),
        update_time: t0(),
        currency: "USD".to_string(),
        warehouse_id: Some("WH1".to_string()),
        recipient: Some(super::observed::Address {
            name: "Ada Lovelace".into(),
            line_1: "1 Main St".into(),
            city: "Austin".into(),
            zip: "78701".into(),
            country: "US".into(),
            ..Default::default()
        }),
        buyer_email: None,
        units: units.iter().map(|(id, sku)| unit(id, sku)).collect(),
    }
}

/// The same order as read again at `minute`, changed by `edit`.
pub fn reread(
    snap: &OrderSnapshot,
    minute: i64,
    edit: impl FnOnce(&mut OrderSnapshot),
) -> OrderSnapshot {
    let mut s = snap.clone();
    s.update_time = mins(minute);
    edit(&mut s);
    s
}
