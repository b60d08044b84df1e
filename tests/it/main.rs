//! The one integration-test binary: flows over HTTP against the simulators.

mod katana;
mod replay;
mod tiktok;
