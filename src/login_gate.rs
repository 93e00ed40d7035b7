//! What stands in front of every password check (API.md "Limits, timeouts and hostile
//! clients", Login): attempts per client address, failed attempts per account, and the
//! hashing queue.
//!
//! - Per address: a token bucket ([`RateLimiter`], like public booking), default 60 a minute.
//! - Per account: at most N failures (default 10) in a sliding 15-minute window; past it the
//!   account refuses every attempt, the right password included, until the oldest failure
//!   leaves the window. A success before that clears the count.
//! - Hashing: argon2 takes ~19 MiB and a core for tens of milliseconds, so at most one hash
//!   or verify runs per core ([`LoginGate::hash`]); a caller that waits longer than the
//!   queue timeout (5 s) is told the server is busy instead of piling up memory and threads.
//!   Hashes run on a fixed set of threads of their own, not the blocking pool: glibc gives
//!   each thread its own heap arena and keeps a freed 19 MiB block in it, so hashes spread
//!   over the blocking pool's many threads held one block per thread (~600 MiB measured
//!   with 300 logins on 2 cores), while a fixed set holds one per hashing thread.
//!
//! Memory stays bounded: the address buckets sweep themselves, and account entries whose
//! failures all left the window are swept once the table is large. Each entry costs a
//! failed verify, which the hashing queue meters, so the hard cap below is far out of reach
//! of any real flood; should it be reached, new accounts go untracked (logged) rather than
//! the table growing.

use crate::client_addr::ClientKey;
use crate::rate_limit::RateLimiter;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The window failed attempts are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Account entries that trigger a sweep of those with no failure left in the window.
const SWEEP_AT: usize = 10_000;
/// Account entries kept at most.
const MAX_ACCOUNTS: usize = 200_000;
/// Longest account key kept (the longest valid email); longer input is cut, not stored whole.
const MAX_KEY_BYTES: usize = 254;

/// Why an attempt may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// Too many attempts from the address, or failures on the account (429).
    #[error("too many login attempts; retry in {0:?}")]
    RateLimited(Duration),
    /// Every hashing slot stayed taken for the queue timeout (503).
    #[error("the server is busy; retry in {0:?}")]
    Busy(Duration),
}

/// The limits and the hashing queue of logins (and of anything else that hashes passwords).
pub struct LoginGate {
    per_address: RateLimiter<ClientKey>,
    accounts: Mutex<HashMap<String, VecDeque<Instant>>>,
    max_failures: usize,
    hashing: Semaphore,
    queue_timeout: Duration,
    /// Jobs for the hashing threads; at most one per permit is ever queued.
    jobs: SyncSender<Job>,
}

/// A hash or verify, sending its result back itself.
type Job = Box<dyn FnOnce() + Send>;

/// How the gate is sized.
#[derive(Debug, Clone, Copy)]
pub struct GateLimits {
    pub attempts_per_address_per_minute: u32,
    pub failures_per_account: u32,
    /// Hashes that may run at once: the number of cores.
    pub hash_workers: usize,
    pub queue_timeout: Duration,
}

impl LoginGate {
    /// A gate with these limits, and its hashing threads (which end when it is dropped).
    ///
    /// # Errors
    /// When a hashing thread cannot be started.
    pub fn new(limits: GateLimits) -> std::io::Result<Self> {
        let workers = limits.hash_workers.max(1);
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(workers);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..workers {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("password-hash".into())
                .spawn(move || run_hashing(&queue))?;
        }
        Ok(Self {
            per_address: RateLimiter::new(limits.attempts_per_address_per_minute),
            accounts: Mutex::new(HashMap::new()),
            max_failures: usize::try_from(limits.failures_per_account.max(1)).unwrap_or(10),
            hashing: Semaphore::new(workers),
            queue_timeout: limits.queue_timeout,
            jobs,
        })
    }

    /// Counts an attempt from `client` on `account`; refuses it when either limit is reached.
    pub fn admit(&self, client: ClientKey, account: &str) -> Result<(), GateError> {
        self.admit_at(client, account, Instant::now())
    }

    /// Records a failed attempt on `account` (wrong password, unknown or disabled user).
    pub fn failed(&self, account: &str) {
        self.failed_at(account, Instant::now());
    }

    /// A successful attempt forgets the account's failures.
    pub fn succeeded(&self, account: &str) {
        self.lock().remove(key(account));
    }

    /// Runs `work` (a hash or verify) on a hashing thread once one is free.
    ///
    /// # Errors
    /// `Busy` when no slot freed up within the queue timeout.
    pub async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GateError> {
        let busy = GateError::Busy(self.queue_timeout.max(Duration::from_secs(1)));
        let permit = tokio::time::timeout(self.queue_timeout, self.hashing.acquire())
            .await
            .map_err(|_| busy)?
            // The semaphore is never closed.
            .map_err(|_| busy)?;
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        // Never full: a job is queued only under a permit, and there are as many slots.
        self.jobs.try_send(job).map_err(|_| busy)?;
        // A panic inside argon2 would be a bug; the reply is dropped with it, and the caller
        // answers like a busy server rather than taking the whole request down.
        let result = result.await.map_err(|_| busy);
        drop(permit);
        result
    }

    fn admit_at(&self, client: ClientKey, account: &str, now: Instant) -> Result<(), GateError> {
        self.per_address
            .check_at(client, now)
            .map_err(GateError::RateLimited)?;
        let accounts = self.lock();
        if let Some(failures) = accounts.get(key(account)) {
            let recent = failures
                .iter()
                .filter(|at| now.duration_since(**at) < FAILURE_WINDOW);
            if recent.count() >= self.max_failures {
                let oldest = failures[failures.len() - self.max_failures];
                let wait = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
                return Err(GateError::RateLimited(wait));
            }
        }
        Ok(())
    }

    fn failed_at(&self, account: &str, now: Instant) {
        let mut accounts = self.lock();
        if accounts.len() >= SWEEP_AT {
            accounts.retain(|_, failures| {
                failures
                    .back()
                    .is_some_and(|at| now.duration_since(*at) < FAILURE_WINDOW)
            });
        }
        let key = key(account);
        if !accounts.contains_key(key) && accounts.len() >= MAX_ACCOUNTS {
            tracing::warn!("login failure table full; not tracking another account");
            return;
        }
        let failures = accounts.entry(key.to_string()).or_default();
        failures.push_back(now);
        while failures.len() > self.max_failures {
            failures.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // No section below can panic halfway; a poisoned map is still a valid map.
        self.accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A hashing thread: runs jobs until the gate is dropped.
fn run_hashing(queue: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for a job, never while running one.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else {
            return;
        };
        // A job that panics loses its reply (its caller hears "busy"); the thread goes on.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// The table key of an account: the lower-cased email, cut to a valid email's length.
fn key(account: &str) -> &str {
    let mut end = account.len().min(MAX_KEY_BYTES);
    while !account.is_char_boundary(end) {
        end -= 1;
    }
    &account[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(per_minute: u32, failures: u32) -> LoginGate {
        LoginGate::new(GateLimits {
            attempts_per_address_per_minute: per_minute,
            failures_per_account: failures,
            hash_workers: 1,
            queue_timeout: Duration::from_millis(50),
        })
        .unwrap()
    }

    fn ip(text: &str) -> ClientKey {
        ClientKey::of(text.parse().unwrap())
    }

    #[test]
    fn an_account_locks_after_its_failures_until_the_oldest_leaves_the_window() {
        let gate = gate(1000, 3);
        let t0 = Instant::now();
        for i in 0..3 {
            let at = t0 + Duration::from_secs(i * 60);
            assert_eq!(gate.admit_at(ip("10.0.0.1"), "a@x", at), Ok(()));
            gate.failed_at("a@x", at);
        }
        // Locked for everyone, whatever the address (and whatever the password).
        let at = t0 + Duration::from_secs(180);
        let Err(GateError::RateLimited(wait)) = gate.admit_at(ip("10.0.0.2"), "a@x", at) else {
            panic!("not locked");
        };
        assert_eq!(wait, FAILURE_WINDOW - Duration::from_secs(180));
        // Other accounts are not.
        assert_eq!(gate.admit_at(ip("10.0.0.1"), "b@x", at), Ok(()));
        // Once the first failure is 15 minutes old, one more try is allowed.
        assert_eq!(
            gate.admit_at(ClientKey::Unknown, "a@x", t0 + FAILURE_WINDOW),
            Ok(())
        );
    }

    #[test]
    fn a_success_before_the_lock_clears_the_failures() {
        let gate = gate(1000, 2);
        let t0 = Instant::now();
        gate.failed_at("a@x", t0);
        gate.succeeded("a@x");
        gate.failed_at("a@x", t0);
        assert_eq!(gate.admit_at(ClientKey::Unknown, "a@x", t0), Ok(()));
    }

    #[test]
    fn an_address_is_limited_per_minute_whatever_the_account() {
        let gate = gate(3, 10);
        let t0 = Instant::now();
        for account in ["a@x", "b@x", "c@x"] {
            assert_eq!(gate.admit_at(ip("10.0.0.1"), account, t0), Ok(()));
        }
        assert!(matches!(
            gate.admit_at(ip("10.0.0.1"), "d@x", t0),
            Err(GateError::RateLimited(_))
        ));
        assert_eq!(gate.admit_at(ip("10.0.0.2"), "d@x", t0), Ok(()));
    }

    #[test]
    fn stale_accounts_are_swept_and_keys_are_bounded() {
        let gate = gate(1000, 10);
        let t0 = Instant::now();
        for i in 0..SWEEP_AT {
            gate.failed_at(&format!("{i}@x"), t0);
        }
        gate.failed_at("late@x", t0 + FAILURE_WINDOW);
        assert_eq!(gate.lock().len(), 1, "only the fresh failure is left");
        let long = "é".repeat(300);
        gate.failed_at(&long, t0);
        assert!(gate.lock().keys().all(|k| k.len() <= MAX_KEY_BYTES));
    }

    #[tokio::test]
    async fn hashing_runs_one_per_slot_and_a_long_wait_is_busy() {
        let gate = std::sync::Arc::new(gate(1000, 10));
        let slow = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.hash(|| std::thread::sleep(Duration::from_millis(300)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(gate.hash(|| 1).await, Err(GateError::Busy(_))));
        assert_eq!(slow.await.unwrap(), Ok(()));
        assert_eq!(gate.hash(|| 2).await, Ok(2));
    }
}
