//! The one integration-test binary: flows over HTTP against the simulators.

mod flows;
mod foundation;
mod katana;
mod replay;
mod sandbox;
mod store;
mod tiktok;
