//! The order aggregate's rules, example by example, and properties over random
//! command sequences.

use super::*;
use crate::domain::modes::FbtMode;
use crate::domain::observed::Quantity;
use crate::domain::observed::{
    FulfillmentType, KatanaFulfillment, OrderSnapshot, ShippingType, TikTokOrderStatus,
};
use crate::domain::reactions::{order_reactions, OrderReaction};
use crate::domain::testkit::*;
use crate::domain::{fold, DomainEvent, Policy};
use crate::domain::{Aggregate, TimerChange};
use proptest::prelude::*;

fn policy() -> Policy {
    Policy::default()
}

fn placed(snap: &OrderSnapshot) -> Vec<OrderEvent> {
    given_when::<Order>(
        &[],
        OrderCommand::observe(snap.clone(), Source::Poll),
        t0(),
        &policy(),
    )
    .unwrap()
}

fn expired(snap: &OrderSnapshot) -> Vec<OrderEvent> {
    let mut h = placed(snap);
    h.extend(given_when::<Order>(&h, OrderCommand::ExpireHold, mins(60), &policy()).unwrap());
    h
}

fn requested_rows(events: &[OrderEvent]) -> Option<Vec<RequestedRow>> {
    events.iter().find_map(|e| match e {
        OrderEvent::SoRequested(r) => Some(r.rows.clone()),
        _ => None,
    })
}

fn created(snap: &OrderSnapshot) -> Vec<OrderEvent> {
    let mut h = expired(snap);
    h.extend(
        given_when::<Order>(
            &h,
            OrderCommand::observe(reread(snap, 60, |_| {}), Source::Poll),
            mins(60),
            &policy(),
        )
        .unwrap(),
    );
    let rows: Vec<CreatedRow> = requested_rows(&h)
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| CreatedRow {
            row_id: 100 + i as i64,
            seller_sku: r.seller_sku.clone(),
            quantity: r.quantity,
        })
        .collect();
    h.extend(
        given_when::<Order>(
            &h,
            OrderCommand::RecordSoCreated {
                so_id: 42,
                order_no: "TT-5770001".into(),
                rows,
            },
            mins(61),
            &policy(),
        )
        .unwrap(),
    );
    h
}

fn fulfillment(id: i64, rows: &[(i64, i64)]) -> KatanaFulfillment {
    KatanaFulfillment {
        fulfillment_id: id,
        status: "DELIVERED".into(),
        tracking_number: Some(format!("1Z{id}")),
        tracking_url: None,
        tracking_carrier: Some("UPS".into()),
        rows: rows
            .iter()
            .map(|(r, q)| (*r, Quantity::from_units(*q)))
            .collect(),
    }
}

#[test]
fn first_observation_places_the_order_and_holds_it_from_create_time() {
    let events = placed(&order(&[("1", "A")]));
    assert!(matches!(&events[..], [OrderEvent::OrderPlaced(p)] if p.hold_until == mins(60)));
    assert_eq!(
        Order::timers(&events[0]),
        vec![TimerChange::Arm {
            kind: crate::domain::TimerKind::Borrowed(HOLD_TIMER),
            due_at: mins(60)
        }]
    );
}

#[test]
fn hold_does_not_expire_before_its_time_and_expires_once() {
    let h = placed(&order(&[("1", "A")]));
    let early = given_when::<Order>(&h, OrderCommand::ExpireHold, mins(59), &policy()).unwrap();
    assert!(early.is_empty());
    let at = given_when::<Order>(&h, OrderCommand::ExpireHold, mins(60), &policy()).unwrap();
    assert!(matches!(&at[..], [OrderEvent::HoldExpired(_)]));
    let mut h2 = h.clone();
    h2.extend(at);
    let again = given_when::<Order>(&h2, OrderCommand::ExpireHold, mins(61), &policy()).unwrap();
    assert!(again.is_empty());
}

#[test]
fn order_is_not_requested_during_the_hold() {
    let snap = order(&[("1", "A")]);
    let h = placed(&snap);
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(
            reread(&snap, 30, |s| {
                s.status = TikTokOrderStatus::AwaitingShipment
            }),
            Source::Poll,
        ),
        mins(30),
        &policy(),
    )
    .unwrap();
    assert!(requested_rows(&e).is_none());
}

#[test]
fn units_are_grouped_by_sku_into_one_row_each() {
    let snap = order(&[("1", "A"), ("2", "A"), ("3", "B")]);
    let h = expired(&snap);
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(reread(&snap, 60, |_| {}), Source::Poll),
        mins(60),
        &policy(),
    )
    .unwrap();
    let rows = requested_rows(&e).expect("requested after the re-read");
    let summary: Vec<(String, u32)> = rows
        .iter()
        .map(|r| (r.seller_sku.clone(), r.quantity))
        .collect();
    assert_eq!(summary, vec![("A".into(), 2), ("B".into(), 1)]);
    assert_eq!(rows[0].price_per_unit, "10.00");
}

#[test]
fn edits_during_the_hold_are_what_gets_requested() {
    let snap = order(&[("1", "A"), ("2", "A"), ("3", "B")]);
    let mut h = placed(&snap);
    let edit = reread(&snap, 20, |s| s.units[1].cancelled = true);
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(edit.clone(), Source::Poll),
        mins(20),
        &policy(),
    )
    .unwrap();
    assert!(
        matches!(&e[..], [OrderEvent::OrderEdited(ed)] if !ed.after_push && ed.changes.iter().any(|c| c.contains("cancelled")))
    );
    h.extend(e);
    h.extend(given_when::<Order>(&h, OrderCommand::ExpireHold, mins(60), &policy()).unwrap());
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(reread(&edit, 60, |_| {}), Source::Poll),
        mins(60),
        &policy(),
    )
    .unwrap();
    let rows = requested_rows(&e).unwrap();
    assert_eq!(rows.iter().map(|r| r.quantity).sum::<u32>(), 2);
}

#[test]
fn cancelled_during_hold_is_never_pushed() {
    let snap = order(&[("1", "A")]);
    let mut h = placed(&snap);
    let cancel = reread(&snap, 10, |s| s.status = TikTokOrderStatus::Cancelled);
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(cancel.clone(), Source::Poll),
        mins(10),
        &policy(),
    )
    .unwrap();
    assert!(e
        .iter()
        .any(|e| matches!(e, OrderEvent::OrderCancelled(c) if !c.after_push)));
    h.extend(e);
    h.extend(given_when::<Order>(&h, OrderCommand::ExpireHold, mins(60), &policy()).unwrap());
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(reread(&cancel, 61, |_| {}), Source::Poll),
        mins(61),
        &policy(),
    )
    .unwrap();
    assert!(requested_rows(&e).is_none());
    assert!(fold::<Order>(&h).pending_units().values().all(|&u| u == 0));
}

#[test]
fn never_pushed_while_tiktok_shows_unpaid_or_on_hold() {
    for status in [TikTokOrderStatus::Unpaid, TikTokOrderStatus::OnHold] {
        let mut snap = order(&[("1", "A")]);
        snap.status = status;
        snap.recipient = None;
        let h = expired(&snap);
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(reread(&snap, 61, |_| {}), Source::Poll),
            mins(61),
            &policy(),
        )
        .unwrap();
        assert!(requested_rows(&e).is_none(), "{status:?}");
        let released = reread(&snap, 90, |s| {
            s.status = TikTokOrderStatus::AwaitingShipment
        });
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(released, Source::Poll),
            mins(90),
            &policy(),
        )
        .unwrap();
        assert!(requested_rows(&e).is_some(), "released later: {status:?}");
    }
}

#[test]
fn fulfilled_by_tiktok_orders_are_skipped_by_default() {
    let mut snap = order(&[("1", "A")]);
    snap.fulfillment_type = FulfillmentType::FulfillmentByTiktok;
    let h = expired(&snap);
    assert!(h.iter().any(|e| matches!(e, OrderEvent::OrderSkipped(_))));
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(
            reread(&snap, 61, |s| s.status = TikTokOrderStatus::InTransit),
            Source::Poll,
        ),
        mins(61),
        &policy(),
    )
    .unwrap();
    assert!(requested_rows(&e).is_none());
}

#[test]
fn fulfilled_by_tiktok_orders_are_recorded_as_done_once_shipped() {
    let policy = Policy {
        fbt_orders: FbtMode::RecordAsDone,
        ..Policy::default()
    };
    let mut snap = order(&[("1", "A")]);
    snap.fulfillment_type = FulfillmentType::FulfillmentByTiktok;
    let (_, h) = crate::domain::testkit::run::<Order>(
        vec![
            (OrderCommand::observe(snap.clone(), Source::Poll), t0()),
            (OrderCommand::ExpireHold, mins(60)),
            (
                OrderCommand::observe(reread(&snap, 60, |_| {}), Source::Poll),
                mins(60),
            ),
        ],
        &policy,
    );
    assert!(requested_rows(&h).is_none(), "not before TikTok ships it");
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(
            reread(&snap, 70, |s| s.status = TikTokOrderStatus::InTransit),
            Source::Poll,
        ),
        mins(70),
        &policy,
    )
    .unwrap();
    assert!(e
        .iter()
        .any(|e| matches!(e, OrderEvent::SoRequested(r) if r.as_done)));
}

#[test]
fn an_unchanged_observation_records_nothing() {
    let snap = order(&[("1", "A")]);
    let h = placed(&snap);
    for _ in 0..5 {
        let e = given_when::<Order>(
            &h,
            OrderCommand::observe(snap.clone(), Source::Poll),
            mins(5),
            &policy(),
        )
        .unwrap();
        assert!(e.is_empty());
    }
}

#[test]
fn an_older_read_does_not_undo_a_newer_one() {
    let snap = order(&[("1", "A")]);
    let mut h = placed(&snap);
    let newer = reread(&snap, 20, |s| {
        s.recipient.as_mut().unwrap().city = "Dallas".into()
    });
    h.extend(
        given_when::<Order>(
            &h,
            OrderCommand::observe(newer, Source::Poll),
            mins(20),
            &policy(),
        )
        .unwrap(),
    );
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(reread(&snap, 10, |_| {}), Source::Poll),
        mins(21),
        &policy(),
    )
    .unwrap();
    assert!(e.is_empty());
}

#[test]
fn one_order_never_gets_a_second_sales_order() {
    let h = created(&order(&[("1", "A")]));
    let same = given_when::<Order>(
        &h,
        OrderCommand::RecordSoCreated {
            so_id: 42,
            order_no: "TT-5770001".into(),
            rows: vec![],
        },
        mins(62),
        &policy(),
    )
    .unwrap();
    assert!(same.is_empty());
    let other = given_when::<Order>(
        &h,
        OrderCommand::RecordSoCreated {
            so_id: 43,
            order_no: "TT-5770001".into(),
            rows: vec![],
        },
        mins(62),
        &policy(),
    );
    assert_eq!(
        other.unwrap_err(),
        OrderError::SecondSalesOrder {
            existing: 42,
            offered: 43
        }
    );
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(reread(&order(&[("1", "A")]), 70, |_| {}), Source::Poll),
        mins(70),
        &policy(),
    )
    .unwrap();
    assert!(requested_rows(&e).is_none());
}

#[test]
fn a_partial_delivery_ships_that_many_units_then_the_rest() {
    let snap = order(&[("1", "A"), ("2", "A")]);
    let mut h = created(&snap);
    let first = given_when::<Order>(
        &h,
        OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
        mins(90),
        &policy(),
    )
    .unwrap();
    let ids: Vec<_> = first
        .iter()
        .filter_map(|e| match e {
            OrderEvent::SoDelivered(d) => Some(d.line_item_ids.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![vec!["1".to_string()]]);
    h.extend(first);
    let again = given_when::<Order>(
        &h,
        OrderCommand::ObserveFulfillments(vec![
            fulfillment(7, &[(100, 1)]),
            fulfillment(8, &[(100, 1)]),
        ]),
        mins(95),
        &policy(),
    )
    .unwrap();
    assert!(
        matches!(&again[..], [OrderEvent::SoDelivered(d), OrderEvent::FulfillmentRequested(r)]
            if d.line_item_ids == vec!["2".to_string()] && d.unmatched_units == 0
                && r.fulfillment_id == 8 && r.line_item_ids == d.line_item_ids && r.tracking_number == "1Z8")
    );
}

#[test]
fn tracking_is_never_requested_while_tiktok_shows_on_hold() {
    let snap = order(&[("1", "A")]);
    let mut h = created(&snap);
    let held = reread(&snap, 70, |s| s.status = TikTokOrderStatus::OnHold);
    h.extend(
        given_when::<Order>(
            &h,
            OrderCommand::observe(held.clone(), Source::Webhook),
            mins(70),
            &policy(),
        )
        .unwrap(),
    );
    let e = given_when::<Order>(
        &h,
        OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
        mins(90),
        &policy(),
    )
    .unwrap();
    assert!(matches!(&e[..], [OrderEvent::SoDelivered(_)]), "{e:?}");
    h.extend(e);
    let released = reread(&held, 95, |s| {
        s.status = TikTokOrderStatus::AwaitingShipment
    });
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(released, Source::Webhook),
        mins(95),
        &policy(),
    )
    .unwrap();
    assert!(e
        .iter()
        .any(|e| matches!(e, OrderEvent::FulfillmentRequested(r) if r.fulfillment_id == 7)));
}

#[test]
fn a_delivery_without_tracking_is_an_exception_until_tracking_appears() {
    let mut h = created(&order(&[("1", "A")]));
    let mut untracked = fulfillment(7, &[(100, 1)]);
    untracked.tracking_number = None;
    let e = given_when::<Order>(
        &h,
        OrderCommand::ObserveFulfillments(vec![untracked.clone()]),
        mins(90),
        &policy(),
    )
    .unwrap();
    assert!(matches!(&e[..], [OrderEvent::ExceptionRaised(x)] if x.key == "missing-tracking-7"));
    h.extend(e);
    let again = given_when::<Order>(
        &h,
        OrderCommand::ObserveFulfillments(vec![untracked]),
        mins(91),
        &policy(),
    )
    .unwrap();
    assert!(again.is_empty(), "raised once");
    let e = given_when::<Order>(
        &h,
        OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
        mins(92),
        &policy(),
    )
    .unwrap();
    assert!(
        matches!(
            &e[..],
            [
                OrderEvent::ExceptionResolved(_),
                OrderEvent::SoDelivered(_),
                OrderEvent::FulfillmentRequested(_)
            ]
        ),
        "{e:?}"
    );
    h.extend(e);
    assert!(fold::<Order>(&h).exceptions.is_empty());
}

#[test]
fn an_unmatched_sku_blocks_the_order_until_a_retry_after_the_mapping() {
    let snap = order(&[("1", "A")]);
    let mut h = expired(&snap);
    h.extend(
        given_when::<Order>(
            &h,
            OrderCommand::observe(reread(&snap, 60, |_| {}), Source::HoldReread),
            mins(60),
            &policy(),
        )
        .unwrap(),
    );
    let e = given_when::<Order>(
        &h,
        OrderCommand::RecordSoBlocked {
            unmatched: vec!["A".into()],
        },
        mins(60),
        &policy(),
    )
    .unwrap();
    assert!(
        matches!(&e[..], [OrderEvent::SoBlocked(_), OrderEvent::ExceptionRaised(x)] if x.key == "unmatched-sku" && x.message.contains('A'))
    );
    h.extend(e);
    assert_eq!(
        fold::<Order>(&h).pending_units().get("A"),
        Some(&1),
        "still holds stock back"
    );
    let e = given_when::<Order>(&h, OrderCommand::RetrySo, mins(70), &policy()).unwrap();
    assert!(matches!(&e[..], [OrderEvent::SoRequested(_)]));
    h.extend(e);
    let e = given_when::<Order>(
        &h,
        OrderCommand::RecordSoCreated {
            so_id: 9,
            order_no: "TT-1".into(),
            rows: vec![],
        },
        mins(71),
        &policy(),
    )
    .unwrap();
    assert!(
        matches!(&e[..], [OrderEvent::SoCreated(_), OrderEvent::ExceptionResolved(x)] if x.key == "unmatched-sku")
    );
}

#[test]
fn a_cancellation_after_the_push_ends_with_the_so_deleted() {
    let snap = order(&[("1", "A")]);
    let mut h = created(&snap);
    h.extend(
        given_when::<Order>(
            &h,
            OrderCommand::observe(
                reread(&snap, 81, |s| s.status = TikTokOrderStatus::Cancelled),
                Source::Webhook,
            ),
            mins(81),
            &policy(),
        )
        .unwrap(),
    );
    let e = given_when::<Order>(&h, OrderCommand::RecordSoDeleted, mins(82), &policy()).unwrap();
    assert!(matches!(&e[..], [OrderEvent::SoDeleted(d)] if d.so_id == 42));
    h.extend(e);
    assert!(
        given_when::<Order>(&h, OrderCommand::RecordSoDeleted, mins(83), &policy())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn version_one_placements_are_read_with_an_unknown_source() {
    let v1 = r#"{"snapshot":{"order_id":"1","status":"AWAITING_SHIPMENT","fulfillment_type":"FULFILLMENT_BY_SELLER","create_time":"2026-01-01T12:00:00Z","update_time":"2026-01-01T12:00:00Z","currency":"USD","warehouse_id":null,"recipient":null,"buyer_email":null,"units":[]},"hold_until":"2026-01-01T13:00:00Z"}"#;
    let e = OrderEvent::decode("OrderPlaced", 1, v1).unwrap();
    assert!(
        matches!(e, OrderEvent::OrderPlaced(p) if p.source == Source::Unknown && p.hold_until == mins(60))
    );
}

#[test]
fn a_fulfillment_is_pushed_once() {
    let mut h = created(&order(&[("1", "A")]));
    h.extend(
        given_when::<Order>(
            &h,
            OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
            mins(90),
            &policy(),
        )
        .unwrap(),
    );
    let cmd = OrderCommand::RecordFulfillmentPushed {
        fulfillment_id: 7,
        with_fulfillment_ids: vec![],
        package_id: "P1".into(),
    };
    let e = given_when::<Order>(&h, cmd.clone(), mins(91), &policy()).unwrap();
    assert_eq!(e.len(), 1);
    h.extend(e);
    assert!(given_when::<Order>(&h, cmd, mins(92), &policy())
        .unwrap()
        .is_empty());
}

fn tiktok_shipping(snap: &OrderSnapshot) -> OrderSnapshot {
    let mut s = snap.clone();
    s.shipping_type = ShippingType::Tiktok;
    s
}

fn then(h: &mut Vec<OrderEvent>, cmd: OrderCommand, at: i64, policy: &Policy) -> Vec<OrderEvent> {
    let e = given_when::<Order>(h, cmd, mins(at), policy).unwrap();
    h.extend(e.clone());
    e
}

#[test]
fn a_packed_tiktok_shipping_order_asks_for_tiktoks_label_without_katana_tracking() {
    let on_packing = Policy {
        arrange_shipment_on: crate::domain::ArrangeShipmentOn::Packed,
        ..policy()
    };
    let mut h = created(&tiktok_shipping(&order(&[("1", "A")])));
    let mut packed = fulfillment(7, &[(100, 1)]);
    packed.status = "PACKED".into();
    packed.tracking_number = None;
    // Not on packing under the default policy.
    let later = given_when::<Order>(
        &h,
        OrderCommand::ObserveFulfillments(vec![packed.clone()]),
        mins(90),
        &policy(),
    )
    .unwrap();
    assert!(later.is_empty(), "{later:?}");
    let e = then(
        &mut h,
        OrderCommand::ObserveFulfillments(vec![packed]),
        90,
        &on_packing,
    );
    assert!(
        matches!(&e[..], [OrderEvent::SoDelivered(_), OrderEvent::FulfillmentRequested(r)] if r.platform_label && r.tracking_number.is_empty()),
        "{e:?}"
    );
    let arranged = ShipmentArranged {
        fulfillment_ids: vec![7],
        package_id: "P1".into(),
        handover_method: "DROP_OFF".into(),
        pickup_slot: None,
        tracking_number: "TT1".into(),
        shipping_provider: "TikTok Shipping".into(),
        label_url: "https://label".into(),
    };
    let e = then(
        &mut h,
        OrderCommand::RecordShipmentArranged(Box::new(arranged.clone())),
        91,
        &on_packing,
    );
    assert!(
        matches!(&e[..], [OrderEvent::ShipmentArranged(_), OrderEvent::FulfillmentPushed(p)] if p.package_id == "P1"),
        "{e:?}"
    );
    let state: Order = crate::domain::fold(&h);
    assert_eq!(
        state.arranged_packages.get("P1").map(String::as_str),
        Some("TT1")
    );
    // TikTok's tracking written back to Katana is not a correction.
    let e = then(
        &mut h,
        OrderCommand::RecordTrackingWritten {
            fulfillment_id: 7,
            tracking_number: "TT1".into(),
        },
        92,
        &on_packing,
    );
    assert!(matches!(&e[..], [OrderEvent::TrackingWrittenToKatana(_)]));
    let mut delivered = fulfillment(7, &[(100, 1)]);
    delivered.tracking_number = Some("TT1".into());
    let e = then(
        &mut h,
        OrderCommand::ObserveFulfillments(vec![delivered]),
        93,
        &on_packing,
    );
    assert!(e.is_empty(), "{e:?}");
    assert!(given_when::<Order>(
        &h,
        OrderCommand::RecordShipmentArranged(Box::new(arranged)),
        mins(94),
        &on_packing
    )
    .map(|e| e.is_empty())
    .unwrap_or(false));
}

#[test]
fn a_deferred_delivery_leaves_with_the_next_one_in_one_package() {
    let mut h = created(&order(&[("1", "A"), ("2", "A")]));
    then(
        &mut h,
        OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
        90,
        &policy(),
    );
    let e = then(
        &mut h,
        OrderCommand::RecordShipmentDeferred {
            fulfillment_id: 7,
            reason: "TikTok will not split".into(),
        },
        91,
        &policy(),
    );
    assert!(
        matches!(&e[..], [OrderEvent::ShipmentDeferred(_), OrderEvent::ExceptionRaised(x)] if x.key == "shipment-deferred-7")
    );
    let again = given_when::<Order>(
        &h,
        OrderCommand::RecordShipmentDeferred {
            fulfillment_id: 7,
            reason: "TikTok will not split".into(),
        },
        mins(92),
        &policy(),
    )
    .unwrap();
    assert!(again.is_empty());
    let e = then(
        &mut h,
        OrderCommand::ObserveFulfillments(vec![
            fulfillment(7, &[(100, 1)]),
            fulfillment(8, &[(100, 1)]),
        ]),
        120,
        &policy(),
    );
    let Some(OrderEvent::FulfillmentRequested(r)) = e.last() else {
        panic!("{e:?}");
    };
    assert_eq!(r.fulfillment_id, 8);
    assert_eq!(r.with_fulfillment_ids, vec![7]);
    assert_eq!(r.line_item_ids.len(), 2);
    let e = then(
        &mut h,
        OrderCommand::RecordFulfillmentPushed {
            fulfillment_id: 8,
            with_fulfillment_ids: vec![7],
            package_id: "P".into(),
        },
        121,
        &policy(),
    );
    assert!(e
        .iter()
        .any(|e| matches!(e, OrderEvent::ExceptionResolved(x) if x.key == "shipment-deferred-7")));
    let state: Order = crate::domain::fold(&h);
    assert!(state
        .deliveries
        .values()
        .all(|d| d.package_id.as_deref() == Some("P")));
}

#[test]
fn changed_tracking_is_corrected_on_tiktok_for_72_hours_then_raised() {
    let mut h = created(&order(&[("1", "A")]));
    then(
        &mut h,
        OrderCommand::ObserveFulfillments(vec![fulfillment(7, &[(100, 1)])]),
        90,
        &policy(),
    );
    then(
        &mut h,
        OrderCommand::RecordFulfillmentPushed {
            fulfillment_id: 7,
            with_fulfillment_ids: vec![],
            package_id: "P".into(),
        },
        91,
        &policy(),
    );
    let mut fixed = fulfillment(7, &[(100, 1)]);
    fixed.tracking_number = Some("1ZFIXED".into());
    let e = then(
        &mut h,
        OrderCommand::ObserveFulfillments(vec![fixed.clone()]),
        100,
        &policy(),
    );
    assert!(
        matches!(&e[..], [OrderEvent::TrackingCorrectionRequested(c)] if c.tracking_number == "1ZFIXED" && c.package_id == "P" && !c.several_packages),
        "{e:?}"
    );
    // Asked once, not on every read.
    let e = then(
        &mut h,
        OrderCommand::ObserveFulfillments(vec![fixed]),
        101,
        &policy(),
    );
    assert!(e.is_empty());
    let mut late = fulfillment(7, &[(100, 1)]);
    late.tracking_number = Some("1ZLATE".into());
    let e = then(
        &mut h,
        OrderCommand::ObserveFulfillments(vec![late]),
        91 + 72 * 60 + 1,
        &policy(),
    );
    assert!(
        matches!(&e[..], [OrderEvent::ExceptionRaised(x)] if x.key == "tracking-correction-7" && x.message.contains("72 h")),
        "{e:?}"
    );
}

#[test]
fn edits_and_cancellations_after_the_push_are_flagged() {
    let snap = order(&[("1", "A")]);
    let h = created(&snap);
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(
            reread(&snap, 80, |s| {
                s.recipient.as_mut().unwrap().zip = "10001".into()
            }),
            Source::Poll,
        ),
        mins(80),
        &policy(),
    )
    .unwrap();
    assert!(
        matches!(&e[..], [OrderEvent::OrderEdited(ed), OrderEvent::ExceptionRaised(x)] if ed.after_push && x.key == "edited-after-push"),
        "{e:?}"
    );
    let e = given_when::<Order>(
        &h,
        OrderCommand::observe(
            reread(&snap, 81, |s| s.status = TikTokOrderStatus::Cancelled),
            Source::Poll,
        ),
        mins(81),
        &policy(),
    )
    .unwrap();
    assert!(e
        .iter()
        .any(|e| matches!(e, OrderEvent::OrderCancelled(c) if c.after_push)));
}

#[test]
fn units_count_as_pending_demand_until_the_sales_order_exists() {
    let snap = order(&[("1", "A"), ("2", "A"), ("3", "B")]);
    let h = expired(&snap);
    let pending = fold::<Order>(&h).pending_units();
    assert_eq!(pending.get("A"), Some(&2));
    assert_eq!(pending.get("B"), Some(&1));
    assert!(fold::<Order>(&created(&snap))
        .pending_units()
        .values()
        .all(|&u| u == 0));
}

#[test]
fn events_round_trip_through_the_codec() {
    for e in created(&order(&[("1", "A"), ("2", "B")])) {
        let back = OrderEvent::decode(e.event_type(), e.version(), &e.encode()).unwrap();
        assert_eq!(back, e);
    }
    assert!(matches!(
        OrderEvent::decode("OrderPlaced", 9, "{}"),
        Err(crate::domain::DecodeError::NewerVersion { .. })
    ));
    assert!(matches!(
        OrderEvent::decode("Nope", 1, "{}"),
        Err(crate::domain::DecodeError::UnknownType(_))
    ));
}

fn arb_command() -> impl Strategy<Value = (OrderCommand, i64)> {
    let units = prop::collection::vec((0..4u8, any::<bool>()), 1..5);
    let status = prop::sample::select(vec![
        TikTokOrderStatus::Unpaid,
        TikTokOrderStatus::OnHold,
        TikTokOrderStatus::AwaitingShipment,
        TikTokOrderStatus::PartiallyShipping,
        TikTokOrderStatus::InTransit,
        TikTokOrderStatus::Cancelled,
    ]);
    prop_oneof![
        (units, status, any::<bool>(), 0..200i64).prop_map(|(units, status, fbt, minute)| {
            let mut s = order(&[]);
            s.status = status;
            s.update_time = mins(minute);
            if fbt {
                s.fulfillment_type = FulfillmentType::FulfillmentByTiktok;
            }
            s.units = units
                .iter()
                .enumerate()
                .map(|(i, (sku, cancelled))| {
                    let mut u = unit(&i.to_string(), &format!("S{sku}"));
                    u.cancelled = *cancelled;
                    u
                })
                .collect();
            (OrderCommand::observe(s, Source::Poll), minute)
        }),
        (0..200i64).prop_map(|m| (OrderCommand::ExpireHold, m)),
        (1..3i64, 0..200i64).prop_map(|(id, m)| (
            OrderCommand::RecordSoCreated {
                so_id: id,
                order_no: "TT-1".into(),
                rows: vec![CreatedRow {
                    row_id: 100,
                    seller_sku: "S0".into(),
                    quantity: 1
                }]
            },
            m
        )),
        (0..200i64).prop_map(|m| (
            OrderCommand::RecordSoCreateFailed {
                reason: "boom".into(),
                retryable: true
            },
            m
        )),
        (1..4i64, 0..3i64, 0..200i64).prop_map(|(id, q, m)| (
            OrderCommand::ObserveFulfillments(vec![fulfillment(id, &[(100, q)])]),
            m
        )),
        (1..4i64, 0..200i64).prop_map(|(id, m)| (
            OrderCommand::RecordFulfillmentPushed {
                fulfillment_id: id,
                with_fulfillment_ids: vec![],
                package_id: format!("P{id}")
            },
            m
        )),
    ]
}

proptest! {
    #[test]
    fn replaying_any_accepted_history_gives_the_live_state(
        cmds in prop::collection::vec(arb_command(), 0..40),
        fbt_done in any::<bool>(),
    ) {
        let policy = Policy { fbt_orders: if fbt_done { FbtMode::RecordAsDone } else { FbtMode::Skip }, ..Policy::default() };
        let (live, history) = run::<Order>(cmds.into_iter().map(|(c, m)| (c, mins(m))).collect(), &policy);
        let decoded: Vec<OrderEvent> = history.iter()
            .map(|e| OrderEvent::decode(e.event_type(), e.version(), &e.encode()).unwrap())
            .collect();
        let mut owned = Order::default();
        for e in decoded.iter().cloned() {
            owned.apply_owned(e);
        }
        prop_assert_eq!(&owned, &live);
        prop_assert_eq!(fold::<Order>(&decoded), live);
    }

    /// The demand policy skips events by type before decoding them: every event
    /// that changes an order's pending units must be of a type it reacts to.
    #[test]
    fn every_event_that_moves_pending_units_asks_for_a_demand_sync(
        cmds in prop::collection::vec(arb_command(), 0..40),
        fbt_done in any::<bool>(),
    ) {
        let policy = Policy { fbt_orders: if fbt_done { FbtMode::RecordAsDone } else { FbtMode::Skip }, ..Policy::default() };
        let (_, history) = run::<Order>(cmds.into_iter().map(|(c, m)| (c, mins(m))).collect(), &policy);
        let mut state = Order::default();
        for e in &history {
            let before = state.pending_units();
            state.apply(e);
            if state.pending_units() != before {
                prop_assert!(
                    order_reactions(e).contains(&OrderReaction::SyncDemand),
                    "{} moved pending units without a demand sync", e.event_type()
                );
            }
        }
    }
}
