//! sparsam: a self-hosted, privacy-first web analytics collector.

pub mod model;
pub mod privacy;
pub mod store;
