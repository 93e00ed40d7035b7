//! Web Push records: a browser's subscription, and the push waiting for it in the outbox.
//!
//! A push row is written in the transaction of the event that causes it (like a mail), but
//! there is at most one per subscription: later events merge into the waiting row (its
//! newest frame and a count), which is how a burst is coalesced (`crate::push`).

use super::{EventKind, OutboxStatus, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Subscriptions one user may hold (API.md).
pub const MAX_SUBSCRIPTIONS_PER_USER: usize = 20;

/// A browser's `PushSubscription`, validated, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSubscription {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The owner's email: events name their audience by email (`Audience`).
    pub email: String,
    /// Super admins receive every event, so their subscriptions are indexed apart.
    pub admin: bool,
    pub endpoint: String,
    /// The browser's ECDH public key, an uncompressed P-256 point.
    pub p256dh: Vec<u8>,
    /// The browser's 16-byte authentication secret.
    pub auth: Vec<u8>,
    pub created_at: Timestamp,
    /// When a push to it was last accepted: the coalescing window starts there.
    pub last_push_at: Option<Timestamp>,
}

/// The push waiting for one subscription: the newest event's frame and how many events it
/// stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxPush {
    pub subscription_id: Uuid,
    /// The subscriber's email, for `app outbox list`.
    pub to: String,
    /// The oldest event not yet pushed that this row stands for.
    pub first_event_id: u64,
    /// The newest event merged in; its frame is the payload.
    pub last_event_id: u64,
    pub kind: EventKind,
    /// How many events since the last accepted push (`first..=last` seen by this user).
    pub events: u64,
    pub frame: String,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}
