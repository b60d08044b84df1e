//! The service's HTTP surface (actix-web): webhooks from TikTok and Katana, the
//! OAuth callback, the operator API with health and metrics, and the console.

pub mod api;
pub mod errors;
pub mod oauth;
pub mod ports;
pub mod shops;
pub mod webhooks;

use std::net::TcpListener;

use actix_web::dev::Service;
use actix_web::{web, App, HttpServer};

use crate::console::ports::ConsolePorts;
use ports::{ApiPorts, OAuthPorts, WebhookPorts};

/// Webhook bodies above this are refused: neither API sends anything close.
const MAX_BODY: usize = 1024 * 1024;

/// The ports of each handler group, registered as app data of their own.
pub struct Surfaces {
    pub webhooks: WebhookPorts,
    pub api: ApiPorts,
    pub oauth: OAuthPorts,
    pub console: ConsolePorts,
}

pub fn server(
    surfaces: Surfaces,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let request_timeout = surfaces.api.settings.server.request_timeout;
    let webhooks = web::Data::new(surfaces.webhooks);
    let api = web::Data::new(surfaces.api);
    let oauth = web::Data::new(surfaces.oauth);
    let console = web::Data::new(surfaces.console);
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
            .app_data(webhooks.clone())
            .app_data(api.clone())
            .app_data(oauth.clone())
            .app_data(console.clone())
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
