//! `/api/businesses/{id}/reservations/`: public booking (rate limited per client address),
//! listing and cancelling (super admin or the business's owner).

use super::businesses::visible_business;
use super::error::{respond, ApiError};
use super::filters::{
    bearer, json_body, page_params, parse_object, query, required_string, with_state,
};
use super::{json_reply, AppState};
use crate::domain::validate::{self, FieldErrors, MAX_TEXT_CHARS};
use crate::domain::{NewReservation, Timestamp};
use crate::store::{Applied, Mutation};
use bytes::Bytes;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

/// The reservation routes.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let collection =
        warp::path!("api" / "businesses" / Uuid / "reservations").and(warp::path::end());
    let book = collection
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(warp::addr::remote())
        .and(json_body())
        .then(book);
    let list = collection
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(bearer())
        .and(query())
        .then(list);
    let cancel = warp::path!("api" / "businesses" / Uuid / "reservations" / Uuid / "cancel")
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state(state))
        .and(bearer())
        .then(cancel);
    book.or(list)
        .unify()
        .or(cancel)
        .unify()
        .map(respond)
        .boxed()
}

/// POST /api/businesses/{id}/reservations/ — public: anyone may book.
async fn book(
    business_id: Uuid,
    state: AppState,
    client: Option<SocketAddr>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(client) = client {
        if let Err(wait) = state.booking_limiter.check(client.ip()) {
            return Err(ApiError::RateLimited {
                retry_after_seconds: wait.as_secs_f64().ceil() as u64,
            });
        }
    }
    let body = parse_object(content_type.as_deref(), &body)?;
    let mut errors = FieldErrors::default();
    let customer_name = required_string(&mut errors, &body, "customer_name")
        .and_then(|raw| errors.check("customer_name", validate::text(raw, MAX_TEXT_CHARS)));
    let customer_email = required_string(&mut errors, &body, "customer_email")
        .and_then(|raw| errors.check("customer_email", validate::email(raw)));
    let starts_at = required_string(&mut errors, &body, "starts_at")
        .and_then(|raw| errors.check("starts_at", validate::future_time(raw, Timestamp::now())));
    let service = required_string(&mut errors, &body, "service")
        .and_then(|raw| errors.check("service", validate::text(raw, MAX_TEXT_CHARS)));
    let (Some(customer_name), Some(customer_email), Some(starts_at), Some(service)) =
        (customer_name, customer_email, starts_at, service)
    else {
        return Err(ApiError::Validation(errors));
    };
    let new = NewReservation {
        customer_name,
        customer_email,
        starts_at,
        service,
    };
    match state
        .writer
        .submit(Mutation::CreateReservation { business_id, new })
        .await?
    {
        Applied::Reservation(reservation) => Ok(json_reply(&reservation, StatusCode::CREATED)),
        _ => Err(ApiError::Internal),
    }
}

/// GET /api/businesses/{id}/reservations/?limit=N&cursor=C
async fn list(
    business_id: Uuid,
    state: AppState,
    auth: Option<String>,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    visible_business(&state, &caller, business_id)?;
    let (limit, cursor) = page_params(&query)?;
    let page = state.store.list_reservations(business_id, limit, cursor)?;
    Ok(json_reply(
        &json!({ "items": page.items, "count": page.count, "next_cursor": page.next_cursor }),
        StatusCode::OK,
    ))
}

/// POST /api/businesses/{id}/reservations/{rid}/cancel/
async fn cancel(
    business_id: Uuid,
    reservation_id: Uuid,
    state: AppState,
    auth: Option<String>,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    visible_business(&state, &caller, business_id)?;
    match state
        .writer
        .submit(Mutation::CancelReservation {
            business_id,
            reservation_id,
        })
        .await?
    {
        Applied::Reservation(reservation) => Ok(json_reply(&reservation, StatusCode::OK)),
        _ => Err(ApiError::Internal),
    }
}
