//! `/api/businesses/{id}/reservations/`: public booking (rate limited per client address and
//! per business),
//! listing and cancelling (super admin or the business's owner).

use super::body::{self, Field, MUST_BE_A_STRING};
use super::businesses::visible_business;
use super::error::{respond, ApiError};
use super::filters::{bearer, client_addr, json_body, page_params, query, with_state};
use crate::client_addr::ClientKey;
use crate::domain::validate::{self, FieldErrors, MAX_TEXT_CHARS};
use crate::domain::{Email, NewReservation, Timestamp};
use crate::reply::json_reply;
use crate::state::AppState;
use crate::store::UpcomingCursor;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
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
        .and(client_addr(&state))
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

/// The body of a booking.
#[derive(Debug, Deserialize)]
pub struct BookingBody {
    #[serde(default)]
    customer_name: Field<String>,
    #[serde(default)]
    customer_email: Field<String>,
    #[serde(default)]
    starts_at: Field<String>,
    #[serde(default)]
    service: Field<String>,
}

impl BookingBody {
    /// The validated booking; `starts_at` must be after `now`.
    pub(super) fn validate(self, now: Timestamp) -> Result<NewReservation, FieldErrors> {
        let mut errors = FieldErrors::default();
        let customer_name = self
            .customer_name
            .required(&mut errors, "customer_name", MUST_BE_A_STRING)
            .and_then(|raw| errors.check("customer_name", validate::text(raw, MAX_TEXT_CHARS)));
        let customer_email = self
            .customer_email
            .required(&mut errors, "customer_email", MUST_BE_A_STRING)
            .and_then(|raw| errors.check("customer_email", Email::parse(raw)));
        let starts_at = self
            .starts_at
            .required(&mut errors, "starts_at", MUST_BE_A_STRING)
            .and_then(|raw| errors.check("starts_at", validate::future_time(raw, now)));
        let service = self
            .service
            .required(&mut errors, "service", MUST_BE_A_STRING)
            .and_then(|raw| errors.check("service", validate::text(raw, MAX_TEXT_CHARS)));
        match (customer_name, customer_email, starts_at, service) {
            (Some(customer_name), Some(customer_email), Some(starts_at), Some(service)) => {
                Ok(NewReservation {
                    customer_name,
                    customer_email: customer_email.into(),
                    starts_at,
                    service,
                })
            }
            _ => Err(errors),
        }
    }
}

/// POST /api/businesses/{id}/reservations/ — public: anyone may book.
async fn book(
    business_id: Uuid,
    state: AppState,
    client: ClientKey,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Per address first, so one address that is refused does not use up the business's
    // allowance; the business's own limit bounds what many addresses together can book (and
    // the mail each booking queues).
    let limited = state
        .booking_limiter
        .check(client)
        .and_then(|()| state.business_booking_limiter.check(business_id));
    if let Err(wait) = limited {
        return Err(ApiError::RateLimited {
            retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
        });
    }
    let body: BookingBody = body::parse(content_type.as_deref(), &body)?;
    let new = body
        .validate(Timestamp::now())
        .map_err(ApiError::Validation)?;
    let reservation = state.writer.create_reservation(business_id, new).await?;
    Ok(json_reply(&reservation, StatusCode::CREATED))
}

/// GET /api/businesses/{id}/reservations/?limit=N&cursor=C[&upcoming=true]
async fn list(
    business_id: Uuid,
    state: AppState,
    auth: Option<String>,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    visible_business(&state, &caller, business_id)?;
    let page = match query.get("upcoming").map(String::as_str) {
        None | Some("" | "false") => {
            let (limit, cursor) = page_params(&query)?;
            state
                .read(move |store| store.list_reservations(business_id, limit, cursor))
                .await?
        }
        Some("true") => {
            // The limit's rules are the other listing's; the cursor is this one's own.
            let mut rest = query.clone();
            let cursor = rest.remove("cursor").filter(|text| !text.is_empty());
            let (limit, _) = page_params(&rest)?;
            let cursor = cursor
                .map(|text| {
                    UpcomingCursor::parse(&text).ok_or_else(|| {
                        ApiError::field("cursor", "is not a cursor returned by this listing")
                    })
                })
                .transpose()?;
            let now = Timestamp::now();
            state
                .read(move |store| store.upcoming_reservations(business_id, now, limit, cursor))
                .await?
        }
        Some(_) => return Err(ApiError::field("upcoming", "must be true or false")),
    };
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
    let reservation = state
        .writer
        .cancel_reservation(business_id, reservation_id)
        .await?;
    Ok(json_reply(&reservation, StatusCode::OK))
}
