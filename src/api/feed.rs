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
    // Every sled read off the runtime's workers: one that meets a writer commit parks its
    // thread on sled's process-wide lock (docs/bench.md, "Early morning 2026-12-05").
    let (recent, business_count, reservation_count) = state
        .read(|store| {
            Ok((
                store.list_businesses(None, RECENT_BUSINESSES, None)?,
                store.business_count()?,
                store.reservation_count()?,
            ))
        })
        .await?;
    Ok(json_reply(
        &json!({
            "business_count": business_count,
            "reservation_count": reservation_count,
            "recent_businesses": recent.items,
            "connections": state.metrics.ws_connections.load(Ordering::Relaxed).max(0),
            "last_event_id": state.bus.published_id(),
            "epoch": state.store.epoch(),
        }),
        StatusCode::OK,
    ))
}

/// How many events one page of `GET /api/activity/?before=…` lists at most.
pub const MAX_ACTIVITY_PAGE: usize = 200;
/// How many it lists unless `limit` says.
pub const DEFAULT_ACTIVITY_PAGE: usize = 50;

/// GET /api/activity/?type=T&before=ID&limit=N
async fn activity(
    state: AppState,
    auth: Option<String>,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let mut errors = FieldErrors::default();
    let kind = match query.get("type").map(String::as_str) {
        None | Some("") => None,
        Some(text) => EventKind::parse(text).or_else(|| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            errors.add("type", format!("must be one of {}", known.join(", ")));
            None
        }),
    };
    let before = query
        .get("before")
        .and_then(|text| match text.parse::<u64>() {
            Ok(id) if id >= 1 => Some(id),
            _ => {
                errors.add("before", "must be an event id (an integer from 1)");
                None
            }
        });
    let limit = query
        .get("limit")
        .and_then(|text| match text.parse::<usize>() {
            Ok(n) if (1..=MAX_ACTIVITY_PAGE).contains(&n) => Some(n),
            _ => {
                errors.add(
                    "limit",
                    format!("must be an integer from 1 to {MAX_ACTIVITY_PAGE}"),
                );
                None
            }
        });
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let visibility = state.visibility(&caller)?;
    // Capped at what is durable, not at what the bus has published: a client that has just
    // had its 200 reads its own change (invariant 1 still holds: nothing not on disk).
    let up_to = state.writer.durable_id();
    let (items, next_before) = if before.is_none() && limit.is_none() {
        state
            .read(move |store| {
                // The answer of the first round: the newest 50 of the log, filtered among them.
                let items = store.activity(&visibility, kind, up_to)?;
                Ok((items, store.activity_window_start()?))
            })
            .await?
    } else {
        let limit = limit.unwrap_or(DEFAULT_ACTIVITY_PAGE);
        let page = state
            .read(move |store| store.activity_before(&visibility, kind, before, up_to, limit))
            .await?;
        (page.items, page.next_before)
    };
    Ok(json_reply(
        &json!({ "items": frames(&items), "next_before": next_before }),
        StatusCode::OK,
    ))
}

/// GET /api/notifications/
async fn notifications(state: AppState, auth: Option<String>) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let visibility = state.visibility(&caller)?;
    let user_id = caller.user.id;
    let published = state.bus.published_id();
    let (read_up_to, (unread, items)) = state
        .read(move |store| {
            let read_up_to = store.read_up_to(user_id)?;
            let notifications =
                store.notifications(&visibility, read_up_to, published, NOTIFICATION_LIMIT)?;
            Ok((read_up_to, notifications))
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
