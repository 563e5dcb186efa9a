//! Enrichment: turns an anonymised hit into a classified event (device,
//! referrer class, campaign, site-search term).

pub mod client_hints;
pub mod device;
pub mod device_rules;
pub mod referrer;
pub mod referrer_spam;
pub mod search;
pub mod ua_cli;

pub use client_hints::ClientHints;
pub use device::DeviceDetector;
