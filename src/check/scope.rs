//! Which shop a `tks check` line is about: the primary shop's lines keep the names
//! they always had, another shop's say `shops.<id>.` before theirs and name its
//! `[[shops]]` keys.

use crate::config::Settings;

#[derive(Clone, Debug)]
pub(super) struct Scope {
    check_prefix: String,
    key_prefix: String,
}

impl Scope {
    /// The primary shop: `[warehouses]` keys, or the first `[[shops]]` table's.
    pub(super) fn primary(settings: &Settings) -> Scope {
        Scope {
            check_prefix: String::new(),
            key_prefix: if settings.shops.is_empty() {
                "warehouses.".into()
            } else {
                "shops[0].".into()
            },
        }
    }

    /// The `index`th `[[shops]]` table, shop `id`.
    pub(super) fn shop(index: usize, id: &str) -> Scope {
        Scope {
            check_prefix: format!("shops.{id}."),
            key_prefix: format!("shops[{index}]."),
        }
    }

    /// A line's name, e.g. `tiktok.pickup_warehouse`.
    pub(super) fn check(&self, name: &str) -> String {
        format!("{}{name}", self.check_prefix)
    }

    /// A configuration key, e.g. `pickup_warehouse_id`.
    pub(super) fn key(&self, field: &str) -> String {
        format!("{}{field}", self.key_prefix)
    }
}
