//! Counters owned by the app and rendered as Prometheus text at `GET /metrics`.
//!
//! Plain atomics: every increment is one relaxed add, cheap enough for the fan-out path.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The server's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket sessions (gauge).
    pub ws_connections: AtomicI64,
    /// Events published on the bus.
    pub events_total: AtomicU64,
    /// Frames written to WebSockets (events, replies, control frames).
    pub ws_messages_sent_total: AtomicU64,
    /// Sockets closed with 4008 because they read too slowly.
    pub ws_slow_consumers_total: AtomicU64,
    /// Emails waiting to be sent, as of the drainer's last scan (gauge).
    pub outbox_pending: AtomicI64,
    /// Emails accepted by the SMTP server (or written as files).
    pub outbox_sent_total: AtomicU64,
    /// Emails given up on (kept as failed for `app outbox retry`).
    pub outbox_failed_total: AtomicU64,
    /// Send attempts that failed and will be retried.
    pub outbox_retries_total: AtomicU64,
    /// HTTP requests answered.
    pub http_requests_total: AtomicU64,
    /// Connections closed at once because `--max-connections` were open.
    pub connections_refused_total: AtomicU64,
    /// Store operations the disk refused (flushes, transactions, outbox updates).
    pub store_errors_total: AtomicU64,
}

impl Metrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let gauges = [
            (
                "app_ws_connections",
                "Open WebSocket connections.",
                self.ws_connections.load(Ordering::Relaxed),
            ),
            (
                "app_outbox_pending",
                "Emails waiting to be sent.",
                self.outbox_pending.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let counters = [
            (
                "app_events_total",
                "Events published to subscribers.",
                &self.events_total,
            ),
            (
                "app_ws_messages_sent_total",
                "Frames sent on WebSockets.",
                &self.ws_messages_sent_total,
            ),
            (
                "app_ws_slow_consumers_total",
                "WebSockets closed as slow consumers (4008).",
                &self.ws_slow_consumers_total,
            ),
            (
                "app_outbox_sent_total",
                "Emails accepted by the mail server.",
                &self.outbox_sent_total,
            ),
            (
                "app_outbox_failed_total",
                "Emails that failed for good.",
                &self.outbox_failed_total,
            ),
            (
                "app_outbox_retries_total",
                "Email send attempts that will be retried.",
                &self.outbox_retries_total,
            ),
            (
                "app_http_requests_total",
                "HTTP requests answered.",
                &self.http_requests_total,
            ),
            (
                "app_connections_refused_total",
                "Connections closed at once because --max-connections were open.",
                &self.connections_refused_total,
            ),
            (
                "app_store_errors_total",
                "Store operations the disk refused.",
                &self.store_errors_total,
            ),
        ];
        for (name, help, value) in counters {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_required_metric() {
        let metrics = Metrics::default();
        Metrics::inc(&metrics.events_total);
        let text = metrics.render();
        for name in [
            "app_ws_connections",
            "app_events_total",
            "app_ws_messages_sent_total",
            "app_outbox_pending",
            "app_outbox_sent_total",
            "app_outbox_failed_total",
            "app_connections_refused_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert!(text.contains("app_events_total 1\n"));
    }
}
