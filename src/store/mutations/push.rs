//! Queueing pushes inside an event's transaction: every event is offered to the push
//! subscriptions of its audience (and of every super admin), the rule of
//! `Caller::may_receive` (DESIGN invariant 3), so a committed event always has its pushes
//! queued and a crash can delay them but never lose them.
//!
//! Coalescing happens here: a subscription has at most one row; a new event replaces the
//! row's frame with its own and adds one to its count.

use super::tx::{tx_decode, TxResult};
use crate::domain::{Event, OutboxPush, OutboxStatus, PushSubscription};
use crate::store::codec;
use crate::store::push::ADMINS_KEY;
use crate::store::trees::Tx;
use uuid::Uuid;

impl Tx<'_> {
    /// The subscription ids filed under `key` (an email, or [`ADMINS_KEY`]).
    pub(super) fn push_owner_list(&self, key: &[u8]) -> TxResult<Vec<Uuid>> {
        match self.push_owners.get(key)? {
            Some(bytes) => tx_decode("push_owners", &bytes),
            None => Ok(Vec::new()),
        }
    }

    /// Queues (or merges) a push of `event` for every subscription that may receive it.
    pub(super) fn enqueue_pushes(&self, event: &Event) -> TxResult<()> {
        let mut targets = self.push_owner_list(ADMINS_KEY)?;
        for email in event.audience.emails() {
            for id in self.push_owner_list(email.as_bytes())? {
                if !targets.contains(&id) {
                    targets.push(id);
                }
            }
        }
        for id in targets {
            let Some(bytes) = self.push_subscriptions.get(id.as_bytes())? else {
                continue; // an index entry overtaken by an unsubscribe; harmless
            };
            let subscription: PushSubscription = tx_decode("push_subscriptions", &bytes)?;
            if self.access_state(subscription.user_id)?.disabled {
                continue; // a disabled user's channels see nothing; neither do their browsers
            }
            let row = match self.push_outbox.get(id.as_bytes())? {
                Some(bytes) => merge(tx_decode("push_outbox", &bytes)?, event),
                None => OutboxPush {
                    subscription_id: id,
                    to: subscription.email.clone(),
                    first_event_id: event.id,
                    last_event_id: event.id,
                    kind: event.kind,
                    events: 1,
                    frame: event.frame.clone(),
                    status: OutboxStatus::Pending,
                    attempts: 0,
                    next_attempt_at: event.timestamp,
                    last_error: None,
                    created_at: event.timestamp,
                },
            };
            self.push_outbox
                .insert(id.as_bytes(), codec::encode(&row))?;
        }
        Ok(())
    }
}

/// `row` with `event` merged in: the newest frame, one more event. A failed row comes back
/// to life with a fresh count of tries: a new event is a new reason to try.
fn merge(mut row: OutboxPush, event: &Event) -> OutboxPush {
    row.last_event_id = event.id;
    row.kind = event.kind;
    row.events = row.events.saturating_add(1);
    row.frame = event.frame.clone();
    if row.status != OutboxStatus::Pending {
        row.status = OutboxStatus::Pending;
        row.attempts = 0;
        row.next_attempt_at = event.timestamp;
    }
    row
}
