//! The one integration-test binary: flows over HTTP against the simulators.

mod foundation;
mod katana;
mod operator;
mod replay;
mod store;
mod tiktok;
