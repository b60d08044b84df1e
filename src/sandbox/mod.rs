//! Strict local simulators of the TikTok Shop and Katana APIs, and the scenario that
//! drives them in `tks sandbox`.

pub mod harness;
pub mod in_flight;
pub mod katana;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod tiktok;
