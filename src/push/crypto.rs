//! The cryptography of Web Push, pure functions only: RFC 8291 message encryption
//! (`aes128gcm`, one record) and RFC 8292 VAPID (an ES256 JWT signed by the server's key).
//!
//! Built on the RustCrypto crates (`p256` for ECDH and ECDSA, `hkdf`, `aes-gcm`, `sha2`)
//! rather than the `web-push` crate, which brings OpenSSL or curl into a binary that is
//! otherwise rustls only. The tests hold [`encrypt_with`] to the RFC 8291 appendix A vector.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// Length of an uncompressed P-256 point (`0x04 || x || y`).
pub const POINT_BYTES: usize = 65;
/// Length of a subscription's authentication secret (RFC 8291 section 3.2).
pub const AUTH_SECRET_BYTES: usize = 16;
/// The record size written in the header. One record carries the whole message, so it only
/// has to exceed the message; 4096 is what push services accept at most.
const RECORD_SIZE: u32 = 4096;
/// Header: salt (16) + record size (4) + key id length (1) + the sender's key (65).
const HEADER_BYTES: usize = 16 + 4 + 1 + POINT_BYTES;
/// The largest plaintext that fits the 4096-byte message push services accept: the header,
/// the padding delimiter and the 16-byte GCM tag come off.
pub const MAX_PLAINTEXT_BYTES: usize = RECORD_SIZE as usize - HEADER_BYTES - 1 - 16;

/// Why a key or a message cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("not an uncompressed P-256 point")]
    BadPoint,
    #[error("not a P-256 private key")]
    BadPrivateKey,
    #[error("the authentication secret must be {AUTH_SECRET_BYTES} bytes")]
    BadAuthSecret,
    #[error("the payload exceeds {MAX_PLAINTEXT_BYTES} bytes")]
    TooLarge,
}

/// Parses an uncompressed P-256 point, refusing compressed forms, the identity and points
/// off the curve (a browser's `p256dh` is always uncompressed).
///
/// # Errors
/// `BadPoint`.
pub fn parse_point(bytes: &[u8]) -> Result<PublicKey, CryptoError> {
    if bytes.len() != POINT_BYTES || bytes[0] != 0x04 {
        return Err(CryptoError::BadPoint);
    }
    PublicKey::from_sec1_bytes(bytes).map_err(|_| CryptoError::BadPoint)
}

/// The uncompressed encoding of `key`.
pub fn point_bytes(key: &PublicKey) -> Vec<u8> {
    key.to_encoded_point(false).as_bytes().to_vec()
}

/// A new random P-256 private key (rejection sampling over 32 random bytes, so no second
/// `rand_core` version is needed).
pub fn generate_key() -> SecretKey {
    loop {
        let bytes: [u8; 32] = rand::random();
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return key;
        }
    }
}

/// Parses a 32-byte P-256 private scalar.
///
/// # Errors
/// `BadPrivateKey`.
pub fn parse_private(bytes: &[u8]) -> Result<SecretKey, CryptoError> {
    if bytes.len() != 32 {
        return Err(CryptoError::BadPrivateKey);
    }
    SecretKey::from_slice(bytes).map_err(|_| CryptoError::BadPrivateKey)
}

/// Encrypts `plaintext` for a subscription (`ua_public`, `auth_secret`) with a fresh sender
/// key and salt: the body of the push request.
///
/// # Errors
/// `BadPoint`, `BadAuthSecret`, `TooLarge`.
pub fn encrypt(
    plaintext: &[u8],
    ua_public: &[u8],
    auth_secret: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    encrypt_with(
        plaintext,
        ua_public,
        auth_secret,
        &generate_key(),
        rand::random(),
    )
}

/// RFC 8291 section 3 with the sender's key and the salt given (the test vector fixes both).
///
/// # Errors
/// `BadPoint`, `BadAuthSecret`, `TooLarge`.
pub fn encrypt_with(
    plaintext: &[u8],
    ua_public: &[u8],
    auth_secret: &[u8],
    as_private: &SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, CryptoError> {
    if plaintext.len() > MAX_PLAINTEXT_BYTES {
        return Err(CryptoError::TooLarge);
    }
    if auth_secret.len() != AUTH_SECRET_BYTES {
        return Err(CryptoError::BadAuthSecret);
    }
    let ua_key = parse_point(ua_public)?;
    let as_public = point_bytes(&as_private.public_key());
    let shared = p256::ecdh::diffie_hellman(as_private.to_nonzero_scalar(), ua_key.as_affine());
    // PRK_key = HMAC(auth_secret, ecdh_secret); IKM = HKDF-Expand(PRK_key, key_info, 32).
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(&as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth_secret), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    let prk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .expect("16 bytes is a valid HKDF-SHA-256 output length");
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .expect("12 bytes is a valid HKDF-SHA-256 output length");
    // One record, so it is the last: the delimiter 0x02, no padding.
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(0x02);
    let cipher = Aes128Gcm::new_from_slice(&cek).expect("a 16-byte key is an AES-128 key");
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), record.as_slice())
        .expect("AES-GCM seals any message under 64 GiB");
    let mut body = Vec::with_capacity(HEADER_BYTES + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(POINT_BYTES as u8);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// The `Authorization` header of RFC 8292 for a push to `origin` (the endpoint's scheme,
/// host and port): `vapid t=<ES256 JWT>, k=<public key>`, valid until `exp` (Unix seconds).
pub fn vapid_authorization(key: &SecretKey, origin: &str, subject: &str, exp: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
    let claims = serde_json::json!({ "aud": origin, "exp": exp, "sub": subject });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let signature: Signature = SigningKey::from(key).sign(signing_input.as_bytes());
    // JWS ES256 is the fixed-size r || s form, not DER.
    let signature = URL_SAFE_NO_PAD.encode(signature.to_bytes());
    let public = URL_SAFE_NO_PAD.encode(point_bytes(&key.public_key()));
    format!("vapid t={signing_input}.{signature}, k={public}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;

    fn b64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    // RFC 8291 appendix A.
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    #[test]
    fn encryption_reproduces_the_rfc_8291_appendix_a_message_byte_for_byte() {
        let as_private = parse_private(&b64(AS_PRIVATE)).unwrap();
        assert_eq!(point_bytes(&as_private.public_key()), b64(AS_PUBLIC));
        let salt: [u8; 16] = b64(SALT).try_into().unwrap();
        let body = encrypt_with(
            b"When I grow up, I want to be a watermelon",
            &b64(UA_PUBLIC),
            &b64(AUTH),
            &as_private,
            salt,
        )
        .unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(body), BODY);
    }

    #[test]
    fn subscription_keys_are_checked() {
        let ua = b64(UA_PUBLIC);
        let mut compressed = ua[..33].to_vec();
        compressed[0] = 0x02;
        let mut off_curve = ua.clone();
        off_curve[64] ^= 1;
        for (what, point) in [
            ("compressed", compressed),
            ("off the curve", off_curve),
            ("identity", vec![0u8]),
            ("empty", vec![]),
        ] {
            assert_eq!(parse_point(&point), Err(CryptoError::BadPoint), "{what}");
        }
        assert_eq!(
            encrypt(b"x", &ua, &[0u8; 15]),
            Err(CryptoError::BadAuthSecret)
        );
        let too_large = vec![b'x'; MAX_PLAINTEXT_BYTES + 1];
        assert_eq!(
            encrypt(&too_large, &ua, &b64(AUTH)),
            Err(CryptoError::TooLarge)
        );
        let largest = encrypt(&too_large[1..], &ua, &b64(AUTH)).unwrap();
        assert_eq!(largest.len(), RECORD_SIZE as usize);
    }

    #[test]
    fn a_vapid_header_carries_a_verifiable_es256_jwt_and_the_public_key() {
        let key = generate_key();
        let header = vapid_authorization(&key, "https://push.example", "mailto:a@b.c", 1_000);
        let (token, public) = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(b64(public), point_bytes(&key.public_key()));
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = Signature::from_slice(&b64(signature)).unwrap();
        let verifier = VerifyingKey::from(&key.public_key());
        verifier.verify(input.as_bytes(), &signature).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&b64(input.split_once('.').unwrap().1)).unwrap();
        assert_eq!(claims["aud"], "https://push.example");
        assert_eq!(claims["exp"], 1_000);
        assert_eq!(claims["sub"], "mailto:a@b.c");
    }
}
