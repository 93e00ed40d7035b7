//! `AppCluster`: several real `app serve` nodes in cluster mode (issue 15) over a
//! [`NatsCluster`]. Each node is a [`TestServer`] (its own free port and temporary data
//! folder) started with `--nats` (every NATS server's URL) and its own `--node-name`; all share
//! the bootstrap super admin and one JWT secret (`APP_JWT_SECRET`), as API.md asks: "one super
//! admin and one secret serve every node", so a token from one node works on every other.

use super::nats::NatsCluster;
use super::{Api, TestServer};
use serde_json::Value;
use std::time::Duration;

/// The one JWT secret of every node (at least 16 bytes, as config.rs requires).
pub const CLUSTER_SECRET: &str = "cluster-test-secret-shared-by-every-node";

/// A deadline for cluster-wide convergence (stream round trips, elections, catch-up) on a
/// busy 2-core machine: longer than [`super::SOON`].
pub const CLUSTER_SOON: Duration = Duration::from_secs(30);

/// App nodes over a NATS JetStream cluster.
pub struct AppCluster {
    /// The NATS servers; `kill9`/`restart` them through this.
    pub nats: NatsCluster,
    /// The app nodes, in start order (index `i` runs as `node-i`).
    pub nodes: Vec<TestServer>,
    /// `serve` flags every node gets besides `--nats` and `--node-name`.
    extra_args: Vec<String>,
}

impl AppCluster {
    /// Three NATS servers and `nodes` app nodes with default settings.
    pub async fn start(nodes: usize) -> Self {
        Self::start_with(nodes, &[]).await
    }

    /// Three NATS servers and `nodes` app nodes, each with `extra_args` (e.g. `--smtp-url`).
    pub async fn start_with(nodes: usize, extra_args: &[&str]) -> Self {
        let mut cluster = Self {
            nats: NatsCluster::start(3).await,
            nodes: Vec::with_capacity(nodes),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        for _ in 0..nodes {
            cluster.add_node().await;
        }
        cluster
    }

    /// The name node `i` runs with (`--node-name`).
    pub fn node_name(i: usize) -> String {
        format!("node-{i}")
    }

    /// Starts one more node (a late joiner) with a fresh data folder; returns its index.
    pub async fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let urls = self.nats.urls();
        let name = Self::node_name(i);
        let mut args = vec!["--nats", urls.as_str(), "--node-name", name.as_str()];
        args.extend(self.extra_args.iter().map(String::as_str));
        let node = TestServer::start_with(&args, &[("APP_JWT_SECRET", CLUSTER_SECRET)]).await;
        self.nodes.push(node);
        i
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &TestServer {
        &self.nodes[i]
    }

    /// SIGKILL of node `i`.
    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// Starts node `i` again on its data folder and port, after [`AppCluster::kill9`].
    pub async fn start_again(&mut self, i: usize) {
        self.nodes[i].start_again().await;
    }

    /// Node `i`'s `/healthz` body (whatever its status).
    pub async fn healthz(&self, i: usize) -> Value {
        self.nodes[i].api().get("/healthz").await.body
    }

    /// Node `i`'s newest applied event id (`"applied"` of `/healthz`).
    pub async fn applied(&self, i: usize) -> Option<u64> {
        self.healthz(i).await["applied"].as_u64()
    }

    /// Waits until every running node named in `nodes` has applied at least `id`.
    pub async fn wait_applied(&self, nodes: &[usize], id: u64, within: Duration) {
        super::eventually_within(&format!("nodes {nodes:?} applied {id}"), within, || async {
            for &i in nodes {
                if self.applied(i).await.is_none_or(|applied| applied < id) {
                    return None;
                }
            }
            Some(())
        })
        .await;
    }

    /// The bootstrap super admin logged in on node `i`.
    pub async fn admin(&self, i: usize) -> Api {
        self.nodes[i].admin().await
    }

    /// The same token used against node `i`: proves one secret serves every node.
    pub fn on_node(&self, api: &Api, i: usize) -> Api {
        let other = Api::new(&self.nodes[i].base);
        match &api.token {
            Some(token) => other.with_token(token),
            None => other,
        }
    }
}
