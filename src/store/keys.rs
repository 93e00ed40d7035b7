//! Key layouts. Integers are big-endian so sled's byte order is numeric order; composite keys
//! put the grouping part first so a prefix scan reads one group in order.

use crate::domain::Timestamp;
use uuid::Uuid;

/// `u64` → 8 big-endian bytes.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Reads a big-endian `u64` key (or value). `None` when the length is wrong.
pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Reads a 16-byte uuid.
pub fn read_uuid(bytes: &[u8]) -> Option<Uuid> {
    Some(Uuid::from_bytes(bytes.try_into().ok()?))
}

/// `group (16 bytes) ‖ n (8 bytes, big-endian)`: items of one business in id order.
pub fn uuid_u64_key(group: Uuid, n: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(group.as_bytes());
    key[16..].copy_from_slice(&n.to_be_bytes());
    key
}

/// The trailing `u64` of a [`uuid_u64_key`].
pub fn uuid_u64_suffix(key: &[u8]) -> Option<u64> {
    read_u64(key.get(16..)?)
}

/// `email ‖ 0x00 ‖ n`: an owner's businesses in creation order. Emails never contain NUL.
pub fn email_u64_key(email: &str, n: u64) -> Vec<u8> {
    let mut key = email_prefix(email);
    key.extend_from_slice(&n.to_be_bytes());
    key
}

/// The prefix of every [`email_u64_key`] for `email`.
pub fn email_prefix(email: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(email.len() + 9);
    key.extend_from_slice(email.as_bytes());
    key.push(0);
    key
}

/// `due time (8 bytes) ‖ outbox id (8 bytes)`, both big-endian: the `outbox_due` index in
/// the order rows fall due. The time's sign bit is flipped so negative micros sort first.
pub fn due_key(at: Timestamp, id: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    let at = (at.as_micros() as u64) ^ (1 << 63);
    key[..8].copy_from_slice(&at.to_be_bytes());
    key[8..].copy_from_slice(&id.to_be_bytes());
    key
}

/// The due time and outbox id of a [`due_key`].
pub fn read_due_key(key: &[u8]) -> Option<(Timestamp, u64)> {
    let at = read_u64(key.get(..8)?)? ^ (1 << 63);
    Some((Timestamp::from_micros(at as i64), read_u64(key.get(8..)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_time_then_id_and_read_back() {
        let (early, late) = (
            Timestamp::from_micros(-5),
            Timestamp::from_micros(1_000_000),
        );
        assert!(due_key(early, 9) < due_key(late, 1));
        assert!(due_key(late, 1) < due_key(late, 2));
        assert_eq!(read_due_key(&due_key(early, 9)), Some((early, 9)));
        assert_eq!(read_due_key(b"short"), None);
    }

    #[test]
    fn big_endian_keys_sort_numerically() {
        let mut keys: Vec<[u8; 8]> = [300u64, 2, 70_000, 1].map(u64_key).to_vec();
        keys.sort();
        let back: Vec<u64> = keys.iter().map(|k| read_u64(k).unwrap()).collect();
        assert_eq!(back, vec![1, 2, 300, 70_000]);
    }

    #[test]
    fn composite_keys_group_then_order() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert!(uuid_u64_key(a, 900) < uuid_u64_key(b, 1));
        assert!(uuid_u64_key(a, 2) < uuid_u64_key(a, 10));
        assert_eq!(uuid_u64_suffix(&uuid_u64_key(a, 77)), Some(77));
        // "ab" must not fall inside the group of "a".
        assert!(!email_u64_key("ab", 1).starts_with(&email_prefix("a")));
    }
}
