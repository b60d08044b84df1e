//! The operator API: health, metrics, orders and SKUs with their events,
//! exceptions, and the per-SKU channel sync toggle.

use actix_web::{web, HttpResponse};

use crate::app::Services;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health));
}

async fn health(services: web::Data<Services>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "log_head": services.store.head(),
    }))
}
