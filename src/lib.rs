//! sparsam: a self-hosted, privacy-first web analytics collector.

pub mod enrich;
pub mod model;
pub mod privacy;
