//! `ApiError`: the only error type that knows HTTP. It renders every failure as
//! `{"error": {"code", "message", "fields"?}}` with the status of API.md's table, and
//! [`recover`] renders warp's own rejections (404, 405, 413, …) in the same shape.

use crate::auth::AuthError;
use crate::domain::validate::FieldErrors;
use crate::login_gate::GateError;
use crate::reply;
use crate::store::StoreError;
use serde_json::{json, Map, Value};
use std::convert::Infallible;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reject::Rejection;
use warp::reply::{Reply, Response};

/// Everything a request can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("invalid input")]
    Validation(FieldErrors),
    #[error("{0}")]
    Unauthenticated(#[from] AuthError),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    #[error("request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("too many requests; retry in {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("a Content-Length header is required")]
    LengthRequired,
    #[error("the server is shutting down")]
    Unavailable,
    /// Every password-hashing slot stayed busy for the queue timeout (API.md: 503 `busy`).
    #[error("the server is busy; retry in {retry_after_seconds} s")]
    Busy { retry_after_seconds: u64 },
    /// The store cannot be written (API.md "Storage faults"); `outcome_unknown` when the
    /// change was applied but could not be made durable, so it may or may not stand.
    #[error("{}", storage_message(*outcome_unknown))]
    StorageUnavailable { outcome_unknown: bool },
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A validation error on one field.
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::default();
        errors.add(field, message);
        ApiError::Validation(errors)
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::Validation(_) => (StatusCode::BAD_REQUEST, "validation_error"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::LengthRequired => (StatusCode::LENGTH_REQUIRED, "length_required"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::StorageUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The JSON body of this error (API.md's shape, rendered by [`crate::reply`]).
    pub fn body(&self) -> Value {
        let (_, code) = self.status_and_code();
        let (message, fields) = match self {
            ApiError::Validation(fields) => (
                "some fields are invalid; see error.fields".to_string(),
                Some(
                    fields
                        .0
                        .iter()
                        .map(|(field, message)| ((*field).to_string(), json!(message)))
                        .collect(),
                ),
            ),
            ApiError::Conflict {
                field: Some(field),
                message,
            } => {
                let mut fields = Map::new();
                fields.insert((*field).to_string(), json!(message));
                (message.clone(), Some(fields))
            }
            other => (other.to_string(), None),
        };
        reply::error_body(code, &message, fields)
    }
}

/// A handler's outcome as a response: the reply, or the error in the JSON error shape.
/// Every route group ends with `.map(respond)`, so handlers can use `?` throughout.
pub fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(Reply::into_response)
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        let mut response = reply::json_reply(&self.body(), status);
        if let ApiError::RateLimited {
            retry_after_seconds,
        }
        | ApiError::Busy {
            retry_after_seconds,
        } = self
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds.max(1)),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict { field, message } => ApiError::Conflict { field, message },
            StoreError::Closed => ApiError::Unavailable,
            StoreError::Flush(_) => ApiError::StorageUnavailable {
                outcome_unknown: true,
            },
            StoreError::NotWritable(_) | StoreError::Unavailable(sled::Error::Io(_)) => {
                ApiError::StorageUnavailable {
                    outcome_unknown: false,
                }
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::Internal
            }
        }
    }
}

impl From<GateError> for ApiError {
    fn from(error: GateError) -> Self {
        // Whole seconds, rounded up: a client retrying on the dot is not refused again.
        let seconds = |wait: std::time::Duration| wait.as_secs_f64().ceil() as u64;
        match error {
            GateError::RateLimited(wait) => ApiError::RateLimited {
                retry_after_seconds: seconds(wait),
            },
            GateError::Busy(wait) => ApiError::Busy {
                retry_after_seconds: seconds(wait),
            },
        }
    }
}

/// What a client hears when the store cannot be written.
fn storage_message(outcome_unknown: bool) -> &'static str {
    if outcome_unknown {
        "the store cannot be written (disk full or I/O error); the outcome of this change is \
         unknown: read it back before retrying"
    } else {
        "the store cannot be written (disk full or I/O error); the change was not made: retry later"
    }
}

impl warp::reject::Reject for ApiError {}

/// Renders whatever no route answered, in the JSON error shape.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    // Most specific first; 405 and 404 last, as warp itself prefers them least.
    let error = if let Some(error) = rejection.find::<ApiError>() {
        error.clone()
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::LengthRequired
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        ApiError::UnsupportedMediaType
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::field("query", "malformed query string")
    } else if rejection.find::<warp::reject::MissingHeader>().is_some()
        || rejection.find::<warp::reject::InvalidHeader>().is_some()
    {
        // Only the WebSocket routes require headers (the upgrade handshake).
        ApiError::field("upgrade", "this endpoint needs a WebSocket upgrade request")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.is_not_found() {
        ApiError::NotFound("no such resource".into())
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::NotFound("no such resource".into())
    };
    Ok(error.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_the_status_and_code_of_api_md() {
        let cases = [
            (ApiError::InvalidJson("x".into()), 400, "invalid_json"),
            (
                ApiError::field("name", "is required"),
                400,
                "validation_error",
            ),
            (AuthError::Expired.into(), 401, "unauthenticated"),
            (ApiError::Forbidden("no"), 403, "forbidden"),
            (ApiError::NotFound("thing".into()), 404, "not_found"),
            (
                ApiError::Conflict {
                    field: None,
                    message: "taken".into(),
                },
                409,
                "conflict",
            ),
            (ApiError::PayloadTooLarge, 413, "payload_too_large"),
            (
                ApiError::RateLimited {
                    retry_after_seconds: 3,
                },
                429,
                "rate_limited",
            ),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
            (ApiError::LengthRequired, 411, "length_required"),
            (ApiError::Unavailable, 503, "unavailable"),
            (
                ApiError::Busy {
                    retry_after_seconds: 5,
                },
                503,
                "busy",
            ),
            (
                ApiError::StorageUnavailable {
                    outcome_unknown: false,
                },
                503,
                "storage_unavailable",
            ),
            (ApiError::Internal, 500, "internal"),
        ];
        for (error, status, code) in cases {
            let body = error.body();
            assert_eq!(body["error"]["code"], code, "{error:?}");
            assert!(body["error"]["message"].is_string(), "{error:?}");
            assert_eq!(error.into_response().status().as_u16(), status, "{code}");
        }
    }

    #[test]
    fn validation_errors_list_every_field() {
        let mut errors = FieldErrors::default();
        errors.add("name", "is required");
        errors.add("subdomain", "must be a string");
        assert_eq!(
            ApiError::Validation(errors).body(),
            json!({"error": {
                "code": "validation_error",
                "message": "some fields are invalid; see error.fields",
                "fields": {"name": "is required", "subdomain": "must be a string"},
            }})
        );
    }

    #[test]
    fn a_conflict_on_a_field_names_it() {
        let error = ApiError::Conflict {
            field: Some("subdomain"),
            message: "this subdomain is taken".into(),
        };
        assert_eq!(
            error.body(),
            json!({"error": {
                "code": "conflict",
                "message": "this subdomain is taken",
                "fields": {"subdomain": "this subdomain is taken"},
            }})
        );
    }

    #[test]
    fn headers_tell_the_client_how_to_go_on() {
        let limited = ApiError::RateLimited {
            retry_after_seconds: 0,
        }
        .into_response();
        assert_eq!(limited.headers()[header::RETRY_AFTER], "1", "at least 1 s");
        let unauthenticated = ApiError::from(AuthError::Missing).into_response();
        assert_eq!(
            unauthenticated.headers()[header::WWW_AUTHENTICATE],
            "Bearer"
        );
        let forbidden = ApiError::Forbidden("no").into_response();
        assert!(forbidden.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn store_errors_map_to_what_the_client_can_do() {
        let not_found = ApiError::from(StoreError::NotFound("business"));
        assert_eq!(
            not_found.body()["error"]["message"],
            "business not found",
            "names the thing"
        );
        assert!(matches!(
            ApiError::from(StoreError::Closed),
            ApiError::Unavailable
        ));
        assert!(matches!(
            ApiError::from(StoreError::Locked),
            ApiError::Internal
        ));
        let internal = ApiError::from(StoreError::Unavailable(sled::Error::ReportableBug(
            "secret detail".into(),
        )));
        assert_eq!(
            internal.body()["error"]["message"],
            "internal error",
            "causes stay in the log"
        );
    }

    #[test]
    fn a_store_that_cannot_be_written_says_whether_the_change_may_stand() {
        // API.md "Storage faults": 503 storage_unavailable, "unknown" only after the apply.
        let disk = || std::sync::Arc::new(sled::Error::Io(std::io::Error::other("ENOSPC")));
        let unknown = ApiError::from(StoreError::Flush(disk()));
        let refused = ApiError::from(StoreError::NotWritable("flush failed".into()));
        for (error, says_unknown) in [(unknown, true), (refused, false)] {
            let body = error.body();
            assert_eq!(body["error"]["code"], "storage_unavailable");
            let message = body["error"]["message"].as_str().unwrap().to_string();
            assert_eq!(message.contains("unknown"), says_unknown, "{message}");
            assert_eq!(error.into_response().status().as_u16(), 503);
        }
    }
}
