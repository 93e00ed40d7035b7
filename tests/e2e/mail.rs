//! Email, end to end: the real binary sends through a real SMTP server over TCP (the sink in
//! `support::smtp`) or writes `.eml` files. DESIGN invariant 4: an email is never lost —
//! written with its cause, deleted from the queue only after the server took it, and a resend
//! carries the Message-ID of its first try.

use crate::support::smtp::{by_message_id, MimeEntity, ReceivedMail, SmtpMode, SmtpSink};
use crate::support::{eventually, metric, Api, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const FROM: &str = "Salon Platform <bookings@salons.test>";
const FROM_ADDRESS: &str = "bookings@salons.test";
/// `FROM` as lettre writes it in the header (the display name quoted).
const FROM_HEADER: &str = "\"Salon Platform\" <bookings@salons.test>";
const OWNER: &str = "owner@salons.test";
const HOSTILE_BUSINESS: &str = r#"<script>alert("pwned")</script> Salon ✂ & Co"#;
const HOSTILE_CUSTOMER: &str = "<img src=x onerror=alert(1)> Zoë";
const CUSTOMER: &str = "zoe@customers.test";
/// Bookings in the SIGKILL burst: two mails each.
const BURST_BOOKINGS: usize = 100;
/// A longer deadline for the 200-mail burst on a shared 2-core machine.
const BURST_DEADLINE: Duration = Duration::from_secs(60);

/// A server sending through `sink`, with mail timings shrunk for tests (unless `extra` sets
/// them) and no reminders: scheduled ones would stay in `app_outbox_pending`, which these
/// tests wait to drain (reminders have their own tests in `reminders`).
async fn server_with_sink(sink: &SmtpSink, extra: &[&str]) -> TestServer {
    let url = sink.url();
    let mut args = vec!["--smtp-url", url.as_str(), "--mail-from", FROM];
    for (flag, default) in [
        ("--mail-retry-base-ms", "100"),
        ("--mail-poll-interval-ms", "200"),
        ("--reminder-hours", "0"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    TestServer::start_with(&args, &[]).await
}

/// Waits until `/metrics` shows `name` at `value`.
async fn metric_becomes(server: &TestServer, name: &str, value: u64) {
    eventually(&format!("{name} = {value}"), || async move {
        (metric(&server.base, name).await == value).then_some(())
    })
    .await;
}

/// Waits until the sink holds at least `count` mails; returns them.
async fn mails(sink: &SmtpSink, count: usize) -> Vec<ReceivedMail> {
    eventually(&format!("{count} mails"), || async move {
        let received = sink.received();
        (received.len() >= count).then_some(received)
    })
    .await
}

/// Runs `app <args> --data <data>` and waits for it.
fn app(args: &[&str], data: &Path) -> Output {
    Command::new(TestServer::binary())
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("APP_DATA_DIR")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run app")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "app failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `app outbox list --failed` on the stopped server's `data`: the listing, and the line of
/// the failed row to `to` (there must be one).
pub fn failed_mail(data: &Path, to: &str) -> (String, String) {
    let listing = stdout(&app(&["outbox", "list", "--failed"], data));
    let line = listing
        .lines()
        .find(|line| line.contains("failed") && line.contains(to))
        .unwrap_or_else(|| panic!("no failed row to {to} in:\n{listing}"))
        .to_string();
    (listing, line)
}

/// The tries column of an outbox listing's `line`.
pub fn tries(line: &str) -> Option<&str> {
    line.split_whitespace().nth(4)
}

/// Books at `business_id` as `name <email>`; panics unless 201.
async fn book_as(api: &Api, business_id: &str, name: &str, email: &str) -> Value {
    let answer = api
        .post(
            &format!("/api/businesses/{business_id}/reservations/"),
            json!({
                "customer_name": name,
                "customer_email": email,
                "starts_at": "2031-06-01T10:00:00Z",
                "service": "Cut & <b>colour</b>",
            }),
        )
        .await;
    assert_eq!(answer.status, 201, "book: {:?}", answer.body);
    answer.body
}

/// What every mail must look like, whatever it says.
fn assert_well_formed(mail: &ReceivedMail, to: &str) {
    assert_eq!(mail.mail_from, FROM_ADDRESS, "envelope sender");
    assert_eq!(mail.rcpt_to, vec![to.to_string()], "envelope recipients");
    let mime = mail.mime();
    assert_eq!(mime.header("From"), FROM_HEADER);
    assert_eq!(mime.header("To"), to);
    assert!(
        mime.header("Date").ends_with("+0000"),
        "{}",
        mime.header("Date")
    );
    assert!(mime.header("Message-ID").starts_with("<outbox-"));
    assert!(mime.header("Message-ID").ends_with("@salons.test>"));
    assert_eq!(mime.header("MIME-Version"), "1.0");
    assert!(mime
        .header("Content-Type")
        .starts_with("multipart/alternative"));
    let parts = mime.parts();
    assert_eq!(parts.len(), 2, "a text and an HTML part");
    assert!(parts[0]
        .header("Content-Type")
        .starts_with("text/plain; charset=utf-8"));
    assert!(parts[1]
        .header("Content-Type")
        .starts_with("text/html; charset=utf-8"));
}

/// User text shows as typed in the text part and as inert text in the HTML part.
fn assert_escaped(mime: &MimeEntity) {
    let text = mime.part_text("text/plain");
    let html = mime.part_text("text/html");
    assert!(text.contains(HOSTILE_BUSINESS), "{text}");
    for markup in ["<script", "<img", "<b>"] {
        assert!(!html.contains(markup), "{markup} reached the HTML: {html}");
    }
    assert!(html.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; Salon ✂ &amp; Co"));
}

#[tokio::test]
async fn each_mail_reaches_its_recipients_with_subject_both_bodies_headers_and_escaped_names() {
    let sink = SmtpSink::start().await;
    let server = server_with_sink(&sink, &[]).await;
    let admin = server.admin().await;

    let business = admin
        .create_business(HOSTILE_BUSINESS, "hostile", OWNER)
        .await;
    let id = business["id"].as_str().expect("business id");
    let reservation = book_as(&server.api(), id, HOSTILE_CUSTOMER, CUSTOMER).await;
    let rid = reservation["id"].as_str().expect("reservation id");
    let cancelled = admin
        .call(
            "POST",
            &format!("/api/businesses/{id}/reservations/{rid}/cancel/"),
            None,
        )
        .await;
    assert_eq!(cancelled.status, 200, "cancel: {:?}", cancelled.body);

    let received = mails(&sink, 4).await;
    let when = "Sunday, 1 June 2031 at 10:00 UTC";
    let expected = [
        (
            OWNER,
            format!("Welcome! {HOSTILE_BUSINESS} is ready for bookings"),
        ),
        (
            CUSTOMER,
            format!("Your reservation at {HOSTILE_BUSINESS} is confirmed"),
        ),
        (
            OWNER,
            format!("New reservation at {HOSTILE_BUSINESS}: {HOSTILE_CUSTOMER}, {when}"),
        ),
        (
            CUSTOMER,
            format!("Your reservation at {HOSTILE_BUSINESS} was cancelled"),
        ),
    ];
    let mut ids = BTreeSet::new();
    for (to, subject) in &expected {
        let mail = received
            .iter()
            .find(|mail| mail.subject() == *subject)
            .unwrap_or_else(|| panic!("no mail {subject:?} among {:?}", subjects(&received)));
        assert_well_formed(mail, to);
        let mime = mail.mime();
        assert_escaped(&mime);
        if *to == CUSTOMER {
            assert!(mime
                .part_text("text/plain")
                .contains(&format!("Hello {HOSTILE_CUSTOMER},")));
            assert!(mime
                .part_text("text/html")
                .contains("Hello &lt;img src=x onerror=alert(1)&gt; Zoë,"));
        }
        if subject.starts_with("New reservation") || *to == CUSTOMER {
            assert!(mime.part_text("text/plain").contains(when));
            assert!(mime.part_text("text/plain").contains(rid), "the reference");
        }
        ids.insert(mail.message_id());
    }
    assert_eq!(ids.len(), 4, "one Message-ID per mail");
    assert_eq!(received.len(), 4, "nothing else was sent");
    metric_becomes(&server, "app_outbox_sent_total", 4).await;
    assert_eq!(metric(&server.base, "app_outbox_pending").await, 0);
    assert_eq!(metric(&server.base, "app_outbox_failed_total").await, 0);
}

/// Issue 13: a reassigned business welcomes its new owner, queued with the move (DESIGN
/// invariant 4); a rename that keeps the owner mails nobody.
#[tokio::test]
async fn invariant_4_reassigning_a_business_welcomes_the_new_owner_once() {
    const NEW_OWNER: &str = "next@salons.test";
    let sink = SmtpSink::start().await;
    let server = server_with_sink(&sink, &[]).await;
    let admin = server.admin().await;
    let business = admin.create_business("Plain", "handed", OWNER).await;
    let id = business["id"].as_str().expect("business id");
    let path = format!("/api/businesses/{id}/");
    for body in [
        json!({ "name": HOSTILE_BUSINESS }),
        json!({ "owner_email": NEW_OWNER }),
        json!({ "owner_email": NEW_OWNER }),
    ] {
        let answer = admin.call("PATCH", &path, Some(body)).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    let received = mails(&sink, 2).await;
    let handover = received
        .iter()
        .find(|mail| mail.rcpt_to == vec![NEW_OWNER.to_string()])
        .unwrap_or_else(|| panic!("no mail to the new owner among {:?}", subjects(&received)));
    assert_eq!(
        handover.subject(),
        format!("Welcome! {HOSTILE_BUSINESS} is now yours")
    );
    assert_well_formed(handover, NEW_OWNER);
    let mime = handover.mime();
    assert_escaped(&mime);
    assert!(mime.part_text("text/plain").contains("handed over to you"));
    assert!(mime.part_text("text/plain").contains("Subdomain: handed"));
    metric_becomes(&server, "app_outbox_sent_total", 2).await;
    let received = sink.received();
    assert_eq!(
        subjects(&received).len(),
        2,
        "the create's welcome and one handover: {:?}",
        subjects(&received)
    );
}

fn subjects(mails: &[ReceivedMail]) -> Vec<String> {
    mails.iter().map(ReceivedMail::subject).collect()
}

#[tokio::test]
async fn mails_written_while_smtp_is_down_arrive_exactly_once_when_it_is_back() {
    let mut sink = SmtpSink::start().await;
    sink.down().await;
    let server = server_with_sink(&sink, &["--mail-max-attempts", "1000"]).await;
    let admin = server.admin().await;
    let owners: BTreeSet<String> = (0..5).map(|i| format!("owner{i}@salons.test")).collect();
    for (i, owner) in owners.iter().enumerate() {
        admin
            .create_business(&format!("Salon {i}"), &format!("salon-{i}"), owner)
            .await;
    }
    // Every row has been tried against the closed port at least once, and is still queued.
    eventually("a failed try of each mail", || async {
        (metric(&server.base, "app_outbox_retries_total").await >= 5).then_some(())
    })
    .await;
    assert_eq!(metric(&server.base, "app_outbox_pending").await, 5);
    assert_eq!(metric(&server.base, "app_outbox_sent_total").await, 0);

    sink.up().await;
    metric_becomes(&server, "app_outbox_sent_total", 5).await;
    metric_becomes(&server, "app_outbox_pending", 0).await;

    // Every row is out of the queue now, so nothing more can be sent: count what arrived.
    let received = sink.received();
    let per_id = by_message_id(&received);
    assert_eq!(per_id.len(), 5, "five distinct mails");
    assert!(
        per_id.values().all(|copies| copies.len() == 1),
        "each exactly once"
    );
    let recipients: BTreeSet<String> = received
        .iter()
        .map(|mail| mail.rcpt_to[0].clone())
        .collect();
    assert_eq!(recipients, owners);
    assert_eq!(metric(&server.base, "app_outbox_failed_total").await, 0);
}

/// Kills `server` the moment `/metrics` counts `name` above 0: well inside sled's periodic
/// flush (every 500 ms), so what the count stands for survives only if it was made durable
/// before the count moved.
async fn kill9_once_counted(server: &mut TestServer, name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(&server.base, name).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "{name} never moved");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill9();
}

/// Invariant 4 from the other side: once the drainer counts a mail sent, its record is
/// durable, so a SIGKILL right after does not send it again. (The record used to be a store
/// transaction of the drainer's own, left for sled's periodic flush, half a second at most:
/// a kill inside that window resent the mail.)
#[tokio::test]
async fn invariant_4_a_mail_counted_as_sent_is_not_sent_again_after_sigkill() {
    let sink = SmtpSink::start().await;
    let mut server = server_with_sink(&sink, &[]).await;
    let admin = server.admin().await;
    admin.create_business("Kept Salon", "kept", OWNER).await;
    kill9_once_counted(&mut server, "app_outbox_sent_total").await;
    assert_eq!(sink.received().len(), 1, "sent once before the kill");

    server.start_again().await;
    // The startup pass has read the queue once the gauge is counted; give a resend time.
    metric_becomes(&server, "app_outbox_pending", 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.received().len(), 1, "not sent again after the restart");
}

/// DESIGN invariant 4's other outcomes: a failed try counted (to be retried) and a mail counted
/// failed for good stay so after a SIGKILL, because each is recorded durably before it is
/// counted: the restart neither loses a try (which would allow more than
/// `--mail-max-attempts`) nor tries a failed mail again.
#[tokio::test]
async fn invariant_4_failed_tries_counted_before_a_sigkill_stay_counted_after_it() {
    let sink = SmtpSink::start().await;
    sink.set_mode(SmtpMode::TempFail);
    let mut server = server_with_sink(
        &sink,
        &["--mail-retry-base-ms", "50", "--mail-max-attempts", "2"],
    )
    .await;
    let admin = server.admin().await;
    admin.create_business("Flaky Salon", "flaky", OWNER).await;
    kill9_once_counted(&mut server, "app_outbox_retries_total").await;
    assert_eq!(sink.attempts(), 1, "one try before the kill");

    server.start_again().await;
    kill9_once_counted(&mut server, "app_outbox_failed_total").await;
    assert_eq!(
        sink.attempts(),
        2,
        "the first try still counted after the restart"
    );

    server.start_again().await;
    // The startup pass has read the queue once the gauge is counted; give a retry time.
    metric_becomes(&server, "app_outbox_pending", 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.attempts(), 2, "a failed mail is not tried again");
    assert_eq!(server.stop(), Some(0));
    let (listing, line) = failed_mail(server.data_dir(), OWNER);
    assert!(listing.contains("0 pending, 1 failed, 0 sent"), "{listing}");
    assert_eq!(tries(&line), Some("2"), "two tries: {line}");
    assert!(line.contains("451"), "the last answer is kept: {line}");
}

/// `app_outbox_pending` follows a backlog while the drainer works through it, instead of
/// showing what it was before the backlog until the last of it has gone out.
#[tokio::test]
async fn the_pending_gauge_follows_a_backlog_while_the_drainer_works_through_it() {
    const BACKLOG: u64 = 20;
    let sink = SmtpSink::start().await;
    sink.set_accept_delay(Duration::from_millis(300));
    let server = server_with_sink(&sink, &["--smtp-concurrency", "1"]).await;
    let admin = server.admin().await;
    // Past the gauge's recount interval (1 s) since the startup pass counted it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for i in 0..3 {
        admin
            .create_business(&format!("First {i}"), &format!("first-{i}"), OWNER)
            .await;
    }
    // While the drainer sends the first three, a backlog builds behind them.
    eventually("the first send", || async {
        (sink.attempts() >= 1).then_some(())
    })
    .await;
    for i in 0..BACKLOG {
        admin
            .create_business(&format!("Later {i}"), &format!("later-{i}"), OWNER)
            .await;
    }
    let mut highest = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metric(&server.base, "app_outbox_sent_total").await < BACKLOG + 3 {
        highest = highest.max(metric(&server.base, "app_outbox_pending").await);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backlog never went out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        highest >= BACKLOG / 2,
        "the gauge showed at most {highest} while {BACKLOG} mails waited"
    );
    metric_becomes(&server, "app_outbox_pending", 0).await;
}

/// Invariant 4 under SIGKILL: every mail of every stored change arrives, and a mail sent
/// again after the crash carries the Message-ID of its first try.
#[tokio::test]
async fn sigkill_during_a_burst_of_200_mails_loses_none_and_resends_keep_their_message_id() {
    let sink = SmtpSink::start().await;
    // A pause between taking a mail and saying so widens the window a kill can fall into.
    sink.set_accept_delay(Duration::from_millis(5));
    // Both booking limits lifted: the per-business one (60 a minute) starts afresh after the
    // restart, and a kill soon after the 34th booking left more than 60 to make then.
    let mut server = server_with_sink(
        &sink,
        &[
            "--booking-rate-per-minute",
            "100000",
            "--booking-rate-per-business-per-minute",
            "100000",
        ],
    )
    .await;
    let admin = server.admin().await;
    let business = admin.create_business("Burst Salon", "burst", OWNER).await;
    let id = business["id"].as_str().expect("business id").to_string();

    let acked = burst_then_kill(&mut server, &sink, &id, BURST_BOOKINGS, 5).await;
    server.start_again().await;

    let admin = server.admin().await;
    let stored = customer_emails(&admin, &id).await;
    assert!(
        acked.is_subset(&stored),
        "every acknowledged booking survived (invariant 1)"
    );
    let stored_at_restart = stored.len();
    // Finish the burst after the restart, so 200 reservation mails are owed in all.
    for i in 0..BURST_BOOKINGS {
        let email = customer_email(i);
        if !stored.contains(&email) {
            book_as(&server.api(), &id, &format!("Customer {i}"), &email).await;
        }
    }
    let stored = customer_emails(&admin, &id).await;
    assert_eq!(stored.len(), BURST_BOOKINGS);
    let expected_mails = 1 + 2 * BURST_BOOKINGS;
    let received = eventually_with(BURST_DEADLINE, "every mail of every stored change", || {
        let received = sink.received();
        (by_message_id(&received).len() >= expected_mails).then_some(received)
    })
    .await;
    metric_becomes(&server, "app_outbox_pending", 0).await;

    let groups = by_message_id(&received);
    assert_eq!(
        groups.len(),
        expected_mails,
        "no mail got a second Message-ID"
    );
    for (message_id, copies) in &groups {
        let first = copies[0];
        for copy in copies {
            assert_eq!(
                copy.rcpt_to, first.rcpt_to,
                "{message_id} resent to someone else"
            );
            assert_eq!(
                copy.subject(),
                first.subject(),
                "{message_id} resent as another mail"
            );
        }
    }
    for email in &stored {
        let confirmations = received
            .iter()
            .filter(|mail| mail.rcpt_to == [email.clone()])
            .filter(|mail| mail.subject() == "Your reservation at Burst Salon is confirmed")
            .count();
        assert!(confirmations >= 1, "no confirmation for {email}");
    }
    let notices: BTreeSet<String> = received
        .iter()
        .filter(|mail| mail.subject().starts_with("New reservation at Burst Salon"))
        .map(ReceivedMail::message_id)
        .collect();
    assert_eq!(
        notices.len(),
        stored.len(),
        "one owner notice per reservation"
    );
    let resent = received.len() - groups.len();
    eprintln!(
        "burst: {} bookings acknowledged before the kill, {stored_at_restart} stored, {} mails, \
         {resent} resent",
        acked.len(),
        groups.len()
    );
}

/// [`eventually`] with a longer deadline, for a synchronous check.
async fn eventually_with<T>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fires `bookings` public bookings (8 at a time) and SIGKILLs the server once a third of them
/// are acknowledged and the sink has `kill_after` mails; returns the customer emails whose
/// booking was acknowledged (201).
async fn burst_then_kill(
    server: &mut TestServer,
    sink: &SmtpSink,
    business_id: &str,
    bookings: usize,
    kill_after: usize,
) -> BTreeSet<String> {
    let http = reqwest::Client::new();
    let url = format!("{}/api/businesses/{business_id}/reservations/", server.base);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url, acked, next) = (http.clone(), url.clone(), acked.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= bookings {
                    return;
                }
                let email = customer_email(i);
                let body = json!({
                    "customer_name": format!("Customer {i}"),
                    "customer_email": email,
                    "starts_at": "2031-06-01T10:00:00Z",
                    "service": "Haircut",
                });
                // A refused or cut connection is expected once the server is killed.
                let Ok(response) = http.post(&url).json(&body).send().await else {
                    return;
                };
                if response.status().as_u16() == 201 {
                    acked.lock().unwrap().insert(email);
                }
            }
        });
    }
    // Kill while bookings are still arriving (when the machine lets us) and mails flow.
    eventually_with(BURST_DEADLINE, "mails flowing mid-burst", || {
        let booked = acked.lock().unwrap().len();
        (booked >= bookings / 3 && sink.received().len() >= kill_after).then_some(())
    })
    .await;
    server.kill9();
    workers.abort_all();
    while workers.join_next().await.is_some() {}
    let acked = acked.lock().unwrap().clone();
    acked
}

fn customer_email(i: usize) -> String {
    format!("customer{i}@customers.test")
}

/// The customer emails of every reservation of a business.
async fn customer_emails(admin: &Api, business_id: &str) -> BTreeSet<String> {
    let page = admin
        .get(&format!(
            "/api/businesses/{business_id}/reservations/?limit=500"
        ))
        .await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["customer_email"].as_str().expect("email").to_string())
        .collect()
}

#[tokio::test]
async fn a_permanent_rejection_fails_the_row_after_one_try_and_retry_sends_it() {
    let sink = SmtpSink::start().await;
    sink.set_mode(SmtpMode::PermFail);
    let mut server = server_with_sink(&sink, &["--mail-retry-base-ms", "50"]).await;
    let admin = server.admin().await;
    admin
        .create_business("Rejected Salon", "rejected", OWNER)
        .await;

    metric_becomes(&server, "app_outbox_failed_total", 1).await;
    // Let ten poll intervals (and forty retry bases) pass: a failed row is never tried again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.attempts(), 1, "one try, no retry storm");
    assert_eq!(metric(&server.base, "app_outbox_retries_total").await, 0);
    assert_eq!(metric(&server.base, "app_outbox_pending").await, 0);
    assert!(sink.received().is_empty());
    assert_eq!(server.stop(), Some(0));

    let (listing, line) = failed_mail(server.data_dir(), OWNER);
    assert!(listing.contains("0 pending, 1 failed, 0 sent"), "{listing}");
    assert!(line.contains("550"), "the server's answer is kept: {line}");
    assert!(listing.contains("0 pending, 1 failed, 0 sent"), "{listing}");
    let id = line.split_whitespace().next().expect("id column");

    let requeued = stdout(&app(&["outbox", "retry", id], server.data_dir()));
    assert!(
        requeued.contains(&format!("requeued 1 mail(s): {id}")),
        "{requeued}"
    );
    let listing = stdout(&app(&["outbox", "list"], server.data_dir()));
    assert!(listing.contains("1 pending, 0 failed, 0 sent"), "{listing}");

    sink.set_mode(SmtpMode::Accept);
    server.start_again().await;
    let received = mails(&sink, 1).await;
    assert_well_formed(&received[0], OWNER);
    assert!(received[0]
        .message_id()
        .starts_with(&format!("<outbox-{id}.")));
    metric_becomes(&server, "app_outbox_sent_total", 1).await;
    assert_eq!(server.stop(), Some(0));

    let listing = stdout(&app(&["outbox", "list", "--sent"], server.data_dir()));
    let line = listing
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("row {id} missing from the audit trail:\n{listing}"));
    assert!(line.contains(" sent "), "{line}");
    assert!(listing.contains("0 pending, 0 failed, 1 sent"), "{listing}");
    let again = app(&["outbox", "retry", id], server.data_dir());
    assert!(!again.status.success(), "a sent mail cannot be requeued");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already sent"));
}

/// An SMTP server's answer can run to any length: a row keeps the first 1 000 characters of
/// it, cut with an ellipsis, so a wordy server cannot grow the outbox (or, in a cluster, the
/// log's record of the failure) without bound.
#[tokio::test]
async fn a_90_kb_rejection_is_kept_as_its_first_1000_characters() {
    let sink = SmtpSink::start().await;
    sink.set_mode(SmtpMode::PermFailWordy);
    let mut server = server_with_sink(&sink, &[]).await;
    let admin = server.admin().await;
    admin.create_business("Wordy Salon", "wordy", OWNER).await;
    metric_becomes(&server, "app_outbox_failed_total", 1).await;
    assert_eq!(server.stop(), Some(0));
    let (listing, line) = failed_mail(server.data_dir(), OWNER);
    assert!(listing.contains("0 pending, 1 failed, 0 sent"), "{listing}");
    // The error is the listing's last column, after the row's short fields.
    let error = line[line.find(" - ").expect("no next try") + 3..].trim_start();
    assert_eq!(error.chars().count(), 1_000 + 1, "{error}");
    assert!(error.contains("550") && error.ends_with("xxx…"), "{error}");
}

#[tokio::test]
async fn temporary_rejections_are_retried_up_to_the_last_try_then_kept_as_failed() {
    let sink = SmtpSink::start().await;
    sink.set_mode(SmtpMode::TempFail);
    let mut server = server_with_sink(
        &sink,
        &["--mail-retry-base-ms", "50", "--mail-max-attempts", "3"],
    )
    .await;
    let admin = server.admin().await;
    admin.create_business("Busy Salon", "busy", OWNER).await;

    metric_becomes(&server, "app_outbox_failed_total", 1).await;
    assert_eq!(sink.attempts(), 3, "exactly --mail-max-attempts tries");
    assert_eq!(metric(&server.base, "app_outbox_retries_total").await, 2);
    assert_eq!(metric(&server.base, "app_outbox_pending").await, 0);
    assert_eq!(server.stop(), Some(0));

    let (listing, line) = failed_mail(server.data_dir(), OWNER);
    assert!(listing.contains("0 pending, 1 failed, 0 sent"), "{listing}");
    assert!(line.contains("451"), "the last answer is kept: {line}");
    assert_eq!(tries(&line), Some("3"), "three tries: {line}");
    let all = stdout(&app(&["outbox", "retry", "--all"], server.data_dir()));
    assert!(all.contains("requeued 1 mail(s)"), "{all}");
}

#[tokio::test]
async fn without_smtp_each_mail_is_one_readable_eml_file() {
    let server = TestServer::start_with(
        &["--mail-from", FROM, "--mail-poll-interval-ms", "200"],
        &[],
    )
    .await;
    let admin = server.admin().await;
    let business = admin
        .create_business(HOSTILE_BUSINESS, "files", OWNER)
        .await;
    let id = business["id"].as_str().expect("business id");
    book_as(&server.api(), id, "Ann", "ann@customers.test").await;

    let folder = server.data_dir().join("mail");
    let list = |folder: &Path| -> BTreeSet<String> {
        std::fs::read_dir(folder)
            .map(|entries| {
                entries
                    .map(|entry| {
                        entry
                            .expect("entry")
                            .file_name()
                            .into_string()
                            .expect("name")
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // A mail is written to a hidden temporary file and renamed into place, so a listing in
    // the middle of a write may show `.N.eml.tmp`; once all three are sent, none is left.
    metric_becomes(&server, "app_outbox_sent_total", 3).await;
    let names = list(&folder);
    assert_eq!(names.len(), 3, "one file per mail, no leftovers: {names:?}");
    let mut recipients = Vec::new();
    for name in &names {
        let outbox_id = name
            .strip_suffix(".eml")
            .unwrap_or_else(|| panic!("{name} is not an .eml"));
        assert!(
            outbox_id.parse::<u64>().is_ok(),
            "{name} is named by its outbox id"
        );
        let raw = std::fs::read_to_string(folder.join(name)).expect("readable .eml");
        let mime = MimeEntity::parse(&raw);
        assert_eq!(mime.header("From"), FROM_HEADER);
        assert!(mime
            .header("Message-ID")
            .starts_with(&format!("<outbox-{outbox_id}.")));
        assert!(!mime.decoded("Subject").is_empty());
        assert!(mime.header("Date").ends_with("+0000"));
        assert!(mime.part_text("text/plain").contains(HOSTILE_BUSINESS));
        assert!(!mime.part_text("text/html").contains("<script"));
        recipients.push(mime.header("To"));
    }
    recipients.sort();
    assert_eq!(recipients, vec!["ann@customers.test", OWNER, OWNER]);
}
