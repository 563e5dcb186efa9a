//! Anonymised client addresses.
//!
//! `AnonIp` is the only form in which a client address travels past the
//! function that reads it from the connection. Its one constructor,
//! [`AnonIp::truncate`], takes the full address by value and clears every bit
//! beyond the configured prefix, so holding an `AnonIp` proves truncation
//! happened. It has no public field and no `From` impl:
//!
//! ```compile_fail
//! use sparsam::privacy::AnonIp;
//! let ip = AnonIp { net: "10.1.2.3/32".parse().unwrap() };
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// How many leading bits of an address survive truncation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpMasks {
    pub v4_prefix: u8,
    pub v6_prefix: u8,
}

impl IpMasks {
    /// IPv4 keeps two octets, IPv6 an ISP's /32 allocation.
    pub const DEFAULT: IpMasks = IpMasks {
        v4_prefix: 16,
        v6_prefix: 32,
    };
}

impl Default for IpMasks {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A client address with its host bits cleared.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnonIp {
    net: IpNet,
}

impl AnonIp {
    /// Truncates `full` to the configured prefix. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) are treated as the IPv4 address they carry, so a
    /// dual-stack listener cannot leak a full IPv4 address through the v6 mask.
    pub fn truncate(full: IpAddr, masks: &IpMasks) -> AnonIp {
        let net = match full {
            IpAddr::V4(v4) => v4_net(v4, masks.v4_prefix),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4_net(v4, masks.v4_prefix),
                None => IpNet::V6(
                    Ipv6Net::new(v6, masks.v6_prefix.min(128))
                        .expect("prefix clamped to 128")
                        .trunc(),
                ),
            },
        };
        AnonIp { net }
    }

    /// The truncated network, e.g. `181.153.0.0/16`.
    pub fn network(&self) -> IpNet {
        self.net
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.net.network()
    }

    pub fn prefix_len(&self) -> u8 {
        self.net.prefix_len()
    }

    /// Compact encoding for the store and for hashing: a family tag
    /// (4 or 6), the prefix length, then only the bytes the prefix covers.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (tag, octets): (u8, Vec<u8>) = match self.net {
            IpNet::V4(n) => (4, n.network().octets().to_vec()),
            IpNet::V6(n) => (6, n.network().octets().to_vec()),
        };
        let keep = (self.net.prefix_len() as usize).div_ceil(8);
        let mut out = Vec::with_capacity(2 + keep);
        out.push(tag);
        out.push(self.net.prefix_len());
        out.extend_from_slice(&octets[..keep]);
        out
    }

    /// Human form with the dropped part written out, as in a privacy
    /// notice: `181.153.xxx.xxx` or `2001:db8:xxxx:…`.
    pub fn masked_display(&self) -> String {
        match self.net {
            IpNet::V4(n) => {
                let o = n.network().octets();
                let keep = (n.prefix_len() as usize) / 8;
                (0..4)
                    .map(|i| {
                        if i < keep {
                            o[i].to_string()
                        } else {
                            "xxx".to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(".")
            }
            IpNet::V6(n) => {
                let s = n.network().segments();
                let keep = (n.prefix_len() as usize) / 16;
                let mut parts: Vec<String> = s[..keep].iter().map(|x| format!("{x:x}")).collect();
                parts.push("xxxx…".to_string());
                parts.join(":")
            }
        }
    }
}

fn v4_net(v4: Ipv4Addr, prefix: u8) -> IpNet {
    IpNet::V4(
        Ipv4Net::new(v4, prefix.min(32))
            .expect("prefix clamped to 32")
            .trunc(),
    )
}

/// Decoded form of [`AnonIp::to_bytes`], for the audit's check that nothing
/// stored carries bits beyond its mask. Deliberately not an `AnonIp`: what
/// comes back from disk is checked, not trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredIp {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl StoredIp {
    pub fn decode(bytes: &[u8]) -> Option<StoredIp> {
        let (&tag, rest) = bytes.split_first()?;
        let (&prefix_len, rest) = rest.split_first()?;
        let addr = match tag {
            4 if prefix_len <= 32 && rest.len() <= 4 => {
                let mut o = [0u8; 4];
                o[..rest.len()].copy_from_slice(rest);
                IpAddr::V4(Ipv4Addr::from(o))
            }
            6 if prefix_len <= 128 && rest.len() <= 16 => {
                let mut o = [0u8; 16];
                o[..rest.len()].copy_from_slice(rest);
                IpAddr::V6(Ipv6Addr::from(o))
            }
            _ => return None,
        };
        Some(StoredIp { addr, prefix_len })
    }

    /// The address to hand on (a copy into another engine): truncated
    /// again to its own prefix, so stray host bits in a stored value can
    /// never travel further.
    pub fn to_anon(&self) -> AnonIp {
        let net = match IpNet::new(self.addr, self.prefix_len) {
            Ok(net) => net.trunc(),
            // decode checked the prefix; were it wrong, keep nothing at all
            Err(_) => match self.addr {
                IpAddr::V4(_) => IpNet::V4(Ipv4Net::default()),
                IpAddr::V6(_) => IpNet::V6(Ipv6Net::default()),
            },
        };
        AnonIp { net }
    }

    /// True when no bit beyond the prefix is set.
    pub fn is_truncated(&self) -> bool {
        match IpNet::new(self.addr, self.prefix_len) {
            Ok(net) => net.trunc().addr() == self.addr,
            Err(_) => false,
        }
    }
}

impl fmt::Display for AnonIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.net)
    }
}

impl fmt::Debug for AnonIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnonIp({})", self.net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(s: &str) -> AnonIp {
        AnonIp::truncate(s.parse().unwrap(), &IpMasks::DEFAULT)
    }

    #[test]
    fn a_stored_address_handed_on_loses_stray_host_bits() {
        // a stored value with host bits beyond its prefix (never written
        // by sparsam, but what comes from disk is not trusted)
        let stray = StoredIp {
            addr: "181.153.27.94".parse().unwrap(),
            prefix_len: 16,
        };
        assert!(!stray.is_truncated());
        assert_eq!(stray.to_anon().to_string(), anon("181.153.0.0").to_string());
        assert_eq!(stray.to_anon().network().to_string(), "181.153.0.0/16");
        let v6 = StoredIp {
            addr: "2001:db8:1234::1".parse().unwrap(),
            prefix_len: 32,
        };
        assert_eq!(v6.to_anon().network().to_string(), "2001:db8::/32");
    }

    #[test]
    fn ipv4_keeps_two_octets() {
        assert_eq!(anon("181.153.77.201").to_string(), "181.153.0.0/16");
        assert_eq!(anon("181.153.77.201").masked_display(), "181.153.xxx.xxx");
    }

    #[test]
    fn ipv6_keeps_32_bits() {
        assert_eq!(
            anon("2001:db8:abcd:12:1:2:3:4").to_string(),
            "2001:db8::/32"
        );
    }

    #[test]
    fn mapped_ipv4_is_masked_as_ipv4() {
        assert_eq!(anon("::ffff:181.153.77.201").to_string(), "181.153.0.0/16");
    }

    #[test]
    fn stricter_masks_apply() {
        let m = IpMasks {
            v4_prefix: 8,
            v6_prefix: 24,
        };
        let a = AnonIp::truncate("181.153.77.201".parse().unwrap(), &m);
        assert_eq!(a.to_string(), "181.0.0.0/8");
    }

    #[test]
    fn bytes_round_trip_and_hold_only_prefix() {
        let a = anon("181.153.77.201");
        let b = a.to_bytes();
        assert_eq!(b, vec![4, 16, 181, 153]);
        let s = StoredIp::decode(&b).unwrap();
        assert!(s.is_truncated());
        assert_eq!(s.addr, a.addr());
        let planted = StoredIp {
            addr: "181.153.77.201".parse().unwrap(),
            prefix_len: 16,
        };
        assert!(!planted.is_truncated());
    }
}
