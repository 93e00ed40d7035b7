//! What a push endpoint may be. An endpoint is a URL a client chose, and the server will
//! POST to it: without these checks a subscription would let anyone make the server call
//! into its own private network. So an endpoint must be `https://`, carry no credentials,
//! and its host must resolve to public addresses only — checked when subscribing, and again
//! on every send through [`PublicResolver`], which the HTTP client uses to connect (so a
//! DNS answer that changes between the check and the connection changes nothing).
//! `--push-allow-insecure` lifts the scheme and address rules for tests and development.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::Url;

/// Longest endpoint accepted (real ones are a few hundred bytes).
pub const MAX_ENDPOINT_BYTES: usize = 2048;

/// Why an endpoint is refused; the text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("must be an absolute URL of at most {MAX_ENDPOINT_BYTES} bytes")]
    Malformed,
    #[error("must be an https:// URL")]
    NotHttps,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("its host does not resolve")]
    Unresolvable,
    #[error("must be on a public address (not loopback, private, link-local or reserved)")]
    NotPublic,
}

/// Parses `text` and checks what can be checked without DNS.
///
/// # Errors
/// `Malformed`, `NotHttps`, `Credentials`, `NotPublic` (an IP literal).
pub fn parse(text: &str, allow_insecure: bool) -> Result<Url, EndpointError> {
    if text.len() > MAX_ENDPOINT_BYTES {
        return Err(EndpointError::Malformed);
    }
    let url = Url::parse(text).map_err(|_| EndpointError::Malformed)?;
    let secure = url.scheme() == "https";
    if !(secure || allow_insecure && url.scheme() == "http") {
        return Err(EndpointError::NotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::Credentials);
    }
    match url.host() {
        None => Err(EndpointError::Malformed),
        Some(url::Host::Ipv4(ip)) if !allow_insecure && !is_public(IpAddr::V4(ip)) => {
            Err(EndpointError::NotPublic)
        }
        Some(url::Host::Ipv6(ip)) if !allow_insecure && !is_public(IpAddr::V6(ip)) => {
            Err(EndpointError::NotPublic)
        }
        Some(_) => Ok(url),
    }
}

/// Resolves the endpoint's host and checks every address it names is public.
///
/// # Errors
/// `Unresolvable`, `NotPublic`.
pub async fn check_addresses(url: &Url, allow_insecure: bool) -> Result<(), EndpointError> {
    if allow_insecure {
        return Ok(());
    }
    let host = match url.host() {
        Some(url::Host::Domain(name)) => name.to_string(),
        // IP literals were checked by `parse`.
        _ => return Ok(()),
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| EndpointError::Unresolvable)?
        .collect();
    if addrs.is_empty() {
        return Err(EndpointError::Unresolvable);
    }
    if addrs.iter().all(|addr| is_public(addr.ip())) {
        Ok(())
    } else {
        Err(EndpointError::NotPublic)
    }
}

/// Whether `ip` is a public unicast address: not unspecified, loopback, private (RFC 1918),
/// shared (CGNAT), link-local, unique-local, multicast, documentation, benchmarking or
/// reserved; IPv6 forms that embed an IPv4 address are judged by it.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this network"
        || a == 10                             // private
        || a == 127                            // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)              // link-local
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // documentation
        || (a == 192 && b == 88 && c == 99)    // 6to4 relay anycast
        || (a == 192 && b == 168)              // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100)   // documentation
        || (a == 203 && b == 0 && c == 113)    // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    match segments {
        // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
        [0, 0, 0, 0, 0, 0, _, _] => false,
        // NAT64 64:ff9b::/96 and 64:ff9b:1::/48
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => is_public_v4(embedded_v4(high, low)),
        [0x64, 0xff9b, 1, ..] => false,
        // 6to4 2002::/16 carries an IPv4 address in its next 32 bits
        [0x2002, high, low, ..] => is_public_v4(embedded_v4(high, low)),
        // Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID 2001:10::/28 and 2001:20::/28,
        // documentation 2001:db8::/32
        [0x2001, 0, ..] | [0x2001, 2, 0, ..] | [0x2001, 0xdb8, ..] => false,
        [0x2001, second, ..] if (0x10..0x30).contains(&second) => false,
        // documentation 3fff::/20
        [first, ..] if first & 0xfff0 == 0x3ff0 => false,
        // unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8
        [first, ..] if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80 => false,
        [first, ..] if first & 0xffc0 == 0xfec0 || first & 0xff00 == 0xff00 => false,
        // discard-only 100::/64
        [0x100, 0, 0, 0, ..] => false,
        _ => true,
    }
}

/// The HTTP client's resolver for push sends: it returns only public addresses (and fails
/// when there are none), so the connection goes where the check said.
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(EndpointError::NotPublic) as Box<_>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for (ip, public) in [
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("172.32.0.1", true),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("100.128.0.1", true),
            ("0.0.0.0", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("2606:4700::1111", true),
            ("::1", false),
            ("::", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("fd00::1", false),
            ("fe80::1", false),
            ("ff02::1", false),
            ("2001:db8::1", false),
            ("64:ff9b::a00:1", false),
            ("64:ff9b::808:808", true),
            ("2002:a00:1::", false),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    #[test]
    fn endpoints_must_be_https_without_credentials_on_public_literals() {
        let cases = [
            ("https://fcm.googleapis.com/fcm/send/abc", false, Ok(())),
            ("http://push.example/x", false, Err(EndpointError::NotHttps)),
            ("http://push.example/x", true, Ok(())),
            ("ftp://push.example/x", true, Err(EndpointError::NotHttps)),
            (
                "https://u:p@push.example/",
                false,
                Err(EndpointError::Credentials),
            ),
            ("https://127.0.0.1/x", false, Err(EndpointError::NotPublic)),
            ("https://[::1]/x", false, Err(EndpointError::NotPublic)),
            ("https://10.0.0.1/x", false, Err(EndpointError::NotPublic)),
            ("http://127.0.0.1:9/x", true, Ok(())),
            ("not a url", true, Err(EndpointError::Malformed)),
        ];
        for (text, insecure, expected) in cases {
            assert_eq!(parse(text, insecure).map(|_| ()), expected, "{text}");
        }
        let long = format!("https://push.example/{}", "a".repeat(MAX_ENDPOINT_BYTES));
        assert_eq!(
            parse(&long, false).map(|_| ()),
            Err(EndpointError::Malformed)
        );
    }
}
