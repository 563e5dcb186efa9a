//! Privacy at receipt: address truncation, opt-out, URL stripping and the
//! visitor hash. Everything here runs before an event is enriched or stored.
//! `cookies` describes, from the code and config, which cookies exist.

pub mod anon_ip;
pub mod client_ip;
pub mod cookies;
pub mod optout;
pub mod url_strip;
pub mod visitor;

pub use anon_ip::{AnonIp, IpMasks, StoredIp};
pub use client_ip::{anonymised_client, secure_context, ClientAddrPolicy, ClientIpHeader};
pub use optout::OptOutSignals;
pub use url_strip::{scrub_identifiers, strip_url, CleanUrl, UrlError, CAMPAIGN_PARAMS};
pub use visitor::{visitor_hash, SaltExchange, SaltKeeper};
