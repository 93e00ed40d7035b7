//! The push rows in `app outbox list` and `app outbox retry --all`: pushes wait in the same
//! outbox as mail (their own tree), so an operator sees and requeues them in the same place.

use crate::domain::{OutboxPush, OutboxStatus, Timestamp};
use crate::store::Store;
use std::fmt::Write;

/// The push section of `app outbox list` (only failed rows with `failed_only`).
///
/// # Errors
/// When the store cannot be read.
pub fn listing(store: &Store, failed_only: bool) -> anyhow::Result<String> {
    let rows: Vec<OutboxPush> = store
        .push_rows()?
        .into_iter()
        .filter(|row| !failed_only || row.status == OutboxStatus::Failed)
        .collect();
    Ok(table(&rows))
}

/// Failed pushes become due now with every try available again; returns how many.
///
/// # Errors
/// When the store cannot be written.
pub fn retry_all(store: &Store) -> anyhow::Result<usize> {
    Ok(store.retry_failed_pushes(Timestamp::now())?)
}

fn table(rows: &[OutboxPush]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36}  {:<7}  {:<21}  {:<32}  {:>6}  {:>5}  {:<27}  LAST ERROR",
        "PUSH TO SUBSCRIPTION", "STATUS", "NEWEST EVENT", "TO", "EVENTS", "TRIES", "NEXT TRY"
    );
    for row in rows {
        let pending = row.status == OutboxStatus::Pending;
        let _ = writeln!(
            out,
            "{:<36}  {:<7}  {:<21}  {:<32}  {:>6}  {:>5}  {:<27}  {}",
            row.subscription_id.to_string(),
            if pending { "pending" } else { "failed" },
            format!("{} {}", row.last_event_id, row.kind.as_str()),
            row.to,
            row.events,
            row.attempts,
            if pending {
                row.next_attempt_at.to_rfc3339()
            } else {
                "-".into()
            },
            row.last_error
                .as_deref()
                .unwrap_or("-")
                .replace(['\r', '\n'], " "),
        );
    }
    let failed = rows
        .iter()
        .filter(|row| row.status == OutboxStatus::Failed)
        .count();
    let _ = writeln!(
        out,
        "{} push(es) pending, {failed} failed",
        rows.len() - failed
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventKind;

    #[test]
    fn a_push_row_is_one_line_with_its_count_and_error() {
        let at = Timestamp::parse_rfc3339("2031-06-01T10:00:00Z").unwrap();
        let row = OutboxPush {
            subscription_id: uuid::Uuid::nil(),
            to: "owner@example.com".into(),
            first_event_id: 3,
            last_event_id: 9,
            kind: EventKind::ReservationCreated,
            events: 7,
            frame: "{}".into(),
            status: OutboxStatus::Failed,
            attempts: 8,
            next_attempt_at: at,
            last_error: Some("push service answered 503".into()),
            created_at: at,
        };
        let text = table(&[row]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let fields: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            &fields[1..7],
            [
                "failed",
                "9",
                "reservation_created",
                "owner@example.com",
                "7",
                "8"
            ]
        );
        assert!(lines[1].ends_with("push service answered 503"));
        assert_eq!(lines[2], "0 push(es) pending, 1 failed");
    }
}
