//! Email: the [`Mailer`] (SMTP through lettre, or `.eml` files when no SMTP URL is set), the
//! [`drainer`] task that empties the outbox through it, the [`templates`] of every mail, and
//! the `app outbox` commands ([`cli`]).
//!
//! A mail is a multipart text + HTML message with `From` (`APP_MAIL_FROM`), `To`, `Date` (when
//! its cause happened), a UTF-8 subject and the `Message-ID` fixed in its outbox row, so a
//! resend after a crash carries the same id as the first try (DESIGN invariant 4).

pub mod cli;
pub mod drainer;
pub mod smtp;
pub mod templates;

use crate::config::Config;
use crate::domain::OutboxMail;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, Message, Tokio1Executor};
use smtp::{SmtpPool, SmtpSettings};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Longest wait for connecting (with TLS, EHLO and AUTH) and for one mail's whole
/// conversation before it counts as a transient failure.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);
/// SMTP conversations at once when `--smtp-concurrency` is not given.
pub const DEFAULT_SMTP_CONCURRENCY: usize = 8;

/// Why a mail could not be sent, split by what the drainer does next.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth another try later: connection refused, timeout, a 4xx answer, a full disk.
    #[error("{0}")]
    Transient(String),
    /// Fails the same way every time: a 5xx answer, an address nobody accepts.
    #[error("{0}")]
    Permanent(String),
    /// The mail settings cannot be used (found at startup).
    #[error("{0}")]
    Config(String),
}

impl MailError {
    /// Classifies a lettre SMTP error: 5xx and client-side refusals are permanent, the rest
    /// (4xx, timeouts, connection and TLS trouble) transient.
    fn from_smtp(error: &lettre::transport::smtp::Error) -> Self {
        let text = error_chain(error);
        if error.is_permanent() || error.is_client() {
            MailError::Permanent(text)
        } else {
            MailError::Transient(text)
        }
    }
}

/// The most of an error's text a row keeps: an SMTP server's answer can run to any length
/// (lettre reads it whole), and a row's failure travels in a cluster's log record.
const ERROR_CHARS: usize = 1_000;

/// `error: cause: cause…`, for the `last_error` of a row, cut at [`ERROR_CHARS`].
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    if let Some((cut, _)) = text.char_indices().nth(ERROR_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Where mails go.
enum Transport {
    /// An SMTP server (pooled connections, TLS / STARTTLS and credentials from the URL), and
    /// how many mails go to it at once.
    Smtp(SmtpPool, usize),
    /// `<dir>/<outbox id>.eml`, for local development.
    Files(PathBuf),
}

/// Renders outbox rows as messages and hands them to the SMTP server or the mail folder.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    /// The mailer `app serve` runs with: SMTP when `smtp_url` is set, else `<data>/mail/`.
    ///
    /// # Errors
    /// [`MailError::Config`] when the URL or the sender address cannot be used.
    pub fn from_config(config: &Config) -> Result<Self, MailError> {
        match &config.smtp_url {
            Some(url) => Self::smtp(url, &config.mail_from, config.smtp_concurrency),
            None => Self::files(&config.data_dir.join("mail"), &config.mail_from),
        }
    }

    /// An SMTP mailer for `url` (`smtp://`, `smtp://…?tls=required`, `smtps://user:pass@…`)
    /// with up to `concurrency` conversations at once ([`smtp`]).
    ///
    /// # Errors
    /// [`MailError::Config`] for a URL lettre cannot use or a bad sender.
    pub fn smtp(url: &str, from: &str, concurrency: usize) -> Result<Self, MailError> {
        // The URL may carry a password: never echo it. lettre's own reading of it stays the
        // judge of what is usable; `SmtpSettings` reads the same parts.
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| MailError::Config(format!("APP_SMTP_URL is unusable: {error}")))?;
        let concurrency = concurrency.max(1);
        let pool = SmtpPool::new(SmtpSettings::from_url(url)?, concurrency);
        Ok(Self {
            transport: Transport::Smtp(pool, concurrency),
            from: parse_from(from)?,
        })
    }

    /// A mailer that writes each mail as `<dir>/<outbox id>.eml`.
    ///
    /// # Errors
    /// [`MailError::Config`] for a bad sender.
    pub fn files(dir: &Path, from: &str) -> Result<Self, MailError> {
        Ok(Self {
            transport: Transport::Files(dir.to_path_buf()),
            from: parse_from(from)?,
        })
    }

    /// The longest `send_all` of `mails` can take: over SMTP, `concurrency` at a time, each
    /// bounded by a connect and a conversation of [`SMTP_TIMEOUT`]; a folder's files are
    /// written in one go, bounded like one conversation.
    pub fn send_bound(&self, mails: usize) -> Duration {
        match &self.transport {
            Transport::Smtp(_, concurrency) => {
                let rounds = u32::try_from(mails.div_ceil(*concurrency)).unwrap_or(u32::MAX);
                SMTP_TIMEOUT.saturating_mul(2).saturating_mul(rounds.max(1))
            }
            Transport::Files(_) => SMTP_TIMEOUT,
        }
    }

    /// Where mails go, for the startup log (never the URL: it may hold a password).
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_, concurrency) => format!("smtp, {concurrency} at once"),
            Transport::Files(dir) => format!("files in {}", dir.display()),
        }
    }

    /// Builds the message of `row`.
    ///
    /// # Errors
    /// [`MailError::Permanent`] when the row cannot make a valid message (bad recipient).
    pub fn message(&self, row: &OutboxMail) -> Result<Message, MailError> {
        let rendered = templates::render(row)?;
        let to: Mailbox = row.to.parse().map_err(|error| {
            MailError::Permanent(format!("recipient {:?} is not an address: {error}", row.to))
        })?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .date(system_time(row))
            .message_id(Some(row.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|error| MailError::Permanent(format!("cannot build the mail: {error}")))
    }

    /// Sends the mail of `row`; `Ok` means the server accepted it (or the file is on disk).
    ///
    /// # Errors
    /// [`MailError::Transient`] to retry later, [`MailError::Permanent`] to give up.
    pub async fn send(&self, row: &OutboxMail) -> Result<(), MailError> {
        let message = self.message(row)?;
        let bytes = message.formatted();
        match &self.transport {
            Transport::Smtp(pool, _) => pool.send(message.envelope(), &bytes).await,
            Transport::Files(dir) => {
                let (dir, id) = (dir.clone(), row.id);
                tokio::task::spawn_blocking(move || write_emls(&dir, &[(id, bytes)]))
                    .await
                    .map_err(|error| MailError::Transient(format!("file writer: {error}")))?
                    .map_err(|error| MailError::Transient(format!("writing the .eml: {error}")))
            }
        }
    }
}

impl Mailer {
    /// Sends the mails of `rows`, one result each, in order. SMTP sends run
    /// `--smtp-concurrency` at a time; files are written as one batch (see
    /// [`write_emls`]), so a batch costs one folder sync instead of one per mail. A file
    /// batch succeeds or fails as a whole (a resend replaces a file written before).
    pub async fn send_all(&self, rows: &[OutboxMail]) -> Vec<Result<(), MailError>> {
        use futures_util::stream::{self, StreamExt};
        let dir = match &self.transport {
            Transport::Smtp(_, concurrency) => {
                // Owned rows: a closure over borrowed ones makes the future not `Send`.
                return stream::iter(rows.to_vec())
                    .map(|row| async move { self.send(&row).await })
                    .buffered(*concurrency)
                    .collect()
                    .await;
            }
            Transport::Files(dir) => dir.clone(),
        };
        let mut results = Vec::with_capacity(rows.len());
        let mut mails = Vec::with_capacity(rows.len());
        for row in rows {
            match self.message(row) {
                Ok(message) => {
                    mails.push((row.id, message.formatted()));
                    results.push(Ok(()));
                }
                Err(error) => results.push(Err(error)),
            }
        }
        if mails.is_empty() {
            return results;
        }
        let written = tokio::task::spawn_blocking(move || write_emls(&dir, &mails))
            .await
            .map_err(|error| format!("file writer: {error}"))
            .and_then(|written| written.map_err(|error| format!("writing the .eml: {error}")));
        if let Err(why) = written {
            for result in results.iter_mut().filter(|result| result.is_ok()) {
                *result = Err(MailError::Transient(why.clone()));
            }
        }
        results
    }
}

/// Writes each `(id, bytes)` as `<dir>/<id>.eml` atomically (temporary file, fsync, rename),
/// so a reader never sees half a mail and a resend replaces the file instead of adding one.
/// A batch syncs the folder once, not once per mail: every temporary file is written and
/// synced, then all are renamed, then the folder is synced, and only then does any of them
/// count as delivered.
fn write_emls(dir: &Path, mails: &[(u64, Vec<u8>)]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::with_capacity(mails.len());
    for (id, bytes) in mails {
        let temporary = dir.join(format!(".{id}.eml.tmp"));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        written.push((*id, temporary, file));
    }
    for (_, _, file) in &written {
        file.sync_all()?;
    }
    for (id, temporary, file) in written {
        drop(file);
        std::fs::rename(&temporary, dir.join(format!("{id}.eml")))?;
    }
    // The renames themselves are durable once the folder is synced (best effort off Unix).
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// The sender, validated once.
fn parse_from(from: &str) -> Result<Mailbox, MailError> {
    from.parse()
        .map_err(|error| MailError::Config(format!("APP_MAIL_FROM {from:?}: {error}")))
}

/// The `Date` of a mail: when its cause happened, so every resend is the same message.
fn system_time(row: &OutboxMail) -> SystemTime {
    u64::try_from(row.created_at.as_micros())
        .ok()
        .and_then(|micros| SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(micros)))
        .unwrap_or_else(SystemTime::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Business, MailKind, OutboxStatus, Timestamp};

    #[tokio::test]
    async fn a_batchs_send_bound_counts_the_rounds_its_concurrency_allows() {
        // A cluster's claim must outlast the whole batch, not one mail (64 rows, 8 at a time:
        // 8 rounds of a connect and a conversation).
        let mailer = Mailer::smtp("smtp://127.0.0.1:2525", "App <a@example.com>", 8).unwrap();
        assert_eq!(mailer.send_bound(64), SMTP_TIMEOUT * 2 * 8);
        assert_eq!(mailer.send_bound(65), SMTP_TIMEOUT * 2 * 9);
        assert_eq!(mailer.send_bound(1), SMTP_TIMEOUT * 2);
        assert_eq!(mailer.send_bound(0), SMTP_TIMEOUT * 2);
        let files = Mailer::files(Path::new("/tmp/mail"), "App <a@example.com>").unwrap();
        assert_eq!(files.send_bound(64), SMTP_TIMEOUT);
    }

    #[derive(Debug)]
    struct Wordy(String);
    impl std::fmt::Display for Wordy {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Wordy {}

    #[test]
    fn an_errors_text_is_kept_whole_up_to_its_limit_and_cut_on_a_character_beyond_it() {
        let short = Wordy("451 4.7.1 try again later".into());
        assert_eq!(error_chain(&short), "451 4.7.1 try again later");
        let exact = Wordy("é".repeat(ERROR_CHARS));
        assert_eq!(error_chain(&exact), exact.0);
        let long = Wordy(format!("451 {}", "ü".repeat(100_000)));
        let kept = error_chain(&long);
        assert_eq!(kept.chars().count(), ERROR_CHARS + 1);
        assert!(kept.starts_with("451 üü") && kept.ends_with("ü…"), "{kept}");
    }

    fn welcome_row(to: &str) -> OutboxMail {
        let now = Timestamp::parse_rfc3339("2031-06-01T10:00:00Z").unwrap();
        OutboxMail {
            id: 42,
            message_id: "<outbox-42.abc@example.com>".into(),
            kind: MailKind::Welcome,
            to: to.into(),
            event_id: 7,
            business: Business {
                id: uuid::Uuid::new_v4(),
                name: "Salon ✂".into(),
                subdomain: "salon".into(),
                owner_email: to.into(),
                created_at: now,
                updated_at: now,
            },
            reservation: None,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            sent_at: None,
        }
    }

    #[test]
    fn a_message_carries_the_rows_message_id_and_both_parts() {
        let mailer = Mailer::files(Path::new("unused"), "App <no-reply@example.com>").unwrap();
        let message = mailer.message(&welcome_row("owner@example.com")).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(text.contains("Message-ID: <outbox-42.abc@example.com>\r\n"));
        assert!(text.contains("From: App <no-reply@example.com>\r\n"));
        assert!(text.contains("To: owner@example.com\r\n"));
        assert!(text.contains("Date: Sun, 01 Jun 2031 10:00:00 +0000\r\n"));
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("text/plain"));
        assert!(text.contains("text/html"));
    }

    #[test]
    fn a_bad_recipient_is_a_permanent_failure() {
        let mailer = Mailer::files(Path::new("unused"), "no-reply@example.com").unwrap();
        assert!(matches!(
            mailer.message(&welcome_row("not an address")),
            Err(MailError::Permanent(_))
        ));
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_the_url() {
        let error = Mailer::smtp("smtp://user:secret@[bad", "a@b.c", 1)
            .err()
            .unwrap();
        assert!(matches!(error, MailError::Config(_)));
        assert!(!error.to_string().contains("secret"));
        assert!(Mailer::files(Path::new("x"), "not a mailbox").is_err());
    }

    #[tokio::test]
    async fn the_file_transport_writes_one_eml_per_outbox_id() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::files(dir.path(), "no-reply@example.com").unwrap();
        let row = welcome_row("owner@example.com");
        mailer.send(&row).await.unwrap();
        mailer.send(&row).await.unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["42.eml".to_string()]);
    }
}
