//! Katana MRP API connector: a budgeted HTTP client (`client`, `budget`), the wire
//! DTOs (`model`), their mapping to domain shapes (`mapping`) and webhook
//! verification (`webhook`); the subscribers that act on the log (`actor`) and the
//! reads they share (`reads`, `stock`).

pub mod actor;
pub mod budget;
pub mod client;
pub mod mapping;
pub mod model;
pub mod reads;
pub mod stock;
pub mod webhook;

pub use budget::{Priority, RequestBudget};
pub use client::{CreateOutcome, KatanaClient, KatanaConfig, KatanaError, RegisteredWebhook};
