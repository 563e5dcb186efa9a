//! Ingest: one module per wire protocol, all producing [`Hit`]s, and the
//! pipeline that turns hits into stored events.

pub mod beacon;
pub mod day_limits;
pub mod hit;
pub mod matomo;
pub mod pipeline;
pub mod pixel;
pub mod plausible;
pub mod query;
pub mod site_ref;

pub use hit::{Hit, Reject};
pub use pipeline::{Pipeline, PipelineError, Processed, RequestMeta};
