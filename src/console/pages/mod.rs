//! One module per console page (or pair of pages): each turns a request into HTML.

pub mod exceptions;
pub mod login;
pub mod order;
pub mod orders;
pub mod overview;
pub mod setup;
pub mod skus;
pub mod whatif;
