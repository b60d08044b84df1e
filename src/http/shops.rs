//! `GET /api/shops` and the per-shop part of `GET /api/skus/{sku}`: which shops the
//! instance serves, whether each is authorised, and what each is offered.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::ports::ApiPorts;
use crate::domain::sku::Sku;

/// Every served shop, the primary one first.
pub async fn shops(ports: web::Data<ApiPorts>) -> HttpResponse {
    let rules = ports.settings.shop_stock();
    let mut out = Vec::new();
    for shop in ports.settings.served_shops() {
        let key = rules.event_key(&shop.id).to_string();
        let connection = ports.shops.as_ref().and_then(|s| s.by_key(&key));
        let listed = connection.and_then(|c| c.client.shop());
        let tokens = match connection {
            Some(c) => c.client.tokens().await,
            None => None,
        };
        out.push(json!({
            "id": shop.id,
            "primary": key.is_empty(),
            "name": listed.as_ref().map(|s| s.name.clone()),
            "region": listed.as_ref().map(|s| s.region.clone()),
            // Listed by Get Authorized Shops for tokens this instance holds.
            "authorised": listed.is_some() && tokens.is_some(),
            "seller": tokens.as_ref().map(|t| t.seller_name.clone()),
            "access_token_expires_at": tokens.as_ref().map(|t| t.access_token_expire_in),
            "refresh_token_expires_at": tokens.as_ref().map(|t| t.refresh_token_expire_in),
            "pickup_warehouse_id": shop.pickup_warehouse_id,
            "stock_locations": shop.stock_locations(),
            "fbt_location_id": shop.fbt_location_id,
            "order_no_prefix": shop.order_no_prefix,
            "allocation": shop.allocation,
        }));
    }
    HttpResponse::Ok().json(json!({ "shops": out }))
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
