//! How a node finds and signs in to NATS: `--nats` (the servers, and the credentials their
//! URLs carry), `--node-name`, `--nats-keep-days` and `--nats-nkey-file`, and the connection
//! options they make. Credentials never reach a message: [`ClusterSettings::shown_urls`] masks
//! them and an NKey seed's `Debug` hides it.

use std::time::Duration;

/// What `--nats`, `--node-name`, `--nats-keep-days` and `--nats-nkey-file` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub urls: Vec<String>,
    pub node: String,
    /// `--nats-keep-days`: how long the log keeps a record; `None` leaves an existing log's
    /// setting alone (a new log keeps everything).
    pub keep: Option<Duration>,
    /// `--nats-nkey-file`: the node's NKey seed, when NATS authenticates it by NKey.
    pub nkey: Option<NkeySeed>,
}

/// A NATS user NKey seed (`SU…`), checked when read; never shown (`Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct NkeySeed(String);

impl NkeySeed {
    /// `text` if it is a user seed: 58 base32 characters starting with `SU`.
    pub fn parse(text: &str) -> Option<Self> {
        let base32 = |byte: u8| byte.is_ascii_uppercase() || (b'2'..=b'7').contains(&byte);
        (text.len() == 58 && text.starts_with("SU") && text.bytes().all(base32))
            .then(|| Self(text.to_string()))
    }
}

impl std::fmt::Debug for NkeySeed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("NkeySeed(***)")
    }
}

impl ClusterSettings {
    /// Cluster mode when `--nats` names at least one server; the node's name defaults to the
    /// host's.
    pub fn from_flags(
        nats: Option<&str>,
        node: Option<&str>,
        keep: Option<Duration>,
    ) -> Option<Self> {
        let urls: Vec<String> = nats?
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(String::from)
            .collect();
        if urls.is_empty() {
            return None;
        }
        let node = node
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(String::from)
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "node".to_string());
        Some(Self {
            urls,
            node,
            keep,
            nkey: None,
        })
    }

    /// Whether a `--nats` URL carries credentials (a user and password, or a token).
    pub fn url_credentials(&self) -> bool {
        self.urls.iter().any(|url| credentials(url).is_some())
    }

    /// The URLs as messages may show them: passwords and tokens replaced by `***`.
    pub fn shown_urls(&self) -> String {
        self.urls
            .iter()
            .map(|url| without_password(url))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Connection options carrying the node's credentials. async-nats reads none from a URL,
    /// so they come from the first URL that has any, or from the NKey seed.
    pub fn signed_in(&self) -> async_nats::ConnectOptions {
        let options = async_nats::ConnectOptions::new();
        let options = match self.urls.iter().find_map(|url| credentials(url)) {
            Some(Credentials::UserAndPassword(user, password)) => {
                options.user_and_password(user, password)
            }
            Some(Credentials::Token(token)) => options.token(token),
            None => options,
        };
        match &self.nkey {
            Some(NkeySeed(seed)) => options.nkey(seed.clone()),
            None => options,
        }
    }
}

/// How a node proves itself to NATS, as a `--nats` URL says it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credentials {
    /// `nats://user:password@host`.
    UserAndPassword(String, String),
    /// `nats://token@host`: a user with no password is a token, as NATS's own clients read it.
    Token(String),
}

/// The credentials a `nats://user:password@host` or `nats://token@host` URL names, if any,
/// decoded.
fn credentials(url: &str) -> Option<Credentials> {
    let address: async_nats::ServerAddr = url.parse().ok()?;
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(address.username()?);
    Some(match address.password() {
        Some(password) => Credentials::UserAndPassword(user, decode(password)),
        None => Credentials::Token(user),
    })
}

/// `url` as messages may show it: its password or token, if any, replaced by `***`.
fn without_password(url: &str) -> String {
    let Ok(address) = url.parse::<async_nats::ServerAddr>() else {
        return url.to_string();
    };
    match (address.username(), address.password()) {
        (Some(user), Some(password)) => {
            url.replacen(&format!("{user}:{password}@"), &format!("{user}:***@"), 1)
        }
        (Some(token), None) => url.replacen(&format!("{token}@"), "***@", 1),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_url_and_its_password_or_token_stays_out_of_messages() {
        let user = |user: &str, password: &str| {
            Some(Credentials::UserAndPassword(user.into(), password.into()))
        };
        assert_eq!(
            credentials("nats://app:s3cret@h1:4222"),
            user("app", "s3cret")
        );
        assert_eq!(
            credentials("nats://app:p%40ss%3Aword@h1:4222"),
            user("app", "p@ss:word")
        );
        assert_eq!(
            credentials("nats://t0k%2Ben@h1:4222"),
            Some(Credentials::Token("t0k+en".into()))
        );
        assert_eq!(credentials("nats://h1:4222"), None);
        assert_eq!(
            without_password("nats://t0k%2Ben@h1:4222"),
            "nats://***@h1:4222"
        );
        assert_eq!(
            without_password("nats://app:s3cret@h1:4222"),
            "nats://app:***@h1:4222"
        );
        assert_eq!(
            without_password("nats://app:p%40ss@h1:4222"),
            "nats://app:***@h1:4222"
        );
        assert_eq!(without_password("nats://h1:4222"), "nats://h1:4222");
    }

    #[test]
    fn the_flags_name_the_servers_and_the_node() {
        assert_eq!(ClusterSettings::from_flags(None, Some("a"), None), None);
        assert_eq!(ClusterSettings::from_flags(Some(" , "), None, None), None);
        let keep = Some(Duration::from_secs(60));
        assert_eq!(
            ClusterSettings::from_flags(Some("nats://h1:4222, nats://h2:4222"), Some("n1"), keep),
            Some(ClusterSettings {
                urls: vec!["nats://h1:4222".into(), "nats://h2:4222".into()],
                node: "n1".into(),
                keep,
                nkey: None,
            })
        );
    }

    #[test]
    fn only_a_user_nkey_seed_is_taken_and_it_never_shows() {
        let seed = "SUAB433GD5CF5RXT3B2ENXOGJFPZVSSPSC42EUQQUKST64YHO4BAGBQMPI";
        let parsed = NkeySeed::parse(seed).expect("a user seed");
        assert_eq!(format!("{parsed:?}"), "NkeySeed(***)");
        // A public key, an account seed, a cut or lower-cased seed are refused.
        for bad in [
            "UASGW6ASK5FCAWDWE3BICBDT2OGF7RLTYJ7ZUQ2MIGKIJMMHA45HGDDA",
            &seed.replacen("SU", "SA", 1),
            &seed[..57],
            &seed.to_lowercase(),
        ] {
            assert_eq!(NkeySeed::parse(bad), None, "{bad}");
        }
    }
}
