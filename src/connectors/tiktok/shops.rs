//! The TikTok shops one instance serves, each with its client and its listings:
//! the primary shop through the client `tks connect` bound, the seller's other
//! shops through clients sharing its tokens. Events name a shop by its key (none
//! for the primary shop, see `domain::allocation`).

use std::path::PathBuf;
use std::sync::Arc;

use super::auth::{TokenStoreError, Tokens};
use super::client::{SellerSession, TikTokClient, TikTokError};
use super::model::AuthorizedShop;
use super::sellers::SellerFiles;
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
    /// How messages name the shop: by its id when one is configured, with its
    /// name once TikTok listed it.
    pub fn label(&self) -> String {
        if self.settings.id.is_empty() {
            return "TikTok".into();
        }
        match self.client.shop().filter(|s| !s.name.is_empty()) {
            Some(shop) => format!("TikTok shop {} ({})", self.settings.id, shop.name),
            None => format!("TikTok shop {}", self.settings.id),
        }
    }
}

/// Every served shop, the primary one first.
pub struct TikTokShops {
    shops: Vec<ShopConnection>,
    sellers: SellerFiles,
}

/// What connecting a seller with an authorisation code did.
pub struct SellerConnected {
    /// The first served shop the code covers (the primary shop when it does).
    pub shop: AuthorizedShop,
    pub tokens: Tokens,
    /// Where the seller's tokens were saved, when in a file.
    pub token_file: Option<PathBuf>,
    /// Each configured shop's id and whether this code covers it.
    pub shops: Vec<(String, bool)>,
}

fn lists(listed: &[AuthorizedShop], shop: &ShopSettings) -> Option<AuthorizedShop> {
    listed
        .iter()
        .find(|l| {
            (!shop.id.is_empty() && l.id == shop.id)
                || (!shop.cipher.is_empty() && l.cipher == shop.cipher)
        })
        .cloned()
}

impl TikTokShops {
    /// The served shops of `settings`: the primary through `primary` and its
    /// catalogue, each other shop through the seller whose authorisation listed
    /// it (a seller connected before several shops were served listed none, and
    /// serves them all), or through no seller yet.
    pub fn new(
        settings: &Settings,
        primary: TikTokClient,
        catalogue: Arc<Catalogue>,
        sellers: SellerFiles,
    ) -> Result<Self, TokenStoreError> {
        let stored: Vec<(Vec<AuthorizedShop>, Arc<SellerSession>)> = sellers
            .load()?
            .into_iter()
            .map(|s| {
                let listed = s.tokens.shops.clone();
                (
                    listed,
                    Arc::new(SellerSession::new(s.store, Some(s.tokens))),
                )
            })
            .collect();
        let primary_listed = primary
            .session()
            .tokens
            .try_lock()
            .ok()
            .and_then(|t| t.as_ref().map(|t| t.shops.clone()))
            .unwrap_or_default();
        let served = settings.served_shops();
        let mut shops = Vec::with_capacity(served.len());
        for (i, shop) in served.into_iter().enumerate() {
            let (key, client, catalogue) = if i == 0 {
                (String::new(), primary.clone(), catalogue.clone())
            } else {
                let of_seller = stored
                    .iter()
                    .find(|(listed, _)| lists(listed, &shop).is_some());
                let client = match of_seller {
                    Some((_, session)) => {
                        primary.with_session(&shop.id, &shop.cipher, session.clone())
                    }
                    None if primary_listed.is_empty()
                        || lists(&primary_listed, &shop).is_some() =>
                    {
                        primary.for_shop(&shop.id, &shop.cipher)
                    }
                    None => primary.detached_for(&shop.id, &shop.cipher),
                };
                (
                    shop.id.clone(),
                    client,
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
        Ok(TikTokShops { shops, sellers })
    }

    pub fn iter(&self) -> impl Iterator<Item = &ShopConnection> {
        self.shops.iter()
    }

    /// The shop of an event key (empty: the primary shop).
    pub fn by_key(&self, key: &str) -> Option<&ShopConnection> {
        self.shops.iter().find(|s| s.key == key)
    }

    fn primary(&self) -> &ShopConnection {
        &self.shops[0]
    }

    /// Connects the seller an authorisation code belongs to (`tks connect tiktok`,
    /// the OAuth callback): the code is exchanged once, the shops it covers
    /// listed, and every served shop among them calls with the new tokens from
    /// now on. The primary shop's seller is kept in the primary token file, any
    /// other in its own. A code that covers no served shop changes nothing.
    pub async fn connect(&self, auth_code: &str) -> Result<SellerConnected, TikTokError> {
        let primary = &self.primary().client;
        let (_, tokens, listed) = primary.authorise(auth_code).await?;
        let covered: Vec<(&ShopConnection, AuthorizedShop)> = self
            .shops
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let found = if i == 0 {
                    primary.pick_shop(listed.clone()).ok()
                } else {
                    lists(&listed, &s.settings)
                };
                found.map(|f| (s, f))
            })
            .collect();
        let Some((first, first_shop)) = covered.first() else {
            return Err(match primary.pick_shop(listed.clone()) {
                Err(e) if self.shops.len() == 1 => e,
                _ => TikTokError::ShopNotAuthorized {
                    wanted: self
                        .shops
                        .iter()
                        .map(|s| s.settings.id.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                    available: listed
                        .iter()
                        .map(|s| format!("{} ({})", s.id, s.name))
                        .collect::<Vec<_>>()
                        .join(", "),
                },
            });
        };
        let mut tokens = tokens;
        tokens.shop = Some(first_shop.clone());
        let (session, token_file) = if first.key.is_empty() {
            primary.install(tokens.clone(), first_shop.clone()).await?;
            let file = match &self.sellers {
                SellerFiles::Beside(path) => Some(path.clone()),
                SellerFiles::InMemory => None,
            };
            (primary.session(), file)
        } else {
            let store = self.sellers.store_of(&tokens.open_id);
            store.save(&tokens)?;
            (
                Arc::new(SellerSession::new(store, Some(tokens.clone()))),
                self.sellers.path_of(&tokens.open_id),
            )
        };
        for (connection, shop) in &covered {
            if !connection.key.is_empty() {
                connection.client.rebind(session.clone());
                connection.client.bind_shop(shop.clone());
            }
        }
        tracing::info!(
            seller = %tokens.seller_name,
            shops = covered.len(),
            "TikTok seller connected"
        );
        Ok(SellerConnected {
            shop: first_shop.clone(),
            tokens,
            token_file,
            shops: self
                .shops
                .iter()
                .filter(|s| !s.settings.id.is_empty())
                .map(|s| {
                    let yes = covered.iter().any(|(c, _)| c.key == s.key);
                    (s.settings.id.clone(), yes)
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::SkuRules;
    use crate::clock::Clock;
    use crate::config::Secret;
    use crate::connectors::tiktok::auth::{FileTokenStore, TokenStore};
    use crate::connectors::tiktok::client::ClientOptions;

    fn shop(id: &str) -> AuthorizedShop {
        AuthorizedShop {
            id: id.into(),
            cipher: format!("cipher-{id}"),
            ..AuthorizedShop::default()
        }
    }

    fn tokens(open_id: &str, shops: &[&str]) -> Tokens {
        Tokens {
            access_token: Secret::new(format!("access-{open_id}")),
            access_token_expire_in: i64::MAX,
            refresh_token: Secret::new("r"),
            refresh_token_expire_in: i64::MAX,
            open_id: open_id.into(),
            seller_name: String::new(),
            shop: shops.first().map(|s| shop(s)),
            shops: shops.iter().map(|s| shop(s)).collect(),
        }
    }

    async fn open_ids(listed_by_primary: &[&str]) -> Vec<Option<String>> {
        let dir = tempfile::tempdir().unwrap();
        let primary_file = dir.path().join("tks.tokens.json");
        let primary_store: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(&primary_file));
        primary_store
            .save(&tokens("one", listed_by_primary))
            .unwrap();
        let files = SellerFiles::Beside(primary_file);
        files.store_of("two").save(&tokens("two", &["C"])).unwrap();
        let settings = Settings::from_toml(
            r#"
            [tiktok]
            app_key = "k"
            app_secret = "s"
            [[shops]]
            id = "A"
            [[shops]]
            id = "B"
            [[shops]]
            id = "C"
            [[shops]]
            id = "D"
            "#,
        )
        .unwrap();
        let primary = TikTokClient::new(
            &settings.primary_tiktok(),
            Clock::real(),
            primary_store,
            ClientOptions::default(),
        )
        .unwrap();
        let catalogue = Arc::new(Catalogue::new(SkuRules::from_settings(&settings.sync)));
        let shops = TikTokShops::new(&settings, primary, catalogue, files).unwrap();
        let mut out = Vec::new();
        for s in shops.iter() {
            out.push(s.client.tokens().await.map(|t| t.open_id));
        }
        out
    }

    #[tokio::test]
    async fn each_shop_calls_with_the_seller_whose_authorisation_listed_it() {
        let some = |s: &str| Some(s.to_string());
        // D is listed by no seller: it waits for its seller to connect.
        assert_eq!(
            open_ids(&["A", "B"]).await,
            [some("one"), some("one"), some("two"), None]
        );
        // A token file from before several shops were served lists no shops: its
        // seller serves every shop no other seller listed.
        assert_eq!(
            open_ids(&[]).await,
            [some("one"), some("one"), some("two"), some("one")]
        );
    }
}
