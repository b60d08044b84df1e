//! The TikTok simulator's shipping models over signed HTTP: TikTok-label and seller shipping,
//! markets without Mark Package As Shipped, handover slots, shipping documents, Update
//! Shipping Info and splits.

use std::time::Duration;

use serde_json::{json, Value};

use tks::domain::observed::TikTokOrderStatus;
use tks::sandbox::tiktok::{
    sim_codes, NewOrder, SimConfig, TIKTOK_PROVIDER_ID, TIKTOK_PROVIDER_NAME,
};

use crate::tiktok::{api_code, code, env_with, Env, Raw};

const MPAS: &str = "/fulfillment/202309/orders/{}/packages";
const UPS: &str = "7117858858072016601";
const USPS: &str = "7117858858072016600";

async fn call(
    e: &Env,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> Value {
    let mut r = Raw::new(e, method, path);
    r.query = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    r.body = body.map(|b| b.to_string());
    r.send().await.1
}

fn order(items: &[(&str, u32)], shipping_type: &str) -> NewOrder {
    let mut o = NewOrder::of(items, TikTokOrderStatus::AwaitingShipment);
    o.shipping_type = Some(shipping_type.into());
    o
}

async fn wire(e: &Env, id: &str) -> Value {
    let v = call(e, "GET", "/order/202309/orders", &[("ids", id)], None).await;
    v["data"]["orders"][0].clone()
}

async fn ship(e: &Env, package: &str, body: Value) -> Value {
    call(
        e,
        "POST",
        &format!("/fulfillment/202309/packages/{package}/ship"),
        &[],
        Some(body),
    )
    .await
}

async fn document(e: &Env, package: &str, query: &[(&str, &str)]) -> Value {
    call(
        e,
        "GET",
        &format!("/fulfillment/202309/packages/{package}/shipping_documents"),
        query,
        None,
    )
    .await
}

#[tokio::test]
async fn tiktok_shipping_order_has_a_package_from_the_start_and_ships_with_a_tiktok_label() {
    let e = env_with(SimConfig::demo()).await;
    let o = e
        .sim
        .create_order(order(&[("MUG-RED", 2)], "TIKTOK"))
        .unwrap();
    let w = wire(&e, &o.id).await;
    assert_eq!(w["shipping_type"], "TIKTOK");
    let packages = w["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 1);
    let pkg = packages[0]["id"].as_str().unwrap().to_string();
    for li in w["line_items"].as_array().unwrap() {
        assert_eq!(li["package_id"], pkg.as_str());
        assert_eq!(li["package_status"], "TO_FULFILL");
        assert!(li.get("tracking_number").is_none());
        assert_eq!(li["display_status"], "AWAITING_SHIPMENT");
    }
    let snap = &e
        .client
        .get_order_snapshots(std::slice::from_ref(&o.id))
        .await
        .unwrap()[0];
    assert!(
        snap.units.iter().all(|u| !u.shipped),
        "a package is not a shipment"
    );

    // Mark Package As Shipped is for the seller's own carrier.
    let ids: Vec<String> = o.units.iter().map(|u| u.id.clone()).collect();
    let refused = e.client.mark_package_shipped(&o.id, &ids, "1Z", UPS).await;
    assert_eq!(api_code(refused), sim_codes::ORDER_NOT_SHIPPABLE);
    let refused = e
        .client
        .mark_package_shipped(&o.id, &ids, "1Z", TIKTOK_PROVIDER_ID)
        .await;
    assert_eq!(
        api_code(refused),
        sim_codes::ORDER_NOT_SHIPPABLE,
        "refused for the label, not the provider"
    );
    assert_eq!(e.sim.calls("POST", MPAS), 2, "the attempts are counted");

    // Nothing to print, and no tracking to fix, before the shipment is arranged.
    let v = document(&e, &pkg, &[("document_type", "SHIPPING_LABEL")]).await;
    assert_eq!(code(&v), sim_codes::DOCUMENT_NOT_READY);
    let v = call(
        &e,
        "POST",
        &format!("/fulfillment/202309/packages/{pkg}/shipping_info/update"),
        &[],
        Some(json!({"tracking_number": "1Z", "shipping_provider_id": UPS})),
    )
    .await;
    assert_eq!(code(&v), sim_codes::SHIPPING_MODE_MISMATCH);

    let v = call(
        &e,
        "GET",
        &format!("/fulfillment/202309/packages/{pkg}/handover_time_slots"),
        &[],
        None,
    )
    .await;
    assert_eq!(code(&v), 0, "{v}");
    let d = &v["data"];
    assert_eq!(d["can_pickup"], true);
    assert_eq!(d["can_drop_off"], true);
    assert!(d["drop_off_point_url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    let slots = d["pickup_slots"].as_array().unwrap();
    assert_eq!(slots.len(), 4);
    assert!(slots.iter().all(|s| s["avaliable"] == true));
    let now = e.manual.now().timestamp();
    let first = slots[0].clone();
    assert!(first["start_time"].as_i64().unwrap() > now);
    assert_eq!(
        first["end_time"].as_i64().unwrap() - first["start_time"].as_i64().unwrap(),
        3 * 3600
    );
    let slot = json!({"start_time": first["start_time"], "end_time": first["end_time"]});

    let refusals = [
        (
            json!({"self_shipment": {"tracking_number": "1Z", "shipping_provider_id": UPS}}),
            sim_codes::SHIPPING_MODE_MISMATCH,
        ),
        (json!({}), sim_codes::SHIPPING_MODE_MISMATCH),
        (
            json!({"handover_method": "PICKUP"}),
            sim_codes::PICKUP_SLOT_INVALID,
        ),
        (
            json!({"handover_method": "PICKUP", "pickup_slot": {"start_time": now + 60, "end_time": now + 3600}}),
            sim_codes::PICKUP_SLOT_INVALID,
        ),
        (json!({"handover_method": "COURIER"}), 36009004),
        (
            json!({"handover_method": "PICKUP", "pickup_slot": slot, "note": "x"}),
            36009004,
        ),
    ];
    for (body, want) in refusals {
        assert_eq!(code(&ship(&e, &pkg, body.clone()).await), want, "{body}");
    }
    assert!(e.sim.shipments().is_empty());

    let v = ship(
        &e,
        &pkg,
        json!({"handover_method": "PICKUP", "pickup_slot": slot}),
    )
    .await;
    assert_eq!(code(&v), 0, "{v}");
    assert_eq!(v["data"], json!({}));
    let w = wire(&e, &o.id).await;
    assert_eq!(w["status"], "AWAITING_COLLECTION");
    let tracking = w["line_items"][0]["tracking_number"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tracking.starts_with("TT"), "{tracking}");
    for li in w["line_items"].as_array().unwrap() {
        assert_eq!(li["package_status"], "PROCESSING");
        assert_eq!(li["tracking_number"], tracking.as_str());
        assert_eq!(li["shipping_provider_id"], TIKTOK_PROVIDER_ID);
        assert_eq!(li["shipping_provider_name"], TIKTOK_PROVIDER_NAME);
    }
    let shipments = e.sim.shipments();
    assert_eq!(shipments.len(), 1);
    assert_eq!(shipments[0].method, "tiktok_label");
    assert_eq!(shipments[0].handover_method.as_deref(), Some("PICKUP"));
    assert_eq!(shipments[0].package_id, pkg);
    assert_eq!(shipments[0].line_item_ids, ids);
    let packages = e.sim.order_packages(&o.id);
    assert_eq!(packages[0].status, "PROCESSING");
    assert_eq!(
        packages[0].pickup_slot.as_ref().unwrap().start_time,
        first["start_time"].as_i64().unwrap()
    );
    assert_eq!(
        code(&ship(&e, &pkg, json!({"handover_method": "DROP_OFF"})).await),
        sim_codes::PACKAGE_NOT_SHIPPABLE,
        "a package ships once"
    );
    let snap = &e
        .client
        .get_order_snapshots(std::slice::from_ref(&o.id))
        .await
        .unwrap()[0];
    assert!(snap.units.iter().all(|u| u.shipped));

    // Shipping documents: validated, fresh URL per call, 24 h of sim clock.
    let v = document(&e, &pkg, &[("document_type", "INVOICE")]).await;
    assert_eq!(code(&v), 36009004);
    let v = document(
        &e,
        &pkg,
        &[("document_type", "SHIPPING_LABEL"), ("document_size", "A4")],
    )
    .await;
    assert_eq!(code(&v), 36009004);
    let v = document(&e, &pkg, &[]).await;
    assert_eq!(code(&v), 36009004, "document_type is required");
    let v = document(
        &e,
        &pkg,
        &[("document_type", "SHIPPING_LABEL"), ("document_size", "A6")],
    )
    .await;
    assert_eq!(code(&v), 0, "{v}");
    assert_eq!(v["data"]["tracking_number"], tracking.as_str());
    let url = v["data"]["doc_url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/_sim/labels/", e.sim.base_url())),
        "{url}"
    );
    let again = document(
        &e,
        &pkg,
        &[("document_type", "SHIPPING_LABEL_AND_PACKING_SLIP")],
    )
    .await;
    let url2 = again["data"]["doc_url"].as_str().unwrap().to_string();
    assert_ne!(url, url2, "every call issues a fresh URL");
    let (st, body) = e.sim.fetch_label(&url).await.unwrap();
    assert_eq!(st, 200);
    assert!(body.starts_with(b"%PDF"));
    let url3 = e.sim.issue_label(&pkg).unwrap();
    assert_eq!(e.sim.fetch_label(&url3).await.unwrap().0, 200);
    assert_eq!(e.sim.labels().len(), 3);
    e.manual.advance(Duration::from_secs(24 * 3600 - 1));
    assert_eq!(e.sim.fetch_label(&url).await.unwrap().0, 200);
    e.manual.advance(Duration::from_secs(1));
    assert_eq!(e.sim.fetch_label(&url).await.unwrap().0, 410);
    e.sim.stop().await;
}

#[tokio::test]
async fn outside_mpas_markets_seller_orders_ship_their_package_by_self_shipment() {
    let e = env_with(SimConfig::demo().with_region("MY")).await;
    let o = e
        .sim
        .create_order(order(&[("CAP-1", 1), ("MUG-RED", 1)], "SELLER"))
        .unwrap();
    let w = wire(&e, &o.id).await;
    assert_eq!(w["shipping_type"], "SELLER");
    let pkg = w["packages"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(w["line_items"][1]["package_id"], pkg.as_str());

    let ids: Vec<String> = o.units.iter().map(|u| u.id.clone()).collect();
    let refused = e.client.mark_package_shipped(&o.id, &ids, "1Z", UPS).await;
    match refused {
        Err(tks::connectors::tiktok::TikTokError::Api { code, message, .. }) => {
            assert_eq!(code, sim_codes::ORDER_NOT_SHIPPABLE);
            assert!(message.contains("MY"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let v = call(
        &e,
        "GET",
        &format!("/fulfillment/202309/packages/{pkg}/handover_time_slots"),
        &[],
        None,
    )
    .await;
    assert_eq!(code(&v), sim_codes::SHIPPING_MODE_MISMATCH);
    let refusals = [
        (
            json!({"handover_method": "DROP_OFF"}),
            sim_codes::SHIPPING_MODE_MISMATCH,
        ),
        (json!({}), sim_codes::SHIPPING_MODE_MISMATCH),
        (
            json!({"self_shipment": {"tracking_number": "1Z", "shipping_provider_id": TIKTOK_PROVIDER_ID}}),
            sim_codes::PROVIDER_INVALID,
        ),
        (
            json!({"self_shipment": {"tracking_number": "1Z", "shipping_provider_id": UPS, "carrier": "UPS"}}),
            36009004,
        ),
    ];
    for (body, want) in refusals {
        assert_eq!(code(&ship(&e, &pkg, body.clone()).await), want, "{body}");
    }
    assert_eq!(
        code(&ship(&e, "1156000000000000999", json!({})).await),
        sim_codes::PACKAGE_NOT_FOUND
    );

    let held = e
        .sim
        .create_order(NewOrder::of(&[("CAP-1", 1)], TikTokOrderStatus::OnHold))
        .unwrap();
    let held_pkg = e.sim.order_packages(&held.id)[0].id.clone();
    let v = ship(
        &e,
        &held_pkg,
        json!({"self_shipment": {"tracking_number": "1Z", "shipping_provider_id": UPS}}),
    )
    .await;
    assert_eq!(
        code(&v),
        sim_codes::ORDER_NOT_SHIPPABLE,
        "not while ON_HOLD"
    );
    let v = ship(
        &e,
        &pkg,
        json!({"self_shipment": {"tracking_number": "1ZMY", "shipping_provider_id": UPS}}),
    )
    .await;
    assert_eq!(code(&v), 0, "{v}");
    let w = wire(&e, &o.id).await;
    assert_eq!(w["status"], "AWAITING_COLLECTION");
    assert_eq!(w["line_items"][0]["tracking_number"], "1ZMY");
    assert_eq!(w["line_items"][0]["shipping_provider_name"], "UPS");
    let s = &e.sim.shipments()[0];
    assert_eq!(
        (s.method.as_str(), s.handover_method.as_deref()),
        ("self_shipment", None)
    );
    assert_eq!(s.tracking_number, "1ZMY");
    let v = document(&e, &pkg, &[("document_type", "SHIPPING_LABEL")]).await;
    assert_eq!(
        code(&v),
        sim_codes::SHIPPING_MODE_MISMATCH,
        "no TikTok label for a seller package"
    );

    // Tracking can be corrected for 72 hours.
    e.manual.advance(Duration::from_secs(71 * 3600));
    let v = call(
        &e,
        "POST",
        &format!("/fulfillment/202309/orders/{}/shipping_info/update", o.id),
        &[],
        Some(json!({"tracking_number": "1ZFIX", "shipping_provider_id": USPS})),
    )
    .await;
    assert_eq!(code(&v), 0, "{v}");
    let w = wire(&e, &o.id).await;
    assert_eq!(w["line_items"][1]["tracking_number"], "1ZFIX");
    assert_eq!(w["line_items"][1]["shipping_provider_name"], "USPS");
    let updates = e.sim.tracking_updates();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].previous_tracking_number.as_deref(), Some("1ZMY"));
    assert_eq!(
        (updates[0].via.as_str(), updates[0].package_id.as_str()),
        ("order", pkg.as_str())
    );
    e.manual.advance(Duration::from_secs(3600 + 1));
    let v = call(
        &e,
        "POST",
        &format!("/fulfillment/202309/packages/{pkg}/shipping_info/update"),
        &[],
        Some(json!({"tracking_number": "1ZLATE", "shipping_provider_id": UPS})),
    )
    .await;
    assert_eq!(code(&v), sim_codes::SHIPPING_INFO_LOCKED);
    assert!(v["message"].as_str().unwrap().contains("72 hours"));
    assert_eq!(e.sim.tracking_updates().len(), 1);
    assert_eq!(
        e.sim.calls("POST", "/fulfillment/202309/packages/{}/ship"),
        7
    );
    e.sim.stop().await;
}

#[tokio::test]
async fn seller_orders_in_mpas_markets_keep_mark_package_as_shipped() {
    // TikTok reports the UK as GB; both spellings are MPAS markets.
    let e = env_with(SimConfig::demo().with_region("UK")).await;
    let shops = e.client.authorized_shops().await.unwrap();
    assert_eq!(shops[0].region, "GB");
    let o = e
        .sim
        .create_order(order(&[("MUG-RED", 2)], "SELLER"))
        .unwrap();
    let w = wire(&e, &o.id).await;
    assert_eq!(
        w["packages"],
        json!([]),
        "no package before Mark Package As Shipped"
    );
    assert!(w["line_items"][0].get("package_id").is_none());
    let v = call(
        &e,
        "GET",
        "/fulfillment/202309/orders/split_attributes",
        &[("order_ids", o.id.as_str())],
        None,
    )
    .await;
    assert_eq!(v["data"]["split_attributes"][0]["can_split"], false);

    for (i, u) in o.units.iter().enumerate() {
        e.client
            .mark_package_shipped(&o.id, std::slice::from_ref(&u.id), &format!("1Z{i}"), UPS)
            .await
            .unwrap();
    }
    let s = e.sim.shipments();
    assert!(s.iter().all(|s| s.method == "mark_shipped"));
    let v = call(
        &e,
        "POST",
        &format!("/fulfillment/202309/orders/{}/shipping_info/update", o.id),
        &[],
        Some(json!({"tracking_number": "1ZX", "shipping_provider_id": UPS})),
    )
    .await;
    assert_eq!(code(&v), sim_codes::MULTIPLE_PACKAGES);
    assert!(v["message"].as_str().unwrap().contains("package-level"));
    let v = call(
        &e,
        "POST",
        &format!(
            "/fulfillment/202309/packages/{}/shipping_info/update",
            s[1].package_id
        ),
        &[],
        Some(json!({"tracking_number": "1ZX", "shipping_provider_id": UPS, "carrier": "UPS"})),
    )
    .await;
    assert_eq!(code(&v), 36009004, "strict body");
    let v = call(
        &e,
        "POST",
        &format!(
            "/fulfillment/202309/packages/{}/shipping_info/update",
            s[1].package_id
        ),
        &[],
        Some(json!({"tracking_number": "1ZX", "shipping_provider_id": UPS})),
    )
    .await;
    assert_eq!(code(&v), 0, "{v}");
    let w = wire(&e, &o.id).await;
    assert_eq!(w["line_items"][0]["tracking_number"], "1Z0");
    assert_eq!(w["line_items"][1]["tracking_number"], "1ZX");
    assert_eq!(e.sim.tracking_updates()[0].via, "package");
    e.sim.stop().await;
}

#[tokio::test]
async fn orders_split_into_one_package_per_group() {
    let e = env_with(SimConfig::demo()).await;
    let a = e
        .sim
        .create_order(order(&[("MUG-RED", 2), ("CAP-1", 1)], "TIKTOK"))
        .unwrap();
    let mut fixed = order(&[("MUG-RED", 2)], "TIKTOK");
    fixed.splittable = Some(false);
    let b = e.sim.create_order(fixed).unwrap();
    let c = e
        .sim
        .create_order(order(&[("CAP-1", 1)], "TIKTOK"))
        .unwrap();
    let ids = format!("{},{},{}", a.id, b.id, c.id);
    let v = call(
        &e,
        "GET",
        "/fulfillment/202309/orders/split_attributes",
        &[("order_ids", ids.as_str())],
        None,
    )
    .await;
    assert_eq!(code(&v), 0, "{v}");
    let attrs = v["data"]["split_attributes"].as_array().unwrap();
    assert_eq!(
        attrs
            .iter()
            .map(|x| x["can_split"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        vec![true, false, false]
    );
    assert_eq!(attrs[0]["order_id"], a.id.as_str());
    assert_eq!(attrs[0]["must_split"], false);
    assert_eq!(attrs[0]["must_split_reasons"], json!([]));
    assert!(!attrs[1]["reason"].as_str().unwrap().is_empty());
    assert!(!attrs[2]["reason"].as_str().unwrap().is_empty());

    let split = |order: String, groups: Value| {
        let e = &e;
        async move {
            call(
                e,
                "POST",
                &format!("/fulfillment/202309/orders/{order}/split"),
                &[],
                Some(json!({ "splittable_groups": groups })),
            )
            .await
        }
    };
    let u: Vec<String> = a.units.iter().map(|u| u.id.clone()).collect();
    let bu: Vec<String> = b.units.iter().map(|u| u.id.clone()).collect();
    let v = split(b.id.clone(), json!([{"id": "1", "order_line_item_ids": [bu[0]]}, {"id": "2", "order_line_item_ids": [bu[1]]}])).await;
    assert_eq!(code(&v), sim_codes::SPLIT_NOT_ALLOWED);
    let bad = [
        json!([{"id": "1", "order_line_item_ids": u}]),
        json!([{"id": "1", "order_line_item_ids": [u[0]]}, {"id": "2", "order_line_item_ids": [u[1]]}]),
        json!([{"id": "1", "order_line_item_ids": [u[0], u[1]]}, {"id": "2", "order_line_item_ids": [u[1], u[2]]}]),
        json!([{"id": "1", "order_line_item_ids": u}, {"id": "2", "order_line_item_ids": []}]),
        json!([{"id": "1", "order_line_item_ids": [u[0], u[1]]}, {"id": "2", "order_line_item_ids": [u[2], bu[0]]}]),
    ];
    for groups in bad {
        assert_eq!(
            code(&split(a.id.clone(), groups.clone()).await),
            sim_codes::SPLIT_GROUPS_INVALID,
            "{groups}"
        );
    }
    let old = e.sim.order_packages(&a.id)[0].id.clone();
    // Nothing listens here: the attempt is still logged with its notification type.
    e.sim
        .set_webhook_url(Some("http://127.0.0.1:9/hook".into()));
    let v = split(
        a.id.clone(),
        json!([{"id": "mugs", "order_line_item_ids": [u[0], u[1]]}, {"id": "cap", "order_line_item_ids": [u[2]]}]),
    )
    .await;
    assert_eq!(code(&v), 0, "{v}");
    let created = v["data"]["packages"].as_array().unwrap();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0]["splittable_group_id"], "mugs");
    assert_eq!(created[1]["splittable_group_id"], "cap");
    let packages = e.sim.order_packages(&a.id);
    assert_eq!(packages.len(), 2);
    assert!(packages
        .iter()
        .all(|p| p.id != old && p.status == "TO_FULFILL"));
    assert_eq!(packages[0].id, created[0]["id"].as_str().unwrap());
    assert_eq!(packages[0].line_item_ids, u[..2].to_vec());
    assert_eq!(packages[1].line_item_ids, u[2..].to_vec());
    let mut tries = 0;
    while !e.sim.webhook_attempts().iter().any(|w| w.kind == 4) {
        tries += 1;
        assert!(tries < 500, "a PACKAGE_UPDATE notification is sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    e.sim.set_webhook_url(None);
    let w = wire(&e, &a.id).await;
    assert_eq!(w["split_or_combine_tag"], "SPLIT");
    assert_eq!(w["packages"].as_array().unwrap().len(), 2);
    assert_eq!(
        code(&ship(&e, &old, json!({"handover_method": "DROP_OFF"})).await),
        sim_codes::PACKAGE_NOT_FOUND
    );

    let v = ship(&e, &packages[1].id, json!({"handover_method": "DROP_OFF"})).await;
    assert_eq!(code(&v), 0, "{v}");
    assert_eq!(wire(&e, &a.id).await["status"], "PARTIALLY_SHIPPING");
    let v = ship(&e, &packages[0].id, json!({"handover_method": "DROP_OFF"})).await;
    assert_eq!(code(&v), 0, "{v}");
    assert_eq!(wire(&e, &a.id).await["status"], "AWAITING_COLLECTION");
    let s = e.sim.shipments();
    assert_eq!(s.len(), 2);
    assert_ne!(s[0].tracking_number, s[1].tracking_number);
    assert_eq!(
        e.sim.calls("POST", MPAS),
        0,
        "no Mark Package As Shipped attempted"
    );

    // The same read-backs as JSON under /_sim.
    let ctl = |p: &str| format!("{}/_sim{p}", e.sim.base_url());
    let get = |url: String| async move {
        reqwest::get(url)
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let pk = get(ctl(&format!("/orders/{}/packages", a.id))).await;
    assert_eq!(pk.as_array().unwrap().len(), 2);
    assert_eq!(pk[0]["status"], "PROCESSING");
    assert_eq!(pk[0]["handover_method"], "DROP_OFF");
    let calls = get(ctl("/calls")).await;
    assert_eq!(calls["POST /fulfillment/202309/packages/{}/ship"], 3);
    assert_eq!(calls["POST /fulfillment/202309/orders/{}/split"], 7);
    let shipments = get(ctl("/shipments")).await;
    assert_eq!(shipments[0]["method"], "tiktok_label");
    assert_eq!(get(ctl("/tracking_updates")).await, json!([]));
    assert_eq!(get(ctl("/labels")).await, json!([]));
    let mut new = json!({"items": [{"sku": "CAP-1", "quantity": 2}], "status": "AWAITING_SHIPMENT", "shipping_type": "TIKTOK", "splittable": false});
    let made: Value = reqwest::Client::new()
        .post(ctl("/orders"))
        .json(&new)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(made["shipping_type"], "TIKTOK");
    assert_eq!(made["packages"].as_array().unwrap().len(), 1);
    new["shipping_type"] = json!("CARRIER_PIGEON");
    let st = reqwest::Client::new()
        .post(ctl("/orders"))
        .json(&new)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st.as_u16(), 400);
    e.sim.stop().await;
}
