//! The one list of the store's sled trees.
//!
//! Each tree is named once, in the [`trees!`] table below; from it come the [`Trees`] handles
//! `Store::open` opens (a tree's sled name is its field name), the [`Tx`] view that
//! mutations use inside a transaction, and [`Trees::transact`], which runs a transaction over
//! every tree in the `transactional` group. Adding a tree is one line in the table.
//!
//! Trees that no mutation writes stay out of the `transactional` group: a transaction pays
//! for every tree it covers.

use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};
use sled::Transactional;

/// Declares the trees: `transactional` ones take part in every writer transaction (and
/// appear in [`Tx`]), `other` ones are written outside it.
macro_rules! trees {
    (
        transactional { $($tx:ident),+ $(,)? }
        other { $($other:ident),* $(,)? }
    ) => {
        /// A handle on every tree, by name. Cloning is cheap (sled trees are `Arc`s).
        #[derive(Clone)]
        pub(crate) struct Trees {
            $(pub $tx: sled::Tree,)+
            $(pub $other: sled::Tree,)*
        }

        /// The transactional trees as one transaction sees them, by name.
        pub(crate) struct Tx<'a> {
            $(pub $tx: &'a TransactionalTree,)+
        }

        impl Trees {
            /// Opens (or creates) every tree of `db`.
            pub fn open(db: &sled::Db) -> sled::Result<Self> {
                Ok(Self {
                    $($tx: db.open_tree(stringify!($tx))?,)+
                    $($other: db.open_tree(stringify!($other))?,)*
                })
            }

            /// Runs `body` in one sled transaction over every transactional tree. sled may run
            /// `body` more than once, so it must only read and write the trees.
            pub fn transact<T, E>(
                &self,
                body: impl Fn(&Tx<'_>) -> ConflictableTransactionResult<T, E>,
            ) -> Result<T, TransactionError<E>> {
                // The slice form, because sled's tuple form stops at 14 trees.
                let trees = [$(&self.$tx),+];
                trees[..].transaction(|view| {
                    // sled returns one view per tree, in the order given, so this always
                    // matches; a mismatch would be a sled bug, reported rather than panicked.
                    let [$($tx),+] = view.as_slice() else {
                        return Err(ConflictableTransactionError::Storage(
                            sled::Error::ReportableBug(format!(
                                "a transaction over {} trees returned {} views",
                                trees.len(),
                                view.len()
                            )),
                        ));
                    };
                    body(&Tx { $($tx),+ })
                })
            }
        }
    };
}

trees! {
    transactional {
        meta,
        users,
        user_emails,
        businesses,
        business_order,
        owner_index,
        subdomains,
        reservations,
        reservation_ids,
        reservation_counts,
        events,
        business_events,
        outbox,
        outbox_due,
        receipts,
        user_access,
        refresh_tokens,
        refresh_families,
        purges,
        push_subscriptions,
        push_owners,
        push_outbox,
        reminders,
        closings,
        outbox_sent,
    }
    other {
        push_endpoints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tree_is_opened_under_its_field_name_and_a_transaction_sees_each_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let trees = Trees::open(&db).unwrap();
        trees
            .transact(|tx| {
                tx.receipts
                    .insert(b"k".as_slice(), b"receipts".as_slice())?;
                tx.meta.insert(b"k".as_slice(), b"meta".as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .unwrap();
        let named = |name: &str| db.open_tree(name).unwrap().get(b"k").unwrap();
        assert_eq!(named("receipts").as_deref(), Some(&b"receipts"[..]));
        assert_eq!(named("meta").as_deref(), Some(&b"meta"[..]));
        assert_eq!(named("users"), None);
        let mut names: Vec<String> = db
            .tree_names()
            .iter()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect();
        names.sort();
        assert!(names.contains(&"outbox_sent".to_string()), "{names:?}");
        // The 26 trees plus sled's default tree.
        assert_eq!(names.len(), 27, "{names:?}");
    }
}
