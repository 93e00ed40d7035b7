//! `app watch`: print a channel's events as JSON lines, like wscat in the seed's docs, with
//! nothing else to install. It reconnects with backoff and resumes from the last event id it
//! printed, so the output has no gaps across server restarts.

use crate::cli::WatchArgs;
use crate::ws::protocol::{
    CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_TOO_BIG, CLOSE_UNAUTHENTICATED, CLOSE_UNSUPPORTED_DATA,
};
use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Longest pause between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs until interrupted, `--count` events were printed, or the server refuses the token.
///
/// # Errors
/// Bad arguments, a failed login, or a close code that reconnecting cannot fix (4401, 4403,
/// 4404, 1003, 1009).
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let base = url::Url::parse(&args.url).with_context(|| format!("--url {}", args.url))?;
    let token = match (&args.token, &args.email, &args.password) {
        (Some(token), _, _) => token.clone(),
        (None, Some(email), Some(password)) => login(&base, email, password).await?,
        _ => bail!("give --token, or --email and --password"),
    };
    let path = match args.channel.as_str() {
        "dashboard" => "ws/dashboard/".to_string(),
        other => match other.strip_prefix("business:") {
            Some(id) if !id.is_empty() => format!("ws/business/{id}/"),
            _ => bail!("--channel must be dashboard or business:<id>"),
        },
    };
    let mut ws_url = base.join(&path)?;
    ws_url
        .set_scheme(if base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        })
        .map_err(|()| anyhow::anyhow!("cannot make a WebSocket URL from {base}"))?;

    let mut position = args.last_event_id.map(|id| (id, args.epoch.clone()));
    let mut printed = 0u64;
    let mut backoff = Duration::from_millis(250);
    loop {
        let mut url = ws_url.clone();
        url.query_pairs_mut().append_pair("token", &token);
        if let Some((id, epoch)) = &position {
            url.query_pairs_mut()
                .append_pair("last_event_id", &id.to_string());
            if let Some(epoch) = epoch {
                url.query_pairs_mut().append_pair("epoch", epoch);
            }
        }
        let outcome = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((socket, _)) => {
                backoff = Duration::from_millis(250);
                follow(socket, &args, &mut position, &mut printed).await
            }
            Err(error) => Outcome::Retry(error.to_string()),
        };
        match outcome {
            Outcome::Done => return Ok(()),
            Outcome::Fatal(why) => bail!(why),
            Outcome::Retry(why) => {
                eprintln!("watch: disconnected ({why}); reconnecting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

enum Outcome {
    Done,
    Retry(String),
    Fatal(String),
}

async fn follow(
    mut socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    args: &WatchArgs,
    position: &mut Option<(u64, Option<String>)>,
    printed: &mut u64,
) -> Outcome {
    let mut stdout = std::io::stdout();
    while let Some(frame) = socket.next().await {
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(close)) => {
                let (code, reason) = close
                    .map(|c| (u16::from(c.code), c.reason.to_string()))
                    .unwrap_or((u16::from(CloseCode::Status), String::new()));
                return match code {
                    CLOSE_UNAUTHENTICATED
                    | CLOSE_FORBIDDEN
                    | CLOSE_NOT_FOUND
                    | CLOSE_UNSUPPORTED_DATA
                    | CLOSE_TOO_BIG => {
                        Outcome::Fatal(format!("server closed the connection: {code} {reason}"))
                    }
                    _ => Outcome::Retry(format!("closed with {code} {reason}")),
                };
            }
            Ok(_) => continue,
            Err(error) => return Outcome::Retry(error.to_string()),
        };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let kind = frame.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "connection_established" | "resync_required" => {
                let payload = &frame["payload"];
                let epoch = payload["epoch"].as_str().map(str::to_string);
                let newest = payload["last_event_id"].as_u64().unwrap_or(0);
                // Keep our resume point; learn the epoch. After a resync, continue from now.
                let id = match (kind, &position) {
                    ("connection_established", Some((id, _))) => *id,
                    _ => newest,
                };
                *position = Some((id, epoch));
            }
            _ => {}
        }
        let is_event = frame.get("id").and_then(Value::as_u64);
        if let Some(id) = is_event {
            if let Some((last, _)) = position.as_mut() {
                *last = id;
            }
        }
        let wanted = is_event.is_some() || args.all_frames;
        if wanted
            && writeln!(stdout, "{text}")
                .and_then(|()| stdout.flush())
                .is_err()
        {
            return Outcome::Done; // stdout closed (piped into head)
        }
        if is_event.is_some() {
            *printed += 1;
            if args.count.is_some_and(|count| *printed >= count) {
                let _ = socket
                    .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                        code: CloseCode::Normal,
                        reason: "done".into(),
                    }))
                    .await;
                return Outcome::Done;
            }
        }
        if kind == "ping" {
            let _ = socket.send(Message::text(r#"{"type":"pong"}"#)).await;
        }
    }
    Outcome::Retry("connection lost".into())
}

/// The body of `POST /api/auth/token/`.
#[derive(Serialize)]
struct LoginBody<'a> {
    email: &'a str,
    password: &'a str,
}

async fn login(base: &url::Url, email: &str, password: &str) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .post(base.join("api/auth/token/")?)
        .json(&LoginBody { email, password })
        .send()
        .await
        .context("logging in")?;
    let status = response.status();
    let body: Value = response.json().await.context("reading the login answer")?;
    if !status.is_success() {
        bail!("login failed ({status}): {}", body["error"]["message"]);
    }
    body["access"]
        .as_str()
        .map(str::to_string)
        .context("the login answer has no access token")
}
