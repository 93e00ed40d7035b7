//! Reminders (API.md "The lifecycle of a booking"): each confirmed reservation's customer is
//! mailed `--reminder-hours` before it starts, through the outbox (queued with the booking,
//! due in the future: DESIGN invariant 4); none for a reservation cancelled first, none for
//! one booked inside the window, none with `--reminder-hours 0`; nonsense values refuse to
//! start.

use crate::lifecycle::{book_at, in_seconds};
use crate::support::smtp::{ReceivedMail, SmtpSink};
use crate::support::TestServer;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BUSINESS: &str = "<b>Salon</b> & Co";

/// A server sending through `sink` with reminders `hours` ahead.
async fn server(sink: &SmtpSink, hours: &str) -> TestServer {
    let url = sink.url();
    TestServer::start_with(
        &[
            "--smtp-url",
            &url,
            "--mail-poll-interval-ms",
            "200",
            "--reminder-hours",
            hours,
        ],
        &[],
    )
    .await
}

fn reminders(sink: &SmtpSink) -> Vec<ReceivedMail> {
    sink.received()
        .into_iter()
        .filter(|m| m.subject().starts_with("Reminder:"))
        .collect()
}

#[tokio::test]
async fn a_reminder_arrives_its_window_before_the_start_and_never_for_a_cancelled_or_late_one() {
    let sink = SmtpSink::start().await;
    // 0.001 h = 3.6 s.
    let server = server(&sink, "0.001").await;
    let admin = server.admin().await;
    let public = server.api();
    let business = admin
        .create_business(BUSINESS, "remind", "owner@salons.test")
        .await;
    let id = business["id"].as_str().expect("id");
    let booked_at = Instant::now();
    let starts = in_seconds(8.0);
    book_at(&public, id, "Ann", "ann@customers.test", &starts).await;
    let cancelled = book_at(&public, id, "Bo", "bo@customers.test", &starts).await;
    let rid = cancelled["id"].as_str().expect("id");
    let cancel = format!("/api/businesses/{id}/reservations/{rid}/cancel/");
    assert_eq!(admin.call("POST", &cancel, None).await.status, 200);
    // Starts within the window: no reminder at all.
    book_at(&public, id, "Cy", "cy@customers.test", &in_seconds(2.0)).await;

    // Due 8 - 3.6 = 4.4 s after booking; not before, and soon after.
    let arrived = loop {
        if !reminders(&sink).is_empty() {
            break booked_at.elapsed();
        }
        assert!(
            booked_at.elapsed() < Duration::from_secs(12),
            "no reminder came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        arrived >= Duration::from_millis(4_000) && arrived < Duration::from_millis(7_500),
        "the reminder came {arrived:?} after booking, due at 4.4 s"
    );
    // Past every start: still exactly one reminder, Ann's.
    tokio::time::sleep(Duration::from_secs(9).saturating_sub(booked_at.elapsed())).await;
    let sent = reminders(&sink);
    assert_eq!(
        sent.len(),
        1,
        "{:?}",
        sent.iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
    let reminder = &sent[0];
    assert_eq!(reminder.rcpt_to, ["ann@customers.test"]);
    let subject = reminder.subject();
    assert!(
        subject.starts_with(&format!("Reminder: your reservation at {BUSINESS}, ")),
        "{subject}"
    );
    assert!(
        subject.ends_with(" UTC"),
        "the time of the appointment: {subject}"
    );
    let html = reminder.mime().part_text("text/html");
    assert!(html.contains("&lt;b&gt;Salon&lt;/b&gt; &amp; Co") && !html.contains("<b>Salon"));
    assert!(reminder
        .mime()
        .part_text("text/plain")
        .contains("Hello Ann,"));
}

#[tokio::test]
async fn reminder_hours_zero_sends_no_reminder() {
    let sink = SmtpSink::start().await;
    let server = server(&sink, "0").await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Quiet", "quiet", "owner@salons.test")
        .await;
    let id = business["id"].as_str().expect("id");
    book_at(
        &server.api(),
        id,
        "Ann",
        "ann@customers.test",
        &in_seconds(3.0),
    )
    .await;
    book_at(
        &server.api(),
        id,
        "Bo",
        "bo@customers.test",
        &in_seconds(3600.0 * 48.0),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let received = sink.received();
    assert!(received.len() >= 4, "the bookings' own mails went out");
    assert!(reminders(&sink).is_empty());
}

#[tokio::test]
async fn a_scheduled_reminder_shows_in_the_outbox_list_with_its_due_time() {
    let sink = SmtpSink::start().await;
    let mut server = server(&sink, "1").await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Later", "later", "owner@salons.test")
        .await;
    let id = business["id"].as_str().expect("id");
    let starts = "2031-06-01T10:00:00Z";
    book_at(&server.api(), id, "Ann", "ann@customers.test", starts).await;
    server.stop();
    let output = Command::new(TestServer::binary())
        .args(["outbox", "list", "--data"])
        .arg(server.data_dir())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run app outbox list");
    let listing = String::from_utf8_lossy(&output.stdout);
    let line = listing
        .lines()
        .find(|line| line.contains(" reminder "))
        .unwrap_or_else(|| panic!("no reminder in {listing}"));
    assert!(line.contains(" scheduled "), "{line}");
    assert!(line.contains("ann@customers.test"), "{line}");
    assert!(
        line.contains("2031-06-01T09:00:00"),
        "due an hour before: {line}"
    );
}

#[test]
fn nonsense_reminder_hours_refuse_to_start_with_a_clear_message() {
    let data = tempfile::tempdir().expect("temp dir");
    for bad in ["-1", "NaN", "inf", "1e9", "8761", "abc", "1e-12"] {
        let mut child = Command::new(TestServer::binary())
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--reminder-hours",
                bad,
                "--data",
            ])
            .arg(data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn app serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("--reminder-hours {bad} was accepted: the server started");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = child.wait_with_output().expect("stderr").stderr;
        let stderr = String::from_utf8_lossy(&stderr);
        assert!(!status.success(), "{bad}");
        assert!(stderr.contains("--reminder-hours"), "{bad}: {stderr}");
    }
}
