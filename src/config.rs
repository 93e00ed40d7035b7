//! `Config`: the resolved, validated settings of `app serve`, built once from the command line
//! and environment. It creates the data folder and reads or generates the JWT secret; nothing
//! reads the environment after this.

use crate::auth::Secret;
use crate::cli::ServeArgs;
use crate::client_addr::{CidrError, TrustedProxies};
use crate::login_gate::GateLimits;
use base64::Engine;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the generated secret inside the data folder.
pub const SECRET_FILE: &str = "secret.key";

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--addr {0:?} is not a HOST:PORT address")]
    Addr(String),
    #[error("cannot use data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read or write the JWT secret at {path}: {source}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the JWT secret at {0} is empty or malformed")]
    BadSecretFile(PathBuf),
    #[error("APP_JWT_SECRET must be at least 16 bytes")]
    WeakSecret,
    /// The URL itself is not repeated: it may hold a password.
    #[error("--smtp-url must start with smtp:// or smtps://")]
    SmtpUrl,
    #[error("--mail-from {0:?} is not an email address (like \"App <no-reply@example.com>\")")]
    MailFrom(String),
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("cannot read {flag} {path}: {source}")]
    SecretFile {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file's text is not repeated: it may be a seed with a typo.
    #[error(
        "--nats-nkey-file {0}: not a NATS user NKey seed (one line of 58 characters starting \
         with SU, as `nk -gen user` writes it)"
    )]
    NkeySeed(PathBuf),
    #[error(
        "give the NATS credentials either in the --nats URL or with --nats-nkey-file, not both"
    )]
    TwoNatsCredentials,
    #[error("--trusted-proxies: {0}")]
    TrustedProxies(#[from] CidrError),
    #[error(
        "--reminder-hours {0} is not a number of hours from 0 (no reminders) to {MAX_REMINDER_HOURS} \
         (fractions such as 0.5 are allowed, down to a microsecond)"
    )]
    ReminderHours(f64),
    #[error(
        "--nats-keep-days {0} is not a number of days above 0 and up to {MAX_NATS_KEEP_DAYS} \
         (fractions such as 0.5 are allowed)"
    )]
    NatsKeepDays(f64),
}

/// The longest `--nats-keep-days`: ten years.
pub const MAX_NATS_KEEP_DAYS: f64 = 3650.0;

/// `--nats-keep-days` as a duration; refuses 0 (which JetStream reads as "forever"), negative,
/// non-finite and over-ten-years values, and one under a second.
///
/// # Errors
/// [`ConfigError::NatsKeepDays`].
pub fn nats_keep(days: f64) -> Result<Duration, ConfigError> {
    if !days.is_finite() || days <= 0.0 || days > MAX_NATS_KEEP_DAYS {
        return Err(ConfigError::NatsKeepDays(days));
    }
    let keep = Duration::from_secs_f64(days * 86_400.0);
    if keep < Duration::from_secs(1) {
        return Err(ConfigError::NatsKeepDays(days));
    }
    Ok(keep)
}

/// The longest `--reminder-hours`: a year. Beyond it a typo (hours meant as minutes, an
/// extra zero) is likelier than an intent, and the outbox would hold rows for years.
pub const MAX_REMINDER_HOURS: f64 = 8760.0;

/// `--reminder-hours` as microseconds before `starts_at`; 0 turns reminders off. Refuses a
/// negative, non-finite or over-a-year value, and one so small it rounds to nothing (which
/// would turn reminders off by accident).
///
/// # Errors
/// [`ConfigError::ReminderHours`].
pub fn reminder_micros(hours: f64) -> Result<i64, ConfigError> {
    if !hours.is_finite() || !(0.0..=MAX_REMINDER_HOURS).contains(&hours) {
        return Err(ConfigError::ReminderHours(hours));
    }
    // At most 8760 h = 3.2e16 µs, well inside i64 and exact enough in f64.
    #[allow(clippy::cast_possible_truncation)]
    let micros = (hours * 3_600_000_000.0).round() as i64;
    if hours > 0.0 && micros == 0 {
        return Err(ConfigError::ReminderHours(hours));
    }
    Ok(micros)
}

/// Everything `app serve` runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub secret: Secret,
    pub token_ttl_seconds: u64,
    /// Lifetime of a refresh token; each use starts a new one.
    pub refresh_ttl_seconds: u64,
    /// Login limits and the size of the password-hashing queue.
    pub login: GateLimits,
    /// Origins (scheme://host[:port], lower-cased) allowed besides the server's own.
    pub allowed_origins: Vec<String>,
    pub event_retention: u64,
    pub booking_rate_per_minute: u32,
    pub booking_rate_per_business_per_minute: u32,
    /// `--trusted-proxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Events the bus's ring holds (`--bus-capacity`).
    pub bus_capacity: usize,
    pub cache_bytes: u64,
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub ws_ping_interval: Duration,
    pub ws_idle_timeout: Duration,
    /// Frames written to one socket per wake-up before its flush.
    pub ws_frames_per_wake: usize,
    /// How long a socket may take nothing while frames wait for it before it is a slow
    /// consumer.
    pub ws_send_timeout: Duration,
    pub mail_retry_base: Duration,
    pub mail_max_attempts: u32,
    pub mail_poll_interval: Duration,
    /// SMTP conversations the mail drainer runs at once.
    pub smtp_concurrency: usize,
    /// Start on a new epoch even when the store is behind its outside record.
    pub accept_data_loss: bool,
    /// A connection must send a complete request head within this.
    pub header_timeout: Duration,
    /// How long a stop waits for requests in flight.
    pub shutdown_grace: Duration,
    /// `--max-connections`; `None`: derived from the open-file limit at start.
    pub max_connections: Option<usize>,
    /// `--allowed-hosts`, as given.
    pub allowed_hosts: Vec<String>,
    /// Web Push: VAPID subject, `--push-allow-insecure`, the coalescing interval.
    pub push: crate::push::PushSettings,
    /// `--reminder-hours` in microseconds; 0: no reminders.
    pub reminder_micros: i64,
    /// `--nats` / `--node-name`: cluster mode (`crate::cluster`); `None` for a single node.
    pub cluster: Option<crate::cluster::ClusterSettings>,
}

impl Config {
    /// Resolves `args`: parses addresses, creates the data folder, loads or creates the secret.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting that is wrong.
    pub fn from_serve(args: &ServeArgs) -> Result<Self, ConfigError> {
        let addr = args
            .addr
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| ConfigError::Addr(args.addr.clone()))?;
        let data_dir = ensure_data_dir(&args.data.data)?;
        let jwt_secret = match &args.jwt_secret_file {
            Some(path) => Some(read_secret_file("--jwt-secret-file", path)?),
            None => args.jwt_secret.clone(),
        };
        let secret = load_or_create_secret(&data_dir, jwt_secret.as_deref())?;
        let smtp_url = match &args.smtp_url_file {
            Some(path) => Some(read_secret_file("--smtp-url-file", path)?),
            None => args.smtp_url.clone(),
        };
        // sled and the .eml writer create these with the umask's mode; made first, they are
        // private like their parent.
        create_private_dir(&db_path(&data_dir))?;
        if smtp_url.is_none() {
            create_private_dir(&data_dir.join("mail"))?;
        }
        if let Some(url) = &smtp_url {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(ConfigError::SmtpUrl);
            }
        }
        if args.mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::MailFrom(args.mail_from.clone()));
        }
        for (value, name) in [
            (args.event_retention, "--event-retention"),
            (args.token_ttl, "--token-ttl"),
            (args.refresh_ttl, "--refresh-ttl"),
            (
                u64::from(args.login_attempts_per_minute),
                "--login-attempts-per-minute",
            ),
            (
                u64::from(args.login_failures_per_account),
                "--login-failures-per-account",
            ),
            (
                u64::from(args.booking_rate_per_minute),
                "--booking-rate-per-minute",
            ),
            (
                u64::from(args.booking_rate_per_business_per_minute),
                "--booking-rate-per-business-per-minute",
            ),
            (args.bus_capacity as u64, "--bus-capacity"),
            (args.ws_frames_per_wake as u64, "--ws-frames-per-wake"),
            (u64::from(args.mail_max_attempts), "--mail-max-attempts"),
            (args.ws_ping_interval_ms, "--ws-ping-interval-ms"),
            (args.ws_idle_timeout_ms, "--ws-idle-timeout-ms"),
            (args.ws_send_timeout_ms, "--ws-send-timeout-ms"),
            (args.mail_poll_interval_ms, "--mail-poll-interval-ms"),
            (args.header_timeout_secs, "--header-timeout-secs"),
            (
                args.max_connections.map_or(1, |n| n as u64),
                "--max-connections",
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        let trusted_proxies =
            TrustedProxies::parse(args.trusted_proxies.iter().map(String::as_str))?;
        let reminder_micros = reminder_micros(args.reminder_hours)?;
        let nats_keep = args.nats_keep_days.map(nats_keep).transpose()?;
        Ok(Self {
            addr,
            data_dir,
            smtp_url,
            mail_from: args.mail_from.clone(),
            secret,
            token_ttl_seconds: args.token_ttl,
            refresh_ttl_seconds: args.refresh_ttl,
            login: GateLimits {
                attempts_per_address_per_minute: args.login_attempts_per_minute,
                failures_per_account: args.login_failures_per_account,
                hash_workers: match args.password_hash_workers {
                    0 => std::thread::available_parallelism().map_or(1, usize::from),
                    n => n,
                },
                queue_timeout: Duration::from_millis(args.login_queue_timeout_ms),
            },
            allowed_origins: args
                .allowed_origins
                .iter()
                .map(|origin| origin.trim().trim_end_matches('/').to_lowercase())
                .filter(|origin| !origin.is_empty())
                .collect(),
            event_retention: args.event_retention,
            booking_rate_per_minute: args.booking_rate_per_minute,
            booking_rate_per_business_per_minute: args.booking_rate_per_business_per_minute,
            trusted_proxies,
            bus_capacity: args.bus_capacity,
            cache_bytes: args.cache_mb.max(1) * 1024 * 1024,
            admin_email: args.admin_email.clone(),
            admin_password: args.admin_password.clone(),
            ws_ping_interval: Duration::from_millis(args.ws_ping_interval_ms),
            ws_idle_timeout: Duration::from_millis(args.ws_idle_timeout_ms),
            ws_frames_per_wake: args.ws_frames_per_wake,
            ws_send_timeout: Duration::from_millis(args.ws_send_timeout_ms),
            mail_retry_base: Duration::from_millis(args.mail_retry_base_ms.max(1)),
            mail_max_attempts: args.mail_max_attempts,
            mail_poll_interval: Duration::from_millis(args.mail_poll_interval_ms),
            smtp_concurrency: usize::from(args.smtp_concurrency),
            accept_data_loss: args.accept_data_loss,
            header_timeout: Duration::from_secs(args.header_timeout_secs),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
            max_connections: args.max_connections,
            allowed_hosts: args.allowed_hosts.clone(),
            push: crate::push::PushSettings::from_args(args),
            reminder_micros,
            cluster: cluster_settings(args, nats_keep)?,
        })
    }

    /// Where sled keeps its files.
    pub fn db_path(&self) -> PathBuf {
        db_path(&self.data_dir)
    }

    /// The domain part of the sender address (for Message-IDs).
    pub fn mail_domain(&self) -> String {
        mail_domain(&self.mail_from)
    }
}

/// The sled folder inside a data folder.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("db")
}

/// The domain of a mailbox string like `App <no-reply@example.com>`.
pub fn mail_domain(mail_from: &str) -> String {
    mail_from
        .parse::<lettre::message::Mailbox>()
        .map(|mailbox| mailbox.email.domain().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Creates the data folder if needed, readable by its owner only (it holds password hashes,
/// customer data and the secret).
pub fn ensure_data_dir(path: &Path) -> Result<PathBuf, ConfigError> {
    create_private_dir(path)?;
    Ok(path.to_path_buf())
}

/// Creates `path` and any missing parents with mode 0700; an existing folder is left as is.
fn create_private_dir(path: &Path) -> Result<(), ConfigError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(|source| ConfigError::DataDir {
        path: path.to_path_buf(),
        source,
    })
}

/// Cluster mode's settings, with the NKey seed of `--nats-nkey-file` read and checked.
fn cluster_settings(
    args: &ServeArgs,
    keep: Option<Duration>,
) -> Result<Option<crate::cluster::ClusterSettings>, ConfigError> {
    let Some(mut settings) = crate::cluster::ClusterSettings::from_flags(
        args.nats.as_deref(),
        args.node_name.as_deref(),
        keep,
    ) else {
        return Ok(None);
    };
    if let Some(path) = &args.nats_nkey_file {
        if settings.url_credentials() {
            return Err(ConfigError::TwoNatsCredentials);
        }
        let seed = read_secret_file("--nats-nkey-file", path)?;
        let seed = crate::cluster::NkeySeed::parse(&seed)
            .ok_or_else(|| ConfigError::NkeySeed(path.clone()))?;
        settings.nkey = Some(seed);
    }
    Ok(Some(settings))
}

/// A secret kept in a file (`--jwt-secret-file`, `--smtp-url-file`): its text without the
/// surrounding whitespace a text editor leaves.
fn read_secret_file(flag: &'static str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_string())
        .map_err(|source| ConfigError::SecretFile {
            flag,
            path: path.to_path_buf(),
            source,
        })
}

/// The secret from `explicit` (APP_JWT_SECRET), else from `<data>/secret.key`, generating
/// 32 random bytes there (mode 0600) on first use.
pub fn load_or_create_secret(
    data_dir: &Path,
    explicit: Option<&str>,
) -> Result<Secret, ConfigError> {
    if let Some(text) = explicit {
        if text.len() < 16 {
            return Err(ConfigError::WeakSecret);
        }
        return Ok(Secret::new(text.as_bytes().to_vec()));
    }
    let path = data_dir.join(SECRET_FILE);
    let io_error = |source| ConfigError::Secret {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        // Empty only if an older version crashed while creating it, before any token was
        // signed with it: make a new one.
        Ok(text) if text.trim().is_empty() => create_secret(data_dir, &path, true),
        Ok(text) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| ConfigError::BadSecretFile(path.clone()))?;
            if bytes.len() < 16 {
                return Err(ConfigError::BadSecretFile(path));
            }
            Ok(Secret::new(bytes))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            create_secret(data_dir, &path, false)
        }
        Err(error) => Err(io_error(error)),
    }
}

/// Writes 32 random bytes to `path` atomically: a private temporary file, synced, then
/// linked into place (or renamed over an empty file when `replace`) and the folder synced,
/// so a crash leaves either no secret or a whole one. Linking fails when another process
/// created the secret meanwhile; its secret wins.
fn create_secret(data_dir: &Path, path: &Path, replace: bool) -> Result<Secret, ConfigError> {
    let io_error = |source| ConfigError::Secret {
        path: path.to_path_buf(),
        source,
    };
    let bytes: [u8; 32] = rand::random();
    let temporary = data_dir.join(format!(".{SECRET_FILE}.{:016x}", rand::random::<u64>()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        file.write_all(format!("{text}\n").as_bytes())?;
        file.sync_all()?;
        if replace {
            std::fs::rename(&temporary, path)
        } else {
            std::fs::hard_link(&temporary, path)
        }
    })();
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return load_or_create_secret(data_dir, None);
        }
        Err(error) => return Err(io_error(error)),
    }
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error)?;
    Ok(Secret::new(bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::serve_args;

    #[test]
    fn an_nkey_seed_file_is_read_checked_and_not_combined_with_url_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed");
        std::fs::write(
            &seed,
            "SUAB433GD5CF5RXT3B2ENXOGJFPZVSSPSC42EUQQUKST64YHO4BAGBQMPI\n",
        )
        .unwrap();
        let seed = seed.to_str().unwrap();
        let settings = cluster_settings(
            &serve_args(&["--nats", "nats://h1:4222", "--nats-nkey-file", seed]),
            None,
        )
        .unwrap()
        .unwrap();
        assert!(settings.nkey.is_some());
        for url in ["nats://app:pass@h1:4222", "nats://t0ken@h1:4222"] {
            let both = serve_args(&["--nats", url, "--nats-nkey-file", seed]);
            assert!(matches!(
                cluster_settings(&both, None),
                Err(ConfigError::TwoNatsCredentials)
            ));
        }
        let missing = serve_args(&["--nats", "nats://h1:4222", "--nats-nkey-file", "/no/such"]);
        assert!(matches!(
            cluster_settings(&missing, None),
            Err(ConfigError::SecretFile { .. })
        ));
    }

    #[test]
    fn reminder_hours_take_fractions_and_refuse_what_cannot_be_meant() {
        assert_eq!(reminder_micros(24.0).unwrap(), 86_400_000_000);
        assert_eq!(reminder_micros(0.0).unwrap(), 0, "0 turns reminders off");
        assert_eq!(reminder_micros(0.001).unwrap(), 3_600_000);
        assert_eq!(
            reminder_micros(MAX_REMINDER_HOURS).unwrap(),
            31_536_000_000_000
        );
        for bad in [-1.0, -0.0001, f64::NAN, f64::INFINITY, 8760.5, 1e300, 1e-12] {
            let error = reminder_micros(bad).unwrap_err().to_string();
            assert!(error.starts_with("--reminder-hours"), "{bad}: {error}");
        }
    }

    #[test]
    fn nats_keep_days_take_fractions_and_refuse_forever_by_accident() {
        assert_eq!(nats_keep(7.0).unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(nats_keep(0.5).unwrap(), Duration::from_secs(43_200));
        assert_eq!(
            nats_keep(MAX_NATS_KEEP_DAYS).unwrap(),
            Duration::from_secs(3650 * 86_400)
        );
        // 0 would be JetStream's "forever"; under a second rounds to it.
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 3650.5, 1e-9] {
            let error = nats_keep(bad).unwrap_err().to_string();
            assert!(error.starts_with("--nats-keep-days"), "{bad}: {error}");
        }
    }

    #[test]
    fn generated_secret_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(dir.path(), None).unwrap();
        let second = load_or_create_secret(dir.path(), None).unwrap();
        assert_eq!(format!("{first:?}"), "Secret([redacted])");
        assert_eq!(first.as_bytes(), second.as_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn explicit_secret_must_not_be_weak() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_or_create_secret(dir.path(), Some("short")),
            Err(ConfigError::WeakSecret)
        ));
    }

    #[test]
    fn mail_domain_comes_from_the_sender() {
        assert_eq!(mail_domain("App <no-reply@example.com>"), "example.com");
        assert_eq!(mail_domain("bad"), "localhost");
    }
}
