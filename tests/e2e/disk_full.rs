//! A full disk, for real: the data folder sits on a 32 MiB tmpfs that a filler file fills
//! (API.md "Storage faults"). Every acknowledged write survives (DESIGN invariant 1), the
//! server says it cannot write (503 `storage_unavailable`, `/healthz` 503 `degraded`,
//! `app_store_errors_total`), reads go on, no mail reaches SMTP more often than its retry
//! delay allows, and once the filler is gone writes succeed again within 30 s without anyone
//! restarting anything, with event ids still consecutive (invariant 2).
//!
//! Mounting needs root, as CI runs; anyone else gets a failure saying so, never a skip.

use crate::support::smtp::SmtpSink;
use crate::support::{metric, Api, TestServer};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long recovery may take once the disk has room (API.md).
const RECOVERY: Duration = Duration::from_secs(30);

/// A tmpfs of `size` mounted on a fresh folder; unmounted (lazily, so a busy mount cannot
/// stay behind) when dropped, also when the test fails.
struct Tmpfs {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let uid = Command::new("id").arg("-u").output().expect("run id -u");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "this test mounts a tmpfs and must run as root (CI does); it is not skipped"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed: {status}");
        Self { mount, _dir: dir }
    }

    /// A data folder on the tmpfs.
    fn data(&self) -> tempfile::TempDir {
        tempfile::tempdir_in(&self.mount).expect("data folder on the tmpfs")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Fills what is left of the tmpfs with one file (off the runtime); returns its path.
async fn fill(disk: &Tmpfs) -> PathBuf {
    let path = disk.mount.join("filler");
    let filler = path.clone();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0xA5u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    })
    .await
    .expect("filler");
    path
}

fn create_body(subdomain: &str) -> Value {
    json!({"name": format!("Salon {subdomain}"), "subdomain": subdomain, "owner_email": "owner@salons.test"})
}

/// Every subdomain the server lists (paging through all of them).
async fn listed_subdomains(admin: &Api) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let page = admin
            .get(&format!("/api/businesses/?limit=200{cursor}"))
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for item in page.body["items"].as_array().expect("items") {
            found.insert(item["subdomain"].as_str().expect("subdomain").to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return found,
        }
    }
}

/// Creates businesses until one succeeds; panics after [`RECOVERY`].
async fn create_until_it_succeeds(admin: &Api, started: Instant) -> String {
    for attempt in 0.. {
        let subdomain = format!("after-{attempt}");
        if let Some(answer) = admin
            .call_fallible("POST", "/api/businesses/", create_body(&subdomain))
            .await
        {
            if answer.status == 201 {
                return subdomain;
            }
        }
        assert!(
            started.elapsed() < RECOVERY,
            "no create succeeded within 30 s of the disk having room again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn a_full_disk_refuses_writes_and_says_so_then_writes_resume_within_30_s_losing_nothing() {
    let disk = Tmpfs::mount("32m");
    let mut server = TestServer::start_on(disk.data(), &[], &[]).await;
    let pid = server.pid();
    let admin = server.admin().await;

    // Creates under load while the disk fills.
    let mut acknowledged = BTreeSet::new();
    let mut refusal: Option<Value> = None;
    let mut filler: Option<PathBuf> = None;
    let started = Instant::now();
    for i in 0.. {
        if i == 20 {
            filler = Some(fill(&disk).await);
        }
        let subdomain = format!("before-{i}");
        let answer = admin
            .call_fallible("POST", "/api/businesses/", create_body(&subdomain))
            .await
            .expect("the server answers while the disk is full");
        match answer.status {
            201 => {
                acknowledged.insert(subdomain);
            }
            503 => {
                refusal = Some(answer.body);
                break;
            }
            other => panic!("a create answered {other}: {:?}", answer.body),
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "writes never failed"
        );
    }
    let refusal = refusal.expect("a refusal");
    assert_eq!(refusal["error"]["code"], "storage_unavailable", "{refusal}");

    // The next write is refused outright, with the same code.
    let again = admin
        .post("/api/businesses/", create_body("while-full"))
        .await;
    assert_eq!(again.status, 503);
    assert_eq!(again.body["error"]["code"], "storage_unavailable");
    assert!(
        again.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not made")),
        "{:?}",
        again.body
    );
    let health = server.api().get("/healthz").await;
    assert_eq!(health.status, 503);
    assert_eq!(health.body["status"], "degraded", "{:?}", health.body);
    assert!(health.body["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert!(metric(&server.base, "app_store_errors_total").await >= 1);
    // Reads keep working.
    assert!(listed_subdomains(&admin).await.is_superset(&acknowledged));

    // Room again: a create succeeds within 30 s, by itself, in the same process.
    std::fs::remove_file(filler.expect("filled")).expect("remove the filler");
    let room = Instant::now();
    let after = create_until_it_succeeds(&admin, room).await;
    assert_eq!(
        server.pid(),
        pid,
        "the same process (re-executed), not a restart"
    );
    let health = server.api().get("/healthz").await;
    assert_eq!((health.status, &health.body["status"]), (200, &json!("ok")));

    // Nothing acknowledged is lost, and the log has no gap (invariant 2).
    let listed = listed_subdomains(&admin).await;
    let missing: Vec<_> = acknowledged.difference(&listed).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(listed.contains(&after));
    let activity = admin.get("/api/activity/").await;
    let ids: Vec<u64> = activity.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_u64().expect("id"))
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] == pair[1] + 1),
        "event ids consecutive across the recovery: {ids:?}"
    );
    assert_eq!(server.stop(), Some(0));
}

#[tokio::test]
async fn mail_claimed_before_sending_reaches_smtp_at_most_once_per_retry_delay_through_a_full_disk()
{
    const RETRY_BASE_MS: u64 = 8_000;
    let disk = Tmpfs::mount("32m");
    let sink = SmtpSink::start().await;
    // Slow acceptance keeps sends in flight while the disk fills, so recording them fails.
    sink.set_accept_delay(Duration::from_millis(100));
    let url = sink.url();
    let retry = RETRY_BASE_MS.to_string();
    let args = [
        "--smtp-url",
        url.as_str(),
        "--mail-retry-base-ms",
        retry.as_str(),
        "--mail-poll-interval-ms",
        "200",
    ];
    let server = TestServer::start_on(disk.data(), &args, &[]).await;
    let admin = server.admin().await;

    // Creates under load (each one mails its owner) until well after the recovery; the owners
    // of the acknowledged ones must all get their mail.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (admin, stop) = (admin.clone(), stop.clone());
        tokio::spawn(async move {
            let mut owners = BTreeSet::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let owner = format!("owner-{i}@salons.test");
                let body = json!({"name": "Salon", "subdomain": format!("mail-{i}"), "owner_email": owner});
                if let Some(answer) = admin.call_fallible("POST", "/api/businesses/", body).await {
                    if answer.status == 201 {
                        owners.insert(owner);
                    }
                }
                // A steady trickle: the sink's pace delivers it well within the test.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            owners
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Arrival times of each Message-ID, watched for 40 s. The disk fills mid-send; as soon as
    // the server knows (a store error counted) it gets room again, so it recovers within a
    // second or two: a mail sent before the failure whose sending was not durably recorded
    // would, without its claim, go out again right after the recovery.
    let started = Instant::now();
    let mut arrivals: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut seen = 0;
    let mut filler = Some(fill(&disk).await);
    while started.elapsed() < Duration::from_secs(40) {
        let received = sink.received();
        for mail in &received[seen..] {
            arrivals
                .entry(mail.message_id())
                .or_default()
                .push(started.elapsed());
        }
        seen = received.len();
        if filler.is_some() && metric(&server.base, "app_store_errors_total").await >= 1 {
            std::fs::remove_file(filler.take().expect("filler")).expect("remove the filler");
        }
        assert!(
            filler.is_none() || started.elapsed() < Duration::from_secs(20),
            "the full disk never failed a store write"
        );
        if started.elapsed() > Duration::from_secs(15) {
            stop.store(true, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let owners = load.await.expect("the load");

    // The shortest retry delay is half the base (jitter); a claim lasts at least that long.
    let shortest = Duration::from_millis(RETRY_BASE_MS / 2);
    for (id, times) in &arrivals {
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= shortest - Duration::from_millis(200),
                "{id} arrived again after {:?}: {times:?}",
                pair[1] - pair[0]
            );
        }
    }
    let mailed: BTreeSet<String> = sink
        .received()
        .iter()
        .flat_map(|mail| mail.rcpt_to.clone())
        .collect();
    let unmailed: Vec<_> = owners.difference(&mailed).collect();
    assert!(
        unmailed.is_empty(),
        "{} of {} acknowledged creates never had their mail arrive, e.g. {:?}",
        unmailed.len(),
        owners.len(),
        unmailed.iter().take(5).collect::<Vec<_>>()
    );
    drop(server);
}
