//! A push service stand-in on loopback, and a browser's side of Web Push, for the tests.
//!
//! [`PushService`] is a tiny HTTP/1.1 server: it records each POST (path, headers, body)
//! and answers with the status set for its path (201 by default), or refuses connections
//! while [`PushService::down`]. [`Browser`] makes a real P-256 key pair and auth secret, as
//! a browser does for `PushManager.subscribe()`, and decrypts what it receives (RFC 8291),
//! independently of the server's code. [`check_vapid`] verifies the `Authorization` header
//! (RFC 8292) with `jsonwebtoken`, another implementation than the server's.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct ReceivedPush {
    pub path: String,
    /// Lower-cased names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    received: Vec<ReceivedPush>,
    statuses: HashMap<String, u16>,
}

/// The push service stand-in.
pub struct PushService {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PushService {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut service = Self {
            addr,
            inner: Arc::default(),
            task: None,
        };
        service.serve(listener);
        service
    }

    fn serve(&mut self, listener: TcpListener) {
        let inner = self.inner.clone();
        self.task = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, inner.clone()));
            }
        }));
    }

    /// `http://127.0.0.1:PORT/push/{name}`: an endpoint of this service.
    pub fn endpoint(&self, name: &str) -> String {
        format!("http://{}/push/{name}", self.addr)
    }

    /// `http://127.0.0.1:PORT`: the audience a VAPID JWT must name.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `status` to every push to endpoint `name` from now on.
    pub fn answer_with(&self, name: &str, status: u16) {
        let mut inner = self.inner.lock().unwrap();
        inner.statuses.insert(format!("/push/{name}"), status);
    }

    /// Every push received so far to endpoint `name`.
    pub fn received(&self, name: &str) -> Vec<ReceivedPush> {
        let path = format!("/push/{name}");
        let inner = self.inner.lock().unwrap();
        inner
            .received
            .iter()
            .filter(|push| push.path == path)
            .cloned()
            .collect()
    }

    /// Stops listening: connections are refused until [`PushService::up`].
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind");
        self.serve(listener);
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Reads one request (head, then `Content-Length` bytes), records it, answers, closes.
async fn answer(mut stream: TcpStream, inner: Arc<Mutex<Inner>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("")
        .to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buffer[head_end..head_end + length].to_vec();
    let status = {
        let mut inner = inner.lock().unwrap();
        let status = inner.statuses.get(&path).copied().unwrap_or(201);
        inner.received.push(ReceivedPush {
            path,
            headers,
            body,
        });
        status
    };
    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A browser's push subscription keys.
pub struct Browser {
    secret: SecretKey,
    auth: [u8; 16],
}

impl Browser {
    /// A new key pair and auth secret.
    pub fn new() -> Self {
        let secret = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(key) = SecretKey::from_slice(&bytes) {
                break key;
            }
        };
        Self {
            secret,
            auth: rand::random(),
        }
    }

    /// The `PushSubscription` JSON a browser posts for `endpoint`.
    pub fn subscription(&self, endpoint: &str) -> Value {
        let public = self.secret.public_key().to_encoded_point(false);
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(public.as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(self.auth),
            }
        })
    }

    /// Decrypts an `aes128gcm` body (RFC 8291) into the event frame it carries.
    pub fn decrypt(&self, body: &[u8]) -> Value {
        assert!(body.len() > 86, "body too short: {} bytes", body.len());
        let (salt, rest) = body.split_at(16);
        let record_size = u32::from_be_bytes(rest[..4].try_into().unwrap());
        assert_eq!(record_size, 4096);
        let id_len = rest[4] as usize;
        assert_eq!(id_len, 65, "the key id is the sender's public key");
        let as_public = &rest[5..5 + id_len];
        let sealed = &rest[5 + id_len..];
        let sender = PublicKey::from_sec1_bytes(as_public).expect("sender key");
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), sender.as_affine());
        let ua_public = self.secret.public_key().to_encoded_point(false);
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(ua_public.as_bytes());
        info.extend_from_slice(as_public);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.auth), shared.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .unwrap();
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .unwrap();
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .unwrap();
        let mut plain = Aes128Gcm::new_from_slice(&cek)
            .unwrap()
            .decrypt(Nonce::from_slice(&nonce), sealed)
            .expect("the body decrypts with the subscription's keys");
        while plain.last() == Some(&0) {
            plain.pop();
        }
        assert_eq!(plain.pop(), Some(2), "one record, the last: delimiter 0x02");
        serde_json::from_slice(&plain).expect("the payload is a JSON event frame")
    }
}

/// Checks a push's VAPID `Authorization` header against the server's public key: the JWT is
/// ES256-signed by that key, for `audience`, from `subject`, expiring within 24 hours.
pub fn check_vapid(push: &ReceivedPush, public_key: &str, audience: &str, subject: &str) {
    let header = push.headers.get("authorization").expect("Authorization");
    let (token, key) = header
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .unwrap_or_else(|| panic!("not a vapid header: {header}"));
    assert_eq!(key, public_key, "k= is the key of GET /api/push/key");
    let point = URL_SAFE_NO_PAD.decode(public_key).unwrap();
    let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
    let key = jsonwebtoken::DecodingKey::from_ec_components(&x, &y).expect("EC key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("a valid ES256 JWT")
        .claims;
    assert_eq!(claims["sub"], subject);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(
        exp > now && exp <= now + 24 * 3600,
        "exp {exp} within 24 h of {now}"
    );
}
