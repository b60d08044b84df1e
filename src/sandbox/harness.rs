//! The service started against both simulators and left as an operator would leave
//! it after `tks connect tiktok`: the one wiring that `tks sandbox`, the benches and
//! the flow tests share.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::app::{self, AppHandle, StartOptions};
use crate::clock::Clock;
use crate::config::Settings;
use crate::connectors::pollers;
use crate::connectors::tiktok::auth::{token_file_for, FileTokenStore};
use crate::connectors::tiktok::client::{ClientOptions, TikTokClient};
use crate::sandbox::katana::{KatanaSim, WEBHOOK_EVENTS};
use crate::sandbox::tiktok::TikTokSim;
use crate::store::SharedStore;

/// How Katana learns where to send its webhooks.
#[derive(Clone, Debug)]
pub enum KatanaWebhook {
    /// The service registers itself at startup (`server.public_url` is set); the
    /// harness waits until it has.
    RegisteredByService,
    /// Added on the simulator before the first event, as an operator would in
    /// Katana's settings, signed with this token.
    AddedByOperator { token: Option<String> },
}

/// The simulators the service talks to.
pub struct Simulators<'a> {
    pub tiktok: &'a TikTokSim,
    pub katana: &'a KatanaSim,
}

/// Authorises the configured TikTok app with a fresh auth code, as `tks connect
/// tiktok --auth-code` does: the service finds the tokens in its token file. An
/// unconfigured app has nothing to connect.
pub async fn connect_tiktok(
    settings: &Settings,
    clock: &Clock,
    tiktok: &TikTokSim,
) -> anyhow::Result<()> {
    if settings.tiktok.app_secret.is_empty() {
        return Ok(());
    }
    let tokens = Arc::new(FileTokenStore::new(token_file_for(&settings.store.path)));
    TikTokClient::new(
        &settings.tiktok,
        clock.clone(),
        tokens,
        ClientOptions::default(),
    )
    .context("building the TikTok client")?
    .exchange_auth_code(&tiktok.issue_auth_code())
    .await
    .context("connecting TikTok with an auth code")?;
    Ok(())
}

/// Connects TikTok, starts the service on `listener`, points both simulators'
/// webhooks at it, and does what the pollers do first thing (map the catalogue,
/// read stock) so the catalogue is mapped before the first order, pollers or not.
pub async fn start_connected(
    settings: Settings,
    clock: &Clock,
    listener: TcpListener,
    options: StartOptions,
    sims: Simulators<'_>,
    katana_webhook: KatanaWebhook,
) -> anyhow::Result<AppHandle> {
    connect_tiktok(&settings, clock, sims.tiktok).await?;
    let app = app::start(settings, clock.clone(), listener, options).await?;
    // TikTok's webhook URL lives in the app's Partner Center settings.
    sims.tiktok
        .set_webhook_url(Some(format!("{}/webhooks/tiktok", app.base_url())));
    match katana_webhook {
        KatanaWebhook::AddedByOperator { token } => {
            sims.katana.add_webhook(
                &format!("{}/webhooks/katana", app.base_url()),
                WEBHOOK_EVENTS,
                token.as_deref(),
            );
        }
        KatanaWebhook::RegisteredByService => {
            if let Err(e) = registered(sims.katana).await {
                app.stop().await;
                return Err(e);
            }
        }
    }
    pollers::refresh_catalogue(&app.services.pollers)
        .await
        .map_err(|e| anyhow::anyhow!("first catalogue refresh: {e}"))?;
    pollers::poll_stock(&app.services.pollers)
        .await
        .map_err(|e| anyhow::anyhow!("first stock read: {e}"))?;
    Ok(app)
}

async fn registered(katana: &KatanaSim) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !katana
        .requests()
        .iter()
        .any(|r| r.method == "POST" && r.path == "/webhooks" && r.status < 300)
    {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the service did not register its Katana webhook");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Every durable subscriber has handled the whole log, and no simulator webhook is
/// still on its way to add to it: nothing is in progress at this instant.
pub fn caught_up(store: &SharedStore, sims: Simulators<'_>) -> bool {
    let head = store.head();
    sims.katana.webhooks_in_flight() == 0
        && sims.tiktok.webhooks_in_flight() == 0
        && crate::names::subscriber::EFFECTS
            .iter()
            .all(|n| store.checkpoint(n).is_ok_and(|c| c >= head))
}
