//! The dashboard summary, the activity feed and notifications with read receipts.

use super::body::{self, Field};
use super::error::{respond, ApiError};
use super::filters::{bearer, json_body, query, with_state};
use crate::bus::UserNotice;
use crate::domain::validate::FieldErrors;
use crate::domain::{Event, EventKind};
use crate::reply::json_reply;
use crate::state::AppState;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

/// How many notifications `GET /api/notifications/` lists.
pub const NOTIFICATION_LIMIT: usize = 50;
/// How many recent businesses the dashboard shows.
pub const RECENT_BUSINESSES: usize = 10;

/// The feed routes.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let dashboard = warp::path!("api" / "dashboard")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(bearer())
        .then(dashboard);
    let activity = warp::path!("api" / "activity")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(bearer())
        .and(query())
        .then(activity);
    let notifications = warp::path!("api" / "notifications")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(bearer())
        .then(notifications);
    let mark_read = warp::path!("api" / "notifications" / "read")
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state(state))
        .and(bearer())
        .and(json_body())
        .then(mark_read);
    dashboard
        .or(activity)
        .unify()
        .or(notifications)
        .unify()
        .or(mark_read)
        .unify()
        .map(respond)
        .boxed()
}

fn frames(events: &[Event]) -> Vec<Value> {
    events.iter().map(Event::frame_json).collect()
}

/// GET /api/dashboard/
async fn dashboard(state: AppState, auth: Option<String>) -> Result<Response, ApiError> {
    state.authenticate(auth).await?.require_admin()?;
    let recent = state
        .read(|store| store.list_businesses(None, RECENT_BUSINESSES, None))
        .await?;
    Ok(json_reply(
        &json!({
            "business_count": state.store.business_count()?,
            "reservation_count": state.store.reservation_count()?,
            "recent_businesses": recent.items,
            "connections": state.metrics.ws_connections.load(Ordering::Relaxed).max(0),
            "last_event_id": state.bus.published_id(),
            "epoch": state.store.epoch(),
        }),
        StatusCode::OK,
    ))
}

/// GET /api/activity/?type=T
async fn activity(
    state: AppState,
    auth: Option<String>,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let kind = match query.get("type").map(String::as_str) {
        None | Some("") => None,
        Some(text) => Some(EventKind::parse(text).ok_or_else(|| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::field("type", format!("must be one of {}", known.join(", ")))
        })?),
    };
    let visibility = state.visibility(&caller)?;
    let published = state.bus.published_id();
    let items = state
        .read(move |store| store.activity(&visibility, kind, published))
        .await?;
    Ok(json_reply(
        &json!({ "items": frames(&items) }),
        StatusCode::OK,
    ))
}

/// GET /api/notifications/
async fn notifications(state: AppState, auth: Option<String>) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let visibility = state.visibility(&caller)?;
    let read_up_to = state.store.read_up_to(caller.user.id)?;
    let published = state.bus.published_id();
    let (unread, items) = state
        .read(move |store| {
            store.notifications(&visibility, read_up_to, published, NOTIFICATION_LIMIT)
        })
        .await?;
    Ok(json_reply(
        &json!({ "unread": unread, "read_up_to": read_up_to, "items": frames(&items) }),
        StatusCode::OK,
    ))
}

/// The body of `POST /api/notifications/read/`.
#[derive(Debug, Deserialize)]
pub struct MarkReadBody {
    #[serde(default)]
    up_to: Field<u64>,
}

/// POST /api/notifications/read/ {"up_to": <event id>}
async fn mark_read(
    state: AppState,
    auth: Option<String>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let body: MarkReadBody = body::parse(content_type.as_deref(), &body)?;
    let mut errors = FieldErrors::default();
    let Some(up_to) = body.up_to.required(
        &mut errors,
        "up_to",
        "must be a non-negative integer event id",
    ) else {
        return Err(ApiError::Validation(errors));
    };
    let stored = state.writer.mark_read(caller.user.id, up_to).await?;
    let visibility = state.visibility(&caller)?;
    let (unread, _) =
        state
            .store
            .notifications(&visibility, stored, state.bus.published_id(), 0)?;
    let payload = json!({ "up_to": stored, "unread": unread });
    let frame = json!({ "type": "notifications_read", "payload": payload }).to_string();
    state.bus.notify_user(UserNotice::frame(
        caller.user.id,
        warp::ws::Message::text(frame),
    ));
    Ok(json_reply(&payload, StatusCode::OK))
}
