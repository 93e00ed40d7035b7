//! Mail in bursts over pooled SMTP connections (`src/mail/smtp.rs`), end to end: the real
//! binary, several conversations at once (`--smtp-concurrency`), hundreds of queued mails.
//! DESIGN invariant 4: each mail arrives, once, by its Message-ID — and when the SMTP server
//! dies mid-burst and comes back, none is lost and a resend keeps its Message-ID. Throughput
//! is measured by `app-bench mail-drain`, not here.

use crate::support::smtp::{by_message_id, ReceivedMail, SmtpSink};
use crate::support::{eventually_within, metric, TestServer};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const OWNER: &str = "owner@salons.test";
/// Bookings per burst: two mails each (customer confirmation, owner notice).
const BOOKINGS: usize = 150;
/// Bookings made while the SMTP server is down.
const DURING_OUTAGE: usize = 10;
/// A generous deadline for hundreds of mails on a shared 2-core machine.
const DEADLINE: Duration = Duration::from_secs(90);

async fn server(sink: &SmtpSink) -> TestServer {
    let url = sink.url();
    TestServer::start_with(
        &[
            "--smtp-url",
            &url,
            "--smtp-concurrency",
            "8",
            "--mail-retry-base-ms",
            "100",
            "--mail-max-attempts",
            "1000",
            "--mail-poll-interval-ms",
            "200",
            "--reminder-hours",
            "0",
            "--booking-rate-per-minute",
            "1000000",
            "--booking-rate-per-business-per-minute",
            "1000000",
        ],
        &[],
    )
    .await
}

/// Books customers `from..to` of `business_id` on the server at `base` from 8 clients at
/// once; every booking must be acknowledged.
async fn book(base: String, business_id: String, from: usize, to: usize) {
    let http = reqwest::Client::new();
    let url = format!("{base}/api/businesses/{business_id}/reservations/");
    let next = Arc::new(AtomicUsize::new(from));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return;
                }
                let body = json!({
                    "customer_name": format!("Customer {i}"),
                    "customer_email": format!("customer{i}@customers.test"),
                    "starts_at": "2031-06-01T10:00:00Z",
                    "service": "Haircut",
                });
                let response = http.post(&url).json(&body).send().await.expect("booking");
                assert_eq!(response.status().as_u16(), 201, "booking {i}");
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.expect("booking worker");
    }
}

/// Waits until `count` distinct Message-IDs arrived and the outbox is empty.
async fn all_arrive(server: &TestServer, sink: &SmtpSink, count: usize) -> Vec<ReceivedMail> {
    eventually_within(&format!("{count} distinct mails"), DEADLINE, || async {
        let received = sink.received();
        let pending = metric(&server.base, "app_outbox_pending").await;
        (by_message_id(&received).len() >= count && pending == 0).then_some(received)
    })
    .await
}

#[tokio::test]
async fn invariant_4_bursts_of_300_mails_arrive_once_each_even_across_an_smtp_outage() {
    let mut sink = SmtpSink::start().await;
    let server = server(&sink).await;
    let admin = server.admin().await;
    let business = admin.create_business("Burst Salon", "burst", OWNER).await;
    let id = business["id"].as_str().expect("business id").to_string();

    // A burst with the server up: every mail exactly once, none left, none failed.
    book(server.base.clone(), id.clone(), 0, BOOKINGS).await;
    let expected = 1 + 2 * BOOKINGS;
    let received = all_arrive(&server, &sink, expected).await;
    let groups = by_message_id(&received);
    assert_eq!(groups.len(), expected, "one Message-ID per mail");
    let twice: Vec<&String> = groups
        .iter()
        .filter(|(_, c)| c.len() > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(
        metric(&server.base, "app_outbox_sent_total").await,
        expected as u64
    );
    assert_eq!(metric(&server.base, "app_outbox_failed_total").await, 0);

    // A second burst, and the SMTP server dies while its mails flow: its port closes and its
    // open conversations (the pooled connections) are cut. Every mail still arrives once it
    // is back; a mail cut after the server took it may arrive again, as the same message.
    let before = received.len();
    let booking = tokio::spawn(book(
        server.base.clone(),
        id.clone(),
        BOOKINGS,
        2 * BOOKINGS,
    ));
    eventually_within("mails of the second burst flowing", DEADLINE, || async {
        (sink.received().len() >= before + 20).then_some(())
    })
    .await;
    let retries_before = metric(&server.base, "app_outbox_retries_total").await;
    sink.down().await;
    // Whatever the burst still sends meets a closed port; these bookings make sure some do.
    book(
        server.base.clone(),
        id.clone(),
        2 * BOOKINGS,
        2 * BOOKINGS + DURING_OUTAGE,
    )
    .await;
    eventually_within(
        "a send refused while the server is down",
        DEADLINE,
        || async {
            (metric(&server.base, "app_outbox_retries_total").await > retries_before).then_some(())
        },
    )
    .await;
    sink.up().await;
    booking.await.expect("second burst");

    let expected = 1 + 2 * (2 * BOOKINGS + DURING_OUTAGE);
    let received = all_arrive(&server, &sink, expected).await;
    let groups = by_message_id(&received);
    assert_eq!(groups.len(), expected, "no mail got a second Message-ID");
    let mut resent = 0;
    for (message_id, copies) in &groups {
        for copy in &copies[1..] {
            assert_eq!(
                copy.rcpt_to, copies[0].rcpt_to,
                "{message_id} resent elsewhere"
            );
            assert_eq!(
                copy.raw, copies[0].raw,
                "{message_id} resent as another mail"
            );
            resent += 1;
        }
    }
    // Only a conversation the outage cut can repeat a mail: at most one per connection.
    assert!(resent <= 8, "{resent} mails sent twice");
    eprintln!("outage: {} mails, {resent} sent again", groups.len());
    assert_eq!(metric(&server.base, "app_outbox_failed_total").await, 0);
    assert_eq!(metric(&server.base, "app_outbox_pending").await, 0);
}
