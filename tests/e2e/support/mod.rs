//! Test plumbing: a running server, an HTTP client, WebSocket helpers. Helpers hide
//! plumbing, not behaviour.

#![allow(dead_code)]

pub mod cluster;
pub mod nats;
pub mod push;
pub mod server;
pub mod smtp;
pub mod ws;

#[allow(unused_imports)]
pub use server::{run_app, AppRun, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD};
pub use ws::{RawFrame, SilentPeer, Ws, WsEvent};

use serde_json::{json, Value};
use std::time::Duration;

/// A value from the server's `/metrics` at `base`; a metric that is missing fails the test.
pub async fn metric(base: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{text}"))
}

/// A deadline for anything that should happen "soon" on a busy 2-core machine.
pub const SOON: Duration = Duration::from_secs(10);

/// A status and a JSON body (or `Value::Null` when the body is empty or not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// `error.code` of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A thin JSON client bound to one server and, optionally, one token.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// A client for `base` (e.g. `http://127.0.0.1:1234`) with no token.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_string(),
            token: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
        }
    }

    /// The same client carrying `token`.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request.send().await.expect("request sent")).await
    }

    /// Reassigns `business` to `owner` (PATCH `owner_email`), asserting the 200; returns the
    /// business as answered.
    pub async fn reassign(&self, business: &str, owner: &str) -> Value {
        let answer = self
            .call(
                "PATCH",
                &format!("/api/businesses/{business}/"),
                Some(serde_json::json!({ "owner_email": owner })),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body
    }

    /// Sends raw bytes with an explicit content type (for malformed-body tests).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        Self::answer(request.send().await.expect("request sent")).await
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(body)).await
    }

    /// Logs in; panics unless it works.
    pub async fn login(&self, email: &str, password: &str) -> Api {
        let answer = self
            .post(
                "/api/auth/token/",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(
            answer.status, 200,
            "login of {email} failed: {:?}",
            answer.body
        );
        self.with_token(answer.body["access"].as_str().expect("access token"))
    }

    /// Creates a business (as a super admin); panics unless 201.
    pub async fn create_business(&self, name: &str, subdomain: &str, owner_email: &str) -> Value {
        let answer = self
            .post(
                "/api/businesses/",
                json!({"name": name, "subdomain": subdomain, "owner_email": owner_email}),
            )
            .await;
        assert_eq!(answer.status, 201, "create business: {:?}", answer.body);
        answer.body
    }

    /// Creates a user (as a super admin) and logs in as them.
    pub async fn create_user_and_login(&self, email: &str, role: &str) -> Api {
        let password = "owner-password-1";
        let answer = self
            .post(
                "/api/users/",
                json!({"email": email, "password": password, "role": role}),
            )
            .await;
        assert_eq!(answer.status, 201, "create user: {:?}", answer.body);
        Api::new(&self.base).login(email, password).await
    }

    /// Books a reservation at a business (public endpoint); panics unless 201.
    pub async fn book(&self, business_id: &str, customer: &str) -> Value {
        let answer = self
            .post(
                &format!("/api/businesses/{business_id}/reservations/"),
                json!({
                    "customer_name": customer,
                    "customer_email": format!("{}@example.com", customer.to_lowercase().replace(' ', ".")),
                    "starts_at": "2031-06-01T10:00:00Z",
                    "service": "Haircut",
                }),
            )
            .await;
        assert_eq!(answer.status, 201, "book: {:?}", answer.body);
        answer.body
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after [`SOON`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(what, SOON, check).await
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` after `within`.
pub async fn eventually_within<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Api {
    /// Like [`Api::call`] with a JSON body, but `None` when the server is unreachable (for
    /// crash tests, where requests in flight fail).
    pub async fn call_fallible(&self, method: &str, path: &str, body: Value) -> Option<Answer> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.ok()?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Some(Answer {
            status,
            body,
            headers,
        })
    }
}

/// The access token of a logged-in client.
pub fn token(api: &Api) -> String {
    api.token.clone().expect("logged in")
}

/// An event frame's id.
pub fn id_of(event: &Value) -> u64 {
    event["id"].as_u64().expect("event id")
}

/// The business an event frame is about.
pub fn business_of(event: &Value) -> String {
    let payload = &event["payload"];
    payload["business"]["id"]
        .as_str()
        .or_else(|| payload["business_id"].as_str())
        .expect("every event names its business")
        .to_string()
}
