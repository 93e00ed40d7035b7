//! Fixtures for the unit tests of the store and the writer: a store in a temporary folder,
//! a mail stamp, a business create. Test-only; one copy instead of one per test module.

use super::{MailStamp, Mutation, Store};
use crate::domain::NewBusiness;

/// A fresh store in a temporary folder (kept alive by the returned guard).
pub(crate) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("db"), 1 << 20, 100).expect("open a fresh store");
    (dir, store)
}

/// The stamp mails get in tests.
pub(crate) fn stamp() -> MailStamp {
    MailStamp {
        epoch: "e".into(),
        domain: "example.com".into(),
        reminder_micros: 0,
    }
}

/// Creating a business with `subdomain`, owned by `owner@example.com`.
pub(crate) fn create(subdomain: &str) -> Mutation {
    Mutation::CreateBusiness(NewBusiness {
        name: format!("Salon {subdomain}"),
        subdomain: subdomain.into(),
        owner_email: "owner@example.com".into(),
    })
}

/// Applies `n` business creates (subdomains `s0`, `s1`, …), one per batch, and returns the
/// newest event id.
pub(crate) fn create_businesses(store: &Store, n: u64) -> u64 {
    for i in 0..n {
        store.apply(&create(&format!("s{i}")), &stamp()).unwrap();
    }
    store.next_event_id().unwrap() - 1
}

/// The ids of `events`, in order.
pub(crate) fn event_ids(events: &[crate::domain::Event]) -> Vec<u64> {
    events.iter().map(|event| event.id).collect()
}
