//! The `Host` allow-list against DNS rebinding: a page on `evil.example` whose name the
//! attacker re-points at 127.0.0.1 reaches a loopback server with `Host: evil.example`, so on
//! loopback only the loopback names (and `--allowed-hosts`) are served; elsewhere the list
//! applies once it is set (API.md "Limits, timeouts and hostile clients").

use std::net::IpAddr;

/// The names every loopback server answers to, on any port.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Which `Host` values are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// Every host (a public address without `--allowed-hosts`).
    Any,
    /// Only these host names (lower-case, without port).
    Only(Vec<String>),
}

impl HostPolicy {
    /// The policy for a server listening on `ip` with `--allowed-hosts` = `allowed`.
    pub fn new(ip: IpAddr, allowed: &[String]) -> Self {
        let mut names: Vec<String> = allowed
            .iter()
            .map(|host| normalize(host).to_string())
            .filter(|host| !host.is_empty())
            .collect();
        if ip.is_loopback() {
            names.extend(LOOPBACK_NAMES.iter().map(|name| (*name).to_string()));
        } else if names.is_empty() {
            return Self::Any;
        }
        Self::Only(names)
    }

    /// Whether a request with this `Host` (or HTTP/2 authority) is served. A request without
    /// one is: browsers always send it, so its absence is no rebinding page.
    pub fn allows(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (Self::Any, _) | (_, None) => true,
            (Self::Only(names), Some(host)) => {
                let host = normalize(host);
                names.contains(&host)
            }
        }
    }
}

/// `Host` without its port and a trailing dot, lower-cased: `LocalHost.:8000` → `localhost`,
/// `[::1]:8000` → `[::1]`.
fn normalize(host: &str) -> String {
    let host = host.trim();
    let name = if host.starts_with('[') {
        // An IPv6 literal keeps its brackets; the port, if any, follows them.
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        host.split(':').next().unwrap_or(host)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback(allowed: &[&str]) -> HostPolicy {
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_string()).collect();
        HostPolicy::new("127.0.0.1".parse().unwrap(), &allowed)
    }

    #[test]
    fn loopback_serves_only_loopback_names_on_any_port() {
        let policy = loopback(&[]);
        for host in [
            "localhost",
            "localhost:8000",
            "LOCALHOST:1",
            "localhost.",
            "127.0.0.1:8000",
            "[::1]:8000",
            "[::1]",
        ] {
            assert!(policy.allows(Some(host)), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8000",
            "127.0.0.2",
            "localhost.evil.example",
            "[::2]:8000",
            "",
        ] {
            assert!(!policy.allows(Some(host)), "{host}");
        }
        assert!(policy.allows(None), "no Host: not a browser");
    }

    #[test]
    fn allowed_hosts_extend_loopback_and_restrict_public_addresses() {
        let policy = loopback(&["App.Example.com"]);
        assert!(policy.allows(Some("app.example.com:8443")));
        assert!(policy.allows(Some("localhost")));

        let public: std::net::IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(HostPolicy::new(public, &[]), HostPolicy::Any);
        assert!(HostPolicy::new(public, &[]).allows(Some("anything")));
        let listed = HostPolicy::new(public, &["app.example.com".to_string()]);
        assert!(listed.allows(Some("app.example.com")));
        assert!(!listed.allows(Some("localhost")), "only the list");
    }
}
