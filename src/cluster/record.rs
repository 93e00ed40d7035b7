//! What the cluster's log holds: one [`Record`] per message, encoded by the store's codec
//! (bincode behind a format-version byte), so a node of a later build recognises an old
//! record instead of misreading it.

use crate::domain::Timestamp;
use crate::store::codec::{self, CodecError};
use crate::store::Mutation;
use uuid::Uuid;

/// One message of the log.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Record {
    /// The log's first message: the epoch every node's store takes, so that
    /// `last_event_id` + `epoch` from one node resume on any other.
    Init { epoch: String },
    /// A change, with everything not deterministic decided by the node that published it
    /// (the clock, the one new id a mutation may take), so that every node applying the
    /// log in order gets the same ids, timestamps and refusals.
    Change {
        /// Names the record: its `Nats-Msg-Id` (a publish retried within the stream's
        /// duplicate window is stored once) and the key its publisher waits on.
        id: Uuid,
        /// The node that published it (for logs).
        node: String,
        now: Timestamp,
        new_id: Uuid,
        mutation: Mutation,
    },
}

impl Record {
    /// A change published now by `node`.
    pub fn change(node: &str, mutation: Mutation) -> Self {
        Record::Change {
            id: Uuid::new_v4(),
            node: node.to_string(),
            now: Timestamp::now(),
            new_id: Uuid::new_v4(),
            mutation,
        }
    }

    /// The bytes of the message.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// A message read back.
    ///
    /// # Errors
    /// When the bytes are no record of this build's format.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes)
    }

    /// The mutation the writer applies for this record at log position `seq`; `None` for
    /// the epoch record.
    pub fn into_mutation(self, seq: u64) -> Option<(Uuid, Mutation)> {
        match self {
            Record::Init { .. } => None,
            Record::Change {
                id,
                now,
                new_id,
                mutation,
                ..
            } => Some((
                id,
                Mutation::Replicated {
                    seq,
                    now,
                    new_id,
                    inner: Box::new(mutation),
                },
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NewReservation;

    #[test]
    fn a_change_survives_the_wire_with_its_choices() {
        let business_id = Uuid::new_v4();
        let record = Record::change(
            "n1",
            Mutation::CreateReservation {
                business_id,
                new: NewReservation {
                    customer_name: "Ann".into(),
                    customer_email: "ann@example.com".into(),
                    starts_at: Timestamp::from_micros(1_800_000_000_000_000),
                    service: "cut".into(),
                },
            },
        );
        let Record::Change {
            id, now, new_id, ..
        } = record.clone()
        else {
            panic!("a change")
        };
        let back = Record::decode(&record.encode()).unwrap();
        let Some((
            read_id,
            Mutation::Replicated {
                seq,
                now: n,
                new_id: i,
                inner,
            },
        )) = back.into_mutation(7)
        else {
            panic!("a replicated change")
        };
        assert_eq!((read_id, seq, n, i), (id, 7, now, new_id));
        assert!(matches!(
            *inner,
            Mutation::CreateReservation { business_id: b, ref new }
                if b == business_id && new.customer_name == "Ann"
        ));
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        assert!(Record::decode(b"").is_err());
        assert!(Record::decode(&[9, 1, 2, 3]).is_err());
        assert!(Record::decode(&[codec::FORMAT_VERSION, 200, 1]).is_err());
        let init = Record::Init { epoch: "e1".into() };
        assert!(matches!(
            Record::decode(&init.encode()).unwrap(),
            Record::Init { epoch } if epoch == "e1"
        ));
    }

    /// A log keeps records of earlier builds, and bincode names a variant by its position:
    /// a mutation added in the middle of `Mutation` would make every later one read as its
    /// neighbour. `MailsSent`'s bytes as the builds before `MailsFailed` wrote them:
    #[test]
    fn mutations_keep_their_place_so_older_records_read_the_same() {
        let older = codec::encode(&Mutation::MailsSent { ids: vec![7] });
        let back: Mutation = codec::decode(&older).unwrap();
        assert!(matches!(back, Mutation::MailsSent { ref ids } if ids == &[7]));
        assert_eq!(hex(&older), "010a00000001000000000000000700000000000000");
        let failed = Mutation::MailsFailed {
            failures: vec![crate::store::MailFailure {
                id: 7,
                claimed_until: Timestamp::from_micros(1),
                attempts: 2,
                retry_at: None,
                error: "550".into(),
            }],
        };
        let back: Mutation = codec::decode(&codec::encode(&failed)).unwrap();
        assert!(matches!(back, Mutation::MailsFailed { ref failures }
            if failures[0].id == 7 && failures[0].retry_at.is_none()));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
