//! The push drainer: one task that sends the queued pushes to the push services.
//!
//! It wakes at startup, [`SETTLE`](crate::drain_wake::SETTLE) after every bus event (a
//! doorbell, as for mail) and on a timer. A pass reads the queue (at most one row per
//! subscription), sends the rows that are due — whose newest event is durable, and whose
//! subscription's coalescing window ([`super::PushSettings::interval`]) since its last
//! accepted push is over — at most [`SEND_CONCURRENCY`] at a time, and records each answer:
//!
//! - 2xx: accepted. The row goes, or stays for the events merged into it meanwhile.
//! - 404 or 410: the subscription is gone; it is removed with its row.
//! - 408, 429, 5xx, no connection: retried after the mail drainer's growing, jittered delay,
//!   and `failed` after the mail's number of tries (kept for `app outbox retry`).
//! - anything else (a refused endpoint included): `failed` at once.
//!
//! Every answer is recorded before the next pass, so one subscription never has two pushes in
//! flight. A crash between an accepted push and its record sends that push again on the next
//! start: a push may repeat, it is never lost (the row commits with its event).

use super::crypto;
use super::endpoint::{self, EndpointError, PublicResolver};
use super::vapid::VapidKey;
use super::PushSettings;
use crate::bus::Bus;
use crate::config::Config;
use crate::domain::{EventKind, OutboxPush, OutboxStatus, PushSubscription, Timestamp};
use crate::drain_wake::Doorbell;
use crate::health::StoreHealth;
use crate::mail::drainer::retry_delay;
use crate::store::{Store, StoreError};
use crate::writer::DurableWatermark;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pushes in flight at once (to different subscriptions).
pub const SEND_CONCURRENCY: usize = 16;
/// How long a push service may take to answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a push service keeps an undelivered push (the `TTL` header): a booking
/// notification older than half a day is news nobody needs on their lock screen.
const TTL_SECONDS: u32 = 12 * 3600;
/// Lifetime of a VAPID JWT (RFC 8292 allows at most 24 hours).
const JWT_LIFETIME_SECONDS: i64 = 12 * 3600;
/// How long sends in flight at shutdown may still take.
const SHUTDOWN_SEND_GRACE: Duration = Duration::from_secs(3);

/// What one send came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Accepted,
    Gone,
    Retry(String),
    Fail(String),
}

/// Sends one push: encryption, VAPID and the HTTP request.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    key: VapidKey,
    settings: PushSettings,
}

impl Sender {
    /// A sender whose client connects only to public addresses (unless the settings allow
    /// any), follows no redirect and uses no proxy.
    ///
    /// # Errors
    /// When the TLS client cannot be built.
    pub fn new(key: VapidKey, settings: PushSettings) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(SEND_TIMEOUT)
            .connect_timeout(SEND_TIMEOUT / 2);
        if !settings.allow_insecure {
            builder = builder
                .https_only(true)
                .dns_resolver(Arc::new(PublicResolver));
        }
        Ok(Self {
            client: builder.build()?,
            key,
            settings,
        })
    }

    /// Sends `row` to `subscription`.
    pub async fn send(&self, subscription: &PushSubscription, row: &OutboxPush) -> SendOutcome {
        let insecure = self.settings.allow_insecure;
        let url = match endpoint::parse(&subscription.endpoint, insecure) {
            Ok(url) => url,
            Err(error) => return SendOutcome::Fail(format!("endpoint refused: {error}")),
        };
        // Again at send time: the name may point somewhere else since the subscription.
        match endpoint::check_addresses(&url, insecure).await {
            Ok(()) => {}
            Err(error @ EndpointError::Unresolvable) => {
                return SendOutcome::Retry(format!("endpoint: {error}"))
            }
            Err(error) => return SendOutcome::Fail(format!("endpoint refused: {error}")),
        }
        let plaintext = super::payload(&row.frame, row.events);
        let body = match crypto::encrypt(&plaintext, &subscription.p256dh, &subscription.auth) {
            Ok(body) => body,
            Err(error) => return SendOutcome::Fail(format!("cannot encrypt: {error}")),
        };
        let origin = url.origin().ascii_serialization();
        let exp = Timestamp::now().as_unix_seconds() + JWT_LIFETIME_SECONDS;
        let authorization =
            crypto::vapid_authorization(self.key.secret(), &origin, &self.settings.subject, exp);
        let request = self
            .client
            .post(url)
            .header("Authorization", authorization)
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("TTL", TTL_SECONDS.to_string())
            .header("Urgency", urgency(row.kind))
            .body(body);
        match request.send().await {
            Ok(response) => classify(response.status().as_u16()),
            Err(error) => SendOutcome::Retry(format!("push service unreachable: {error}")),
        }
    }
}

/// RFC 8030 urgency: bookings are what an owner wants to hear about; business edits can wait
/// for the device to be awake anyway.
fn urgency(kind: EventKind) -> &'static str {
    match kind {
        EventKind::ReservationCreated | EventKind::ReservationCancelled => "normal",
        _ => "low",
    }
}

/// What a push service's status means for the row.
fn classify(status: u16) -> SendOutcome {
    match status {
        200..=299 => SendOutcome::Accepted,
        404 | 410 => SendOutcome::Gone,
        408 | 429 | 500..=599 => SendOutcome::Retry(format!("push service answered {status}")),
        _ => SendOutcome::Fail(format!("push service answered {status}")),
    }
}

/// Everything the drainer works with.
pub struct PushDrainer {
    store: Store,
    health: Arc<StoreHealth>,
    sender: Sender,
    watermark: DurableWatermark,
    retry_base: Duration,
    max_attempts: u32,
    poll_interval: Duration,
    interval: Duration,
}

impl PushDrainer {
    /// A drainer with the mail's retry timings from `config`.
    pub fn new(
        (store, health): (Store, Arc<StoreHealth>),
        sender: Sender,
        watermark: DurableWatermark,
        config: &Config,
    ) -> Self {
        let interval = sender.settings.interval;
        Self {
            store,
            health,
            sender,
            watermark,
            retry_base: config.mail_retry_base,
            max_attempts: config.mail_max_attempts.max(1),
            poll_interval: config.mail_poll_interval,
            interval,
        }
    }

    async fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || job(&store))
            .await
            .unwrap_or(Err(StoreError::Closed))
    }

    /// The due rows with their subscriptions, and when the next one falls due.
    async fn due(
        &self,
    ) -> Result<(Vec<(PushSubscription, OutboxPush)>, Option<Timestamp>), StoreError> {
        let durable = self.watermark.get();
        let window = i64::try_from(self.interval.as_micros()).unwrap_or(i64::MAX);
        self.call(move |store| {
            let now = Timestamp::now();
            let (mut due, mut next) = (Vec::new(), None::<Timestamp>);
            for row in store.push_rows()? {
                if row.status != OutboxStatus::Pending || row.last_event_id > durable {
                    continue; // failed, or its newest event could still be undone
                }
                let Some(subscription) = store.push_subscription(row.subscription_id)? else {
                    continue;
                };
                let open = subscription
                    .last_push_at
                    .map_or(row.next_attempt_at, |at| at.plus_micros(window));
                let at = open.max(row.next_attempt_at);
                if at <= now {
                    if due.len() < SEND_CONCURRENCY {
                        due.push((subscription, row));
                    } else {
                        next = Some(now);
                    }
                } else {
                    next = Some(next.map_or(at, |next: Timestamp| next.min(at)));
                }
            }
            Ok((due, next))
        })
        .await
    }

    /// Sends what is due, pass after pass; returns when the next row falls due.
    async fn drain(&self, shutdown: &CancellationToken) -> Option<Timestamp> {
        loop {
            if self.health.is_degraded() || shutdown.is_cancelled() {
                return None;
            }
            let (due, next) = match self.due().await {
                Ok(found) => found,
                Err(error) => {
                    tracing::error!(error = %error, "cannot read the push queue");
                    return None;
                }
            };
            if due.is_empty() {
                return next;
            }
            let outcomes = {
                let sends = futures_util::future::join_all(
                    due.iter()
                        .map(|(subscription, row)| self.sender.send(subscription, row)),
                );
                tokio::pin!(sends);
                tokio::select! {
                    outcomes = &mut sends => outcomes,
                    // Shutdown: the sends in flight get a grace to finish and be recorded.
                    () = shutdown.cancelled() => {
                        match tokio::time::timeout(SHUTDOWN_SEND_GRACE, &mut sends).await {
                            Ok(outcomes) => outcomes,
                            Err(_) => return None,
                        }
                    }
                }
            };
            for ((subscription, row), outcome) in due.into_iter().zip(outcomes) {
                if let Err(error) = self.record(subscription, row, outcome).await {
                    tracing::error!(error = %error, "cannot update the push queue");
                    return None;
                }
            }
        }
    }

    async fn record(
        &self,
        subscription: PushSubscription,
        row: OutboxPush,
        outcome: SendOutcome,
    ) -> Result<(), StoreError> {
        let id = subscription.id;
        let attempts = row.attempts.saturating_add(1);
        match outcome {
            SendOutcome::Accepted => {
                tracing::debug!(subscription = %id, events = row.events, "push accepted");
                self.call(move |store| store.record_push_sent(&row, Timestamp::now()))
                    .await
            }
            SendOutcome::Gone => {
                tracing::info!(subscription = %id, "push subscription gone; removed");
                self.call(move |store| store.remove_push_subscription(id))
                    .await
            }
            SendOutcome::Retry(why) if attempts < self.max_attempts => {
                let delay = retry_delay(self.retry_base, attempts, rand::random());
                let micros = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
                let at = Timestamp::now().plus_micros(micros);
                tracing::warn!(subscription = %id, attempts, error = %why, "push will be retried");
                self.call(move |store| store.record_push_failure(id, attempts, Some(at), &why))
                    .await
            }
            SendOutcome::Retry(why) | SendOutcome::Fail(why) => {
                tracing::warn!(subscription = %id, attempts, error = %why, "push failed");
                self.call(move |store| store.record_push_failure(id, attempts, None, &why))
                    .await
            }
        }
    }
}

/// Runs the drainer until `shutdown` (spawned by `app::serve`).
pub async fn run(drainer: PushDrainer, bus: Bus, shutdown: CancellationToken) {
    let mut doorbell = Doorbell::new(&bus);
    loop {
        let next_due = drainer.drain(&shutdown).await;
        if shutdown.is_cancelled()
            || !doorbell
                .wait(next_due, drainer.poll_interval, &shutdown)
                .await
        {
            break;
        }
    }
    tracing::info!("push drainer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_service_answers_are_classified() {
        assert_eq!(classify(201), SendOutcome::Accepted);
        assert_eq!(classify(410), SendOutcome::Gone);
        assert_eq!(classify(404), SendOutcome::Gone);
        assert!(matches!(classify(429), SendOutcome::Retry(_)));
        assert!(matches!(classify(503), SendOutcome::Retry(_)));
        assert!(matches!(classify(400), SendOutcome::Fail(_)));
        assert!(matches!(classify(413), SendOutcome::Fail(_)));
    }
}
