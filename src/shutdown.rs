//! SIGINT/SIGTERM → a cancelled `CancellationToken` that every long-lived task watches.
//!
//! The handlers are installed synchronously by [`install`], before the server announces its
//! address, so a signal that arrives right after the banner is a graceful shutdown, never the
//! default "terminate now".

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Installed SIGINT and SIGTERM handlers.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

/// Installs the handlers now (call inside the runtime).
pub fn install() -> std::io::Result<Signals> {
    Ok(Signals {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    })
}

/// Cancels `token` on the first SIGINT or SIGTERM.
pub async fn on_signal(mut signals: Signals, token: CancellationToken) {
    let name = tokio::select! {
        _ = signals.interrupt.recv() => "SIGINT",
        _ = signals.terminate.recv() => "SIGTERM",
        () = token.cancelled() => return,
    };
    // Cancel before logging: nothing that logging might do can keep the server running.
    token.cancel();
    tracing::info!("{name} received, shutting down");
}
