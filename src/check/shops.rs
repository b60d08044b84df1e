//! `tks check` for every `[[shops]]` table after the first: whose seller's
//! authorisation lists the shop, that seller's tokens, and the shop's own
//! warehouses. Its lines are named `shops.<id>.…`; the primary shop keeps the
//! names of a single-shop check.

use std::sync::Arc;

use crate::catalogue::{Catalogue, SkuRules};
use crate::clock::Clock;
use crate::config::Settings;
use crate::connectors::tiktok::auth::{token_file_for, FileTokenStore, TokenStore};
use crate::connectors::tiktok::client::TikTokClient;
use crate::connectors::tiktok::sellers::SellerFiles;
use crate::connectors::tiktok::shops::{ShopConnection, TikTokShops};

use super::report::{CheckReport, Status};
use super::scope::Scope;
use super::tiktok::{check_warehouse, report_tokens, WarehouseRole};
use super::CheckOptions;

/// The lines of every shop but the primary; none for a single-shop instance.
pub(super) async fn tiktok(
    r: &mut CheckReport,
    settings: &Settings,
    clock: Clock,
    options: &CheckOptions,
) {
    if settings.shops.len() < 2 {
        return;
    }
    let primary = settings.primary_tiktok();
    if primary.app_key.is_empty() || primary.app_secret.is_empty() {
        // The primary shop's lines already say the credentials are missing.
        return;
    }
    let path = options
        .token_file
        .clone()
        .unwrap_or_else(|| token_file_for(&settings.store.path));
    let store: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(path.clone()));
    let shops = TikTokClient::new(&primary, clock.clone(), store, options.tiktok_client)
        .map_err(|e| e.to_string())
        .and_then(|client| {
            let catalogue = Arc::new(Catalogue::new(SkuRules::from_settings(&settings.sync)));
            TikTokShops::new(settings, client, catalogue, SellerFiles::Beside(path))
                .map_err(|e| e.to_string())
        });
    let shops = match shops {
        Ok(s) => s,
        Err(e) => {
            r.push(Status::Fail, "shops.tiktok", e);
            return;
        }
    };
    for (i, shop) in shops.iter().enumerate().skip(1) {
        one_shop(r, &Scope::shop(i, &shop.settings.id), shop, clock.unix()).await;
    }
}

async fn one_shop(r: &mut CheckReport, scope: &Scope, shop: &ShopConnection, now: i64) {
    let id = &shop.settings.id;
    let Some(tokens) = shop.client.tokens().await else {
        r.push(
            Status::Fail,
            &scope.check("tiktok.shop"),
            format!(
                "no connected seller's authorisation lists shop {id}: its orders and stock stay unsynced; \
                 have its seller authorise the app and run `tks connect tiktok --auth-code CODE`"
            ),
        );
        return;
    };
    if !report_tokens(r, &scope.check("tiktok.token"), &tokens, now) {
        return;
    }
    match shop.client.refresh_shop().await {
        Ok(listed) => r.push(
            Status::Ok,
            &scope.check("tiktok.shop"),
            format!(
                "{:?} (id {}, region {}), authorised by seller {:?}",
                listed.name, listed.id, listed.region, tokens.seller_name
            ),
        ),
        Err(e) => {
            r.push(
                Status::Fail,
                &scope.check("tiktok.shop"),
                format!(
                    "seller {:?} cannot reach shop {id}: {e}",
                    tokens.seller_name
                ),
            );
            return;
        }
    }
    let warehouses = match shop.client.warehouses().await {
        Ok(w) => w,
        Err(e) => {
            r.push(Status::Fail, &scope.check("tiktok.api"), e.to_string());
            return;
        }
    };
    let w = &shop.settings;
    check_warehouse(
        r,
        scope,
        &warehouses,
        &w.pickup_warehouse_id,
        WarehouseRole::Pickup,
    );
    check_warehouse(
        r,
        scope,
        &warehouses,
        &w.return_warehouse_id,
        WarehouseRole::Return,
    );
}
