//! The backup file format (docs/backup-format.md): JSON lines, versioned, checksummed, and
//! independent of sled's on-disk format.
//!
//! Line 1 is a [`Header`]; then one [`Record`] per line, each tree's records in key order;
//! the last line is the trailer `{"kind":"end","records":N,"sha256":"<hex>"}`, whose SHA-256
//! covers every byte before it. A file without its trailer (truncated), with a wrong count or
//! hash (damaged), or of another format or version is refused before anything is used.
//!
//! Why JSON lines rather than a binary layout: the records are the product's own types in
//! their wire form, so any language (or `jq`) can read a backup without this program, which
//! is the point of a format that is also our way off the storage engine; the size costs
//! about twice a binary encoding and compresses well; and it streams, line by line, both ways.

use crate::domain::session::{AccessState, RefreshFamily, RefreshToken};
use crate::domain::{
    Business, Event, OutboxMail, OutboxPush, PushSubscription, Reservation, Timestamp, User,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use uuid::Uuid;

/// The `format` field of every header.
pub const FORMAT_NAME: &str = "app-backup";
/// The layout this build writes. It reads every version from 1 up to this one: version 2
/// added the `push_subscription` and `push_outbox` records, version 3 the `closing` record,
/// version 4 the header's `cluster_seq` and the `refresh_family` and `refresh_token` records
/// (in a cluster node's backup only);
/// an older file is a newer one without them.
pub const FORMAT_VERSION: u32 = 4;

/// Why a backup file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot read or write the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a backup file of this program (the first line is not an {FORMAT_NAME} header)")]
    NotABackup,
    #[error(
        "backup format version {0} is not supported (this build reads versions 1 to {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u32),
    #[error("line {line} of the backup is malformed: {source}")]
    Malformed {
        line: u64,
        source: serde_json::Error,
    },
    #[error("the backup is truncated: it ends without its checksum line")]
    Truncated,
    #[error("the backup holds {found} records, its trailer says {expected}")]
    CountMismatch { expected: u64, found: u64 },
    #[error("the backup's checksum does not match its content: it is damaged")]
    ChecksumMismatch,
    #[error("the backup has data after its checksum line")]
    TrailingData,
}

/// The first line: what the file is and the point in time it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written by this build.
    pub version: u32,
    pub created_at: Timestamp,
    /// The newest event id the backup holds: it is the store as of this id.
    pub event_id: u64,
    /// The next ids the store would have handed out (kept on restore, so none is reused).
    pub next_event_id: u64,
    pub next_outbox_id: u64,
    /// The epoch of the store backed up (a restore starts a new one).
    pub source_epoch: String,
    /// The store schema the records come from.
    pub schema_version: u64,
    /// A cluster node's backup (version 4): the newest record of the cluster's log its store
    /// had applied. `app restore --replica` keeps it, and the epoch, so that a node started
    /// on the restored folder replays the log from the next record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_seq: Option<u64>,
}

/// One record: a row of a primary tree in its wire form. Indexes and counters are not
/// records; a restore rebuilds them from these.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A file of the data folder holding a secret (`secret.key`, `vapid.key`), base64.
    Secret {
        name: String,
        base64: String,
    },
    User {
        user: User,
    },
    /// A user's access state: token generation and whether the account is disabled (absent
    /// for users never revoked or disabled). Refresh tokens are not backed up: a restore signs
    /// everyone out, and a disabled user stays disabled.
    UserAccess {
        user_id: Uuid,
        access: AccessState,
    },
    /// A read receipt: the user has read everything up to `up_to`.
    Receipt {
        user_id: Uuid,
        up_to: u64,
    },
    /// A business and its listing sequence number (the id of its creating event).
    Business {
        seq: u64,
        business: Business,
    },
    /// A reservation and its sequence number (the id of its creating event).
    Reservation {
        seq: u64,
        reservation: Reservation,
    },
    Event {
        event: Event,
    },
    /// A queued mail (pending or failed).
    Outbox {
        mail: OutboxMail,
    },
    /// A mail the SMTP server accepted (the audit trail).
    OutboxSent {
        mail: OutboxMail,
    },
    /// A browser's Web Push subscription (version 2).
    PushSubscription {
        subscription: PushSubscription,
    },
    /// The push waiting for a subscription (version 2).
    PushOutbox {
        push: OutboxPush,
    },
    /// A login's chain of refresh tokens (version 4, a cluster node's backup only: a replica
    /// must hold what the other nodes hold; a plain restore signs everyone out instead).
    RefreshFamily {
        id: Uuid,
        family: RefreshFamily,
    },
    /// A refresh token ever issued, by its SHA-256 (base64), kept so that a reuse is
    /// recognised (version 4, a cluster node's backup only).
    RefreshToken {
        hash: String,
        token: RefreshToken,
    },
    /// A business whose deletion was under way (version 3): the restored server finishes it,
    /// cancelling each of its bookings still confirmed and starting after `since`.
    Closing {
        business_id: Uuid,
        since: Timestamp,
    },
}

/// The last line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "end")]
struct Trailer {
    records: u64,
    sha256: String,
}

/// Writes a backup line by line, hashing as it goes.
pub struct BackupWriter<W: Write> {
    out: W,
    hasher: Sha256,
    records: u64,
}

impl<W: Write> BackupWriter<W> {
    /// Starts a backup with `header`.
    ///
    /// # Errors
    /// `out` cannot be written.
    pub fn new(out: W, header: &Header) -> Result<Self, FormatError> {
        let mut writer = Self {
            out,
            hasher: Sha256::new(),
            records: 0,
        };
        writer.line(header)?;
        Ok(writer)
    }

    /// Appends one record.
    ///
    /// # Errors
    /// `out` cannot be written.
    pub fn record(&mut self, record: &Record) -> Result<(), FormatError> {
        self.records += 1;
        self.line(record)
    }

    fn line(&mut self, value: &impl Serialize) -> Result<(), FormatError> {
        let mut bytes = serde_json::to_vec(value).expect("backup records always serialize");
        bytes.push(b'\n');
        self.hasher.update(&bytes);
        self.out.write_all(&bytes)?;
        Ok(())
    }

    /// Writes the trailer and returns the output (not yet synced).
    ///
    /// # Errors
    /// `out` cannot be written.
    pub fn finish(mut self) -> Result<W, FormatError> {
        let trailer = Trailer {
            records: self.records,
            sha256: hex(&self.hasher.finalize()),
        };
        let mut bytes = serde_json::to_vec(&trailer).expect("the trailer always serializes");
        bytes.push(b'\n');
        self.out.write_all(&bytes)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a backup, handing each record to `visit` in file order, and checks the format,
/// version, count and checksum. The checksum can only be known at the end: run a pass with a
/// visitor that does nothing before acting on any record (see `app restore`).
///
/// # Errors
/// A [`FormatError`], or the visitor's own error converted into one.
pub fn read<R: BufRead, E: From<FormatError>>(
    mut input: R,
    mut visit: impl FnMut(Record) -> Result<(), E>,
) -> Result<Header, E> {
    let mut hasher = Sha256::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut next_line = |line: &mut Vec<u8>| -> Result<bool, FormatError> {
        line.clear();
        Ok(input.read_until(b'\n', line)? > 0)
    };
    if !next_line(&mut line)? {
        return Err(FormatError::NotABackup.into());
    }
    number += 1;
    let header: Header = serde_json::from_slice(&line).map_err(|_| FormatError::NotABackup)?;
    if header.format != FORMAT_NAME {
        return Err(FormatError::NotABackup.into());
    }
    if !(1..=FORMAT_VERSION).contains(&header.version) {
        return Err(FormatError::UnsupportedVersion(header.version).into());
    }
    hasher.update(&line);
    let mut records = 0u64;
    loop {
        if !next_line(&mut line)? || !line.ends_with(b"\n") {
            return Err(FormatError::Truncated.into());
        }
        number += 1;
        if let Ok(trailer) = serde_json::from_slice::<Trailer>(&line) {
            if trailer.records != records {
                return Err(FormatError::CountMismatch {
                    expected: trailer.records,
                    found: records,
                }
                .into());
            }
            if trailer.sha256 != hex(&hasher.finalize()) {
                return Err(FormatError::ChecksumMismatch.into());
            }
            if next_line(&mut line)? {
                return Err(FormatError::TrailingData.into());
            }
            return Ok(header);
        }
        hasher.update(&line);
        let record: Record =
            serde_json::from_slice(&line).map_err(|source| FormatError::Malformed {
                line: number,
                source,
            })?;
        records += 1;
        visit(record)?;
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            created_at: Timestamp::from_micros(1_700_000_000_123_456),
            event_id: 2,
            next_event_id: 3,
            next_outbox_id: 1,
            source_epoch: "e".into(),
            schema_version: 2,
            cluster_seq: None,
        }
    }

    fn sample() -> Vec<u8> {
        let now = Timestamp::from_micros(1_700_000_000_654_321);
        let business = Business {
            id: Uuid::from_u128(7),
            name: "Salon ✂ \"quoted\"\nnewline".into(),
            subdomain: "salon".into(),
            owner_email: "o@example.com".into(),
            created_at: now,
            updated_at: now,
        };
        let mut writer = BackupWriter::new(Vec::new(), &header()).unwrap();
        writer
            .record(&Record::Secret {
                name: "secret.key".into(),
                base64: "c2VjcmV0".into(),
            })
            .unwrap();
        writer
            .record(&Record::Business { seq: 1, business })
            .unwrap();
        writer
            .record(&Record::Receipt {
                user_id: Uuid::from_u128(9),
                up_to: 2,
            })
            .unwrap();
        writer.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<(Header, Vec<Record>), FormatError> {
        let mut records = Vec::new();
        let header = read(bytes, |record| {
            records.push(record);
            Ok::<(), FormatError>(())
        })?;
        Ok((header, records))
    }

    #[test]
    fn a_backup_round_trips_header_and_records_in_order() {
        let bytes = sample();
        let (read_header, records) = read_all(&bytes).unwrap();
        assert_eq!(read_header, header());
        assert_eq!(records.len(), 3);
        let Record::Business { seq, business } = &records[1] else {
            panic!("second record: {:?}", records[1]);
        };
        assert_eq!(
            (*seq, business.name.as_str()),
            (1, "Salon ✂ \"quoted\"\nnewline")
        );
        assert_eq!(
            business.created_at,
            Timestamp::from_micros(1_700_000_000_654_321)
        );
        // One JSON document per line: a newline inside a value is escaped.
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 5);
    }

    #[test]
    fn another_version_or_format_is_refused() {
        let text = String::from_utf8(sample()).unwrap();
        let current = format!("\"version\":{FORMAT_VERSION}");
        let next = FORMAT_VERSION + 1;
        let newer = text.replacen(&current, &format!("\"version\":{next}"), 1);
        assert!(matches!(
            read_all(newer.as_bytes()),
            Err(FormatError::UnsupportedVersion(v)) if v == next
        ));
        // Version 1 (before push records) is still read; the checksum covers the header.
        let older = text.replacen(&current, "\"version\":1", 1);
        assert!(matches!(
            read_all(older.as_bytes()),
            Err(FormatError::ChecksumMismatch)
        ));
        let other = text.replacen(FORMAT_NAME, "tar", 1);
        assert!(matches!(
            read_all(other.as_bytes()),
            Err(FormatError::NotABackup)
        ));
        assert!(matches!(read_all(b""), Err(FormatError::NotABackup)));
    }

    #[test]
    fn a_changed_byte_fails_the_checksum() {
        let text = String::from_utf8(sample()).unwrap();
        let changed = text.replacen("\"up_to\":2", "\"up_to\":3", 1);
        assert!(matches!(
            read_all(changed.as_bytes()),
            Err(FormatError::ChecksumMismatch)
        ));
        let garbled = text.replacen("\"seq\":1", "\"seq\":x", 1);
        assert!(matches!(
            read_all(garbled.as_bytes()),
            Err(FormatError::Malformed { line: 3, .. })
        ));
    }

    #[test]
    fn a_truncated_file_or_extra_data_is_refused() {
        let bytes = sample();
        for cut in [bytes.len() - 1, bytes.len() / 2, 10] {
            assert!(
                matches!(
                    read_all(&bytes[..cut]),
                    Err(FormatError::Truncated | FormatError::NotABackup)
                ),
                "cut at {cut}"
            );
        }
        // Cut exactly at a line end: the trailer is missing.
        let without_trailer = &bytes[..bytes[..bytes.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap()
            + 1];
        assert!(matches!(
            read_all(without_trailer),
            Err(FormatError::Truncated)
        ));
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"{}\n");
        assert!(matches!(read_all(&longer), Err(FormatError::TrailingData)));
    }
}
