//! Whether the store can be written: the degraded state of API.md "Storage faults".
//!
//! The first storage failure (a flush, a transaction or a drainer update the disk refused)
//! puts the server in the degraded state with its reason. From then on the writer refuses
//! every change before applying it (503 `storage_unavailable`), reads go on, `GET /healthz`
//! answers 503 `degraded`, the mail drainer pauses, and [`crate::recovery`] waits for the
//! disk to have room again. Nothing leaves the state in this process: sled 0.34 keeps a
//! global error flag after its first I/O error, so only a new process on a freshly opened
//! store can write again (see `crate::recovery` for why re-executing was chosen).
//!
//! Every failure counts in `app_store_errors_total`, not only the first.

use crate::metrics::Metrics;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The store's writability, shared by the writer, the drainer, `/healthz` and recovery.
#[derive(Debug)]
pub struct StoreHealth {
    /// The reason of the first failure; `None` while the store can be written.
    degraded: Mutex<Option<String>>,
    /// Mirrors `degraded.is_some()` for the hot paths that only ask "may I write?".
    is_degraded: AtomicBool,
    metrics: Arc<Metrics>,
}

impl StoreHealth {
    /// A healthy store whose failures count in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            degraded: Mutex::new(None),
            is_degraded: AtomicBool::new(false),
            metrics,
        })
    }

    /// Records a storage failure of `operation`: counts it, logs it, and enters the degraded
    /// state (keeping the first reason: later failures are consequences of it).
    pub fn failed(&self, operation: &str, error: &dyn Display) {
        Metrics::inc(&self.metrics.store_errors_total);
        let mut degraded = self.degraded.lock().unwrap_or_else(PoisonError::into_inner);
        if degraded.is_none() {
            tracing::error!(operation, %error,
                "the store cannot be written; refusing writes until it can (degraded)");
            *degraded = Some(format!("{operation} failed: {error}"));
            self.is_degraded.store(true, Ordering::Release);
        } else {
            tracing::warn!(operation, %error, "storage failure while degraded");
        }
    }

    /// Why the store cannot be written, or `None` when it can.
    pub fn degraded(&self) -> Option<String> {
        if !self.is_degraded() {
            return None;
        }
        self.degraded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the store cannot be written.
    pub fn is_degraded(&self) -> bool {
        self.is_degraded.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_names_the_state_and_every_failure_counts() {
        let metrics = Arc::new(Metrics::default());
        let health = StoreHealth::new(metrics.clone());
        assert_eq!(health.degraded(), None);
        health.failed("flush", &"No space left on device");
        health.failed("outbox update", &"later");
        assert!(health.is_degraded());
        assert_eq!(
            health.degraded().as_deref(),
            Some("flush failed: No space left on device")
        );
        assert_eq!(metrics.store_errors_total.load(Ordering::Relaxed), 2);
        assert!(metrics.render().contains("app_store_errors_total 2\n"));
    }
}
