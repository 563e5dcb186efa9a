//! sparsam: a self-hosted, privacy-first web analytics collector.
//!
//! Data flows `ingest` → `privacy` → `enrich` → `storage` (the store
//! boundary; `store` is its redb engine); `report` reads through the same
//! boundary for the HTTP API; `app` wires it all together from a `config`.

pub mod app;
pub mod clock;
pub mod config;
pub mod enrich;
pub mod goals;
pub mod http;
pub mod import;
pub mod ingest;
pub mod model;
pub mod privacy;
pub mod report;
pub mod retention;
pub mod storage;
pub mod store;

pub use app::{Application, StartError};
pub use config::Config;
