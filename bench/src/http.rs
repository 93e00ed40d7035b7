//! A minimal HTTP/1.1 keep-alive client for load generation, plus the two calls the benchmark
//! makes (log in, create a business).
//!
//! A general client (reqwest + hyper) costs the load generator tens of microseconds of CPU per
//! request on the two cores it shares with the server; this one writes one preformatted request
//! and parses one response head per call on a persistent connection, which keeps the client's
//! share of the CPU small at ≥ 10 000 requests per second. It understands exactly what the
//! server answers: `Content-Length` or chunked bodies, and `Connection: close`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::ws::find;

/// Upper bound for one request-response exchange; the benchmark never waits longer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A response head larger than this is refused.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A response body larger than this is refused.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// One response: status and body bytes.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One persistent HTTP/1.1 connection to the server.
pub struct HttpConn {
    server: SocketAddr,
    stream: Option<TcpStream>,
    /// Bytes read past the end of the previous response (none with a well-behaved server).
    buf: Vec<u8>,
}

impl HttpConn {
    /// A connection to `server`, opened on first use and reopened after the server closes it.
    pub fn new(server: SocketAddr) -> Self {
        Self {
            server,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends one request and reads its response, within [`REQUEST_TIMEOUT`].
    ///
    /// # Errors
    /// Socket errors, a timeout, or a response this client cannot parse. After an error the
    /// connection is dropped and the next call opens a new one.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        json_body: Option<&[u8]>,
    ) -> anyhow::Result<Response> {
        let result = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.exchange(method, path, bearer, json_body),
        )
        .await
        .map_err(|_| anyhow!("{method} {path}: no response within {REQUEST_TIMEOUT:?}"))
        .and_then(|r| r);
        if result.is_err() {
            self.stream = None;
            self.buf.clear();
        }
        result
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        json_body: Option<&[u8]>,
    ) -> anyhow::Result<Response> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.server).await.context("connect")?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        let stream = self.stream.as_mut().expect("opened above");
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.server);
        if let Some(token) = bearer {
            request.push_str("Authorization: Bearer ");
            request.push_str(token);
            request.push_str("\r\n");
        }
        let body = json_body.unwrap_or_default();
        if json_body.is_some() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await?;

        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                bail!("response head too large");
            }
            read_more(stream, &mut self.buf).await?;
        };
        let head = parse_head(&self.buf[..head_end])?;
        self.buf.drain(..head_end + 4);
        let body = if head.chunked {
            loop {
                if let Some((body, used)) = decode_chunked(&self.buf)? {
                    self.buf.drain(..used);
                    break body;
                }
                read_more(stream, &mut self.buf).await?;
            }
        } else {
            let len = head.content_length.unwrap_or(0);
            if len > MAX_BODY_BYTES {
                bail!("response body too large");
            }
            while self.buf.len() < len {
                read_more(stream, &mut self.buf).await?;
            }
            self.buf.drain(..len).collect()
        };
        if head.close {
            self.stream = None;
        }
        Ok(Response {
            status: head.status,
            body,
        })
    }
}

/// Appends whatever the socket has to `buf`.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    loop {
        stream.readable().await?;
        let mut chunk = [0u8; 8192];
        match stream.try_read(&mut chunk) {
            Ok(0) => bail!("server closed the connection mid-response"),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What the response head says about the body.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
}

fn parse_head(head: &[u8]) -> anyhow::Result<Head> {
    let text = std::str::from_utf8(head).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut parsed = Head {
        status,
        content_length: None,
        chunked: false,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = Some(value.parse().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            parsed.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(parsed)
}

/// Decodes a complete chunked body from the front of `buf`: the body and the bytes used, or
/// `None` if it has not fully arrived.
fn decode_chunked(buf: &[u8]) -> anyhow::Result<Option<(Vec<u8>, usize)>> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_end) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&buf[at..at + line_end])?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        at += line_end + 2;
        if size == 0 {
            // No trailers are expected: the body ends with an empty line.
            return Ok((buf.len() >= at + 2).then(|| (body, at + 2)));
        }
        if body.len() + size > MAX_BODY_BYTES {
            bail!("response body too large");
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

/// `POST /api/auth/token/` → the access token.
///
/// # Errors
/// A refused login or an unreadable answer.
pub async fn login(server: SocketAddr, email: &str, password: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({"email": email, "password": password}).to_string();
    let mut conn = HttpConn::new(server);
    let response = conn
        .request("POST", "/api/auth/token/", None, Some(body.as_bytes()))
        .await?;
    if response.status != 200 {
        bail!(
            "login as {email} answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    let value: serde_json::Value = serde_json::from_slice(&response.body)?;
    value["access"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("login answer has no access token"))
}

/// The JSON body of `POST /api/businesses/` for a benchmark business whose subdomain carries
/// `marker` (so a frame can be traced to its request).
pub fn business_body(marker: &str) -> Vec<u8> {
    format!(
        r#"{{"name":"Bench {marker}","subdomain":"{marker}","owner_email":"bench@example.com"}}"#
    )
    .into_bytes()
}

/// `POST /api/businesses/` on `conn`.
///
/// # Errors
/// Transport errors, and any answer but 201 (with its status and the start of its body).
pub async fn create_business(conn: &mut HttpConn, token: &str, marker: &str) -> anyhow::Result<()> {
    let body = business_body(marker);
    let response = conn
        .request("POST", "/api/businesses/", Some(token), Some(&body))
        .await?;
    if response.status != 201 {
        let text = String::from_utf8_lossy(&response.body);
        bail!("create answered {}: {:.200}", response.status, text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_response_head() {
        let head = parse_head(
            b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 42\r\nConnection: close",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                status: 201,
                content_length: Some(42),
                chunked: false,
                close: true
            }
        );
    }

    #[test]
    fn decodes_chunked_bodies_only_when_complete() {
        let full = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\nNEXT";
        let (body, used) = decode_chunked(full).unwrap().unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&full[used..], b"NEXT");
        for cut in 0..used {
            assert!(decode_chunked(&full[..cut]).unwrap().is_none(), "cut {cut}");
        }
    }

    #[test]
    fn business_body_is_valid_json_with_the_marker_as_subdomain() {
        let v: serde_json::Value = serde_json::from_slice(&business_body("bnab12-7")).unwrap();
        assert_eq!(v["subdomain"], "bnab12-7");
    }

    #[tokio::test]
    async fn keeps_the_connection_alive_across_requests() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for i in 0..3 {
                let mut req = Vec::new();
                while find(&req, b"\r\n\r\n").is_none() {
                    let mut b = [0u8; 256];
                    let n = s.read(&mut b).await.unwrap();
                    req.extend_from_slice(&b[..n]);
                }
                let body = format!("{{\"n\":{i}}}");
                let resp = if i == 1 {
                    format!(
                        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                        body.len()
                    )
                } else {
                    format!(
                        "HTTP/1.1 201 Created\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        let mut conn = HttpConn::new(addr);
        for i in 0..3 {
            let r = conn.request("GET", "/x", Some("t"), None).await.unwrap();
            assert_eq!(r.body, format!("{{\"n\":{i}}}").as_bytes());
        }
        server.await.unwrap();
    }
}
