//! `ApiError`: the only error type that knows HTTP. It renders every failure as
//! `{"error": {"code", "message", "fields"?}}` with the status of API.md's table, and
//! [`recover`] renders warp's own rejections (404, 405, 413, …) in the same shape.

use crate::auth::AuthError;
use crate::domain::validate::FieldErrors;
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
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Value {
        let (_, code) = self.status_and_code();
        let mut error = Map::new();
        error.insert("code".into(), json!(code));
        let message = match self {
            ApiError::Validation(_) => "some fields are invalid; see error.fields".to_string(),
            ApiError::Conflict {
                field: Some(field),
                message,
            } => {
                error.insert("fields".into(), json!({ *field: message }));
                message.clone()
            }
            other => other.to_string(),
        };
        error.insert("message".into(), json!(message));
        if let ApiError::Validation(fields) = self {
            let fields: Map<String, Value> = fields
                .0
                .iter()
                .map(|(field, message)| ((*field).to_string(), json!(message)))
                .collect();
            error.insert("fields".into(), Value::Object(fields));
        }
        json!({ "error": error })
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
        let mut response =
            warp::reply::with_status(warp::reply::json(&self.body()), status).into_response();
        if let ApiError::RateLimited {
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
            StoreError::Flush(_) => ApiError::Unavailable,
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::Internal
            }
        }
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
