//! Leaving the degraded state (`crate::health`) with nobody's help: once the disk has room
//! again, the server re-executes itself on the same listening socket and opens the store
//! afresh.
//!
//! Why re-exec and not re-open in place: sled 0.34 keeps a global error flag after its first
//! I/O error, so writes only work again on a newly opened `Db`, and a `Db` is only closed
//! (its file lock released) once every handle is gone. Handles live in every request and
//! WebSocket session (through `AppState`), in the drainer, the record keeper, the writer,
//! and in the bus's watcher thread, whose subscriber must never be dropped while sled may
//! block on it (`crate::bus`, hazard 3). Re-opening in place would mean making all of them
//! swappable and proving none is left; re-executing gets the same fresh start through the
//! path every start takes — open, compare with the outside record, migrate, start the writer
//! and the bus at the durable event id — with no handle to chase. The cost is that open
//! WebSockets are closed with 1001 (clients resume with no gap: same epoch, ids continue
//! from the durable log), and the address refuses connections for the second or so between
//! the old process closing its socket and the new one binding it again — API.md allows the
//! address to be back within 30 s. (Handing the socket itself across the exec would keep it
//! answering throughout, but adopting a descriptor by number needs `unsafe`, which this
//! crate forbids.)
//!
//! The sequence: [`watch`] probes the data folder every [`PROBE_INTERVAL`] while degraded
//! (writes and syncs [`PROBE_BYTES`], then removes them); when a probe succeeds it asks for a
//! re-exec and cancels the shutdown token; the normal shutdown runs (HTTP finishes, sessions
//! close with 1001, the writer stops); `app::serve` then calls [`Recovery::reexec`], which
//! replaces the process image with `/proc/self/exe` and the same arguments (the same pid, so
//! a supervisor sees no exit), naming the address actually bound in [`REBIND_ENV`] so a
//! server started on port 0 comes back on the same port. Only `app serve` re-executes; a
//! server run in-process (tests) stays degraded.
//!
//! Nothing acknowledged is lost: a change is acknowledged only after its flush, and after a
//! failed flush the writer refuses everything, so the freshly opened store holds every
//! acknowledged change (and maybe the unknown-outcome ones, which were never acknowledged).

use crate::health::StoreHealth;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The environment variable naming the address a re-executed server binds (instead of
/// `--addr`, which may say port 0).
pub const REBIND_ENV: &str = "APP_REBIND_ADDR";
/// How often a degraded server checks whether the disk has room again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// What a probe writes: enough that sled's next segments fit, so the new process does not
/// fail again at once.
pub const PROBE_BYTES: usize = 4 << 20;
/// The probe's file in the data folder.
const PROBE_FILE: &str = ".space-probe";
/// How long a re-executed server retries binding its address (the old socket may linger).
const REBIND_PATIENCE: Duration = Duration::from_secs(10);

/// The store's health plus what a re-exec needs: the address actually bound.
#[derive(Debug)]
pub struct Recovery {
    pub health: Arc<StoreHealth>,
    bound: Mutex<Option<SocketAddr>>,
    requested: AtomicBool,
}

impl Recovery {
    /// Recovery for a server whose store reports to `health`.
    pub fn new(health: Arc<StoreHealth>) -> Arc<Self> {
        Arc::new(Self {
            health,
            bound: Mutex::new(None),
            requested: AtomicBool::new(false),
        })
    }

    /// Binds `addr` — or, in a re-executed server, the address its predecessor had bound —
    /// and remembers the address for the next re-exec.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn listener(&self, addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
        let rebind = std::env::var(REBIND_ENV)
            .ok()
            .and_then(|value| value.parse::<SocketAddr>().ok());
        // Not for a later re-exec, which names its own address.
        std::env::remove_var(REBIND_ENV);
        let listener = match rebind {
            None => {
                crate::server::listener::bind(addr).with_context(|| format!("binding {addr}"))?
            }
            Some(addr) => {
                let deadline = tokio::time::Instant::now() + REBIND_PATIENCE;
                loop {
                    match crate::server::listener::bind(addr) {
                        Ok(listener) => break listener,
                        Err(error) if tokio::time::Instant::now() < deadline => {
                            tracing::debug!(%error, "the address is not free yet");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(error) => {
                            return Err(error).with_context(|| format!("binding {addr} again"))
                        }
                    }
                }
            }
        };
        *self.bound.lock().unwrap_or_else(PoisonError::into_inner) = Some(listener.local_addr()?);
        Ok(listener)
    }

    /// Whether the server stopped to re-execute itself.
    pub fn reexec_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Replaces this process with a new `app serve` with the same arguments, on the same
    /// address. Returns only when that failed.
    pub fn reexec(&self) -> anyhow::Error {
        use std::os::unix::process::CommandExt;
        let bound = *self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| "app".into());
        let mut command = std::process::Command::new("/proc/self/exe");
        command.arg0(arg0).args(args);
        if let Some(addr) = bound {
            command.env(REBIND_ENV, addr.to_string());
        }
        tracing::warn!("re-executing on a freshly opened store");
        // /proc/self/exe: the running binary even when its file was replaced since.
        let error = command.exec();
        anyhow::Error::new(error).context("re-executing the server")
    }
}

/// While the store is degraded, probes `data` every [`PROBE_INTERVAL`]; once the disk takes
/// a probe, asks for a re-exec and cancels `shutdown`. Ends on shutdown.
pub async fn watch(recovery: Arc<Recovery>, data: PathBuf, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !recovery.health.is_degraded() {
            continue;
        }
        let dir = data.clone();
        match tokio::task::spawn_blocking(move || probe(&dir)).await {
            Ok(Ok(())) => {
                tracing::warn!(
                    "the disk takes writes again; restarting to reopen the store (WebSockets close with 1001 and resume)"
                );
                recovery.requested.store(true, Ordering::Release);
                shutdown.cancel();
                return;
            }
            Ok(Err(error)) => tracing::debug!(%error, "the disk still refuses writes"),
            Err(error) => tracing::warn!(%error, "the disk probe task failed"),
        }
    }
}

/// Writes and syncs [`PROBE_BYTES`] in `data`, then removes them (also after a failure).
fn probe(data: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = data.join(PROBE_FILE);
    let written = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        // The call the store's flush makes durable with (`Store::flush`): a disk that fails
        // it is not writable for the store, however it answers other syncs.
        file.sync_data()
    })();
    let removed = std::fs::remove_file(&path);
    written?;
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let missing = dir.path().join("gone");
        assert!(probe(&missing).is_err());
        assert!(!missing.join(PROBE_FILE).exists());
    }
}
