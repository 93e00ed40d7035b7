//! The command line, described with clap derive. Doc comments here are the `--help` text;
//! nothing here does I/O.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// One-binary real-time server: REST API, live WebSocket dashboards and a transactional
/// email outbox on an embedded database.
#[derive(Debug, Parser)]
#[command(name = "app", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (REST, WebSockets, dashboard, mail drainer).
    Serve(Box<ServeArgs>),
    /// Manage users offline, on the data folder (stop the server first).
    #[command(subcommand)]
    User(UserCommand),
    /// Mint a token for a user, for local testing and scripts (reads the data folder).
    Token(TokenArgs),
    /// Inspect and requeue the email outbox (on the data folder; stop the server first).
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Print a channel's events as JSON lines, reconnecting and resuming by itself.
    Watch(WatchArgs),
    /// Write everything (users, businesses, reservations, events, outbox, secrets) to one
    /// file, as of one event id; works while the server runs and while it is stopped.
    Backup(BackupArgs),
    /// Fill an empty or new data folder from a backup file (a new epoch: clients resync).
    Restore(RestoreArgs),
    /// Read and verify every record of a data folder (or of a backup file) and report what
    /// is wrong; exits non-zero when anything is.
    Check(CheckArgs),
}

/// `app backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (replaced only once the new one is complete and verified).
    pub file: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where the server listens, asked for the backup when it holds the data folder.
    #[arg(long, env = "APP_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: String,
    /// The JWT secret, when the server runs with APP_JWT_SECRET (else <data>/secret.key).
    #[arg(long, env = "APP_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// `app restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file to restore (verified completely before anything is written).
    pub file: PathBuf,
    /// Seed a cluster node: keep the backup's epoch and its position in the cluster's log,
    /// so that a node started on the folder with `--nats` replays the log from there. Only
    /// for a backup taken from a cluster node.
    #[arg(long)]
    pub replica: bool,
    #[command(flatten)]
    pub data: TargetArgs,
}

/// The folder a restore fills: never a default, so a restore never lands somewhere by
/// accident.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Data folder to create, or an empty one; a non-empty folder is refused.
    #[arg(long = "data", env = "APP_DATA_DIR")]
    pub data: PathBuf,
}

/// `app check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A backup file to verify instead of the data folder.
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Where the data lives; shared by every subcommand that opens the store.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Data folder (database, generated secret, .eml files).
    #[arg(long = "data", env = "APP_DATA_DIR", default_value = "data")]
    pub data: PathBuf,
}

/// `app serve`.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "APP_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// SMTP server URL, e.g. smtp://127.0.0.1:2525 or smtps://user:pass@host; without it,
    /// emails are written as .eml files under <data>/mail/.
    #[arg(long, env = "APP_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of every email.
    #[arg(
        long,
        env = "APP_MAIL_FROM",
        default_value = "App <no-reply@localhost>"
    )]
    pub mail_from: String,
    /// JWT signing secret; when unset one is generated once and kept in <data>/secret.key.
    #[arg(long, env = "APP_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "APP_TOKEN_TTL", default_value_t = 3600)]
    pub token_ttl: u64,
    /// Lifetime of a refresh token, in seconds (each use starts a new one); 30 days.
    #[arg(long, env = "APP_REFRESH_TTL", default_value_t = 30 * 24 * 3600)]
    pub refresh_ttl: u64,
    /// Login attempts allowed per client address per minute.
    #[arg(long, env = "APP_LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = 60)]
    pub login_attempts_per_minute: u32,
    /// Failed logins allowed per account per 15 minutes; past them the account refuses every
    /// login, the right password included, until the oldest failure is 15 minutes old.
    #[arg(long, env = "APP_LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 10)]
    pub login_failures_per_account: u32,
    /// Password hashes run at once (argon2: ~19 MiB and a core each); 0 means one per core.
    #[arg(long, env = "APP_PASSWORD_HASH_WORKERS", default_value_t = 0)]
    pub password_hash_workers: usize,
    /// Longest a login waits for a hashing slot before a 503 `busy`, in milliseconds.
    #[arg(long, default_value_t = 5_000, hide = true)]
    pub login_queue_timeout_ms: u64,
    /// Extra origins allowed to open WebSockets (comma-separated, e.g. https://app.example.com).
    #[arg(long, env = "APP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// How many events the log keeps for resuming clients.
    #[arg(long, env = "APP_EVENT_RETENTION", default_value_t = 10_000)]
    pub event_retention: u64,
    /// Hours before a reservation's start its customer is mailed a reminder; 0 turns
    /// reminders off; fractions are allowed (0.5 is half an hour). At most 8760 (a year).
    #[arg(
        long,
        env = "APP_REMINDER_HOURS",
        default_value_t = 24.0,
        allow_negative_numbers = true
    )]
    pub reminder_hours: f64,
    /// Public bookings allowed per client address per minute.
    #[arg(long, env = "APP_BOOKING_RATE_PER_MINUTE", default_value_t = 120)]
    pub booking_rate_per_minute: u32,
    /// Start even when the store holds less than its outside record (a damaged or replaced
    /// store): on a new epoch, with every id above those handed out before. What is missing
    /// stays lost; prefer `app restore` from a backup.
    #[arg(long)]
    pub accept_data_loss: bool,
    /// Cluster mode: the NATS servers (comma-separated `nats://host:port`, with
    /// `user:password@` or `token@` when they want credentials) whose JetStream stream orders
    /// every change of every node. Without it the node is alone.
    #[arg(long, env = "APP_NATS", value_name = "URL[,URL...]")]
    pub nats: Option<String>,
    /// This node's name in the cluster (in `/healthz` and logs); the host name by default.
    #[arg(long, env = "APP_NODE_NAME", requires = "nats")]
    pub node_name: Option<String>,
    /// Cluster mode: how many days the log keeps a record (fractions allowed). Without it a
    /// new log keeps everything and an existing one keeps its setting. A node that falls
    /// further behind is seeded from another node's backup (`app restore --replica`).
    #[arg(
        long,
        env = "APP_NATS_KEEP_DAYS",
        requires = "nats",
        value_name = "DAYS",
        allow_negative_numbers = true
    )]
    pub nats_keep_days: Option<f64>,
    /// Cluster mode: a file holding this node's NATS user NKey seed (`SU…`, as `nk -gen user`
    /// writes it), for NATS servers that authenticate users by NKey.
    #[arg(
        long,
        env = "APP_NATS_NKEY_FILE",
        requires = "nats",
        value_name = "FILE"
    )]
    pub nats_nkey_file: Option<PathBuf>,
    /// Database page cache, in MiB.
    /// Public bookings allowed per business per minute, on top of the per-address limit.
    #[arg(
        long,
        env = "APP_BOOKING_RATE_PER_BUSINESS_PER_MINUTE",
        default_value_t = 60
    )]
    pub booking_rate_per_business_per_minute: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed (comma-separated CIDRs, e.g.
    /// `127.0.0.1/32,10.0.0.0/8`); default none: the TCP peer is the client.
    #[arg(long, env = "APP_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    #[arg(long, env = "APP_CACHE_MB", default_value_t = 64)]
    pub cache_mb: u64,
    /// Email of the super admin created on first run.
    #[arg(long, env = "APP_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of the super admin created on first run.
    #[arg(long, env = "APP_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Interval between server pings on each WebSocket, in milliseconds.
    #[arg(long, default_value_t = 30_000, hide = true)]
    pub ws_ping_interval_ms: u64,
    /// A WebSocket peer silent for this long is dropped, in milliseconds.
    #[arg(long, default_value_t = 90_000, hide = true)]
    pub ws_idle_timeout_ms: u64,
    /// Frames written to one socket per wake-up before its flush (later ones wait in the
    /// bus's shared ring, so a long catch-up does not hold a worker thread). Once named
    /// `--ws-send-queue`, from when it sized a per-socket queue; that name still works.
    #[arg(long, alias = "ws-send-queue", default_value_t = 1024, hide = true)]
    pub ws_frames_per_wake: usize,
    /// A socket that takes nothing for this long while frames wait for it is closed as a
    /// slow consumer (4008), in milliseconds.
    #[arg(long, default_value_t = 10_000, hide = true)]
    pub ws_send_timeout_ms: u64,
    /// First retry delay of a failed email, in milliseconds (doubles each try, with jitter).
    #[arg(
        long,
        env = "APP_MAIL_RETRY_BASE_MS",
        default_value_t = 2_000,
        hide = true
    )]
    pub mail_retry_base_ms: u64,
    /// Tries before an email is marked failed.
    #[arg(long, env = "APP_MAIL_MAX_ATTEMPTS", default_value_t = 8)]
    pub mail_max_attempts: u32,
    /// Reads the SMTP server URL (with its password) from this file instead.
    #[arg(
        long,
        env = "APP_SMTP_URL_FILE",
        conflicts_with = "smtp_url",
        hide_env_values = true
    )]
    pub smtp_url_file: Option<PathBuf>,
    /// Reads the JWT signing secret from this file instead.
    #[arg(
        long,
        env = "APP_JWT_SECRET_FILE",
        conflicts_with = "jwt_secret",
        hide_env_values = true
    )]
    pub jwt_secret_file: Option<PathBuf>,
    /// A connection must send a complete request head within this many seconds.
    #[arg(long, env = "APP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// On SIGTERM/SIGINT, requests in flight get this many seconds before their
    /// connections are closed; the process exits within it plus 2 s.
    #[arg(long, env = "APP_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Open client connections (HTTP and WebSocket) at most; past it a new one is closed
    /// at once. Default: the open-file limit (raised to the hard limit at start) less 64.
    #[arg(long, env = "APP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Host names served besides localhost, 127.0.0.1 and [::1] (comma-separated); other
    /// Host headers get 421. On a non-loopback address, when set, only these are served.
    #[arg(long, env = "APP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// SMTP conversations the mail drainer runs at once, each on its own pooled connection
    /// (1–256).
    #[arg(
        long,
        env = "APP_SMTP_CONCURRENCY",
        default_value_t = crate::mail::DEFAULT_SMTP_CONCURRENCY as u16,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub smtp_concurrency: u16,
    /// How often the mail drainer looks for due rows without a wake-up, in milliseconds.
    #[arg(long, default_value_t = 5_000, hide = true)]
    pub mail_poll_interval_ms: u64,
    /// Published events the bus keeps for subscribers; one further behind catches up from
    /// the store (tests shrink it to exercise that path).
    #[arg(long, default_value_t = crate::bus::BROADCAST_CAPACITY, hide = true)]
    pub bus_capacity: usize,
    /// Web Push: the VAPID `sub` claim, how a push service reaches you (a mailto: or https:
    /// URL); default `mailto:` the --mail-from address.
    #[arg(long, env = "APP_VAPID_SUBJECT")]
    pub vapid_subject: Option<String>,
    /// Web Push: also allow http:// endpoints and loopback or private addresses. For tests and
    /// local development only: it lets a client make the server call into its network.
    #[arg(long, env = "APP_PUSH_ALLOW_INSECURE")]
    pub push_allow_insecure: bool,
    /// Web Push: the shortest time between two pushes to one subscription, in milliseconds;
    /// events in between merge into one push.
    #[arg(long, default_value_t = 2_000, hide = true)]
    pub push_interval_ms: u64,
}

/// `app user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (like POST /api/users/, offline).
    Create(UserCreateArgs),
    /// Set a user's password (offline), e.g. to replace the one printed on first run; the
    /// user's older tokens stop working.
    Password(UserPasswordArgs),
    /// Disable a user (offline): it cannot log in, and its tokens stop working.
    Disable(UserEmailArgs),
    /// Enable a disabled user again (offline); it logs in anew.
    Enable(UserEmailArgs),
}

/// `app user disable|enable`.
#[derive(Debug, Args)]
pub struct UserEmailArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The user's email (login name).
    #[arg(long)]
    pub email: String,
}

/// `app user password`.
#[derive(Debug, Args)]
pub struct UserPasswordArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The user's email (login name).
    #[arg(long)]
    pub email: String,
    /// The new password, at least 8 characters.
    #[arg(long)]
    pub password: String,
}

/// `app user create`.
#[derive(Debug, Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The user's email (login name).
    #[arg(long)]
    pub email: String,
    /// At least 8 characters.
    #[arg(long)]
    pub password: String,
    /// super_admin or business_owner.
    #[arg(long, value_parser = ["super_admin", "business_owner"])]
    pub role: String,
}

/// `app token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The user to mint a token for.
    #[arg(long)]
    pub email: String,
    /// Lifetime in seconds, at most 30 days (2592000).
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// The JWT secret, when the server runs with APP_JWT_SECRET.
    #[arg(long, env = "APP_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// `app outbox …`.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List queued (pending and failed) emails.
    List(OutboxListArgs),
    /// Requeue failed emails for an immediate new try.
    Retry(OutboxRetryArgs),
}

/// `app outbox list`.
#[derive(Debug, Args)]
pub struct OutboxListArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Only failed emails.
    #[arg(long)]
    pub failed: bool,
    /// Also show sent emails (the audit trail).
    #[arg(long, conflicts_with = "failed")]
    pub sent: bool,
}

/// `app outbox retry`.
#[derive(Debug, Args)]
pub struct OutboxRetryArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The outbox id to requeue.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<u64>,
    /// Requeue every failed email.
    #[arg(long)]
    pub all: bool,
}

/// `app watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Server base URL.
    #[arg(long, env = "APP_URL", default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// `dashboard` or `business:<id>`.
    #[arg(long, default_value = "dashboard")]
    pub channel: String,
    /// A token (see `app token`); or use --email/--password to log in.
    #[arg(long, env = "APP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Log in with this email (with --password).
    #[arg(long, requires = "password")]
    pub email: Option<String>,
    /// Password for --email.
    #[arg(long, env = "APP_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Resume after this event id (with --epoch) instead of starting live.
    #[arg(long)]
    pub last_event_id: Option<u64>,
    /// The epoch of --last-event-id.
    #[arg(long)]
    pub epoch: Option<String>,
    /// Also print control frames (connection_established, resync_required, pong).
    #[arg(long)]
    pub all_frames: bool,
    /// Exit after printing this many events.
    #[arg(long)]
    pub count: Option<u64>,
}

/// `app serve ARGS` as parsed, for tests of what the flags make.
#[cfg(test)]
pub(crate) fn serve_args(args: &[&str]) -> ServeArgs {
    let cli = Cli::try_parse_from([["app", "serve"].as_slice(), args].concat())
        .expect("valid serve arguments");
    match cli.command {
        Command::Serve(serve) => *serve,
        other => panic!("parsed as {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_per_wake(args: &[&str]) -> usize {
        serve_args(args).ws_frames_per_wake
    }

    #[test]
    fn frames_per_wake_keeps_its_old_name_as_an_alias() {
        assert_eq!(frames_per_wake(&[]), 1024, "default");
        assert_eq!(frames_per_wake(&["--ws-frames-per-wake", "8"]), 8);
        assert_eq!(frames_per_wake(&["--ws-send-queue", "8"]), 8, "old name");
    }
}
