//! The server's VAPID key pair (RFC 8292): made on first run and kept in `<data>/vapid.key`
//! (mode 0600, the private scalar in base64url), written atomically like `secret.key` so a
//! crash leaves no key or a whole one. Browsers subscribe against its public half; a new key
//! would orphan every subscription, which is why `app backup` carries it.

use super::crypto;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::SecretKey;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the key file inside the data folder.
pub const VAPID_FILE: &str = "vapid.key";

/// Why the key cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    #[error("cannot read or write the VAPID key at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the VAPID key at {0} is not a base64url P-256 private key")]
    Malformed(PathBuf),
}

/// The key pair, with its public half encoded once.
#[derive(Clone)]
pub struct VapidKey {
    secret: SecretKey,
    /// The uncompressed public point, base64url: `GET /api/push/key` and the `k=` parameter.
    public: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VapidKey({})", self.public)
    }
}

impl VapidKey {
    fn new(secret: SecretKey) -> Self {
        let public = URL_SAFE_NO_PAD.encode(crypto::point_bytes(&secret.public_key()));
        Self { secret, public }
    }

    /// The private key, for signing.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key, base64url of the uncompressed point.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The file's text: what `app backup` copies.
    pub fn to_text(&self) -> String {
        format!("{}\n", URL_SAFE_NO_PAD.encode(self.secret.to_bytes()))
    }

    /// Parses a file's text.
    pub fn from_text(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        crypto::parse_private(&bytes).ok().map(Self::new)
    }
}

/// The key in `data_dir`, made (atomically, 0600) when there is none.
///
/// # Errors
/// `Io` when the file cannot be read or written; `Malformed` when it holds no key.
pub fn load_or_create(data_dir: &Path) -> Result<VapidKey, VapidError> {
    let path = data_dir.join(VAPID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => VapidKey::from_text(&text).ok_or(VapidError::Malformed(path)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = VapidKey::new(crypto::generate_key());
            match write_new(data_dir, &path, &key.to_text()) {
                Ok(()) => Ok(key),
                // Another process made one meanwhile: its key wins.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create(data_dir)
                }
                Err(source) => Err(VapidError::Io { path, source }),
            }
        }
        Err(source) => Err(VapidError::Io { path, source }),
    }
}

/// Writes `text` as a new private file at `path`: a temporary file, synced, linked into
/// place (failing with `AlreadyExists` if one is there), then the folder synced.
///
/// # Errors
/// The I/O error.
pub fn write_new(data_dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = data_dir.join(format!(".{VAPID_FILE}.{:016x}", rand::random::<u64>()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&temporary, path)
    })();
    let _ = std::fs::remove_file(&temporary);
    written?;
    std::fs::File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let second = load_or_create(dir.path()).unwrap();
        assert_eq!(first.public(), second.public());
        assert_eq!(URL_SAFE_NO_PAD.decode(first.public()).unwrap().len(), 65);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(VAPID_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(VAPID_FILE), "not a key").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(VapidError::Malformed(_))
        ));
    }
}
