//! The mail drainer: one task that empties the outbox through the [`Mailer`].
//!
//! It wakes at startup, [`SETTLE`](crate::drain_wake::SETTLE) after every bus event (the bus is
//! only a doorbell: which event rang does not matter, and a lagged or missed ring delays
//! nothing for long) and on a timer, at the poll interval or when the next retry is due. Each
//! pass reads the due rows — soonest due first, only those whose cause is durable — and
//! claims them through the writer: each row's next attempt moves to when a failed try would
//! retry it, durably, before the mail is handed over. Then it sends them as one batch
//! ([`Mailer::send_all`]: `--smtp-concurrency` SMTP conversations at a time, or one `.eml`
//! write for all) and records the accepted ones through the writer too, in its next batch.
//! Because of the claim, no failure after a send — recording it refused by a full disk, a
//! crash — brings the mail back before its retry delay.
//!
//! While the store cannot be written (`crate::health`) the drainer pauses: it neither claims
//! nor sends, and looks again at the poll interval.
//!
//! A row leaves the queue only after the server accepted its mail (DESIGN invariant 4): a
//! crash between acceptance and the store update resends it on the next start, with the same
//! `Message-ID`. Transient failures come back after a growing, jittered delay; permanent ones
//! and the last allowed try leave the row `failed`, kept for `app outbox retry`.
//!
//! On shutdown it starts no new send and gives the ones in flight [`SHUTDOWN_SEND_GRACE`] to
//! finish and be recorded. Store calls (sled transactions) run on the blocking pool.

use super::{MailError, Mailer};
use crate::bus::Bus;
use crate::config::Config;
use crate::domain::{OutboxMail, OutboxStatus, Timestamp};
use crate::drain_wake::Doorbell;
use crate::health::StoreHealth;
use crate::metrics::Metrics;
use crate::store::{MailFailure, Store, StoreError};
use crate::writer::{DurableWatermark, Writer};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a claim keeps the other nodes of a cluster off a row beyond the longest its
/// batch's send can take (`Mailer::send_bound`: a batch goes out `--smtp-concurrency` at a
/// time, each mail bounded by `super::SMTP_TIMEOUT` to connect and to converse), so a mail
/// goes out twice only when the node that claimed it died mid-send; the copy carries the
/// same Message-ID. The margin covers the claim's and the "sent" record's trips through the
/// cluster's log.
const CLUSTER_CLAIM_MARGIN: Duration = Duration::from_secs(60);

/// Rows read per scan; a pass scans again until nothing is due.
const BATCH_ROWS: usize = 64;
/// The longest delay between two tries of one mail, whatever the attempt number.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
/// How long a send in flight at shutdown may still take (inside the app's 5 s task grace).
pub const SHUTDOWN_SEND_GRACE: Duration = Duration::from_secs(4);
/// How many accepted mails the audit trail (`outbox_sent`) keeps.
pub const SENT_RETENTION: u64 = 10_000;
/// Sends between two prunes of the audit trail (a prune walks up to `SENT_RETENTION` keys).
const PRUNE_EVERY_SENDS: u64 = 100;
/// Longest the `app_outbox_pending` gauge goes without a recount: when nothing was sent, and
/// while a pass works through a backlog.
const PENDING_RECOUNT: Duration = Duration::from_secs(1);

/// Everything the drainer works with.
pub struct Drainer {
    store: Store,
    /// Claims go through the writer, so they are durable before a mail leaves.
    writer: Writer,
    health: Arc<StoreHealth>,
    mailer: Mailer,
    /// Rows whose event is above this are not sent yet: their cause could still be lost.
    watermark: DurableWatermark,
    metrics: Arc<Metrics>,
    /// First retry delay; doubles with each try.
    retry_base: Duration,
    /// Tries (the first included) before a row is failed.
    max_attempts: u32,
    /// Longest sleep without a wake-up.
    poll_interval: Duration,
    sent_since_prune: u64,
    /// When the pending gauge was last recounted.
    counted_at: Option<tokio::time::Instant>,
}

impl Drainer {
    /// A drainer with the timings of `config`.
    pub fn new(
        (store, writer, health): (Store, Writer, Arc<StoreHealth>),
        mailer: Mailer,
        watermark: DurableWatermark,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Self {
        Self {
            store,
            writer,
            health,
            mailer,
            watermark,
            metrics,
            retry_base: config.mail_retry_base,
            max_attempts: config.mail_max_attempts.max(1),
            poll_interval: config.mail_poll_interval,
            // Prune once at startup, then every `PRUNE_EVERY_SENDS` sends.
            sent_since_prune: PRUNE_EVERY_SENDS,
            counted_at: None,
        }
    }
}

/// Runs the drainer until `shutdown` (spawned by `app::serve`).
pub async fn run(mut drainer: Drainer, bus: Bus, shutdown: CancellationToken) {
    let mut doorbell = Doorbell::new(&bus);
    tracing::info!(transport = %drainer.mailer.describe(), "mail drainer started");
    loop {
        let next_due = drainer.drain(&shutdown).await;
        drainer.prune().await;
        if shutdown.is_cancelled()
            || !doorbell
                .wait(next_due, drainer.poll_interval, &shutdown)
                .await
        {
            break;
        }
    }
    tracing::info!("mail drainer stopped");
}

/// How long to wait after the `attempt`-th failed try: `base · 2^(attempt-1)`, capped at
/// [`MAX_RETRY_DELAY`], scaled by `0.5 + jitter` (`jitter` in `[0, 1)`) so mails that failed
/// together do not come back together.
pub fn retry_delay(base: Duration, attempt: u32, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    let nominal = base.saturating_mul(1u32 << doublings).min(MAX_RETRY_DELAY);
    nominal.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

impl Drainer {
    /// Sends every due row; returns when the next retry is due (`None`: nothing scheduled,
    /// shutting down, or the store failed and the timer will try again).
    async fn drain(&mut self, shutdown: &CancellationToken) -> Option<Timestamp> {
        let mut recorded = false;
        let next_due = loop {
            if self.health.is_degraded() {
                tracing::debug!("the store cannot be written; the drainer pauses");
                return None;
            }
            let durable = self.watermark.get();
            let scan = self
                .call(move |store| store.scan_outbox(Timestamp::now(), durable, BATCH_ROWS))
                .await;
            let scan = match scan {
                Ok(scan) => scan,
                Err(error) => {
                    tracing::error!(error = %error, "cannot read the outbox");
                    return None;
                }
            };
            if scan.due.is_empty() {
                break scan.next_due;
            }
            if shutdown.is_cancelled() {
                return None;
            }
            let claimed = match self.claim(&scan.due).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(error = %error, "cannot claim mails; none is sent");
                    return None;
                }
            };
            let Some(results) = self.send_in_flight(&claimed, shutdown).await else {
                tracing::warn!(
                    mails = claimed.len(),
                    "shutdown cut a send short; it is resent, same Message-ID, after its claim"
                );
                return None;
            };
            recorded = true;
            if let Err(error) = self.record(&claimed, results).await {
                tracing::error!(error = %error, "cannot update the outbox");
                return None;
            }
            // A backlog keeps this loop going for as long as it lasts: the gauge must not
            // stay at what it was before it.
            self.count_pending(false).await;
            if shutdown.is_cancelled() {
                return None;
            }
        };
        self.count_pending(recorded).await;
        next_due
    }

    /// Claims `rows` through the writer: each one's next attempt moves to when a failed try
    /// would retry it, and the claim is durable before this returns. Returns the rows that
    /// were still pending.
    async fn claim(&self, rows: &[OutboxMail]) -> Result<Vec<OutboxMail>, StoreError> {
        let now = Timestamp::now();
        // In a cluster the claim is what keeps the other nodes off these rows until this
        // node's "sent" reaches them: it must outlast a send, not only a retry delay.
        let lease = if self.writer.cluster().is_some() {
            self.mailer.send_bound(rows.len()) + CLUSTER_CLAIM_MARGIN
        } else {
            Duration::ZERO
        };
        let claims = rows
            .iter()
            .map(|row| {
                let delay = retry_delay(
                    self.retry_base,
                    row.attempts.saturating_add(1),
                    rand::random(),
                );
                let micros = i64::try_from(delay.max(lease).as_micros()).unwrap_or(i64::MAX);
                (row.id, now.plus_micros(micros))
            })
            .collect();
        self.writer.claim_mails(claims).await
    }

    /// Recounts the pending gauge when `changed` (a pass that sent or failed rows ended), or
    /// once a [`PENDING_RECOUNT`]: a count reads every key of the due index, so it is not done
    /// on every doorbell, nor after every batch of a backlog.
    async fn count_pending(&mut self, changed: bool) {
        let stale = self
            .counted_at
            .is_none_or(|at| at.elapsed() >= PENDING_RECOUNT);
        if !changed && !stale {
            return;
        }
        self.counted_at = Some(tokio::time::Instant::now());
        if let Ok(pending) = self.call(|store| store.pending_mail_count()).await {
            let pending = i64::try_from(pending).unwrap_or(i64::MAX);
            self.metrics
                .outbox_pending
                .store(pending, Ordering::Relaxed);
        }
    }

    /// Records what the sends of `rows` came to, through the writer: failed tries first (each
    /// retried at its time, or failed for good), then the accepted mails, which leave the
    /// queue together. Each outcome is durable before it is counted and, in a cluster, goes
    /// through the log, so every node's copy of a row moves alike.
    ///
    /// Through the writer rather than transactions of the drainer's own, which were left to
    /// sled's periodic flush (a SIGKILL right after one resent the mail, or tried a failed
    /// one again), applied on this node only, and, since sled runs one transaction at a time
    /// process-wide, held the writer's back while they ran (docs/bench.md, "Night 2026-12-04,
    /// later").
    async fn record(
        &mut self,
        rows: &[OutboxMail],
        results: Vec<Result<(), MailError>>,
    ) -> Result<(), StoreError> {
        let mut sent = Vec::with_capacity(rows.len());
        let mut failures = Vec::new();
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => sent.push(row.id),
                Err(error) => failures.push(self.failure(row, &error)),
            }
        }
        if !failures.is_empty() {
            for row in self.writer.record_mail_failures(failures).await? {
                Metrics::inc(match row.status {
                    OutboxStatus::Failed => &self.metrics.outbox_failed_total,
                    _ => &self.metrics.outbox_retries_total,
                });
            }
        }
        if sent.is_empty() {
            return Ok(());
        }
        let count = sent.len() as u64;
        self.writer
            .submit(crate::store::Mutation::MailsSent { ids: sent })
            .await?;
        self.metrics
            .outbox_sent_total
            .fetch_add(count, Ordering::Relaxed);
        self.sent_since_prune += count;
        tracing::debug!(count, "mails accepted");
        Ok(())
    }

    /// What a failed try of the claimed `row` comes to: another try after a growing delay
    /// while the error is transient and tries are left, otherwise failed for good.
    fn failure(&self, row: &OutboxMail, error: &MailError) -> MailFailure {
        let (id, attempts) = (row.id, row.attempts.saturating_add(1));
        let retry_at = match error {
            MailError::Transient(why) if attempts < self.max_attempts => {
                let delay = retry_delay(self.retry_base, attempts, rand::random());
                tracing::warn!(id, attempts, retry_in_ms = delay.as_millis() as u64,
                    error = %why, "mail not sent; will retry");
                let micros = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
                Some(Timestamp::now().plus_micros(micros))
            }
            _ => {
                tracing::error!(id, attempts, error = %error,
                    "mail failed for good; kept for `app outbox retry`");
                None
            }
        };
        MailFailure {
            id,
            claimed_until: row.next_attempt_at,
            attempts,
            retry_at,
            error: error.to_string(),
        }
    }

    /// The sends of `rows`, allowed [`SHUTDOWN_SEND_GRACE`] more once shutdown starts; `None`
    /// when they had to be abandoned (the rows stay pending).
    async fn send_in_flight(
        &self,
        rows: &[OutboxMail],
        shutdown: &CancellationToken,
    ) -> Option<Vec<Result<(), MailError>>> {
        let send = self.mailer.send_all(rows);
        tokio::pin!(send);
        tokio::select! {
            result = &mut send => Some(result),
            () = shutdown.cancelled() => {
                tokio::time::timeout(SHUTDOWN_SEND_GRACE, send).await.ok()
            }
        }
    }

    /// Bounds the audit trail once enough mails went out since the last prune.
    async fn prune(&mut self) {
        if self.sent_since_prune < PRUNE_EVERY_SENDS {
            return;
        }
        self.sent_since_prune = 0;
        match self
            .call(|store| store.prune_sent_mails(SENT_RETENTION))
            .await
        {
            Ok(0) => {}
            Ok(dropped) => tracing::debug!(dropped, "pruned the sent-mail audit trail"),
            Err(error) => tracing::warn!(error = %error, "cannot prune the sent-mail audit trail"),
        }
    }

    /// Runs a store call on the blocking pool (sled transactions never run on the executor);
    /// a refusal of the disk degrades the store (`crate::health`).
    async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || call(&store))
            .await
            .map_err(|_| StoreError::Closed)?;
        if let Err(error) = &result {
            if error.is_storage_failure() {
                self.health.failed("an outbox update", error);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);

    #[test]
    fn delays_double_with_each_try() {
        let middle: Vec<u128> = (1..=5)
            .map(|attempt| retry_delay(BASE, attempt, 0.5).as_millis())
            .collect();
        assert_eq!(middle, vec![100, 200, 400, 800, 1600]);
    }

    #[test]
    fn jitter_spreads_a_delay_between_half_and_one_and_a_half_times() {
        assert_eq!(retry_delay(BASE, 3, 0.0), Duration::from_millis(200));
        assert!(retry_delay(BASE, 3, 0.999) < Duration::from_millis(600));
        assert!(retry_delay(BASE, 3, 0.999) > Duration::from_millis(599));
        // Out-of-range jitter is clamped, never negative or huge.
        assert_eq!(retry_delay(BASE, 1, -3.0), Duration::from_millis(50));
        assert_eq!(retry_delay(BASE, 1, 7.0), Duration::from_millis(150));
    }

    #[test]
    fn delays_are_capped_even_after_many_tries() {
        for attempt in [20, 40, u32::MAX] {
            let delay = retry_delay(Duration::from_secs(2), attempt, 0.5);
            assert_eq!(delay, MAX_RETRY_DELAY, "attempt {attempt}");
        }
    }
}
