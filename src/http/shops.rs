//! `GET /api/shops` and the per-shop part of `GET /api/skus/{sku}`: which shops the
//! instance serves, whether each is authorised with fit warehouses, its orders and
//! exceptions, and what each is offered.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::ports::ApiPorts;
use crate::config::ShopSettings;
use crate::connectors::tiktok::model::Warehouse;
use crate::connectors::tiktok::shops::ShopConnection;
use crate::domain::sku::Sku;
use crate::metrics::Metrics;

/// Every served shop, the primary one first.
pub async fn shops(ports: web::Data<ApiPorts>) -> HttpResponse {
    let rules = ports.settings.shop_stock();
    let served = ports.settings.served_shops();
    let described = served.iter().map(|shop| {
        let key = rules.event_key(&shop.id).to_string();
        let connection = ports.shops.as_ref().and_then(|s| s.by_key(&key));
        describe(&ports, shop, key.is_empty(), connection)
    });
    let out: Vec<Value> = futures::future::join_all(described).await;
    HttpResponse::Ok().json(json!({ "shops": out }))
}

async fn describe(
    ports: &ApiPorts,
    shop: &ShopSettings,
    primary: bool,
    connection: Option<&ShopConnection>,
) -> Value {
    let listed = connection.and_then(|c| c.client.shop());
    let tokens = match connection {
        Some(c) => c.client.tokens().await,
        None => None,
    };
    let authorised = listed.is_some() && tokens.is_some();
    // Read live: a warehouse the seller disabled in Seller Center since the last
    // start shows here at once.
    let warehouses = match connection.filter(|_| authorised) {
        Some(c) => c.client.warehouses().await.map_err(|e| e.to_string()),
        None => Err("the shop is not authorised".to_string()),
    };
    let counts = ports.metrics.shop_counts(Metrics::shop_label(&shop.id));
    json!({
        "id": shop.id,
        "primary": primary,
        "name": listed.as_ref().map(|s| s.name.clone()),
        "region": listed.as_ref().map(|s| s.region.clone()),
        // Listed by Get Authorized Shops for tokens this instance holds.
        "authorised": authorised,
        "seller": tokens.as_ref().map(|t| t.seller_name.clone()),
        "access_token_expires_at": tokens.as_ref().map(|t| t.access_token_expire_in),
        "refresh_token_expires_at": tokens.as_ref().map(|t| t.refresh_token_expire_in),
        "pickup_warehouse_id": shop.pickup_warehouse_id,
        "return_warehouse_id": shop.return_warehouse_id,
        "warehouses": {
            "pickup": fitness(&warehouses, &shop.pickup_warehouse_id, "SALES_WAREHOUSE"),
            "return": fitness(&warehouses, &shop.return_warehouse_id, "RETURN_WAREHOUSE"),
        },
        "stock_locations": shop.stock_locations(),
        "fbt_location_id": shop.fbt_location_id,
        "order_no_prefix": shop.order_no_prefix,
        "allocation": shop.allocation,
        "orders": counts.orders,
        "orders_by_state": counts.orders_by_state,
        "open_exceptions": counts.open_exceptions,
        "tiktok_calls": { "ok": counts.tiktok_calls_ok, "failed": counts.tiktok_calls_failed },
    })
}

/// Whether the configured warehouse `id` is one the shop lists and can serve as
/// a `wanted` one; `valid` is null when the shop's warehouses could not be read.
fn fitness(listed: &Result<Vec<Warehouse>, String>, id: &str, wanted: &str) -> Value {
    let problems = match listed {
        Err(e) => return json!({ "id": id, "valid": null, "problem": e }),
        Ok(_) if id.is_empty() => vec!["is not configured".to_string()],
        Ok(all) => match all.iter().find(|w| w.id == id) {
            Some(found) => found.unfit_for(wanted),
            None => vec!["is not a warehouse of this shop".to_string()],
        },
    };
    json!({
        "id": id,
        "valid": problems.is_empty(),
        "problem": (!problems.is_empty()).then(|| problems.join(" and ")),
    })
}

/// What each shop is offered of a SKU: its pool, its allocated value, its buffer.
pub fn sku_offers(ports: &ApiPorts, state: &Sku) -> Vec<Value> {
    let rules = ports.settings.shop_stock();
    let safety = ports.settings.sync.safety_stock;
    rules
        .iter()
        .zip(rules.keys())
        .map(|(shop, key)| {
            let buffer = state.buffer(key);
            json!({
                "shop_id": shop.shop_id,
                "pool": state.pool(&rules, key, safety),
                "offered": state.offer(&rules, key, safety),
                "buffer_due": buffer.buffer_due,
                "last_flushed": buffer.last_flushed,
                "last_pushed": buffer.last_pushed,
            })
        })
        .collect()
}
