//! Reading the client address, the one place a full address exists.
//!
//! [`anonymised_client`] looks at the TCP peer and, only when the peer is a
//! configured trusted proxy, at the one header that proxy writes
//! ([`ClientIpHeader`], `server.client_ip_header`). Any other forwarding
//! header is never read: a client behind the proxy can send `Forwarded`,
//! `X-Real-IP` or `X-Forwarded-For` itself, and only the header the proxy
//! overwrites or appends to carries an address the proxy vouches for.
//! The chain is read from the right (the hop nearest to us) and trusted
//! hops are skipped; the first address that is not a trusted proxy is the
//! client. Anything left of it was written by the client and is ignored.
//! The result is already truncated; the full value never leaves this
//! function and is never logged or put into an error.
//!
//! [`secure_context`] answers the other question the trusted-proxy list
//! settles: did the browser reach us over HTTPS? It reduces the peer to a
//! yes/no as well, so a client cannot claim HTTPS by sending
//! `X-Forwarded-Proto` or `Forwarded: proto=` itself.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use super::{AnonIp, IpMasks};

/// The header a trusted proxy writes the client address into
/// (`server.client_ip_header`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx
    /// `$proxy_add_x_forwarded_for`, HAProxy `option forwardfor`, most
    /// load balancers); the protocol comes from `X-Forwarded-Proto`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`; the
    /// protocol comes from its `proto=`.
    Forwarded,
    /// `X-Real-IP: client`, set (replaced) by the proxy; the protocol comes
    /// from `X-Forwarded-Proto`.
    XRealIp,
}

impl ClientIpHeader {
    /// The header's name, lower case.
    pub fn address_header(self) -> &'static str {
        match self {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
            ClientIpHeader::XRealIp => "x-real-ip",
        }
    }

    /// The header the same proxy writes the browser's protocol into.
    pub fn proto_header(self) -> &'static str {
        match self {
            ClientIpHeader::Forwarded => "forwarded",
            ClientIpHeader::XForwardedFor | ClientIpHeader::XRealIp => "x-forwarded-proto",
        }
    }
}

/// Who may tell us the client address, in which header, and how much of it
/// to keep.
#[derive(Clone, Debug, Default)]
pub struct ClientAddrPolicy {
    pub trusted_proxies: Vec<IpNet>,
    pub client_ip_header: ClientIpHeader,
    pub masks: IpMasks,
}

impl ClientAddrPolicy {
    fn is_trusted(&self, ip: &IpAddr) -> bool {
        let ip = canonical(*ip);
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

/// The truncated client address for a request.
///
/// `peer` is the TCP peer; `proxy_header` is the raw value of the header
/// named by `policy.client_ip_header` (all occurrences joined with `,`),
/// and no other header is looked at. It is read only when the peer is a
/// trusted proxy, right to left: trusted hops are skipped, the first
/// untrusted address is the client. A hop that is not an address (garbage,
/// `unknown`, an obfuscated `Forwarded` name, an element without `for=`)
/// ends the walk, since nothing left of it can be vouched for; the client
/// is then the last trusted hop seen (the peer when there was none).
pub fn anonymised_client(
    peer: Option<IpAddr>,
    proxy_header: Option<&str>,
    policy: &ClientAddrPolicy,
) -> Option<AnonIp> {
    let peer = peer?;
    let full = match proxy_header {
        Some(value) if policy.is_trusted(&peer) => client_from_chain(peer, value, policy),
        _ => peer,
    };
    Some(AnonIp::truncate(full, &policy.masks))
}

fn client_from_chain(peer: IpAddr, value: &str, policy: &ClientAddrPolicy) -> IpAddr {
    let hops: Vec<Option<IpAddr>> = match policy.client_ip_header {
        ClientIpHeader::Forwarded => forwarded_elements(value)
            .map(|element| forwarded_param(element, "for").and_then(parse_ip_token))
            .collect(),
        ClientIpHeader::XForwardedFor | ClientIpHeader::XRealIp => value
            .split(',')
            .map(str::trim)
            // Empty items come from joining repeated headers or from
            // stray commas; they are no hop.
            .filter(|item| !item.is_empty())
            .map(parse_ip_token)
            .collect(),
    };
    let mut nearest_trusted = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if policy.is_trusted(ip) => nearest_trusted = *ip,
            Some(ip) => return *ip,
            None => break,
        }
    }
    nearest_trusted
}

/// True when the browser that sent a request sees sparsam in a secure
/// context, where cookies may be `Secure` (and so `SameSite=None`):
///
/// * the peer is a trusted proxy and says the request came over HTTPS in
///   the protocol header that goes with `policy.client_ip_header`
///   (`proto_header`): the last `X-Forwarded-Proto` value, or the `proto=`
///   of the last `Forwarded` element, i.e. what the proxy talking to us
///   wrote; or
/// * the peer is a loopback address that is not a trusted proxy and the
///   request was addressed to a loopback host (`host`, the `Host` header):
///   a browser on this machine, which treats `http://localhost` and
///   `http://127.0.0.1` as secure.
///
/// Forwarding headers from any other peer are ignored.
pub fn secure_context(
    peer: Option<IpAddr>,
    host: Option<&str>,
    proto_header: Option<&str>,
    policy: &ClientAddrPolicy,
) -> bool {
    let Some(peer) = peer else {
        return false;
    };
    if policy.is_trusted(&peer) {
        let proto = proto_header.and_then(|value| match policy.client_ip_header {
            ClientIpHeader::Forwarded => forwarded_elements(value)
                .last()
                .and_then(|element| forwarded_param(element, "proto")),
            ClientIpHeader::XForwardedFor | ClientIpHeader::XRealIp => {
                value.rsplit(',').next().map(str::trim)
            }
        });
        return proto.is_some_and(|p| p.eq_ignore_ascii_case("https"));
    }
    canonical(peer).is_loopback() && host.is_some_and(is_loopback_host)
}

/// `localhost`, `*.localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| canonical(ip).is_loopback())
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The elements of an RFC 7239 `Forwarded` header, in order (one per
/// proxy; repeated headers were joined with `,`).
fn forwarded_elements(value: &str) -> impl DoubleEndedIterator<Item = &str> {
    value.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// The value of parameter `name` in one `Forwarded` element, unquoted.
fn forwarded_param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// An address as written in forwarding headers: `1.2.3.4`, `1.2.3.4:80`,
/// `[2001:db8::1]`, `[2001:db8::1]:443`, or a bare IPv6 address.
fn parse_ip_token(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end].parse().ok();
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(trusted: &[&str], header: ClientIpHeader) -> ClientAddrPolicy {
        ClientAddrPolicy {
            trusted_proxies: trusted.iter().map(|s| s.parse().unwrap()).collect(),
            client_ip_header: header,
            masks: IpMasks::DEFAULT,
        }
    }

    fn xff() -> ClientAddrPolicy {
        policy(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor)
    }

    fn client(peer: &str, header: Option<&str>, p: &ClientAddrPolicy) -> String {
        anonymised_client(Some(peer.parse().unwrap()), header, p)
            .unwrap()
            .to_string()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        for header in [
            ClientIpHeader::XForwardedFor,
            ClientIpHeader::Forwarded,
            ClientIpHeader::XRealIp,
        ] {
            let p = policy(&["10.0.0.0/8"], header);
            for value in ["198.51.100.7", "for=198.51.100.7"] {
                assert_eq!(
                    client("203.0.113.9", Some(value), &p),
                    "203.0.0.0/16",
                    "{header:?}"
                );
            }
        }
    }

    #[test]
    fn trusted_proxy_xff_is_read_right_to_left() {
        assert_eq!(
            client("10.1.1.1", Some("1.2.3.4, 198.51.100.7, 10.2.2.2"), &xff()),
            "198.51.0.0/16"
        );
        // Every hop trusted (a visitor inside the network): the leftmost.
        assert_eq!(
            client("10.1.1.1", Some("10.9.9.9, 10.2.2.2"), &xff()),
            "10.9.0.0/16"
        );
        // Repeated headers joined, stray commas.
        assert_eq!(
            client("10.1.1.1", Some("6.6.6.6,, 198.51.100.7 ,"), &xff()),
            "198.51.0.0/16"
        );
    }

    #[test]
    fn client_written_entries_left_of_the_proxy_s_cannot_choose_the_address() {
        // The client sent `X-Forwarded-For: 6.6.6.6`; the proxy appended
        // the address it saw.
        assert_eq!(
            client("10.1.1.1", Some("6.6.6.6, 198.51.100.7"), &xff()),
            "198.51.0.0/16"
        );
        // A client pretending to be a trusted hop changes nothing either.
        assert_eq!(
            client("10.1.1.1", Some("6.6.6.6, 10.3.3.3, 198.51.100.7"), &xff()),
            "198.51.0.0/16"
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // With X-Forwarded-For configured, a client-sent `Forwarded` is
        // never handed in (see `http::client`), and a `Forwarded`-shaped
        // value in the configured header is no address.
        assert_eq!(
            client("10.1.1.1", Some("for=6.6.6.6"), &xff()),
            "10.1.0.0/16"
        );
        let real_ip = policy(&["10.0.0.0/8"], ClientIpHeader::XRealIp);
        assert_eq!(
            client("10.1.1.1", Some("198.51.100.7"), &real_ip),
            "198.51.0.0/16"
        );
        assert_eq!(client("10.1.1.1", None, &real_ip), "10.1.0.0/16");
    }

    #[test]
    fn forwarded_header_with_ports_v6_and_chains() {
        let p = policy(&["10.0.0.0/8"], ClientIpHeader::Forwarded);
        assert_eq!(
            client(
                "10.1.1.1",
                Some("for=\"[2001:db8:cafe::17]:4711\";proto=https"),
                &p
            ),
            "2001:db8::/32"
        );
        assert_eq!(
            client("10.1.1.1", Some("for=192.0.2.60:8080"), &p),
            "192.0.0.0/16"
        );
        // A client-written element left of the proxy's, read from the right.
        assert_eq!(
            client(
                "10.1.1.1",
                Some("for=6.6.6.6, for=198.51.100.7;proto=https, for=10.2.2.2"),
                &p
            ),
            "198.51.0.0/16"
        );
        // An element without a readable `for=` ends the walk.
        assert_eq!(
            client("10.1.1.1", Some("for=6.6.6.6, proto=https"), &p),
            "10.1.0.0/16"
        );
        assert_eq!(
            client(
                "10.1.1.1",
                Some("for=6.6.6.6, for=_hidden, for=10.2.2.2"),
                &p
            ),
            "10.2.0.0/16"
        );
    }

    fn secure(peer: &str, host: &str, header: ClientIpHeader, proto: Option<&str>) -> bool {
        let p = policy(&["10.0.0.0/8"], header);
        secure_context(Some(peer.parse().unwrap()), Some(host), proto, &p)
    }

    #[test]
    fn https_is_believed_only_from_trusted_proxies() {
        use ClientIpHeader::*;
        assert!(secure(
            "10.1.1.1",
            "stats.example.org",
            XForwardedFor,
            Some("https")
        ));
        assert!(secure(
            "10.1.1.1",
            "stats.example.org",
            XRealIp,
            Some("https")
        ));
        assert!(secure(
            "10.1.1.1",
            "stats.example.org",
            Forwarded,
            Some("for=198.51.100.7;proto=https")
        ));
        // The proxy talking to us has the last word.
        assert!(!secure(
            "10.1.1.1",
            "s.example.org",
            XForwardedFor,
            Some("https, http")
        ));
        assert!(secure(
            "10.1.1.1",
            "s.example.org",
            XForwardedFor,
            Some("http,https")
        ));
        assert!(!secure(
            "10.1.1.1",
            "s.example.org",
            Forwarded,
            Some("for=6.6.6.6;proto=https, for=198.51.100.7")
        ));
        assert!(!secure(
            "10.1.1.1",
            "s.example.org",
            XForwardedFor,
            Some("http")
        ));
        assert!(!secure("10.1.1.1", "s.example.org", XForwardedFor, None));
        // Forged by a client that is not a trusted proxy.
        assert!(!secure(
            "203.0.113.9",
            "s.example.org",
            XForwardedFor,
            Some("https")
        ));
        assert!(!secure(
            "203.0.113.9",
            "s.example.org",
            Forwarded,
            Some("proto=https")
        ));
    }

    #[test]
    fn loopback_browser_is_a_secure_context() {
        let s = |peer: &str, host: &str| secure(peer, host, ClientIpHeader::XForwardedFor, None);
        assert!(s("127.0.0.1", "127.0.0.1:8080"));
        assert!(s("::1", "localhost:8080"));
        assert!(s("::ffff:127.0.0.1", "[::1]:8080"));
        assert!(s("127.0.0.1", "app.localhost"));
        // A loopback peer asked for another host: a proxy we do not know.
        assert!(!s("127.0.0.1", "stats.example.org"));
        assert!(!s("203.0.113.9", "localhost"));
        assert!(!s("127.0.0.1", "localhost.example.org"));
    }

    #[test]
    fn garbage_header_falls_back_to_peer() {
        assert_eq!(
            client("10.1.1.1", Some("unknown, \r\n<script>"), &xff()),
            "10.1.0.0/16"
        );
        // Garbage nearest to us hides whatever the client wrote before it.
        assert_eq!(
            client("10.1.1.1", Some("198.51.100.7, unknown"), &xff()),
            "10.1.0.0/16"
        );
    }
}
