//! Exceptions: problems an operator must see (an unmatched SKU, missing tracking,
//! a rejected API call, a cancellation after the push). Raised and resolved as
//! events on the stream they concern, so they are audited like everything else
//! and resolve themselves when a later event shows the cause is gone.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExceptionRaised {
    /// Stable per cause within the stream (e.g. `unmatched-sku`), so raising the
    /// same problem twice is one open exception.
    pub key: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExceptionResolved {
    pub key: String,
}

pub mod keys {
    pub const UNMATCHED_SKU: &str = "unmatched-sku";
    pub const SO_REJECTED: &str = "so-rejected";
    pub const CANCELLED_AFTER_PUSH: &str = "cancelled-after-push";
    pub const EDITED_AFTER_PUSH: &str = "edited-after-push";
    pub const INVENTORY_REJECTED: &str = "inventory-rejected";
    /// TikTok refused to return an order (its shop's authorisation, most often).
    pub const TIKTOK_READ: &str = "tiktok-read";

    /// A shop's refusal of a SKU's quantity: each shop's on its own, so a push that
    /// one shop takes never resolves another's refusal (the primary shop keeps the
    /// key it always had).
    pub fn inventory_rejected(shop: &str) -> String {
        if shop.is_empty() {
            INVENTORY_REJECTED.to_string()
        } else {
            format!("{INVENTORY_REJECTED}:{shop}")
        }
    }

    /// The shop a SKU exception concerns, by its event key (empty: the primary
    /// shop): only a push refusal is one shop's.
    pub fn inventory_rejected_shop(key: &str) -> Option<&str> {
        if key == INVENTORY_REJECTED {
            Some("")
        } else {
            key.strip_prefix(INVENTORY_REJECTED)?.strip_prefix(':')
        }
    }

    pub fn missing_tracking(fulfillment_id: i64) -> String {
        format!("missing-tracking-{fulfillment_id}")
    }

    pub fn duplicate_so(so_id: i64) -> String {
        format!("duplicate-so-{so_id}")
    }

    pub fn fulfillment_rejected(fulfillment_id: i64) -> String {
        format!("fulfillment-rejected-{fulfillment_id}")
    }

    pub fn shipment_deferred(fulfillment_id: i64) -> String {
        format!("shipment-deferred-{fulfillment_id}")
    }

    pub fn tracking_writeback(fulfillment_id: i64) -> String {
        format!("tracking-writeback-{fulfillment_id}")
    }

    pub fn tracking_correction(fulfillment_id: i64) -> String {
        format!("tracking-correction-{fulfillment_id}")
    }
}
