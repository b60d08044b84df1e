//! The TikTok session: the access token handed to every call (refreshed ahead of
//! expiry, or once when TikTok answers 105002), the auth-code exchange that binds
//! the authorised shop, and the tokens kept in the `TokenStore` across restarts.

use std::sync::Arc;

use super::auth::{MemoryTokenStore, Tokens};
use super::client::{codes, ApiCall, SellerSession, TikTokClient, TikTokError};
use super::model::{self, AuthorizedShop};
use crate::config::Secret;

impl TikTokClient {
    /// The authorised shop's market (`US`, `GB`, `MY`, …), once the shop was read.
    pub async fn shop_region(&self) -> Option<String> {
        if let Some(shop) = self.shop() {
            return Some(shop.region).filter(|r| !r.is_empty());
        }
        if !self.inner.binds_tokens {
            return None;
        }
        self.session()
            .tokens
            .lock()
            .await
            .as_ref()
            .and_then(|t| t.shop.as_ref())
            .map(|s| s.region.clone())
            .filter(|r| !r.is_empty())
    }

    /// The tokens currently in use (for `tks check` to report expiry; `Debug` redacts them).
    pub async fn tokens(&self) -> Option<Tokens> {
        self.session().tokens.lock().await.clone()
    }

    async fn token_call(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<model::TokenData, TikTokError> {
        let inner = &self.inner;
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let url = format!("{}{}?{}", inner.auth_base, path, qs);
        let data = inner
            .options
            .backoff
            .retry(&inner.clock, |_| {
                let url = url.clone();
                async move {
                    inner.pacer.acquire(&inner.clock).await;
                    let resp = inner
                        .http
                        .get(url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .send()
                        .await
                        .map_err(Self::transport_error)?;
                    Self::read_envelope(resp).await
                }
            })
            .await?;
        Self::decode(data)
    }

    fn tokens_from(data: model::TokenData, shop: Option<AuthorizedShop>) -> Tokens {
        Tokens {
            access_token: Secret::new(data.access_token),
            access_token_expire_in: data.access_token_expire_in,
            refresh_token: Secret::new(data.refresh_token),
            refresh_token_expire_in: data.refresh_token_expire_in,
            open_id: data.open_id,
            seller_name: data.seller_name,
            shop,
            shops: Vec::new(),
        }
    }

    /// The seller session this client calls with now.
    pub(super) fn session(&self) -> Arc<SellerSession> {
        self.inner.session.read().clone()
    }

    /// Calls with `session` from now on (its seller connected, or connected again).
    pub(super) fn rebind(&self, session: Arc<SellerSession>) {
        *self.inner.session.write() = session;
    }

    /// A client of the same app and shop binding with no tokens of its own yet:
    /// what an authorisation code is exchanged with before it is known which
    /// configured shops the code covers.
    pub(super) fn detached(&self) -> TikTokClient {
        self.detached_for(&self.inner.wanted_shop_id, &self.inner.configured_cipher)
    }

    /// A client for the shop `shop_id` of a seller not connected yet: every call
    /// answers `NotConnected` until the seller connects and the client is rebound.
    pub(super) fn detached_for(&self, shop_id: &str, cipher: &str) -> TikTokClient {
        let session = Arc::new(SellerSession::new(
            Arc::new(MemoryTokenStore::default()),
            None,
        ));
        self.with_session(shop_id, cipher, session)
    }

    pub(super) async fn access_token(&self) -> Result<Secret, TikTokError> {
        let session = self.session();
        let mut guard = session.tokens.lock().await;
        let current = guard.clone().ok_or(TikTokError::NotConnected)?;
        let margin = i64::try_from(self.inner.options.refresh_margin.as_secs()).unwrap_or(i64::MAX);
        if current
            .access_token_expire_in
            .saturating_sub(self.inner.clock.unix())
            > margin
        {
            return Ok(current.access_token);
        }
        tracing::info!("access token expires within the refresh margin; refreshing");
        self.refresh_locked(&session, &mut guard).await
    }

    /// Refreshes only if `stale` is still the token in use: another caller may have refreshed
    /// while this one was waiting, and refreshing twice would burn a rotated refresh token.
    pub(super) async fn refresh_if_current(&self, stale: &Secret) -> Result<Secret, TikTokError> {
        let session = self.session();
        let mut guard = session.tokens.lock().await;
        match guard.as_ref() {
            Some(t) if &t.access_token != stale => Ok(t.access_token.clone()),
            _ => self.refresh_locked(&session, &mut guard).await,
        }
    }

    /// Forces a refresh now (e.g. `tks check --refresh`).
    pub async fn refresh(&self) -> Result<(), TikTokError> {
        let session = self.session();
        let mut guard = session.tokens.lock().await;
        self.refresh_locked(&session, &mut guard).await.map(|_| ())
    }

    async fn refresh_locked(
        &self,
        session: &SellerSession,
        guard: &mut Option<Tokens>,
    ) -> Result<Secret, TikTokError> {
        let current = guard.clone().ok_or(TikTokError::NotConnected)?;
        if current.refresh_token_expire_in <= self.inner.clock.unix() {
            return Err(TikTokError::Reauthorize {
                code: None,
                reason: "the refresh token has expired".into(),
            });
        }
        let data = self
            .token_call(
                "/api/v2/token/refresh",
                &[
                    ("app_key", &self.inner.app_key),
                    ("app_secret", self.inner.app_secret.expose()),
                    ("refresh_token", current.refresh_token.expose()),
                    ("grant_type", "refresh_token"),
                ],
            )
            .await
            .map_err(|e| match e {
                TikTokError::Api { code, message, .. } => TikTokError::Reauthorize {
                    code: Some(code),
                    reason: format!("TikTok refused to refresh the access token ({message})"),
                },
                other => other,
            })?;
        let mut fresh = Self::tokens_from(data, current.shop.clone());
        fresh.shops = current.shops.clone();
        if fresh.open_id.is_empty() {
            fresh.open_id = current.open_id.clone();
        }
        // Keep the new pair in memory even if persisting fails: the old refresh token may
        // already be dead, and the caller still learns about the storage failure.
        *guard = Some(fresh.clone());
        session.store.save(&fresh)?;
        tracing::info!(
            expires_at = fresh.access_token_expire_in,
            seller = %fresh.seller_name,
            "access token refreshed"
        );
        Ok(fresh.access_token)
    }

    /// Exchanges an authorisation code for tokens, without binding them to any
    /// shop yet: the caller lists the shops they cover and decides.
    pub(super) async fn exchange_code(&self, auth_code: &str) -> Result<Tokens, TikTokError> {
        if auth_code.trim().is_empty() {
            return Err(TikTokError::InvalidInput("empty authorisation code".into()));
        }
        let data = self
            .token_call(
                "/api/v2/token/get",
                &[
                    ("app_key", &self.inner.app_key),
                    ("app_secret", self.inner.app_secret.expose()),
                    ("auth_code", auth_code.trim()),
                    ("grant_type", "authorized_code"),
                ],
            )
            .await
            .map_err(|e| match e {
                TikTokError::Api { code, message, .. } if code == codes::INVALID_AUTH_CODE => {
                    TikTokError::Reauthorize {
                        code: Some(code),
                        reason: format!(
                            "the authorisation code is invalid, expired or already used ({message})"
                        ),
                    }
                }
                other => other,
            })?;
        if data.user_type != 0 {
            return Err(TikTokError::Reauthorize {
                code: None,
                reason: format!(
                    "the authorising account is not a seller account (user_type {})",
                    data.user_type
                ),
            });
        }
        Ok(Self::tokens_from(data, None))
    }

    /// Exchanges `auth_code` on a detached client and lists the shops it covers;
    /// nothing of this client changes, so a code for another seller never
    /// replaces a working connection.
    pub(super) async fn authorise(
        &self,
        auth_code: &str,
    ) -> Result<(TikTokClient, Tokens, Vec<AuthorizedShop>), TikTokError> {
        let probe = self.detached();
        let mut tokens = probe.exchange_code(auth_code).await?;
        *probe.session().tokens.lock().await = Some(tokens.clone());
        let listed = probe.authorized_shops().await?;
        tokens.shops = listed.clone();
        Ok((probe, tokens, listed))
    }

    /// Exchanges an authorisation code, lists the authorised shops, picks the configured one
    /// (by `shop_id`, else by configured cipher, else the only one) and persists the tokens
    /// bound to that shop.
    pub async fn exchange_auth_code(&self, auth_code: &str) -> Result<AuthorizedShop, TikTokError> {
        let (_, tokens, listed) = self.authorise(auth_code).await?;
        let shop = self.pick_shop(listed)?;
        self.install(tokens, shop.clone()).await?;
        Ok(shop)
    }

    /// Makes `tokens` this client's (and its session's other shops'), bound to `shop`.
    pub(super) async fn install(
        &self,
        mut tokens: Tokens,
        shop: AuthorizedShop,
    ) -> Result<(), TikTokError> {
        tokens.shop = Some(shop.clone());
        let session = self.session();
        {
            let mut guard = session.tokens.lock().await;
            *guard = Some(tokens.clone());
        }
        session.store.save(&tokens)?;
        self.bind_shop(shop);
        Ok(())
    }

    /// Binds the client to `shop` as TikTok listed it (its cipher unless one is configured).
    pub(super) fn bind_shop(&self, shop: AuthorizedShop) {
        if self.inner.configured_cipher.is_empty() || self.inner.binds_tokens {
            *self.inner.shop_cipher.write() = shop.cipher.clone();
        }
        *self.inner.shop.write() = Some(shop);
    }

    /// The authorised shop as last read from TikTok (at connect, or by [`Self::refresh_shop`]).
    pub fn shop(&self) -> Option<AuthorizedShop> {
        self.inner.shop.read().clone()
    }

    /// Lists the authorised shops again and keeps the bound one's details (a seller can
    /// rename the shop) in memory and in the token file. Without a bound shop it picks
    /// one as `tks connect` does.
    pub async fn refresh_shop(&self) -> Result<AuthorizedShop, TikTokError> {
        let shops = self.authorized_shops().await?;
        let bound = self.shop().map(|s| s.id);
        let shop = match bound.and_then(|id| shops.iter().find(|s| s.id == id).cloned()) {
            Some(s) => s,
            None => self.pick_shop(shops)?,
        };
        if self.inner.binds_tokens {
            let session = self.session();
            let mut guard = session.tokens.lock().await;
            if let Some(t) = guard.as_mut().filter(|t| t.shop.as_ref() != Some(&shop)) {
                t.shop = Some(shop.clone());
                session.store.save(t)?;
            }
        }
        if self.inner.configured_cipher.is_empty() {
            *self.inner.shop_cipher.write() = shop.cipher.clone();
        }
        *self.inner.shop.write() = Some(shop.clone());
        Ok(shop)
    }

    pub(super) fn pick_shop(
        &self,
        shops: Vec<AuthorizedShop>,
    ) -> Result<AuthorizedShop, TikTokError> {
        let available = || {
            shops
                .iter()
                .map(|s| format!("{} ({})", s.id, s.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if shops.is_empty() {
            return Err(TikTokError::Reauthorize {
                code: None,
                reason: "the authorisation covers no shop".into(),
            });
        }
        let wanted = &self.inner.wanted_shop_id;
        let cipher = &self.inner.configured_cipher;
        let found = if !wanted.is_empty() {
            shops.iter().find(|s| &s.id == wanted)
        } else if !cipher.is_empty() {
            shops.iter().find(|s| &s.cipher == cipher)
        } else if shops.len() == 1 {
            shops.first()
        } else {
            None
        };
        match found {
            Some(s) => Ok(s.clone()),
            None => Err(TikTokError::ShopNotAuthorized {
                wanted: if wanted.is_empty() {
                    "(set tiktok.shop_id to choose one)".into()
                } else {
                    wanted.clone()
                },
                available: available(),
            }),
        }
    }

    /// `GET /authorization/202309/shops` (never with `shop_cipher`).
    pub async fn authorized_shops(&self) -> Result<Vec<AuthorizedShop>, TikTokError> {
        let data: model::ShopsData = self
            .call(ApiCall::get("/authorization/202309/shops"))
            .await?;
        Ok(data.shops)
    }
}
