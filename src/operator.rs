//! Operator commands shared by the CLI and the HTTP API: the open-exception list
//! (`tks exceptions`, `GET /api/exceptions`) and connecting a TikTok shop with an
//! authorisation code (`tks connect tiktok`, the OAuth callback).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::catalogue::{Catalogue, SkuRules};
use crate::clock::Clock;
use crate::config::Settings;
use crate::connectors::tiktok::auth::token_file_for;
use crate::connectors::tiktok::auth::{FileTokenStore, TokenStore};
use crate::connectors::tiktok::client::{ClientOptions, TikTokClient, TikTokError};
use crate::connectors::tiktok::model::AuthorizedShop;
use crate::connectors::tiktok::sellers::SellerFiles;
use crate::connectors::tiktok::shops::{SellerConnected, TikTokShops};
use crate::names::lookup;
use crate::store::{EventStore, LookupEntry, StoreError};

/// One open exception, as the lookup index holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpenException {
    /// The stream it was raised on, e.g. `order-576...` or `sku-MUG-RED`.
    pub stream: String,
    /// `order` or `sku` (the stream's aggregate).
    pub kind: String,
    /// The order id or seller SKU.
    pub id: String,
    /// Stable per cause within the stream, e.g. `unmatched-sku`.
    pub key: String,
    pub message: String,
}

impl OpenException {
    /// Splits an index entry (`<stream>#<key>` -> message). Exception keys never
    /// contain `#`, while a seller SKU (part of the stream name) may, so the split is
    /// at the last one.
    fn from_entry(entry: LookupEntry) -> OpenException {
        let (stream, key) = match entry.key.rsplit_once('#') {
            Some((s, k)) => (s.to_string(), k.to_string()),
            None => (entry.key.clone(), String::new()),
        };
        let (kind, id) = match stream.split_once('-') {
            Some((k, i)) => (k.to_string(), i.to_string()),
            None => (String::new(), stream.clone()),
        };
        OpenException {
            stream,
            kind,
            id,
            key,
            message: entry.value,
        }
    }
}

/// Every open exception, sorted by stream and key.
pub fn open_exceptions(store: &dyn EventStore) -> Result<Vec<OpenException>, StoreError> {
    Ok(store
        .lookup_all(lookup::EXCEPTION)?
        .into_iter()
        .map(OpenException::from_entry)
        .collect())
}

/// One line per exception (`stream  key  message`), or a line saying there are none.
pub fn render_exceptions(list: &[OpenException]) -> String {
    if list.is_empty() {
        return "no open exceptions\n".to_string();
    }
    let stream_w = list.iter().map(|e| e.stream.len()).max().unwrap_or(0);
    let key_w = list.iter().map(|e| e.key.len()).max().unwrap_or(0);
    let mut out = String::new();
    for e in list {
        // One exception per line even if a message carries a newline.
        let message = e.message.replace(['\n', '\r'], " ");
        let _ = writeln!(out, "{:stream_w$}  {:key_w$}  {message}", e.stream, e.key);
    }
    out
}

/// The JSON form of `tks exceptions --json` and `GET /api/exceptions`.
pub fn exceptions_json(list: &[OpenException]) -> serde_json::Value {
    serde_json::json!({ "count": list.len(), "exceptions": list })
}

/// Lists the open exceptions of the database at `db`. The file must already be a
/// tks database: a mistyped path must not silently create an empty one.
pub fn exceptions_in(db: &Path) -> anyhow::Result<Vec<OpenException>> {
    if !db.exists() {
        anyhow::bail!(
            "{}: no such database (store.path; is --config pointing at the service's settings?)",
            db.display()
        );
    }
    let log = crate::replay::source::open(db, &mut |_, _| {})?;
    if log.kind != crate::replay::source::LogKind::Database {
        anyhow::bail!(
            "{}: is a JSONL capture, not a database; captures carry no exception index",
            db.display()
        );
    }
    Ok(open_exceptions(log.store())?)
}

/// What connecting a shop produced. Never holds the tokens themselves.
#[derive(Clone, Debug, Serialize)]
pub struct Connected {
    pub shop: AuthorizedShop,
    pub seller_name: String,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    pub token_file: Option<PathBuf>,
    /// Each configured shop's id and whether this authorisation covers it.
    pub shops: Vec<(String, bool)>,
}

impl Connected {
    /// What a seller's connection reports (never its tokens).
    pub fn from_seller(seller: SellerConnected) -> Connected {
        Connected {
            shop: seller.shop,
            seller_name: seller.tokens.seller_name.clone(),
            access_token_expires_at: unix_time(seller.tokens.access_token_expire_in),
            refresh_token_expires_at: unix_time(seller.tokens.refresh_token_expire_in),
            token_file: seller.token_file,
            shops: seller.shops,
        }
    }

    pub fn render(&self) -> String {
        let at = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "unknown".into())
        };
        let mut out = String::new();
        let _ = writeln!(out, "connected TikTok shop {:?}", self.shop.name);
        let _ = writeln!(out, "  shop id:      {}", self.shop.id);
        let _ = writeln!(out, "  region:       {}", self.shop.region);
        let _ = writeln!(out, "  shop cipher:  {}", self.shop.cipher);
        if !self.seller_name.is_empty() {
            let _ = writeln!(out, "  seller:       {}", self.seller_name);
        }
        let _ = writeln!(
            out,
            "  access token expires:  {} (refreshed automatically)",
            at(self.access_token_expires_at)
        );
        let _ = writeln!(
            out,
            "  refresh token expires: {} (authorise again before then)",
            at(self.refresh_token_expires_at)
        );
        if let Some(f) = &self.token_file {
            let _ = writeln!(out, "  tokens saved to {}", f.display());
        }
        if self.shops.len() > 1 {
            for (id, covered) in &self.shops {
                let state = if *covered {
                    "authorised"
                } else {
                    "NOT authorised by this code: connect its seller too"
                };
                let _ = writeln!(out, "  shop {id}: {state}");
            }
        }
        out
    }
}

pub fn unix_time(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

/// `tks connect tiktok`: exchanges `auth_code` with the app credentials of
/// `settings` and stores the tokens in the file next to the database (or
/// `token_file`), where `tks serve` finds them.
pub async fn connect_tiktok(
    settings: &Settings,
    clock: Clock,
    auth_code: &str,
    options: ClientOptions,
    token_file: Option<PathBuf>,
) -> Result<Connected, TikTokError> {
    if settings.tiktok.app_key.is_empty() || settings.tiktok.app_secret.is_empty() {
        return Err(TikTokError::InvalidInput(
            "tiktok.app_key and tiktok.app_secret must be set (TKS_TIKTOK__APP_KEY, \
             TKS_TIKTOK__APP_SECRET) before connecting"
                .into(),
        ));
    }
    let path = token_file.unwrap_or_else(|| token_file_for(&settings.store.path));
    let store: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(path.clone()));
    let client = TikTokClient::new(&settings.primary_tiktok(), clock, store, options)?;
    let catalogue = Arc::new(Catalogue::new(SkuRules::from_settings(&settings.sync)));
    let shops = TikTokShops::new(settings, client, catalogue, SellerFiles::Beside(path))?;
    Ok(Connected::from_seller(shops.connect(auth_code).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, message: &str) -> LookupEntry {
        LookupEntry {
            kind: lookup::EXCEPTION.into(),
            key: key.into(),
            value: message.into(),
        }
    }

    #[test]
    fn index_entries_split_into_stream_kind_id_and_key() {
        let e = OpenException::from_entry(entry("order-5761#unmatched-sku", "no variant"));
        assert_eq!(
            (
                e.stream.as_str(),
                e.kind.as_str(),
                e.id.as_str(),
                e.key.as_str()
            ),
            ("order-5761", "order", "5761", "unmatched-sku")
        );
        // A seller SKU may itself contain '#' and '-'.
        let e = OpenException::from_entry(entry("sku-MUG#2-RED#inventory-rejected", "x"));
        assert_eq!(e.stream, "sku-MUG#2-RED");
        assert_eq!(e.kind, "sku");
        assert_eq!(e.id, "MUG#2-RED");
        assert_eq!(e.key, "inventory-rejected");
    }

    #[test]
    fn rendering_keeps_one_exception_per_line() {
        assert_eq!(render_exceptions(&[]), "no open exceptions\n");
        let list = vec![
            OpenException::from_entry(entry("order-1#so-rejected", "Katana said\nno")),
            OpenException::from_entry(entry("sku-CAP#inventory-rejected", "refused")),
        ];
        let text = render_exceptions(&list);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains("order-1  so-rejected         Katana said no"),
            "{text}"
        );
        assert!(
            text.contains("sku-CAP  inventory-rejected  refused"),
            "{text}"
        );
    }
}
