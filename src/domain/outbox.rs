//! `OutboxMail`: an email waiting to be sent, written in the same transaction as its cause.
//!
//! A row carries everything needed to render the message (a snapshot of the business and
//! reservation), so sending never depends on the entity still existing.

use super::{Business, Reservation, Timestamp};
use serde::{Deserialize, Serialize};

/// Which mail a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// To the owner, on `business_created`.
    Welcome,
    /// To the customer, on `reservation_created`.
    ReservationConfirmation,
    /// To the owner, on `reservation_created`.
    ReservationNotice,
    /// To the customer, on `reservation_cancelled`.
    CancellationNotice,
    /// To the new owner, on a `business_updated` that reassigns the business. New variants
    /// go last: rows are stored with the variant's position.
    Handover,
    /// To the customer, `--reminder-hours` before `starts_at`: queued with the booking, due
    /// in the future, removed again if the reservation is cancelled first.
    Reminder,
    /// To the customer, on each `reservation_cancelled` that deleting its business causes.
    BusinessClosed,
}

impl MailKind {
    /// The wire / CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Welcome => "welcome",
            MailKind::ReservationConfirmation => "reservation_confirmation",
            MailKind::ReservationNotice => "reservation_notice",
            MailKind::CancellationNotice => "cancellation_notice",
            MailKind::Handover => "handover",
            MailKind::Reminder => "reminder",
            MailKind::BusinessClosed => "business_closed",
        }
    }
}

/// Where a row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting for its next attempt (`next_attempt_at`).
    Pending,
    /// Gave up (permanent error or out of tries); kept for `app outbox retry`.
    Failed,
    /// Accepted by the SMTP server (or written to a file); kept as the audit trail.
    Sent,
}

/// One email in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMail {
    /// Consecutive outbox id; the `Message-ID` derives from it.
    pub id: u64,
    /// `<outbox-{id}.{epoch}@{domain}>`, fixed at write time so a resend after a crash carries
    /// the same id (DESIGN invariant 4).
    pub message_id: String,
    pub kind: MailKind,
    pub to: String,
    /// The event that caused this mail.
    pub event_id: u64,
    pub business: Business,
    pub reservation: Option<Reservation>,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}
