//! The TikTok shops one instance serves, each with its client and its listings:
//! the primary shop through the client `tks connect` bound, the seller's other
//! shops through clients sharing its tokens. Events name a shop by its key (none
//! for the primary shop, see `domain::allocation`).

use std::sync::Arc;

use super::client::TikTokClient;
use crate::catalogue::Catalogue;
use crate::config::{Settings, ShopSettings};

/// One served shop.
pub struct ShopConnection {
    /// The key the shop's events carry: empty for the primary shop.
    pub key: String,
    pub settings: ShopSettings,
    pub client: TikTokClient,
    /// The shop's live listings (its TikTok products; Katana's side is shared).
    pub catalogue: Arc<Catalogue>,
}

impl ShopConnection {
    /// How messages name the shop: by its id when one is configured.
    pub fn label(&self) -> String {
        if self.settings.id.is_empty() {
            "TikTok".into()
        } else {
            format!("TikTok shop {}", self.settings.id)
        }
    }
}

/// Every served shop, the primary one first.
pub struct TikTokShops {
    shops: Vec<ShopConnection>,
}

impl TikTokShops {
    /// The served shops of `settings`: the primary through `primary` and its
    /// catalogue, the others through clients of the same seller.
    pub fn new(settings: &Settings, primary: TikTokClient, catalogue: Arc<Catalogue>) -> Self {
        let served = settings.served_shops();
        let mut shops = Vec::with_capacity(served.len());
        for (i, shop) in served.into_iter().enumerate() {
            let (key, client, catalogue) = if i == 0 {
                (String::new(), primary.clone(), catalogue.clone())
            } else {
                (
                    shop.id.clone(),
                    primary.for_shop(&shop.id, &shop.cipher),
                    Arc::new(Catalogue::new(catalogue.rules().clone())),
                )
            };
            shops.push(ShopConnection {
                key,
                settings: shop,
                client,
                catalogue,
            });
        }
        TikTokShops { shops }
    }

    pub fn iter(&self) -> impl Iterator<Item = &ShopConnection> {
        self.shops.iter()
    }

    /// The shop of an event key (empty: the primary shop).
    pub fn by_key(&self, key: &str) -> Option<&ShopConnection> {
        self.shops.iter().find(|s| s.key == key)
    }
}
