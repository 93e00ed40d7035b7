//! The one place records are turned into bytes and back (the only user of bincode).
//!
//! Every value starts with a format-version byte, so a later change of layout is a migration
//! that can recognise old records, never a silent misread.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The layout written today.
pub const FORMAT_VERSION: u8 = 1;

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty record")]
    Empty,
    #[error("record has format version {0}, this build reads {FORMAT_VERSION}")]
    UnknownVersion(u8),
    #[error("record is malformed: {0}")]
    Malformed(#[from] bincode::Error),
}

/// Encodes `value` with the leading version byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128);
    bytes.push(FORMAT_VERSION);
    // Serializing our own plain structs into a Vec cannot fail: no maps with non-string
    // keys, no sequences of unknown length.
    bincode::serialize_into(&mut bytes, value).expect("records always serialize");
    bytes
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_VERSION, rest)) => Ok(bincode::deserialize(rest)?),
        Some((&other, _)) => Err(CodecError::UnknownVersion(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Business, Timestamp};
    use uuid::Uuid;

    #[test]
    fn round_trips_a_record_with_its_version_byte() {
        let now = Timestamp::now();
        let business = Business {
            id: Uuid::new_v4(),
            name: "Salon ✂".into(),
            subdomain: "salon".into(),
            owner_email: "o@example.com".into(),
            created_at: now,
            updated_at: now,
        };
        let bytes = encode(&business);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<Business>(&bytes).unwrap(), business);
    }

    #[test]
    fn refuses_unknown_versions_and_garbage() {
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
        assert!(matches!(
            decode::<u64>(&[9, 0, 0]),
            Err(CodecError::UnknownVersion(9))
        ));
        assert!(matches!(
            decode::<String>(&[FORMAT_VERSION, 0xff]),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn timestamps_are_stored_as_eight_byte_integers() {
        let t = Timestamp::from_micros(1_700_000_000_000_000);
        let bytes = encode(&t);
        assert_eq!(bytes.len(), 1 + 8);
        assert_eq!(decode::<Timestamp>(&bytes).unwrap(), t);
    }
}
