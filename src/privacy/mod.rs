//! Privacy at receipt: address truncation, opt-out, URL stripping and the
//! visitor hash. Everything here runs before an event is enriched or stored.

pub mod anon_ip;

pub use anon_ip::{AnonIp, IpMasks, StoredIp};
