//! TikTok OAuth tokens and where they are kept between runs. Tokens rotate on every refresh,
//! so both are persisted each time; a lost refresh token means asking the seller to
//! re-authorise.

use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::model::AuthorizedShop;
use crate::config::Secret;

/// The credentials of one authorisation. `Debug` is safe: both tokens are `Secret`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: Secret,
    /// Absolute unix time.
    pub access_token_expire_in: i64,
    pub refresh_token: Secret,
    /// Absolute unix time.
    pub refresh_token_expire_in: i64,
    #[serde(default)]
    pub open_id: String,
    #[serde(default)]
    pub seller_name: String,
    /// The shop this authorisation was bound to after Get Authorized Shops.
    #[serde(default)]
    pub shop: Option<AuthorizedShop>,
    /// Every shop the authorisation covers, as Get Authorized Shops listed them at
    /// connect: how a restarted service knows which seller serves which shop.
    /// Files written before several shops were served have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shops: Vec<AuthorizedShop>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    #[error("token store I/O on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("token store {path} is not valid JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

pub trait TokenStore: Send + Sync {
    fn load(&self) -> Result<Option<Tokens>, TokenStoreError>;
    fn save(&self, tokens: &Tokens) -> Result<(), TokenStoreError>;
}

/// For tests and the sandbox.
#[derive(Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<Option<Tokens>>,
    saves: Mutex<u32>,
}

impl MemoryTokenStore {
    pub fn new(initial: Option<Tokens>) -> Self {
        MemoryTokenStore {
            tokens: Mutex::new(initial),
            saves: Mutex::new(0),
        }
    }

    /// How many times `save` was called (tests assert persistence after refresh).
    pub fn save_count(&self) -> u32 {
        *self.saves.lock()
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<Option<Tokens>, TokenStoreError> {
        Ok(self.tokens.lock().clone())
    }
    fn save(&self, tokens: &Tokens) -> Result<(), TokenStoreError> {
        *self.tokens.lock() = Some(tokens.clone());
        *self.saves.lock() += 1;
        Ok(())
    }
}

/// A JSON file readable only by its owner (mode 0600), replaced atomically (write to a
/// sibling temp file, fsync, rename) so a crash never leaves half a token file.
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileTokenStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> TokenStoreError {
        TokenStoreError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> Result<Option<Tokens>, TokenStoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| TokenStoreError::Json {
                        path: self.path.display().to_string(),
                        source,
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    fn save(&self, tokens: &Tokens) -> Result<(), TokenStoreError> {
        let json = serde_json::to_vec_pretty(tokens).map_err(|source| TokenStoreError::Json {
            path: self.path.display().to_string(),
            source,
        })?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| self.io(e))?;
        // A pre-existing temp file keeps its old mode; force 0600 either way.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| self.io(e))?;
        }
        f.write_all(&json).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        Ok(())
    }
}

/// The token file for a database path: `tks.db` -> `tks.tokens.json`.
pub fn token_file_for(db: &str) -> std::path::PathBuf {
    let p = std::path::PathBuf::from(db);
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tks".into());
    p.with_file_name(format!("{stem}.tokens.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            access_token: Secret::new("ROW_access_secret_value"),
            access_token_expire_in: 1_800_000_000,
            refresh_token: Secret::new("ROW_refresh_secret_value"),
            refresh_token_expire_in: 1_900_000_000,
            open_id: "o".into(),
            seller_name: "Shop".into(),
            shop: None,
            shops: Vec::new(),
        }
    }

    #[test]
    fn debug_never_shows_tokens() {
        let d = format!("{:?}", tokens());
        assert!(!d.contains("secret_value"), "{d}");
    }

    #[test]
    fn file_store_round_trips_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(dir.path().join("tiktok-tokens.json"));
        assert_eq!(store.load().unwrap(), None);
        store.save(&tokens()).unwrap();
        let mut t2 = tokens();
        t2.access_token = Secret::new("next");
        store.save(&t2).unwrap();
        assert_eq!(store.load().unwrap(), Some(t2));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        std::fs::write(&p, "{nope").unwrap();
        let e = FileTokenStore::new(&p).load().unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }
}
