//! How many copies of the log JetStream keeps: as many as the NATS cluster allows, up to
//! three.
//!
//! A single server refuses more than one copy, a cluster of two more than two. A cluster also
//! refuses three for a few seconds whenever its meta leader counts a peer as offline: a peer
//! restarting, or a freshly elected leader that has not heard from every peer yet. The copies
//! a stream is created with are kept, so taking fewer on that passing refusal would leave the
//! log on fewer servers than the cluster has for good. A starting node therefore asks again
//! for [`OFFLINE_PEER_PATIENCE`] while the refusal names an offline peer, and raises a log
//! that holds fewer copies than the cluster allows now (one created while a peer was away).

use async_nats::jetstream::{self, context::CreateStreamErrorKind, stream, ErrorCode};
use std::time::Duration;
use tokio::time::Instant;

/// The most copies the log asks for: a quorum survives one server lost.
const MOST_COPIES: usize = 3;
/// How long a starting node keeps asking for a number of copies that JetStream refuses
/// because a peer is offline, before it takes fewer.
const OFFLINE_PEER_PATIENCE: Duration = Duration::from_secs(15);
/// The pause between two such asks.
const ASK_AGAIN_AFTER: Duration = Duration::from_millis(500);

/// Opens the stream `config` names, creating it with as many copies as the cluster allows
/// (its `num_replicas` is ignored). Returns the last refusal when even one copy is refused.
pub(super) async fn open_or_create(
    js: &jetstream::Context,
    config: &stream::Config,
) -> Result<stream::Stream, String> {
    let mut last_refusal = String::new();
    for copies in (1..=MOST_COPIES).rev() {
        let config = stream::Config {
            num_replicas: copies,
            ..config.clone()
        };
        let patience = Instant::now() + OFFLINE_PEER_PATIENCE;
        loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(stream) => return Ok(stream),
                Err(refusal) if names_an_offline_peer(&refusal) && Instant::now() < patience => {
                    tracing::info!(copies, %refusal, "a NATS peer is offline; asking again");
                    tokio::time::sleep(ASK_AGAIN_AFTER).await;
                }
                Err(refusal) => {
                    last_refusal = refusal.to_string();
                    break;
                }
            }
        }
    }
    Err(last_refusal)
}

/// Raises the log's copies to as many as the cluster allows now, up to [`MOST_COPIES`];
/// `current` is the stream's whole configuration. A refusal leaves the log as it is (the
/// next node to start tries again), so this never fails a start.
pub(super) async fn raise(js: &jetstream::Context, current: &stream::Config) {
    let clustered = js.client().server_info().cluster.is_some();
    if !clustered || current.num_replicas >= MOST_COPIES {
        return;
    }
    let mut last_refusal = None;
    for copies in (current.num_replicas + 1..=MOST_COPIES).rev() {
        let wanted = stream::Config {
            num_replicas: copies,
            ..current.clone()
        };
        match js.update_stream(&wanted).await {
            Ok(_) => {
                tracing::info!(
                    from = current.num_replicas,
                    to = copies,
                    "raised the log's copies"
                );
                return;
            }
            Err(refusal) => last_refusal = Some(refusal),
        }
    }
    if let Some(refusal) = last_refusal {
        tracing::warn!(
            copies = current.num_replicas,
            %refusal,
            "the log keeps fewer copies than {MOST_COPIES}: the NATS cluster refused more"
        );
    }
}

/// Whether JetStream refused a placement because a peer it would use is offline, which it
/// says with "no suitable peers for placement" and the words "peer offline".
fn names_an_offline_peer(refusal: &jetstream::context::CreateStreamError) -> bool {
    match refusal.kind() {
        CreateStreamErrorKind::JetStream(error) => {
            error.error_code() == ErrorCode::CLUSTER_NO_PEERS
                && error.to_string().contains("offline")
        }
        _ => false,
    }
}
