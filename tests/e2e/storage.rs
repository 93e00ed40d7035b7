//! Storage faults and their remedies, through the real binary (API.md "Storage faults",
//! "Backup, restore, check"): a damaged store refuses to start (exit 2) until the loss is
//! accepted, and then never reuses an id (DESIGN invariant 2); a backup taken under write
//! load holds every acknowledged change (invariant 1) and restores on a new epoch.

use crate::rest_support::event_about;
use crate::support::{eventually, run_app as app, Api, TestServer, Ws};
use serde_json::Value;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The epoch and newest event id a dashboard socket is greeted with.
async fn epoch_and_newest(server: &TestServer, admin: &Api) -> (String, u64) {
    let token = admin.token.as_deref().expect("token");
    let mut ws = Ws::channel(&server.ws_base(), "/ws/dashboard/", token, None).await;
    let hello = ws.frame().await;
    assert_eq!(hello["type"], "connection_established");
    let payload = &hello["payload"];
    (
        payload["epoch"].as_str().expect("epoch").to_string(),
        payload["last_event_id"].as_u64().expect("last_event_id"),
    )
}

/// Every business the admin can list.
async fn business_ids(admin: &Api) -> Vec<String> {
    let answer = admin.get("/api/businesses/?limit=500").await;
    assert_eq!(answer.status, 200, "list: {:?}", answer.body);
    answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| b["id"].as_str().expect("id").to_string())
        .collect()
}

fn truncate_to_half(db: &Path) {
    let file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len / 2).unwrap();
}

fn random_bytes_in_the_middle(db: &Path) {
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    let len = file.metadata().unwrap().len();
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    let noise: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
    file.write_all(&noise).unwrap();
    file.sync_all().unwrap();
}

/// Fills a store, stops it, damages `db/db`, and checks the refusal and the accepted loss.
async fn a_damaged_store_is_refused_until_the_loss_is_accepted(damage: fn(&Path)) {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for i in 0..60 {
        admin
            .create_business(
                &format!("Salon number {i} of the damaged store"),
                &format!("salon-{i}"),
                &format!("owner{i}@example.com"),
            )
            .await;
    }
    let (epoch, newest) = epoch_and_newest(&server, &admin).await;
    assert_eq!(newest, 60);
    let data = server.into_data();
    damage(&data.path().join("db").join("db"));

    let refused = app(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--data",
        path(data.path()),
    ])
    .await;
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(
        refused.stderr.contains("app restore") && refused.stderr.contains("--accept-data-loss"),
        "the refusal names both ways out: {}",
        refused.stderr
    );

    let server = TestServer::start_on(data, &["--accept-data-loss"], &[]).await;
    let admin = server.admin().await;
    let (new_epoch, _) = epoch_and_newest(&server, &admin).await;
    assert_ne!(new_epoch, epoch, "a new epoch, so every client resyncs");
    let left = business_ids(&admin).await.len();
    assert!(
        left < 60,
        "the damage hit data ({left} of 60 businesses left)"
    );
    let business = admin
        .create_business("After the damage", "after-damage", "new@example.com")
        .await;
    let event = event_about(&admin, "business_created", business["id"].as_str().unwrap()).await;
    let id = event["id"].as_u64().expect("event id");
    assert!(
        id > newest,
        "event id {id} is above every id handed out before ({newest})"
    );
}

/// DESIGN invariant 2 across damage: a truncated log is refused; accepted, no id comes back.
#[tokio::test]
async fn a_store_truncated_to_half_is_refused_and_reuses_no_event_id_once_accepted() {
    a_damaged_store_is_refused_until_the_loss_is_accepted(truncate_to_half).await;
}

/// DESIGN invariant 2 across damage: 4 KiB of noise in the log, same rules.
#[tokio::test]
async fn a_store_with_random_bytes_is_refused_and_reuses_no_event_id_once_accepted() {
    a_damaged_store_is_refused_until_the_loss_is_accepted(random_bytes_in_the_middle).await;
}

/// DESIGN invariant 1 through a backup: every change acknowledged before `app backup` began
/// is in the restored store, which runs on a new epoch and passes `app check`.
#[tokio::test]
async fn a_backup_under_write_load_restores_every_change_acknowledged_before_it() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (epoch, _) = epoch_and_newest(&server, &admin).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (admin, acknowledged, stop) = (admin.clone(), acknowledged.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let business = admin
                    .create_business(&format!("Load {n}"), &format!("load-{n}"), "o@example.com")
                    .await;
                let id = business["id"].as_str().unwrap().to_string();
                acknowledged.lock().unwrap().push(id);
                n += 1;
            }
        })
    };
    eventually("20 acknowledged creates", || async {
        (acknowledged.lock().unwrap().len() >= 20).then_some(())
    })
    .await;
    let before: Vec<String> = acknowledged.lock().unwrap().clone();

    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("store.backup");
    let backup = app(&[
        "backup",
        path(&file),
        "--data",
        path(server.data_dir()),
        "--addr",
        &server.addr,
    ])
    .await;
    assert_eq!(backup.code, Some(0), "{backup:?}");
    let during = acknowledged.lock().unwrap().len();
    eventually("the load to go on after the backup", || async {
        (acknowledged.lock().unwrap().len() > during + 5).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    // The endpoint takes no user token, however privileged.
    assert_eq!(admin.get("/api/backup/").await.status, 401);
    assert_eq!(server.api().get("/api/backup/").await.status, 401);

    let target = tempfile::tempdir().unwrap();
    let restore = app(&["restore", path(&file), "--data", path(target.path())]).await;
    assert_eq!(restore.code, Some(0), "{restore:?}");
    let check = app(&["check", "--data", path(target.path())]).await;
    assert_eq!(check.code, Some(0), "{check:?}");
    assert!(check.stdout.contains("is whole"), "{check:?}");

    // Refused: a non-empty folder (nothing written there), and damaged copies.
    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let was = listing(server.data_dir());
    let onto_live = app(&["restore", path(&file), "--data", path(server.data_dir())]).await;
    assert_ne!(onto_live.code, Some(0), "{onto_live:?}");
    assert!(
        onto_live.stderr.contains("not empty"),
        "{}",
        onto_live.stderr
    );
    assert_eq!(listing(server.data_dir()), was);
    let bytes = std::fs::read(&file).unwrap();
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] = if damaged[middle] == b'0' { b'1' } else { b'0' };
    let cut = &bytes[..bytes.len() * 3 / 4];
    for (what, content) in [("one changed byte", &damaged[..]), ("truncated", cut)] {
        let copy = files.path().join("damaged.backup");
        std::fs::write(&copy, content).unwrap();
        let check = app(&["check", path(&copy)]).await;
        assert_ne!(check.code, Some(0), "{what}: {check:?}");
        let nowhere = files.path().join("never-written");
        let restore = app(&["restore", path(&copy), "--data", path(&nowhere)]).await;
        assert_ne!(restore.code, Some(0), "{what}: {restore:?}");
        assert!(!nowhere.exists(), "{what}: nothing is written");
    }

    let restored = TestServer::start_on(target, &[], &[]).await;
    let admin = restored.admin().await;
    let (restored_epoch, _) = epoch_and_newest(&restored, &admin).await;
    assert_ne!(restored_epoch, epoch);
    let present = business_ids(&admin).await;
    let missing: Vec<&String> = before.iter().filter(|id| !present.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, missing: {missing:?}"
    );
}

/// An offline backup (server stopped) restores the same store; ids go on above it.
#[tokio::test]
async fn an_offline_backup_restores_businesses_reservations_and_the_event_log() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Offline", "offline", "o@example.com")
        .await;
    let business_id = business["id"].as_str().unwrap().to_string();
    let reservation = server.api().book(&business_id, "Ann Lee").await;
    let (epoch, newest) = epoch_and_newest(&server, &admin).await;
    let data = server.into_data();

    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("offline.backup");
    let backup = app(&["backup", path(&file), "--data", path(data.path())]).await;
    assert_eq!(backup.code, Some(0), "{backup:?}");
    let check = app(&["check", path(&file)]).await;
    assert_eq!(check.code, Some(0), "{check:?}");
    let target = tempfile::tempdir().unwrap();
    let restore = app(&["restore", path(&file), "--data", path(target.path())]).await;
    assert_eq!(restore.code, Some(0), "{restore:?}");
    let check = app(&["check", "--data", path(target.path())]).await;
    assert_eq!(check.code, Some(0), "{check:?}");

    let restored = TestServer::start_on(target, &[], &[]).await;
    let admin = restored.admin().await;
    let (restored_epoch, restored_newest) = epoch_and_newest(&restored, &admin).await;
    assert_ne!(restored_epoch, epoch);
    assert_eq!(restored_newest, newest);
    let listed = admin
        .get(&format!("/api/businesses/{business_id}/reservations/"))
        .await;
    assert_eq!(listed.body["items"], Value::Array(vec![reservation]));
    let created = event_about(&admin, "business_created", &business_id).await;
    assert_eq!(created["id"], 1);
    let next = admin.create_business("Next", "next", "o@example.com").await;
    let event = event_about(&admin, "business_created", next["id"].as_str().unwrap()).await;
    assert_eq!(event["id"].as_u64(), Some(newest + 1));
}

/// `strace` attached to a running server, making every `fdatasync` it calls fail with EIO
/// (a disk that cannot make its cache durable); detached when dropped.
struct FailingSync {
    strace: std::process::Child,
}

impl FailingSync {
    async fn attach(pid: u32) -> Self {
        use std::io::BufRead;
        let mut strace = std::process::Command::new("strace")
            .args(["-f", "-p", &pid.to_string(), "-o", "/dev/null"])
            .args(["-e", "trace=fdatasync", "-e", "inject=fdatasync:error=EIO"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("strace runs (scripts/check.sh installs it)");
        let stderr = strace.stderr.take().expect("stderr");
        // It prints one "attached" line per thread; the first comes once it traces.
        let attached = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stderr).lines();
            let first = lines.next();
            std::thread::spawn(move || for _ in lines {});
            first
        })
        .await
        .unwrap();
        assert!(
            matches!(&attached, Some(Ok(line)) if line.contains("attached")),
            "strace could not attach to the server: {attached:?}"
        );
        // Every thread is traced once the last "attached" line is out; a moment suffices.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Self { strace }
    }
}

impl Drop for FailingSync {
    fn drop(&mut self) {
        // SIGTERM detaches strace and leaves the server running.
        let _ = std::process::Command::new("kill")
            .arg(self.strace.id().to_string())
            .status();
        let _ = self.strace.wait();
    }
}

#[tokio::test]
async fn a_201_waits_for_the_disk_to_make_the_change_durable_not_only_written() {
    // DESIGN invariant 1 across a power cut: sled's own flush ends with sync_file_range,
    // which leaves the change in the disk's write cache; the store's flush adds an
    // fdatasync of sled's log, and a create is answered 201 only once it succeeded. With
    // every fdatasync failing, the create must not be acknowledged.
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin
        .create_business("Before", "before", "o@example.com")
        .await;
    let failing = FailingSync::attach(server.pid()).await;
    let refused = admin
        .post(
            "/api/businesses/",
            serde_json::json!({"name": "During", "subdomain": "during", "owner_email": "o@example.com"}),
        )
        .await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.body["error"]["code"], "storage_unavailable");
    let health = server.api().get("/healthz").await;
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.body["status"], "degraded");
    // Still refused a moment later: the recovery probe syncs the way the store does.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let health = server.api().get("/healthz").await;
    assert_eq!(health.status, 503, "{health:?}");
    // Once the disk syncs again, the server leaves the degraded state by itself (it
    // re-executes itself, so the address refuses connections for a moment).
    drop(failing);
    let body =
        serde_json::json!({"name": "After", "subdomain": "after", "owner_email": "o@example.com"});
    eventually("the server writable again", || async {
        let answer = admin
            .call_fallible("POST", "/api/businesses/", body.clone())
            .await;
        answer.filter(|a| a.status == 201).map(|_| ())
    })
    .await;
}
