//! Online backups: `GET /api/backup/` on the running server, and the client `app backup`
//! uses when the data folder is locked by that server.
//!
//! The route takes no user token. It takes a *backup token*: an HS256 JWT signed with the
//! data folder's secret, with the claim `purpose: "backup"`, no subject, and a lifetime of a
//! minute. Whoever can read the secret can read the whole store anyway; no user, however
//! privileged, can mint one. A user token lacks `purpose` and is refused here (401), and a
//! backup token lacks `sub` and is refused everywhere else.

use super::export::export;
use super::format::{self, FormatError};
use super::BackupError;
use crate::api::error::{respond, ApiError};
use crate::api::filters::{bearer, with_state};
use crate::auth::{AuthError, Secret};
use crate::domain::Timestamp;
use crate::state::AppState;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

/// The `purpose` claim of a backup token.
const PURPOSE: &str = "backup";
/// How long a backup token lives, in seconds: long enough for one request.
const TOKEN_TTL_SECONDS: i64 = 60;
/// Bytes read from the snapshot file per body chunk.
const CHUNK_BYTES: usize = 256 * 1024;

/// The claims of a backup token.
#[derive(Debug, Serialize, Deserialize)]
struct BackupClaims {
    purpose: String,
    iat: i64,
    exp: i64,
}

/// Mints a backup token signed with `secret`.
pub fn issue_token(secret: &Secret) -> String {
    let iat = Timestamp::now().as_unix_seconds();
    let claims = BackupClaims {
        purpose: PURPOSE.into(),
        iat,
        exp: iat + TOKEN_TTL_SECONDS,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing of plain claims cannot fail")
}

/// Checks a backup token: HS256 only, signed with `secret`, unexpired, for backups.
fn verify_token(secret: &Secret, header: Option<&str>) -> Result<(), AuthError> {
    let token = header
        .ok_or(AuthError::Missing)?
        .strip_prefix("Bearer ")
        .ok_or(AuthError::Invalid)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iat"]);
    let data = jsonwebtoken::decode::<BackupClaims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|_| AuthError::Invalid)?;
    if data.claims.purpose != PURPOSE {
        return Err(AuthError::Invalid);
    }
    if data.claims.exp <= Timestamp::now().as_unix_seconds() {
        return Err(AuthError::Expired);
    }
    Ok(())
}

/// `GET /api/backup/`.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "backup")
        .and(warp::path::end())
        .and(warp::get())
        .and(bearer())
        .and(with_state(state))
        .then(backup)
        .map(respond)
        .boxed()
}

/// GET /api/backup/ — the whole store as one backup file, as of one event id.
async fn backup(header: Option<String>, state: AppState) -> Result<Response, ApiError> {
    verify_token(&state.config.secret, header.as_deref())?;
    let data = state.config.data_dir.clone();
    let temp = data.join(format!("backup-{}.partial", uuid::Uuid::new_v4().simple()));
    let snapshot = {
        let (data, temp) = (data.clone(), temp.clone());
        // On the writer thread, between batches: every tree the writer changes is as of one
        // event id. It writes to a local file, fast, so writers wait for the disk and not
        // for the network; the download streams from the file afterwards.
        state
            .writer
            .exclusive(move |store| -> Result<_, BackupError> {
                let file = std::fs::File::create(&temp)?;
                let (out, header) = export(store, &data, BufWriter::new(file))?;
                out.into_inner().map_err(|error| error.into_error())?;
                Ok(header)
            })
    };
    let result = snapshot.await;
    let header = match result {
        Ok(Ok(header)) => header,
        Ok(Err(error)) => {
            let _ = std::fs::remove_file(&temp);
            tracing::error!(%error, "backup failed");
            return Err(ApiError::Internal);
        }
        Err(_) => {
            let _ = std::fs::remove_file(&temp);
            return Err(ApiError::Unavailable);
        }
    };
    let file = tokio::fs::File::open(&temp).await;
    // Unlinked at once: the open handle keeps the bytes until the download ends, and a
    // dropped connection or a crash leaves nothing behind.
    let _ = std::fs::remove_file(&temp);
    let file = file.map_err(|error| {
        tracing::error!(%error, "reading the backup snapshot failed");
        ApiError::Internal
    })?;
    tracing::info!(event_id = header.event_id, "backup served");
    let body = futures_util::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut chunk = vec![0u8; CHUNK_BYTES];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok(bytes::Bytes::from(chunk)), Some(file)))
            }
            Err(error) => Some((Err(error), None)),
        }
    });
    let mut response = warp::reply::stream(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// Downloads a backup from the server at `addr` into `temp` (synced), authenticating with
/// `secret`.
///
/// # Errors
/// The server cannot be reached, refuses (the message says why), or the download breaks.
pub async fn download(addr: &str, secret: &Secret, temp: &Path) -> Result<(), BackupError> {
    let url = format!("http://{}/api/backup/", client_addr(addr));
    let refused = |why: String| BackupError::Refused(format!("the server at {url} {why}"));
    let client = reqwest::Client::new();
    let mut response = client
        .get(&url)
        .bearer_auth(issue_token(secret))
        .send()
        .await
        .map_err(|error| refused(format!("cannot be reached: {error}")))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(refused(format!("answered {status}: {body}")));
    }
    let mut out = BufWriter::new(std::fs::File::create(temp)?);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| refused(format!("broke off the download: {error}")))?
    {
        out.write_all(&chunk)?;
    }
    let file = out.into_inner().map_err(|error| error.into_error())?;
    file.sync_all()?;
    Ok(())
}

/// Where to connect for a listening address: an unspecified host (`0.0.0.0`, `[::]`)
/// means this machine.
fn client_addr(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(socket) if socket.ip().is_unspecified() => {
            let loopback: std::net::IpAddr = if socket.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            std::net::SocketAddr::new(loopback, socket.port()).to_string()
        }
        _ => addr.to_string(),
    }
}

/// A temp file next to `target` (same folder, so the final rename is atomic).
pub fn temp_beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    target.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}

/// Checks a whole backup file (format, version, every record, checksum).
///
/// # Errors
/// What is wrong with it.
pub fn verify_file(path: &Path) -> Result<(format::Header, u64), BackupError> {
    let file = std::fs::File::open(path)?;
    let mut records = 0u64;
    let header = format::read(std::io::BufReader::new(file), |_| {
        records += 1;
        Ok::<(), FormatError>(())
    })?;
    Ok((header, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unexpired_backup_token_signed_with_the_secret_passes() {
        let secret = Secret::new(vec![7; 32]);
        let token = issue_token(&secret);
        assert_eq!(
            verify_token(&secret, Some(&format!("Bearer {token}"))),
            Ok(())
        );
        let other = Secret::new(vec![8; 32]);
        assert_eq!(
            verify_token(&other, Some(&format!("Bearer {token}"))),
            Err(AuthError::Invalid)
        );
        assert_eq!(verify_token(&secret, None), Err(AuthError::Missing));
        assert_eq!(verify_token(&secret, Some(&token)), Err(AuthError::Invalid));
    }

    #[test]
    fn a_user_token_is_not_a_backup_token() {
        let secret = Secret::new(vec![7; 32]);
        let keys = crate::auth::JwtKeys::new(&secret, 60);
        let user = crate::domain::User {
            id: uuid::Uuid::new_v4(),
            email: "admin@example.com".into(),
            role: crate::domain::Role::SuperAdmin,
            password_hash: String::new(),
            created_at: Timestamp::now(),
        };
        let (token, _) = keys.issue(&user, 0);
        assert_eq!(
            verify_token(&secret, Some(&format!("Bearer {token}"))),
            Err(AuthError::Invalid)
        );
        // And the other way round: a backup token authenticates no user.
        assert!(keys.verify(&issue_token(&secret)).is_err());
    }

    #[test]
    fn an_unspecified_listening_address_is_reached_on_loopback() {
        assert_eq!(client_addr("0.0.0.0:8000"), "127.0.0.1:8000");
        assert_eq!(client_addr("[::]:80"), "[::1]:80");
        assert_eq!(client_addr("127.0.0.1:9"), "127.0.0.1:9");
    }
}
