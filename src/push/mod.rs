//! Web Push: every event a user's channel sees also reaches their browsers' push
//! subscriptions, through the outbox, while no tab is open.
//!
//! - [`crypto`]: RFC 8291 encryption and RFC 8292 VAPID signatures (pure functions);
//! - [`vapid`]: the server's key pair in `<data>/vapid.key`, made on first run;
//! - [`endpoint`]: what a subscription's endpoint may be (`https://` on a public address,
//!   checked when subscribing and again when sending, since DNS can change);
//! - [`cli`]: the pushes in `app outbox list` and `app outbox retry --all`;
//! - [`drainer`]: the task that sends the queued pushes (rows are written with their event by
//!   `store::mutations::push`), retries them like mail and drops gone subscriptions.
//!
//! Coalescing: a subscription has at most one push waiting. Events that arrive while it
//! waits or is in flight merge into it (newest frame, a count), and after an accepted push
//! the next one to the same subscription waits out [`PushSettings::interval`], so a burst
//! of N events costs the push service two requests, not N.

pub mod cli;
pub mod crypto;
pub mod drainer;
pub mod endpoint;
pub mod vapid;

use crate::cli::ServeArgs;
use std::time::Duration;

/// Settings of Web Push, from the command line.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The VAPID `sub` claim: how a push service reaches whoever runs this server.
    pub subject: String,
    /// Allow `http://` endpoints and non-public addresses (tests and local development).
    pub allow_insecure: bool,
    /// The shortest time between two pushes to one subscription; events in between merge.
    pub interval: Duration,
}

impl PushSettings {
    /// From `serve`'s flags; the subject defaults to `mailto:` the mail sender's address.
    pub fn from_args(args: &ServeArgs) -> Self {
        let subject = args
            .vapid_subject
            .clone()
            .unwrap_or_else(|| format!("mailto:{}", sender_address(&args.mail_from)));
        Self {
            subject,
            allow_insecure: args.push_allow_insecure,
            interval: Duration::from_millis(args.push_interval_ms),
        }
    }
}

/// The bare address of `App <no-reply@example.com>` (or of a bare address).
fn sender_address(mail_from: &str) -> &str {
    match (mail_from.rfind('<'), mail_from.rfind('>')) {
        (Some(start), Some(end)) if start < end => &mail_from[start + 1..end],
        _ => mail_from.trim(),
    }
}

/// The payload of a push: the event frame, or with `"coalesced": N` added when it stands for
/// N events (the newest one's frame). A frame too large for a push message is cut down to
/// its `id`, `type`, `timestamp` and `payload.message`, with `"truncated": true`.
pub fn payload(frame: &str, events: u64) -> Vec<u8> {
    let mut text = if events > 1 {
        match frame.strip_suffix('}') {
            Some(open) => format!("{open},\"coalesced\":{events}}}"),
            None => frame.to_string(),
        }
    } else {
        frame.to_string()
    };
    if text.len() > crypto::MAX_PLAINTEXT_BYTES {
        let full: serde_json::Value = serde_json::from_str(frame).unwrap_or_default();
        let mut message = full["payload"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if message.len() > 1024 {
            let mut end = 1024;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let mut short = serde_json::json!({
            "id": full["id"],
            "type": full["type"],
            "timestamp": full["timestamp"],
            "payload": { "message": message },
            "truncated": true,
        });
        if events > 1 {
            short["coalesced"] = events.into();
        }
        text = short.to_string();
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_defaults_to_the_mail_sender() {
        assert_eq!(
            sender_address("App <no-reply@example.com>"),
            "no-reply@example.com"
        );
        assert_eq!(sender_address("a@b.c"), "a@b.c");
    }

    #[test]
    fn a_coalesced_payload_is_the_newest_frame_with_a_count() {
        let frame = r#"{"id":7,"type":"reservation_created","payload":{"message":"m"}}"#;
        assert_eq!(payload(frame, 1), frame.as_bytes());
        let merged: serde_json::Value = serde_json::from_slice(&payload(frame, 3)).unwrap();
        assert_eq!(merged["id"], 7);
        assert_eq!(merged["coalesced"], 3);
        let big = format!(
            r#"{{"id":8,"type":"business_updated","timestamp":"t","payload":{{"message":"{}","x":"{}"}}}}"#,
            "é".repeat(2000),
            "y".repeat(5000)
        );
        let cut = payload(&big, 2);
        assert!(cut.len() <= crypto::MAX_PLAINTEXT_BYTES);
        let cut: serde_json::Value = serde_json::from_slice(&cut).unwrap();
        assert_eq!(
            (cut["id"].clone(), cut["truncated"].clone()),
            (8.into(), true.into())
        );
        assert_eq!(cut["coalesced"], 2);
    }
}
