//! The sellers connected to the app and where their tokens live: the seller of the
//! primary shop in the token file `tks connect` always wrote, every other seller in
//! a file of its own beside it, so each pair is refreshed (and rotated) on its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::auth::{FileTokenStore, MemoryTokenStore, TokenStore, TokenStoreError, Tokens};

/// Where the other sellers' token files go.
#[derive(Clone, Debug)]
pub enum SellerFiles {
    /// Beside the primary seller's token file: `tks.tokens.json` ->
    /// `tks.tokens.seller-<open_id>.json`.
    Beside(PathBuf),
    /// Kept in memory (tests whose primary store is in memory too).
    InMemory,
}

/// A seller's tokens as found at start, and the store they came from.
pub struct StoredSeller {
    pub tokens: Tokens,
    pub store: Arc<dyn TokenStore>,
}

impl SellerFiles {
    fn prefix(primary: &Path) -> String {
        let name = primary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tks.tokens.json".into());
        let stem = name.strip_suffix(".json").unwrap_or(&name).to_string();
        format!("{stem}.seller-")
    }

    /// The file of the seller `open_id` (only letters, digits, `-` and `_` of it:
    /// the id comes from TikTok and names a file).
    pub fn path_of(&self, open_id: &str) -> Option<PathBuf> {
        let SellerFiles::Beside(primary) = self else {
            return None;
        };
        let safe: String = open_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        let safe = if safe.is_empty() { "unknown" } else { &safe };
        Some(primary.with_file_name(format!("{}{safe}.json", Self::prefix(primary))))
    }

    /// The store the seller `open_id`'s tokens are saved to.
    pub fn store_of(&self, open_id: &str) -> Arc<dyn TokenStore> {
        match self.path_of(open_id) {
            Some(path) => Arc::new(FileTokenStore::new(path)),
            None => Arc::new(MemoryTokenStore::default()),
        }
    }

    /// Every other seller's tokens on disk, in file-name order.
    pub fn load(&self) -> Result<Vec<StoredSeller>, TokenStoreError> {
        let SellerFiles::Beside(primary) = self else {
            return Ok(Vec::new());
        };
        let dir = match primary.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let prefix = Self::prefix(primary);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(TokenStoreError::Io {
                    path: dir.display().to_string(),
                    source,
                })
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".json"))
            })
            .collect();
        paths.sort();
        let mut out = Vec::new();
        for path in paths {
            let store: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(path));
            if let Some(tokens) = store.load()? {
                out.push(StoredSeller { tokens, store });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn tokens(open_id: &str) -> Tokens {
        Tokens {
            access_token: Secret::new("a"),
            access_token_expire_in: 1,
            refresh_token: Secret::new("r"),
            refresh_token_expire_in: 2,
            open_id: open_id.into(),
            seller_name: String::new(),
            shop: None,
            shops: Vec::new(),
        }
    }

    #[test]
    fn each_seller_has_its_own_file_beside_the_primary_one_and_is_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let primary = dir.path().join("tks.tokens.json");
        let files = SellerFiles::Beside(primary.clone());
        assert_eq!(
            files.path_of("../x y").unwrap(),
            dir.path().join("tks.tokens.seller-xy.json")
        );
        FileTokenStore::new(&primary).save(&tokens("one")).unwrap();
        files.store_of("two").save(&tokens("two")).unwrap();
        files.store_of("three").save(&tokens("three")).unwrap();
        let found: Vec<String> = files
            .load()
            .unwrap()
            .into_iter()
            .map(|s| s.tokens.open_id)
            .collect();
        assert_eq!(found, ["three", "two"], "not the primary seller's file");
        assert!(SellerFiles::InMemory.load().unwrap().is_empty());
    }
}
