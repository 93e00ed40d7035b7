//! Who a request comes from, as every limiter keys it: [`ClientKey`].
//!
//! The client address is the TCP peer, unless the peer is one of `--trusted-proxies` (a list
//! of CIDRs, empty by default); then it is the right-most `X-Forwarded-For` address that is
//! not itself a trusted proxy — the one our own proxies saw, which a client cannot forge by
//! sending a header of its own (that lands further left). An IPv6 address counts per /64,
//! because one customer's line usually holds a whole /64 and could otherwise rotate through
//! 2^64 addresses. Pure: the HTTP side is `crate::api::client_addr`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a limiter counts requests by: an IPv4 address or an IPv6 /64 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6Net(u64),
    /// No peer address known (not over TCP): all such requests share one bucket.
    Unknown,
}

impl ClientKey {
    /// The key of `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(ip) => write!(f, "{ip}"),
            Self::V6Net(net) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*net) << 64)),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

/// One CIDR block, e.g. `10.0.0.0/8` or `::1/128` (a bare address is its own /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a `--trusted-proxies` entry was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an IP address or CIDR block (like 10.0.0.0/8 or ::1/128)")]
pub struct CidrError(pub String);

impl Cidr {
    /// Parses `a.b.c.d/n`, `ipv6/n` or a bare address.
    ///
    /// # Errors
    /// [`CidrError`] for anything else, or a prefix longer than the address.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let text = text.trim();
        let bad = || CidrError(text.to_string());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }

    /// Whether `ip` lies in this block (IPv4-mapped IPv6 addresses match IPv4 blocks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The `--trusted-proxies` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses each entry (empty entries are ignored).
    ///
    /// # Errors
    /// The first entry that is not a CIDR block.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, CidrError> {
        entries
            .into_iter()
            .filter(|entry| !entry.trim().is_empty())
            .map(Cidr::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client address of a request from `peer` carrying `forwarded_for` (the
    /// `X-Forwarded-For` headers, in order).
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        // Right to left: each hop appends the address it saw. The first one our proxies do
        // not vouch for is the client; an unparsable entry ends the trust there.
        let hops = forwarded_for
            .iter()
            .rev()
            .flat_map(|header| header.rsplit(','));
        let mut client = peer;
        for hop in hops {
            let hop = hop.trim();
            if hop.is_empty() {
                continue;
            }
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }

    /// The limiter key of a request (see the module doc).
    pub fn client_key(&self, peer: Option<SocketAddr>, forwarded_for: &[&str]) -> ClientKey {
        match peer {
            Some(peer) => ClientKey::of(self.client_ip(peer.ip(), forwarded_for)),
            None => ClientKey::Unknown,
        }
    }
}

/// An address as proxies write it: bare, `[v6]`, `[v6]:port` or `v4:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list.iter().copied()).unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("203.0.113.9"), &["1.2.3.4"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "::1"]);
        let cases = [
            ("10.0.0.2", vec!["198.51.100.7"], "198.51.100.7", "one hop"),
            (
                "10.0.0.2",
                vec!["6.6.6.6, 198.51.100.7, 10.1.1.1"],
                "198.51.100.7",
                "a forged left entry and a second proxy",
            ),
            (
                "10.0.0.2",
                vec!["6.6.6.6", "198.51.100.7"],
                "198.51.100.7",
                "two headers: the last one is the nearest",
            ),
            (
                "10.0.0.2",
                vec![],
                "10.0.0.2",
                "no header: the proxy itself",
            ),
            ("10.0.0.2", vec!["10.9.9.9"], "10.9.9.9", "only proxies"),
            (
                "10.0.0.2",
                vec!["garbage, 10.3.3.3"],
                "10.3.3.3",
                "garbage stops trust",
            ),
            (
                "::1",
                vec!["[2001:db8::5]:443"],
                "2001:db8::5",
                "bracketed with a port",
            ),
            (
                "198.51.100.1",
                vec!["1.2.3.4"],
                "198.51.100.1",
                "untrusted peer",
            ),
        ];
        for (peer, header, expected, why) in cases {
            assert_eq!(trusted.client_ip(ip(peer), &header), ip(expected), "{why}");
        }
    }

    #[test]
    fn ipv6_clients_are_limited_per_64_and_ipv4_per_address() {
        let a = ClientKey::of(ip("2001:db8:1:2:aaaa::1"));
        let b = ClientKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        let other = ClientKey::of(ip("2001:db8:1:3::1"));
        assert_eq!(a, b, "same /64");
        assert_ne!(a, other, "next /64");
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_ne!(
            ClientKey::of(ip("192.0.2.1")),
            ClientKey::of(ip("192.0.2.2"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.1")),
            ClientKey::of(ip("192.0.2.1")),
            "a mapped IPv4 address is that address"
        );
    }

    #[test]
    fn cidr_blocks_parse_and_match() {
        let block = Cidr::parse("192.168.0.0/16").unwrap();
        assert!(block.contains(ip("192.168.44.1")));
        assert!(!block.contains(ip("192.169.0.1")));
        assert!(block.contains(ip("::ffff:192.168.0.9")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        for bad in ["10.0.0.0/33", "::/129", "nope", "10.0.0.0/x", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(proxies(&["", " 10.0.0.1 "]).0.len(), 1);
    }
}
