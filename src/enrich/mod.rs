//! Enrichment: turns an anonymised hit into classified fields of an
//! `Event` (device from user agent + client hints; more to come).

pub mod client_hints;
pub mod device;
pub mod ua_cli;

pub use client_hints::ClientHints;
pub use device::DeviceDetector;
