//! The one integration-test binary: flows over HTTP against the simulators.

mod console;
mod console_browser;
mod exactly_once;
mod flows;
mod foundation;
mod health;
mod katana;
mod listings;
mod operator;
mod peak;
mod replay;
mod sandbox;
mod schemas;
mod shipping;
mod shops;
mod simulation;
mod store;
mod tiktok;
mod tiktok_shipping;
mod tiktok_shops;
mod whatif_identity;
