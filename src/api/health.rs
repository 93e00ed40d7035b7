//! `GET /healthz` and `GET /metrics`: no token needed.

use super::error::{respond, ApiError};
use super::filters::with_state;
use crate::reply::json_reply;
use crate::state::AppState;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

/// The monitoring routes.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let health = warp::path!("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(state.clone()))
        .then(health);
    let metrics = warp::path!("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(state))
        .map(metrics);
    health.or(metrics).unify().map(respond).boxed()
}

/// GET /healthz: 503 `degraded` with its reason while the store cannot be written (reads
/// still work then: API.md "Storage faults").
async fn health(state: AppState) -> Result<Response, ApiError> {
    if let Some(reason) = state.health.degraded() {
        return Ok(json_reply(
            &json!({"status": "degraded", "reason": reason}),
            StatusCode::SERVICE_UNAVAILABLE,
        ));
    }
    match state.store.health_check() {
        Ok(()) => {
            let mut body = json!({"status": "ok"});
            // Cluster mode: which node, how far it has applied the log, and whether it
            // reaches NATS (API.md "Several nodes").
            if let Some(cluster) = state.writer.cluster() {
                let status = cluster.status();
                body["node"] = json!(status.node);
                body["applied"] = json!(state.writer.durable_event_id());
                body["applied_seq"] = json!(status.applied_seq);
                body["lag"] = json!(status.lag);
                body["nats"] = json!(if status.connected {
                    "connected"
                } else {
                    "disconnected"
                });
            }
            Ok(json_reply(&body, StatusCode::OK))
        }
        Err(error) => {
            tracing::error!(%error, "health check failed");
            Ok(json_reply(
                &json!({"status": "unavailable"}),
                StatusCode::SERVICE_UNAVAILABLE,
            ))
        }
    }
}

/// GET /metrics
fn metrics(state: AppState) -> Result<Response, ApiError> {
    let mut text = state.metrics.render();
    if let Some(cluster) = state.writer.cluster() {
        let status = cluster.status();
        text.push_str(&format!(
            "# HELP app_cluster_applied_seq Newest record of the cluster's log applied here.\n\
             # TYPE app_cluster_applied_seq gauge\napp_cluster_applied_seq {}\n\
             # HELP app_cluster_lag Records of the cluster's log not applied here yet.\n\
             # TYPE app_cluster_lag gauge\napp_cluster_lag {}\n\
             # HELP app_cluster_nats_connected 1 while this node reaches NATS.\n\
             # TYPE app_cluster_nats_connected gauge\napp_cluster_nats_connected {}\n",
            status.applied_seq,
            status.lag,
            u8::from(status.connected)
        ));
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
