//! Resource paths whose id is malformed answer 404 `not_found` whatever the method
//! (API.md "Limits, timeouts and hostile clients"). Without this, `PATCH /api/businesses/x/`
//! answered 405: no route's id parsed, and warp prefers a method mismatch elsewhere (the
//! dashboard's catch-all `GET`) over "not found".

use super::error::ApiError;
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::Filter;

/// Answers 404 for a malformed id; passes every other request on.
pub fn malformed() -> BoxedFilter<(Response,)> {
    warp::path::full()
        .and_then(|path: warp::path::FullPath| async move {
            if has_malformed_id(path.as_str()) {
                Ok(ApiError::NotFound("no such resource".into()).into_response())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .boxed()
}

/// Whether `path` names a resource by an id that cannot be one: a business or user id, or a
/// reservation id under a business, that is not a UUID (`me` is a user's own id).
fn has_malformed_id(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let not_uuid = |segment: Option<&&str>| {
        segment.is_some_and(|segment| !segment.is_empty() && Uuid::parse_str(segment).is_err())
    };
    match segments.as_slice() {
        ["api", "businesses", business, rest @ ..] => {
            not_uuid(Some(business))
                || (rest.first() == Some(&"reservations") && not_uuid(rest.get(1)))
        }
        ["api", "users", user, ..] => *user != "me" && not_uuid(Some(user)),
        ["api", "push", "subscriptions", id, ..] => not_uuid(Some(id)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_cannot_be_ids_are_malformed() {
        let id = "0b6c2f55-7b0a-4a3e-9d9f-0a4f5f1d2c3b";
        for path in [
            "/api/businesses/not-a-uuid/".to_string(),
            "/api/businesses/not-a-uuid".to_string(),
            "/api/businesses/x/reservations/".to_string(),
            format!("/api/businesses/{id}/reservations/nope/cancel/"),
            "/api/users/42/".to_string(),
        ] {
            assert!(has_malformed_id(&path), "{path}");
        }
        for path in [
            "/api/businesses/".to_string(),
            format!("/api/businesses/{id}/"),
            format!("/api/businesses/{id}/reservations/"),
            format!("/api/businesses/{id}/reservations/{id}/cancel/"),
            "/api/users/".to_string(),
            "/api/users/me/".to_string(),
            format!("/api/users/{id}/"),
            "/api/public/businesses/salon-1/".to_string(),
            "/b/salon-1/".to_string(),
            "/".to_string(),
        ] {
            assert!(!has_malformed_id(&path), "{path}");
        }
    }
}
