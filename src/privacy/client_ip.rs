//! Reading the client address, the one place a full address exists.
//!
//! [`anonymised_client`] looks at the TCP peer and, only when the peer is a
//! configured trusted proxy, at `Forwarded` / `X-Forwarded-For`. It returns
//! the address already truncated; the full value never leaves this function
//! and is never logged or put into an error.
//!
//! [`secure_context`] answers the other question the trusted-proxy list
//! settles: did the browser reach us over HTTPS? It reduces the peer to a
//! yes/no as well, so a client cannot claim HTTPS by sending
//! `X-Forwarded-Proto` itself.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{AnonIp, IpMasks};

/// Who may tell us the client address, and how much of it to keep.
#[derive(Clone, Debug, Default)]
pub struct ClientAddrPolicy {
    pub trusted_proxies: Vec<IpNet>,
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
/// `peer` is the TCP peer; `forwarded` and `x_forwarded_for` are the raw
/// header values (all occurrences joined with `,`). Forwarded chains are read
/// right to left, skipping trusted proxies; the first untrusted hop is the
/// client. Headers from an untrusted peer are ignored entirely, so a client
/// cannot choose the address it is counted under.
pub fn anonymised_client(
    peer: Option<IpAddr>,
    forwarded: Option<&str>,
    x_forwarded_for: Option<&str>,
    policy: &ClientAddrPolicy,
) -> Option<AnonIp> {
    let peer = peer?;
    let full = if policy.is_trusted(&peer) {
        let chain: Vec<IpAddr> = match (forwarded, x_forwarded_for) {
            (Some(f), _) => parse_forwarded(f),
            (None, Some(x)) => x
                .split(',')
                .filter_map(|s| parse_ip_token(s.trim()))
                .collect(),
            (None, None) => Vec::new(),
        };
        chain
            .iter()
            .rev()
            .find(|ip| !policy.is_trusted(ip))
            .or(chain.first())
            .copied()
            .unwrap_or(peer)
    } else {
        peer
    };
    Some(AnonIp::truncate(full, &policy.masks))
}

/// True when the browser that sent a request sees sparsam in a secure
/// context, where cookies may be `Secure` (and so `SameSite=None`):
///
/// * the peer is a trusted proxy and says the request came over HTTPS
///   (`proto=` of the last `Forwarded` element that has one, else the last
///   `X-Forwarded-Proto` value: what the proxy talking to us wrote); or
/// * the peer is a loopback address that is not a trusted proxy and the
///   request was addressed to a loopback host (`host`, the `Host` header):
///   a browser on this machine, which treats `http://localhost` and
///   `http://127.0.0.1` as secure.
///
/// Forwarding headers from any other peer are ignored.
pub fn secure_context(
    peer: Option<IpAddr>,
    host: Option<&str>,
    forwarded: Option<&str>,
    x_forwarded_proto: Option<&str>,
    policy: &ClientAddrPolicy,
) -> bool {
    let Some(peer) = peer else {
        return false;
    };
    if policy.is_trusted(&peer) {
        let proto = forwarded
            .and_then(|f| {
                f.split(',')
                    .rev()
                    .flat_map(|element| element.split(';'))
                    .find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        k.trim()
                            .eq_ignore_ascii_case("proto")
                            .then(|| v.trim().trim_matches('"'))
                    })
            })
            .or_else(|| x_forwarded_proto.and_then(|x| x.rsplit(',').next()))
            .map(str::trim);
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

/// `for=` values of an RFC 7239 `Forwarded` header, in order.
fn parse_forwarded(value: &str) -> Vec<IpAddr> {
    value
        .split(',')
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("for") {
                return None;
            }
            parse_ip_token(v.trim().trim_matches('"'))
        })
        .collect()
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

    fn policy(trusted: &[&str]) -> ClientAddrPolicy {
        ClientAddrPolicy {
            trusted_proxies: trusted.iter().map(|s| s.parse().unwrap()).collect(),
            masks: IpMasks::DEFAULT,
        }
    }

    fn client(peer: &str, fwd: Option<&str>, xff: Option<&str>, p: &ClientAddrPolicy) -> String {
        anonymised_client(Some(peer.parse().unwrap()), fwd, xff, p)
            .unwrap()
            .to_string()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let p = policy(&["10.0.0.0/8"]);
        assert_eq!(
            client("203.0.113.9", None, Some("198.51.100.7"), &p),
            "203.0.0.0/16"
        );
    }

    #[test]
    fn trusted_proxy_xff_is_read_right_to_left() {
        let p = policy(&["10.0.0.0/8"]);
        assert_eq!(
            client(
                "10.1.1.1",
                None,
                Some("1.2.3.4, 198.51.100.7, 10.2.2.2"),
                &p
            ),
            "198.51.0.0/16"
        );
    }

    #[test]
    fn forwarded_header_with_ports_and_v6() {
        let p = policy(&["10.0.0.0/8"]);
        assert_eq!(
            client(
                "10.1.1.1",
                Some("for=\"[2001:db8:cafe::17]:4711\";proto=https"),
                None,
                &p
            ),
            "2001:db8::/32"
        );
        assert_eq!(
            client("10.1.1.1", Some("for=192.0.2.60:8080"), None, &p),
            "192.0.0.0/16"
        );
    }

    fn secure(peer: &str, host: &str, fwd: Option<&str>, xfp: Option<&str>) -> bool {
        let p = policy(&["10.0.0.0/8"]);
        secure_context(Some(peer.parse().unwrap()), Some(host), fwd, xfp, &p)
    }

    #[test]
    fn https_is_believed_only_from_trusted_proxies() {
        assert!(secure("10.1.1.1", "stats.example.org", None, Some("https")));
        assert!(secure(
            "10.1.1.1",
            "stats.example.org",
            Some("for=198.51.100.7;proto=https"),
            None
        ));
        // The proxy talking to us has the last word.
        assert!(!secure(
            "10.1.1.1",
            "s.example.org",
            None,
            Some("https, http")
        ));
        assert!(secure(
            "10.1.1.1",
            "s.example.org",
            None,
            Some("http,https")
        ));
        assert!(!secure("10.1.1.1", "s.example.org", None, Some("http")));
        assert!(!secure("10.1.1.1", "s.example.org", None, None));
        // Forged by a client that is not a trusted proxy.
        assert!(!secure("203.0.113.9", "s.example.org", None, Some("https")));
        assert!(!secure(
            "203.0.113.9",
            "s.example.org",
            Some("proto=https"),
            None
        ));
    }

    #[test]
    fn loopback_browser_is_a_secure_context() {
        assert!(secure("127.0.0.1", "127.0.0.1:8080", None, None));
        assert!(secure("::1", "localhost:8080", None, None));
        assert!(secure("::ffff:127.0.0.1", "[::1]:8080", None, None));
        assert!(secure("127.0.0.1", "app.localhost", None, None));
        // A loopback peer asked for another host: a proxy we do not know.
        assert!(!secure("127.0.0.1", "stats.example.org", None, None));
        assert!(!secure("203.0.113.9", "localhost", None, None));
        assert!(!secure("127.0.0.1", "localhost.example.org", None, None));
    }

    #[test]
    fn garbage_header_falls_back_to_peer() {
        let p = policy(&["10.0.0.0/8"]);
        assert_eq!(
            client("10.1.1.1", None, Some("unknown, \r\n<script>"), &p),
            "10.1.0.0/16"
        );
    }
}
