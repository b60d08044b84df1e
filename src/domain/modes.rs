//! How decisions may be taken: the modes the buffer and fulfilled-by-TikTok
//! orders run in, and when a TikTok-shipping order's shipment is arranged. The settings name them; the domain owns them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferMode {
    All,
    IncreasesOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FbtMode {
    Skip,
    RecordAsDone,
}

/// Which Katana fulfillment status arranges a TikTok-shipping order's shipment: the
/// warehouse needs TikTok's label before the parcel leaves, so `Packed` is the
/// earlier and usual choice; `Delivered` waits for Katana's delivery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrangeShipmentOn {
    Packed,
    #[default]
    Delivered,
}
