//! Cluster mode (issue 15, API.md "Several nodes"): real `app serve` nodes over a real
//! three-server NATS JetStream cluster on loopback, with events created on different nodes.
//! The single node's promises must hold across the cluster: DESIGN invariant 1 (a 2xx only for
//! a durable change: no acknowledged write is lost when a node or a NATS server dies), the
//! consecutive-ids / no-gap resume promise on every node and across nodes, and invariant 4
//! (each mail sent once, a resend recognisable by its Message-ID).
//!
//! The `harness_` tests prove the test harness itself (`support::nats`): the NATS cluster forms,
//! and JetStream keeps a leader and takes writes with one server killed. They need only
//! `nats-server` (scripts/ensure-nats-server.sh installs it).

use crate::support::cluster::{AppCluster, CLUSTER_SECRET, CLUSTER_SOON};
use crate::support::nats::{NatsCluster, RawNats, LEADER_WITHIN};
use crate::support::smtp::{by_message_id, SmtpSink};
use crate::support::{
    business_of, eventually_within, id_of, token, Answer, Api, TestServer, Ws, WsEvent,
};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Events the late node finds in the stream before it starts (the 10 000). Written
/// 16 at a time through two nodes; the time it took and the catch-up time are printed (run
/// with `--nocapture`). Measured here (debug build, shared 2-core machine, branch nats at
/// e03698f): written in 45 s, caught up in 2.4 s; the whole test takes about 50 s.
const LATE_NODE_EVENTS: u64 = 10_000;
/// How long the late node may take to apply [`LATE_NODE_EVENTS`] on a busy 2-core machine.
const LATE_NODE_CATCH_UP: Duration = Duration::from_secs(300);
/// Requests in flight while writing the late node's backlog.
const BACKLOG_IN_FLIGHT: usize = 16;

/// The dashboard socket of `api`'s user on `node`, with its `connection_established` frame.
async fn dashboard(node: &TestServer, api: &Api, resume: Option<(u64, &str)>) -> (Ws, Value) {
    let mut ws = Ws::channel(&node.ws_base(), "/ws/dashboard/", &token(api), resume).await;
    let hello = ws.frame().await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    (ws, hello)
}

/// The epoch a `connection_established` frame names.
fn epoch_of(hello: &Value) -> String {
    hello["payload"]["epoch"]
        .as_str()
        .expect("connection_established names its epoch")
        .to_string()
}

/// The super admin logged in on node 0, once every node accepts that token (the login is a
/// change the other nodes apply from the stream).
async fn admin_everywhere(cluster: &AppCluster) -> Api {
    let admin = cluster.admin(0).await;
    for i in 0..cluster.nodes.len() {
        let on_node = cluster.on_node(&admin, i);
        eventually_within(
            &format!("node {i} accepts node 0's token"),
            CLUSTER_SOON,
            || {
                let on_node = on_node.clone();
                async move { (on_node.get("/api/businesses/").await.status == 200).then_some(()) }
            },
        )
        .await;
    }
    admin
}

/// `POST /api/businesses/` without asserting (a unique subdomain from `name`).
async fn create(api: &Api, name: &str) -> Option<Answer> {
    api.call_fallible(
        "POST",
        "/api/businesses/",
        json!({"name": name, "subdomain": name, "owner_email": "owner@salons.test"}),
    )
    .await
}

/// `(id, business)` of the next `n` events on `ws`.
async fn next_events(ws: &mut Ws, n: usize) -> Vec<(u64, String)> {
    ws.events(n)
        .await
        .iter()
        .map(|event| (id_of(event), business_of(event)))
        .collect()
}

/// Asserts that `ids` are consecutive (no gap, no duplicate, in order).
fn assert_consecutive(ids: &[u64], what: &str) {
    for pair in ids.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "{what}: a gap or a reorder in {ids:?}"
        );
    }
}

/// JetStream's answer when the meta leader does not yet count enough peers as online.
const NO_PEERS_FOR_PLACEMENT: u64 = 10005;

/// How long one stream create may go unanswered before it is asked again.
const CREATE_ASKED_AGAIN_AFTER: Duration = Duration::from_secs(5);

/// JetStream's answer to creating stream `name` (subjects under its name in lower case, e.g.
/// `harness.>`) with three replicas through server `via`; `None` when none came within
/// [`CREATE_ASKED_AGAIN_AFTER`]. A cluster busy electing, or just formed on a loaded machine,
/// may leave a request unanswered (seen in a check run: no reply within 30 s); asking again
/// is safe, since JetStream answers a create identical to an existing stream with that stream.
async fn create_three_copies(nats: &NatsCluster, via: usize, name: &str) -> Option<Value> {
    let config = json!({
        "name": name, "subjects": [format!("{}.>", name.to_lowercase())], "num_replicas": 3, "storage": "file",
    })
    .to_string();
    let mut conn = RawNats::connect(&nats.client_addr(via))
        .await
        .expect("connect to NATS");
    let subject = format!("$JS.API.STREAM.CREATE.{name}");
    match conn
        .request(&subject, config.as_bytes(), CREATE_ASKED_AGAIN_AFTER)
        .await
    {
        Ok(answer) => Some(answer),
        Err(why) => {
            eprintln!("{why}; asking again");
            None
        }
    }
}

/// Whether `answer` is JetStream's refusal to place a stream for want of an online peer.
fn refused_for_an_offline_peer(answer: &Value) -> bool {
    answer["error"]["err_code"].as_u64() == Some(NO_PEERS_FOR_PLACEMENT)
        && answer["error"]["description"]
            .as_str()
            .is_some_and(|text| text.contains("offline"))
}

/// A JetStream stream of three replicas on the harness cluster, through a running server.
///
/// A freshly elected meta leader may not have heard from every peer yet, and then refuses
/// three replicas with "no suitable peers for placement, peer offline" (seen in CI): that
/// answer, and none at all, is asked again until the peers are in; any other answer is
/// judged at once.
async fn create_r3_stream(nats: &NatsCluster, via: usize) {
    let answer = eventually_within(
        "JetStream places a stream of three replicas",
        LEADER_WITHIN,
        || async {
            let answer = create_three_copies(nats, via, "HARNESS").await?;
            (answer["error"]["err_code"].as_u64() != Some(NO_PEERS_FOR_PLACEMENT)).then_some(answer)
        },
    )
    .await;
    assert!(answer.get("error").is_none(), "stream create: {answer}");
    assert_eq!(answer["config"]["num_replicas"], 3, "{answer}");
}

/// Waits until JetStream, asked through server `via`, answers a stream of three replicas
/// with `refused` (true: refused for an offline peer; false: placed). A probe it places is
/// deleted again.
async fn wait_for_placement_of_three(nats: &NatsCluster, via: usize, refused: bool) {
    let what = if refused {
        "JetStream refuses three copies for an offline peer"
    } else {
        "JetStream places three copies again"
    };
    eventually_within(what, LEADER_WITHIN, || async {
        // Each ask may create and delete a stream: a few a second are plenty.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let answer = create_three_copies(nats, via, "PROBE").await?;
        if answer.get("error").is_none() {
            let mut conn = RawNats::connect(&nats.client_addr(via)).await.ok()?;
            let deleted = conn
                .request("$JS.API.STREAM.DELETE.PROBE", b"", LEADER_WITHIN)
                .await
                .ok()?;
            assert_eq!(deleted["success"], true, "delete the probe: {deleted}");
        }
        (refused_for_an_offline_peer(&answer) == refused).then_some(())
    })
    .await;
}

/// How many copies of the app's log (`APP_CHANGES`) JetStream keeps, asked through `via`.
async fn log_copies(nats: &NatsCluster, via: usize) -> u64 {
    let info = nats.log_info(via).await;
    info["config"]["num_replicas"]
        .as_u64()
        .unwrap_or_else(|| panic!("the log's stream info names its copies: {info}"))
}

/// Starts an app node named `name` over `nats` on a blocking thread, so the test can act on
/// the NATS cluster while the node waits for its log.
fn start_node_in_background(nats: &NatsCluster, name: &str) -> tokio::task::JoinHandle<TestServer> {
    let (urls, name) = (nats.urls(), name.to_string());
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        runtime.block_on(TestServer::start_with(
            &["--nats", &urls, "--node-name", &name],
            &[("APP_JWT_SECRET", CLUSTER_SECRET)],
        ))
    })
}

/// Publishes to the harness stream through server `via` until JetStream acknowledges it
/// (a stream leader may be being elected); returns the acknowledged sequence.
async fn publish_acked(nats: &NatsCluster, via: usize, payload: &str) -> u64 {
    eventually_within(
        &format!(
            "JetStream acknowledges a publish through {}",
            nats.name(via)
        ),
        LEADER_WITHIN,
        || async {
            let mut conn = RawNats::connect(&nats.client_addr(via)).await.ok()?;
            let ack = conn
                .request("harness.writes", payload.as_bytes(), Duration::from_secs(2))
                .await
                .ok()?;
            (ack["stream"] == "HARNESS").then(|| ack["seq"].as_u64())?
        },
    )
    .await
}

#[tokio::test]
async fn harness_three_nats_servers_form_one_jetstream_cluster_and_clean_up() {
    let mut nats = NatsCluster::start(3).await;
    let leader = nats.wait_for_leader().await;
    for i in 0..3 {
        let jsz = nats.monitor(i, "/jsz").await.expect("/jsz");
        assert_eq!(jsz["meta_cluster"]["cluster_size"], 3, "{jsz}");
        assert_eq!(jsz["meta_cluster"]["leader"], leader.as_str(), "{jsz}");
        let routez = nats.monitor(i, "/routez").await.expect("/routez");
        assert_eq!(
            routez["num_routes"],
            2,
            "{} routes to both peers",
            nats.name(i)
        );
    }
    assert_eq!(nats.urls().split(',').count(), 3);
    create_r3_stream(&nats, 0).await;
    assert_eq!(publish_acked(&nats, 1, "one").await, 1);
    assert_eq!(publish_acked(&nats, 2, "two").await, 2);

    let dir = nats.dir().to_path_buf();
    assert!(
        dir.join("nats-0-store").is_dir(),
        "JetStream stores in the temp dir"
    );
    drop(nats);
    assert!(!dir.exists(), "the servers' files are deleted on drop");
}

#[tokio::test]
async fn harness_with_its_meta_leader_killed_jetstream_elects_another_and_takes_writes() {
    let mut nats = NatsCluster::start(3).await;
    create_r3_stream(&nats, 0).await;
    assert_eq!(publish_acked(&nats, 0, "before").await, 1);

    let leader = nats.wait_for_leader().await;
    let victim = nats.index_of(&leader);
    nats.kill9(victim);
    let survivor = (victim + 1) % 3;
    let new_leader = nats.wait_for_leader().await;
    assert_ne!(new_leader, leader, "a dead server cannot stay the leader");
    assert_eq!(
        publish_acked(&nats, survivor, "during").await,
        2,
        "two of three replicas are a quorum: writes go on"
    );

    nats.restart(victim).await;
    assert_eq!(
        nats.meta_leader(victim).await.as_deref(),
        Some(new_leader.as_str()),
        "the restarted server rejoins and follows the new leader"
    );
    assert_eq!(publish_acked(&nats, victim, "after").await, 3);
}

#[tokio::test]
async fn a_node_started_while_a_nats_server_restarts_waits_and_keeps_the_log_on_three() {
    let mut nats = NatsCluster::start(3).await;
    let leader = nats.wait_for_leader().await;
    let via = nats.index_of(&leader);
    let away = (via + 1) % 3;
    nats.stop(away);
    wait_for_placement_of_three(&nats, via, true).await;

    let starting = start_node_in_background(&nats, "node-0");
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.restart(away).await;
    let node = starting.await.expect("the node starts");
    assert_eq!(
        log_copies(&nats, via).await,
        3,
        "the node waited out the offline peer instead of taking two copies for good"
    );
    let admin = node.admin().await;
    assert_eq!(
        create(&admin, "after-the-wait").await.map(|a| a.status),
        Some(201)
    );
}

#[tokio::test]
async fn a_log_created_while_a_nats_server_was_away_is_raised_to_three_copies_by_the_next_node() {
    let mut cluster = AppCluster::start(0).await;
    let leader = cluster.nats.wait_for_leader().await;
    let via = cluster.nats.index_of(&leader);
    let away = (via + 1) % 3;
    cluster.nats.stop(away);
    wait_for_placement_of_three(&cluster.nats, via, true).await;
    // The server stays away longer than a node waits: the first node takes two copies.
    cluster.add_node().await;
    assert_eq!(log_copies(&cluster.nats, via).await, 2);
    let admin = cluster.admin(0).await;
    assert_eq!(
        create(&admin, "on-two-copies").await.map(|a| a.status),
        Some(201)
    );

    cluster.nats.restart(away).await;
    wait_for_placement_of_three(&cluster.nats, via, false).await;
    cluster.add_node().await;
    assert_eq!(
        log_copies(&cluster.nats, via).await,
        3,
        "the second node raised the log to as many copies as the cluster allows"
    );
    // Both nodes go on taking writes and applying each other's.
    let admin = admin_everywhere(&cluster).await;
    let (mut ws, _) = dashboard(cluster.node(0), &admin, None).await;
    for i in [1, 0] {
        let answer = create(&cluster.on_node(&admin, i), &format!("on-three-{i}")).await;
        assert_eq!(answer.map(|a| a.status), Some(201), "node {i}");
    }
    let events = next_events(&mut ws, 2).await;
    let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert_consecutive(&ids, "node 0's socket after the log was raised");
}

#[tokio::test]
async fn every_socket_on_every_node_sees_the_same_ids_in_the_same_order_with_no_gap() {
    const EVENTS: usize = 30;
    let cluster = AppCluster::start(3).await;
    let admin = admin_everywhere(&cluster).await;
    let mut sockets = Vec::new();
    let mut epochs = BTreeSet::new();
    for i in 0..3 {
        let (ws, hello) = dashboard(cluster.node(i), &admin, None).await;
        epochs.insert(epoch_of(&hello));
        sockets.push(ws);
    }
    assert_eq!(epochs.len(), 1, "one epoch names the stream on every node");
    for i in 0..3 {
        let health = cluster.healthz(i).await;
        assert_eq!(
            health["node"],
            AppCluster::node_name(i).as_str(),
            "{health}"
        );
        assert!(
            health["applied"].is_u64() && health["lag"].is_u64(),
            "{health}"
        );
    }

    // Creates through all three nodes at once: the stream, not any node, decides the order.
    let creates = (0..EVENTS).map(|k| {
        let api = cluster.on_node(&admin, k % 3);
        async move {
            let answer = create(&api, &format!("order-{k}"))
                .await
                .expect("node answers");
            assert_eq!(answer.status, 201, "create on node {}: {:?}", k % 3, answer);
            answer.body["id"].as_str().expect("id").to_string()
        }
    });
    let created: BTreeSet<String> = futures_util::future::join_all(creates)
        .await
        .into_iter()
        .collect();

    let mut seen = Vec::new();
    for ws in &mut sockets {
        seen.push(next_events(ws, EVENTS).await);
    }
    let ids: Vec<u64> = seen[0].iter().map(|(id, _)| *id).collect();
    assert_consecutive(&ids, "node 0's socket");
    for (i, other) in seen.iter().enumerate().skip(1) {
        assert_eq!(other, &seen[0], "node {i}'s socket saw another order");
    }
    let businesses: BTreeSet<String> = seen[0].iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(businesses, created, "every acknowledged create is an event");
}

/// Creates businesses through `api` until `count` attempts are done; returns the ids the node
/// acknowledged (201). Failed attempts (node killed) are expected and not counted.
async fn write_through(api: Api, prefix: String, count: usize) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for j in 0..count {
        if let Some(answer) = create(&api, &format!("{prefix}-{j}")).await {
            if answer.status == 201 {
                acknowledged.push(answer.body["id"].as_str().expect("id").to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    acknowledged
}

#[tokio::test]
async fn kill9_of_an_app_node_loses_no_acknowledged_write_and_its_clients_resume_on_another_node() {
    const PER_NODE: usize = 40;
    let mut cluster = AppCluster::start(3).await;
    let admin = admin_everywhere(&cluster).await;
    let (mut ws, hello) = dashboard(cluster.node(0), &admin, None).await;
    let epoch = epoch_of(&hello);

    let writers: Vec<_> = (0..3)
        .map(|i| {
            let api = cluster.on_node(&admin, i);
            tokio::spawn(write_through(api, format!("kill-{i}"), PER_NODE))
        })
        .collect();
    // Node 0's client reads some live events, then its node dies in the middle of the writes.
    let mut live = next_events(&mut ws, 10).await;
    cluster.kill9(0);
    while let Some(WsEvent::Frame(frame)) = ws.read_within(Duration::from_secs(2)).await {
        if frame.get("id").and_then(Value::as_u64).is_some() {
            live.push((id_of(&frame), business_of(&frame)));
        }
    }
    let ids: Vec<u64> = live.iter().map(|(id, _)| *id).collect();
    assert_consecutive(&ids, "node 0's socket before the kill");
    let last_seen = *ids.last().expect("events");
    let mut acknowledged = BTreeSet::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer task"));
    }

    // The client resumes on node 1 from where it was, on the same epoch: no gap. (Node 1 first
    // applies what node 2 acknowledged: each node answers after its own apply only.)
    let newest = cluster
        .applied(1)
        .await
        .into_iter()
        .chain(cluster.applied(2).await)
        .max();
    let newest = newest.expect("nodes 1 and 2 report applied");
    cluster.wait_applied(&[1, 2], newest, CLUSTER_SOON).await;
    let (mut resumed, hello) =
        dashboard(cluster.node(1), &admin, Some((last_seen, epoch.as_str()))).await;
    assert_eq!(epoch_of(&hello), epoch, "the same stream, the same epoch");
    let missed = next_events(&mut resumed, (newest - last_seen) as usize).await;
    let ids: Vec<u64> = missed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.first(), Some(&(last_seen + 1)), "resumes right after");
    assert_consecutive(&ids, "the resumed socket");

    // No acknowledged write is lost (invariant 1), whichever node acknowledged it.
    let evented: BTreeSet<String> = live.iter().chain(&missed).map(|(_, b)| b.clone()).collect();
    for id in &acknowledged {
        assert!(
            evented.contains(id),
            "{id} was acknowledged but is no event"
        );
        for node in [1, 2] {
            let answer = cluster
                .on_node(&admin, node)
                .get(&format!("/api/businesses/{id}/"))
                .await;
            assert_eq!(answer.status, 200, "{id} on node {node}");
        }
    }

    // The killed node comes back and catches up from the stream.
    cluster.start_again(0).await;
    cluster.wait_applied(&[0], newest, CLUSTER_SOON).await;
    for id in &acknowledged {
        let answer = cluster
            .on_node(&admin, 0)
            .get(&format!("/api/businesses/{id}/"))
            .await;
        assert_eq!(answer.status, 200, "{id} on the restarted node 0");
    }
}

/// How soon after a NATS server's death each node takes writes again.
const WRITES_BACK_AFTER_NATS_DEATH: Duration = Duration::from_secs(20);

#[tokio::test]
async fn kill9_of_one_nats_server_keeps_writes_working_on_every_node() {
    let mut cluster = AppCluster::start(3).await;
    let admin = admin_everywhere(&cluster).await;
    let (mut ws, _) = dashboard(cluster.node(2), &admin, None).await;
    let mut acknowledged = 0;
    for i in 0..3 {
        let answer = create(&cluster.on_node(&admin, i), &format!("calm-{i}")).await;
        assert_eq!(answer.map(|a| a.status), Some(201));
        acknowledged += 1;
    }

    // The meta leader is the hardest one to lose: JetStream must elect another.
    let leader = cluster.nats.wait_for_leader().await;
    let victim = cluster.nats.index_of(&leader);
    cluster.nats.kill9(victim);
    // A node may answer 503 while the stream elects a leader, never for longer. Its own
    // consumer may have died with the server, and a new one waits for JetStream's meta
    // leader, which may take several 5 s request timeouts to answer; the node catches up
    // record by record meanwhile, so its writes do not wait for that.
    for i in 0..3 {
        let api = cluster.on_node(&admin, i);
        let started = tokio::time::Instant::now();
        let deadline = started + WRITES_BACK_AFTER_NATS_DEATH;
        let mut last = None;
        for attempt in 0.. {
            let answer = create(&api, &format!("elect-{i}-{attempt}")).await;
            if let Some(answer) = &answer {
                assert!(
                    [201, 503].contains(&answer.status),
                    "only a refusal while electing: {answer:?}"
                );
                if answer.status == 201 {
                    eprintln!("node {i} took a write {:?} after", started.elapsed());
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {i} took no write within {WRITES_BACK_AFTER_NATS_DEATH:?} of {} dying \
                 (NATS meta leader now {:?}); its last answer: {:?}; its /healthz: {}",
                cluster.nats.name(victim),
                cluster.nats.meta_leader((victim + 1) % 3).await,
                answer.or(last),
                cluster.healthz(i).await
            );
            last = answer;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        acknowledged += 1;
    }
    // Then writes simply work, through every node.
    for round in 0..5 {
        for i in 0..3 {
            let answer = create(&cluster.on_node(&admin, i), &format!("down-{round}-{i}")).await;
            assert_eq!(
                answer.map(|a| a.status),
                Some(201),
                "node {i}, round {round}"
            );
            acknowledged += 1;
        }
    }
    cluster.nats.restart(victim).await;
    for i in 0..3 {
        let answer = create(&cluster.on_node(&admin, i), &format!("back-{i}")).await;
        assert_eq!(
            answer.map(|a| a.status),
            Some(201),
            "node {i} after the restart"
        );
        acknowledged += 1;
    }

    // Every acknowledged create is an event: at least `acknowledged`, with no gap (a 503
    // attempt may still have reached the stream, so there may be more).
    let events = next_events(&mut ws, acknowledged).await;
    let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert_consecutive(&ids, "node 2's socket across the NATS server's death");
}

/// Mail, as `tests/e2e/mail.rs` sends it: quick retries, no reminders.
const FROM: &str = "Salon Platform <bookings@salons.test>";

#[tokio::test]
async fn each_mail_arrives_once_by_message_id_however_many_nodes_drain_the_outbox() {
    const BOOKINGS: usize = 12;
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let cluster = AppCluster::start_with(
        3,
        &[
            "--smtp-url",
            &url,
            "--mail-from",
            FROM,
            "--mail-retry-base-ms",
            "100",
            "--mail-poll-interval-ms",
            "200",
            "--reminder-hours",
            "0",
        ],
    )
    .await;
    let admin = admin_everywhere(&cluster).await;
    // A business created on each node (a welcome each), bookings through every node (a
    // confirmation and an owner's notice each).
    let mut businesses = Vec::new();
    for i in 0..3 {
        let business = cluster
            .on_node(&admin, i)
            .create_business(
                &format!("Salon {i}"),
                &format!("mail-{i}"),
                &format!("owner{i}@salons.test"),
            )
            .await;
        businesses.push(business["id"].as_str().expect("id").to_string());
    }
    for k in 0..BOOKINGS {
        cluster
            .node(k % 3)
            .api()
            .book(&businesses[(k + 1) % 3], &format!("Customer {k}"))
            .await;
    }
    let expected = 3 + 2 * BOOKINGS;

    let received = eventually_within(&format!("{expected} mails"), CLUSTER_SOON, || async {
        let received = sink.received();
        (by_message_id(&received).len() >= expected).then_some(received)
    })
    .await;
    // Long enough for a second node's drainer to send a copy, if one would.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = if sink.received().len() > received.len() {
        sink.received()
    } else {
        received
    };
    let groups = by_message_id(&received);
    assert_eq!(groups.len(), expected, "one Message-ID per mail");
    for (message_id, copies) in &groups {
        assert_eq!(
            copies.len(),
            1,
            "{message_id} arrived {} times",
            copies.len()
        );
    }
    // Every node applies the "sent" marks: nothing pending anywhere.
    for i in 0..3 {
        eventually_within(
            &format!("node {i}'s outbox drained"),
            CLUSTER_SOON,
            || async {
                (crate::support::metric(&cluster.node(i).base, "app_outbox_pending").await == 0)
                    .then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn a_uniqueness_conflict_raced_from_two_nodes_yields_exactly_one_201_and_one_409() {
    const ROUNDS: usize = 10;
    let cluster = AppCluster::start(2).await;
    let admin = admin_everywhere(&cluster).await;
    let (first, second) = (cluster.on_node(&admin, 0), cluster.on_node(&admin, 1));
    for round in 0..ROUNDS {
        let name = format!("race-{round}");
        let (a, b) = tokio::join!(create(&first, &name), create(&second, &name));
        let (a, b) = (a.expect("node 0 answers"), b.expect("node 1 answers"));
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "round {round}: {a:?} / {b:?}");
        let loser = if a.status == 409 { &a } else { &b };
        assert_eq!(loser.code(), "conflict", "{loser:?}");
    }
    // Both nodes hold one business per subdomain.
    for node in [&first, &second] {
        let subdomains = eventually_within("every race applied", CLUSTER_SOON, || async {
            let list = node.get("/api/businesses/?limit=500").await;
            let items = list.body["items"].as_array()?.clone();
            (items.len() == ROUNDS).then_some(items)
        })
        .await
        .iter()
        .map(|b| b["subdomain"].as_str().unwrap_or_default().to_string())
        .collect::<BTreeSet<_>>();
        assert_eq!(subdomains.len(), ROUNDS, "{subdomains:?}");
    }
}

#[tokio::test]
async fn a_late_node_started_after_10000_events_catches_up_and_answers_like_the_others() {
    let mut cluster = AppCluster::start(2).await;
    let admin = admin_everywhere(&cluster).await;
    let business = cluster
        .on_node(&admin, 0)
        .create_business("Late", "late", "owner@salons.test")
        .await;
    let id = business["id"].as_str().expect("id").to_string();

    // The backlog: renames (one event each, no mail), through both nodes.
    let started = Instant::now();
    let renames = (1..LATE_NODE_EVENTS).map(|k| {
        let (api, path) = (
            cluster.on_node(&admin, (k % 2) as usize),
            format!("/api/businesses/{id}/"),
        );
        async move {
            let answer = api
                .call("PATCH", &path, Some(json!({"name": format!("Late {k}")})))
                .await;
            assert_eq!(answer.status, 200, "rename {k}: {answer:?}");
        }
    });
    futures_util::stream::iter(renames)
        .buffer_unordered(BACKLOG_IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    let newest = cluster
        .applied(0)
        .await
        .into_iter()
        .chain(cluster.applied(1).await)
        .max();
    let newest = newest.expect("nodes 0 and 1 report applied");
    assert!(newest >= LATE_NODE_EVENTS, "{newest} events in the stream");
    eprintln!(
        "late node: {LATE_NODE_EVENTS} events written through 2 nodes in {:.1?}",
        started.elapsed()
    );

    let started = Instant::now();
    let late = cluster.add_node().await;
    cluster
        .wait_applied(&[0, 1, late], newest, LATE_NODE_CATCH_UP)
        .await;
    eprintln!(
        "late node: caught up with {newest} events in {:.1?}",
        started.elapsed()
    );
    let health = eventually_within("the late node's lag at 0", CLUSTER_SOON, || async {
        let health = cluster.healthz(late).await;
        (health["lag"] == 0).then_some(health)
    })
    .await;
    assert_eq!(
        health["node"],
        AppCluster::node_name(late).as_str(),
        "{health}"
    );

    // Its REST answers match the others', byte for byte of JSON.
    let paths = [
        "/api/businesses/?limit=500".to_string(),
        format!("/api/businesses/{id}/"),
        "/api/activity/?limit=200".to_string(),
        format!("/api/activity/?before={}&limit=200", newest / 2),
    ];
    for path in &paths {
        let answers: Vec<Answer> = futures_util::future::join_all([0, 1, late].map(|i| {
            let api = cluster.on_node(&admin, i);
            let path = path.clone();
            async move { api.get(&path).await }
        }))
        .await;
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(answer.status, 200, "{path} on node {i}: {answer:?}");
            assert_eq!(answer.body, answers[0].body, "{path}: node {i} differs");
        }
    }
    // A client resuming on the late node gets what it would get on node 0.
    let epoch = epoch_of(&dashboard(cluster.node(0), &admin, None).await.1);
    let mut replays = Vec::new();
    for i in [0, late] {
        let (mut ws, _) =
            dashboard(cluster.node(i), &admin, Some((newest - 5, epoch.as_str()))).await;
        replays.push(ws.events(5).await);
    }
    assert_eq!(replays[0], replays[1], "the same replay on the late node");
}
