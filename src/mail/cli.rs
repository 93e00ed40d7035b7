//! `app outbox list` and `app outbox retry`: the queue as an operator sees it, on the data
//! folder (sled lets one process in at a time, so the server must be stopped).

use crate::cli::{OutboxListArgs, OutboxRetryArgs};
use crate::commands::open_store;
use crate::domain::{OutboxMail, OutboxStatus, Timestamp};
use anyhow::Context;
use std::fmt::Write;

/// `app outbox list [--failed | --sent]`: one line per mail, then the counts. A mail not yet
/// tried whose first try lies ahead (a reminder) shows as `scheduled`, with its due time.
///
/// # Errors
/// When the store cannot be opened or read.
pub fn list(args: &OutboxListArgs) -> anyhow::Result<()> {
    let store = open_store(&args.data.data)?;
    let mut rows = if args.failed {
        store.queued_mails(Some(OutboxStatus::Failed))?
    } else {
        store.queued_mails(None)?
    };
    if args.sent {
        rows.extend(store.sent_mails()?);
        rows.sort_by_key(|row| row.id);
    }
    let counts = store.outbox_counts()?;
    print!("{}", table(&rows, Timestamp::now()));
    println!(
        "{} pending, {} failed, {} sent (audit trail)",
        counts.pending, counts.failed, counts.sent
    );
    print!("{}", crate::push::cli::listing(&store, args.failed)?);
    Ok(())
}

/// `app outbox retry ID | --all`: failed (or pending) mails become due now, with every try
/// available again; the server sends them on its next start.
///
/// # Errors
/// When the id is unknown or already sent, or the store cannot be written.
pub fn retry(args: &OutboxRetryArgs) -> anyhow::Result<()> {
    let store = open_store(&args.data.data)?;
    let now = Timestamp::now();
    let requeued = match args.id {
        Some(id) => vec![store
            .requeue_mail(id, now)
            .with_context(|| format!("cannot requeue outbox id {id}"))?],
        None if args.all => store.requeue_failed_mails(now)?,
        None => anyhow::bail!("give an outbox id, or --all for every failed mail"),
    };
    store.flush()?;
    let ids: Vec<String> = requeued.iter().map(|row| row.id.to_string()).collect();
    match ids.len() {
        0 => println!("no failed mail to requeue"),
        n => println!("requeued {n} mail(s): {}", ids.join(", ")),
    }
    if args.all {
        println!("requeued {} push(es)", crate::push::cli::retry_all(&store)?);
    }
    Ok(())
}

/// The listing at `now`: a header, then one aligned line per row (the error, free text,
/// comes last).
fn table(rows: &[OutboxMail], now: Timestamp) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6}  {:<7}  {:<24}  {:<32}  {:>5}  {:<27}  LAST ERROR",
        "ID", "STATUS", "KIND", "TO", "TRIES", "DUE / NEXT TRY / SENT AT"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:>6}  {:<7}  {:<24}  {:<32}  {:>5}  {:<27}  {}",
            row.id,
            status_name(row, now),
            row.kind.as_str(),
            row.to,
            row.attempts,
            when(row),
            row.last_error
                .as_deref()
                .unwrap_or("-")
                .replace(['\r', '\n'], " "),
        );
    }
    out
}

fn status_name(row: &OutboxMail, now: Timestamp) -> &'static str {
    match row.status {
        OutboxStatus::Pending if row.attempts == 0 && row.next_attempt_at > now => "scheduled",
        OutboxStatus::Pending => "pending",
        OutboxStatus::Failed => "failed",
        OutboxStatus::Sent => "sent",
    }
}

/// The time that matters for a row in its state.
fn when(row: &OutboxMail) -> String {
    match (row.status, row.sent_at) {
        (OutboxStatus::Pending, _) => row.next_attempt_at.to_rfc3339(),
        (OutboxStatus::Sent, Some(at)) => at.to_rfc3339(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Business, MailKind};

    #[test]
    fn the_table_has_one_line_per_row_with_its_state_and_error() {
        let at = Timestamp::parse_rfc3339("2031-06-01T10:00:00Z").unwrap();
        let row = OutboxMail {
            id: 7,
            message_id: "<outbox-7.e@localhost>".into(),
            kind: MailKind::ReservationNotice,
            to: "owner@example.com".into(),
            event_id: 3,
            business: Business {
                id: uuid::Uuid::nil(),
                name: "Salon".into(),
                subdomain: "salon".into(),
                owner_email: "owner@example.com".into(),
                created_at: at,
                updated_at: at,
            },
            reservation: None,
            status: OutboxStatus::Failed,
            attempts: 1,
            next_attempt_at: at,
            last_error: Some("permanent error (550): no\r\nsuch user".into()),
            created_at: at,
            sent_at: None,
        };
        let mut reminder = row.clone();
        let text = table(&[row], at);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("    ID  STATUS"));
        let fields: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            &fields[..5],
            [
                "7",
                "failed",
                "reservation_notice",
                "owner@example.com",
                "1"
            ]
        );
        assert!(lines[1].ends_with("permanent error (550): no  such user"));

        // A reminder not due yet is "scheduled" at its due time; once due, "pending".
        reminder.kind = MailKind::Reminder;
        reminder.status = OutboxStatus::Pending;
        reminder.attempts = 0;
        reminder.last_error = None;
        let before = Timestamp::parse_rfc3339("2031-05-31T10:00:00Z").unwrap();
        let line = table(std::slice::from_ref(&reminder), before);
        let fields: Vec<&str> = line.lines().nth(1).unwrap().split_whitespace().collect();
        let due = at.to_rfc3339();
        let expected = ["scheduled", "reminder", "owner@example.com", "0", &due, "-"];
        assert_eq!(&fields[1..], expected);
        let after = table(&[reminder], at.plus_micros(1));
        assert!(after.contains(" pending "), "{after}");
    }
}
