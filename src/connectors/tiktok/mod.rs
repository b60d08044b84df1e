//! TikTok Shop Partner API connector: request signing, OAuth tokens, the HTTP client, wire
//! models, the mapping to domain observations, and webhook verification.

pub mod actor;
pub mod auth;
pub mod client;
pub mod inventory;
pub mod mapping;
pub mod market;
pub mod model;
pub mod package_plan;
pub mod packages;
pub mod sellers;
mod session;
pub mod shipper;
pub mod shops;
pub mod sign;
pub mod webhook;

pub use auth::{FileTokenStore, MemoryTokenStore, TokenStore, TokenStoreError, Tokens};
pub use client::{
    ClientOptions, InventoryChange, InventoryUpdateOutcome, OrderPage, SkuInventoryError,
    TikTokClient, TikTokError, UpdateWindow,
};
pub use webhook::{NotificationType, TikTokNotification, WebhookError};
