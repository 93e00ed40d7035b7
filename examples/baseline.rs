//! The plain baseline of issue 16: the fan-out server a competent Rust developer writes in an
//! afternoon, kept here so anyone can rerun the comparison (`scripts/bench.sh` builds and runs
//! it beside `app serve`). It speaks only the subset of `API.md` the load generator
//! (`app-bench`) uses — `POST /api/auth/token/`, `POST /api/businesses/`, `/ws/dashboard/` with
//! `connection_established`, `business_created` event frames and `ping` → `pong` — and does
//! none of what makes `app serve` a product: nothing is durable, tokens are not checked, there
//! is no resume, no outbox, no rate limit.
//!
//! Its shape is the textbook one: hyper for HTTP, tokio-tungstenite for the upgraded socket, a
//! `tokio::sync::broadcast` channel for events, one task per socket selecting between the
//! channel and the socket, and one `send` (which flushes) per frame.
//!
//! ```sh
//! cargo run --release --example baseline -- --addr 127.0.0.1:0
//! ```
//!
//! It prints `app listening on http://ADDR` like `app serve`, so the same script finds it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// Events a slow socket may fall behind by before it starts losing them (broadcast's lag).
const CHANNEL_CAPACITY: usize = 4096;

/// Per-socket read buffer (pings are 20 bytes).
const READ_BUFFER: usize = 4096;

/// The largest request body read (the load generator's are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

/// What every connection shares.
struct Shared {
    events: broadcast::Sender<Utf8Bytes>,
    /// The last event id; held while sending so ids reach the channel in order.
    last_id: Mutex<u64>,
    admin_email: String,
    admin_password: String,
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct NewBusiness {
    name: String,
    subdomain: String,
    owner_email: String,
}

#[derive(Serialize)]
struct Business<'a> {
    id: uuid::Uuid,
    name: &'a str,
    subdomain: &'a str,
    owner_email: &'a str,
    created_at: &'a str,
    updated_at: &'a str,
}

#[derive(Serialize)]
struct EventFrame<'a> {
    id: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    payload: EventPayload<'a>,
    timestamp: &'a str,
}

#[derive(Serialize)]
struct EventPayload<'a> {
    business: &'a Business<'a>,
    message: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:8000".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value.parse()?,
            _ => anyhow::bail!("usage: baseline [--addr IP:PORT]"),
        }
    }
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let shared = Arc::new(Shared {
        events: broadcast::channel(CHANNEL_CAPACITY).0,
        last_id: Mutex::new(0),
        admin_email: env("APP_ADMIN_EMAIL", "admin@example.com"),
        admin_password: env("APP_ADMIN_PASSWORD", "secret-pass-1"),
    });
    let listener = TcpListener::bind(addr).await?;
    println!("app listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of files for a moment: the next accept may succeed.
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<String>, Infallible> {
    let path = req.uri().path();
    Ok(match (req.method(), path) {
        (&Method::GET, "/ws/dashboard/") => upgrade(shared, req),
        // The load generator warms its keep-alive connections with this.
        (&Method::GET, "/healthz") => json(StatusCode::OK, r#"{"status":"ok"}"#.into()),
        (&Method::POST, "/api/auth/token/") => match body_json::<Login>(req).await {
            Some(login)
                if login.email == shared.admin_email && login.password == shared.admin_password =>
            {
                let token = uuid::Uuid::new_v4().to_string();
                json(
                    StatusCode::OK,
                    serde_json::json!({"access": token, "refresh": token}).to_string(),
                )
            }
            _ => json(StatusCode::UNAUTHORIZED, r#"{"error":"bad login"}"#.into()),
        },
        (&Method::POST, "/api/businesses/") => match body_json::<NewBusiness>(req).await {
            Some(new) => create(&shared, &new),
            None => json(StatusCode::BAD_REQUEST, r#"{"error":"bad body"}"#.into()),
        },
        _ => json(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.into()),
    })
}

/// Answers 201 with the business and broadcasts its `business_created` event.
fn create(shared: &Shared, new: &NewBusiness) -> Response<String> {
    let now = now();
    let business = Business {
        id: uuid::Uuid::new_v4(),
        name: &new.name,
        subdomain: &new.subdomain,
        owner_email: &new.owner_email,
        created_at: &now,
        updated_at: &now,
    };
    let body = serde_json::to_string(&business).unwrap_or_default();
    {
        let mut last_id = shared.last_id.lock().unwrap_or_else(|e| e.into_inner());
        *last_id += 1;
        let frame = EventFrame {
            id: *last_id,
            kind: "business_created",
            payload: EventPayload {
                business: &business,
                message: format!("New business '{}' created", new.name),
            },
            timestamp: &now,
        };
        if let Ok(text) = serde_json::to_string(&frame) {
            // No receivers is fine: nobody is watching.
            let _ = shared.events.send(text.into());
        }
    }
    json(StatusCode::CREATED, body)
}

/// Accepts the WebSocket upgrade and runs the socket on its own task.
fn upgrade(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<String> {
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"error":"not a websocket"}"#.into(),
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    // Subscribe before answering, so no event after the 101 is missed.
    let events = shared.events.subscribe();
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(&mut req).await {
            // tungstenite's default 128 KiB read buffer is zeroed on read attempts, and
            // `select!` re-polls the read half after every event: 4 KiB is what anyone sets
            // after one profile (app serve uses 1 KiB, vendor/README.md).
            let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            session(ws, events).await;
        }
    });
    let mut response = Response::new(String::new());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

/// One socket: greet it, then forward every event and answer pings until either side ends.
///
/// The socket is not `split()`: the `select!` below only reads, and the arms write after it
/// has dropped its futures, so one owner suffices and no `BiLock` is taken on every poll.
async fn session<S>(mut ws: WebSocketStream<S>, mut events: broadcast::Receiver<Utf8Bytes>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let hello = format!(
        r#"{{"payload":{{"channel":"dashboard","epoch":"baseline","last_event_id":0}},"timestamp":"{}","type":"connection_established"}}"#,
        now()
    );
    if ws.send(Message::text(hello)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(frame) => {
                    if ws.send(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                // A socket this far behind loses events; the plain baseline does not resume.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) if text.contains(r#""ping""#) => {
                    let pong = format!(
                        r#"{{"payload":{{}},"timestamp":"{}","type":"pong"}}"#,
                        now()
                    );
                    if ws.send(Message::text(pong)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The JSON body of `req`, if it is one of `T`.
async fn body_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Option<T> {
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(data) = frame.ok()?.into_data() {
            bytes.extend_from_slice(&data);
        }
        if bytes.len() > MAX_BODY {
            return None;
        }
    }
    serde_json::from_slice(&bytes).ok()
}

fn json(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Now as RFC 3339, like the server's timestamps.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
