//! sparsam: a self-hosted, privacy-first web analytics collector.

pub mod config;
pub mod enrich;
pub mod ingest;
pub mod model;
pub mod privacy;
pub mod report;
pub mod store;
