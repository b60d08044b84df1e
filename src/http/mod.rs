//! The service's HTTP surface (actix-web): webhooks from TikTok and Katana, the
//! OAuth callback, the operator API with health and metrics, and the console.

pub mod api;
pub mod errors;
pub mod oauth;
pub mod webhooks;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Service;
use actix_web::{web, App, HttpServer};

use crate::app::Services;

/// Webhook bodies above this are refused: neither API sends anything close.
const MAX_BODY: usize = 1024 * 1024;

pub fn server(
    services: Arc<Services>,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let request_timeout = services.settings.server.request_timeout;
    let data = web::Data::from(services);
    Ok(HttpServer::new(move || {
        App::new()
            .wrap_fn(move |req, srv| {
                // Extractors read the body inside this future, so one bound covers a
                // body that stops halfway as well as a handler that hangs.
                let call = srv.call(req);
                async move {
                    match tokio::time::timeout(request_timeout, call).await {
                        Ok(result) => result,
                        Err(_) => Err(actix_web::error::ErrorRequestTimeout(
                            "the request did not arrive in time",
                        )),
                    }
                }
            })
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .configure(webhooks::routes)
            .configure(api::routes)
            .configure(oauth::routes)
            .configure(crate::console::routes)
    })
    .workers(2)
    .client_request_timeout(request_timeout)
    .disable_signals()
    .listen(listener)?
    .run())
}
