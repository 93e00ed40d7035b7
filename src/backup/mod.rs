//! Backup, restore and check (API.md "Backup, restore, check"; the file format is
//! docs/backup-format.md).
//!
//! - `app backup FILE`: opens the data folder when the server is stopped; when sled reports
//!   the folder locked, the server runs, and the backup is downloaded from it ([`http`]),
//!   taken between two writer batches. Either way the file appears under its name only once
//!   it is complete and verified (temp file, fsync, rename).
//! - `app restore FILE --data DIR`: verifies the whole file first, refuses a non-empty DIR,
//!   then fills it: a fresh store (so a new epoch), indexes and counters rebuilt, the outside
//!   record written.
//! - `app check --data DIR` / `app check FILE`: see [`check`].

pub mod check;
pub mod export;
pub mod format;
pub mod http;
pub mod import;

use crate::cli::{BackupArgs, CheckArgs, RestoreArgs};
use crate::config::{db_path, load_or_create_secret, SECRET_FILE};
use crate::store::record::{self, sync_dir, RecordError};
use crate::store::{Store, StoreError};
use anyhow::{bail, Context};
use std::io::BufWriter;
use std::path::Path;

/// Page cache of the store these commands open.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a backup, restore or check failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Format(#[from] format::FormatError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storage failure: {0}")]
    Sled(#[from] sled::Error),
    #[error("{tree}: a record cannot be decoded ({why})")]
    Damaged { tree: &'static str, why: String },
    #[error("{0}")]
    Inconsistent(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Opens the store of `data` for one of these commands, keeping every event (no pruning).
fn open(data: &Path) -> Result<Store, StoreError> {
    Store::open(&db_path(data), CACHE_BYTES, u64::MAX)
}

/// `app backup FILE`.
pub fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    let data = &args.data.data;
    if !db_path(data).is_dir() {
        bail!("there is no store in {} (see --data)", data.display());
    }
    let temp = http::temp_beside(&args.file);
    let taken =
        match open(data) {
            Ok(store) => {
                let file = std::fs::File::create(&temp)
                    .with_context(|| format!("creating {}", temp.display()))?;
                export::export(&store, data, BufWriter::new(file))
                    .map_err(anyhow::Error::from)
                    .and_then(|(out, _)| {
                        let file = out.into_inner().map_err(|error| error.into_error())?;
                        Ok(file.sync_all()?)
                    })
            }
            Err(StoreError::Locked) => {
                if args.jwt_secret.is_none() && !data.join(SECRET_FILE).exists() {
                    bail!(
                    "the server runs with APP_JWT_SECRET: give the same secret to `app backup` \
                     (--jwt-secret or APP_JWT_SECRET)"
                );
                }
                let secret = load_or_create_secret(data, args.jwt_secret.as_deref())?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime
                    .block_on(http::download(&args.addr, &secret, &temp))
                    .map_err(anyhow::Error::from)
            }
            Err(error) => Err(anyhow::Error::from(error)
                .context(format!("opening the store in {}", data.display()))),
        };
    // Verified before it takes FILE's name: a failed backup never leaves a half file there.
    let verified = taken.and_then(|()| Ok(http::verify_file(&temp)?));
    let (header, records) = match verified {
        Ok(found) => found,
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            return Err(error.context("the backup failed; nothing was written"));
        }
    };
    std::fs::rename(&temp, &args.file)
        .with_context(|| format!("moving the backup to {}", args.file.display()))?;
    if let Some(folder) = args.file.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(folder)?;
    }
    println!(
        "backup of {records} records as of event {} written to {}",
        header.event_id,
        args.file.display()
    );
    Ok(())
}

/// `app restore FILE --data DIR`.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let dir = &args.data.data;
    // Verify the whole file before touching anything.
    let (header, records) = http::verify_file(&args.file)
        .with_context(|| format!("{} cannot be restored", args.file.display()))?;
    let replica = match (args.replica, header.cluster_seq) {
        (false, _) => None,
        (true, Some(seq)) => Some((header.source_epoch.clone(), seq)),
        (true, None) => bail!(
            "{} was not taken from a cluster node, so it cannot seed one (--replica); \
             nothing was written",
            args.file.display()
        ),
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: restore into an empty or new folder (nothing was written)",
                    dir.display()
                );
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", dir.display()));
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let filled = fill(&args.file, dir, replica.clone());
    match filled {
        Ok(epoch) => {
            match replica {
                Some((_, seq)) => println!(
                    "restored {records} records as of event {} into {} as a replica of the \
                     cluster's log (epoch {epoch}, record {seq}): start a node on it with --nats",
                    header.event_id,
                    dir.display()
                ),
                None => println!(
                    "restored {records} records as of event {} into {} (new epoch {epoch})",
                    header.event_id,
                    dir.display()
                ),
            }
            Ok(())
        }
        Err(error) => {
            // The folder was empty: leave it so, not half restored.
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
                }
            }
            Err(error.context("the restore failed; the folder was emptied again"))
        }
    }
}

/// Fills the empty folder `dir` from `file`; returns the store's epoch: a new one, or with
/// `replica` the cluster log's epoch and position the backup was taken at.
fn fill(file: &Path, dir: &Path, replica: Option<(String, u64)>) -> anyhow::Result<String> {
    let mut store = open(dir)?;
    let mut importer = import::Importer::new(replica.is_some());
    let input = std::io::BufReader::new(std::fs::File::open(file)?);
    let header = format::read(input, |record| importer.apply(&store, dir, record))?;
    importer.finish(&store, &header)?;
    if let Some((epoch, seq)) = replica {
        store = store.seed_replica(&epoch, seq)?;
    }
    record::write(dir, &store.durable_position()?)?;
    sync_dir(dir)?;
    Ok(store.epoch().to_string())
}

/// `app check --data DIR` or `app check FILE`.
pub fn check(args: &CheckArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.file {
        let (header, records) = http::verify_file(file)
            .with_context(|| format!("the backup {} is damaged", file.display()))?;
        println!(
            "the backup {} is whole: {records} records as of event {}",
            file.display(),
            header.event_id
        );
        return Ok(());
    }
    let data = &args.data.data;
    if !db_path(data).is_dir() {
        bail!("there is no store in {} (see --data)", data.display());
    }
    let store = match open(data) {
        Ok(store) => store,
        Err(StoreError::Locked) => {
            bail!(
                "the server is running on {}: stop it first, or check a backup of it",
                data.display()
            )
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("the store in {} cannot be opened", data.display()))
        }
    };
    let problems = check::check_store(&store, data)?;
    if problems.is_empty() {
        let position = store.position()?;
        println!(
            "the store in {} is whole: newest event {}, newest outbox id {}, epoch {}",
            data.display(),
            position.event_id,
            position.outbox_id,
            position.epoch
        );
        return Ok(());
    }
    const SHOWN: usize = 50;
    let mut text = String::new();
    for problem in problems.iter().take(SHOWN) {
        text.push_str("\n  - ");
        text.push_str(problem);
    }
    if problems.len() > SHOWN {
        text.push_str(&format!("\n  … and {} more", problems.len() - SHOWN));
    }
    bail!(
        "the store in {} has {} problem(s):{text}",
        data.display(),
        problems.len()
    )
}
