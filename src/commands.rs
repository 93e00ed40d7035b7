//! The offline subcommands: `app user create|password|disable|enable` and `app token`,
//! working on the data folder (sled allows one process at a time, so these need the server
//! stopped). A password change, disable or enable raises the user's token generation, so
//! every token issued before it is refused once the server runs again; no server is running
//! while these do, so there are no open sockets to close.

use crate::auth::{hash_password, JwtKeys};
use crate::cli::{TokenArgs, UserCreateArgs, UserEmailArgs, UserPasswordArgs};
use crate::config::{db_path, ensure_data_dir, load_or_create_secret};
use crate::domain::{Email, Password, UserDraft, UserView};
use crate::store::{AccessChange, MailStamp, Store, StoreError, UserRef};
use crate::writer::Writer;
use anyhow::{bail, Context};
use std::path::Path;

/// The longest lifetime `app token --ttl` accepts: 30 days (API.md), the refresh tokens'
/// default, so no minted token outlives what a login could keep.
pub const MAX_TOKEN_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// Small cache: these commands touch a handful of records.
const CLI_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Opens the store of a data folder for a one-off command.
pub fn open_store(data: &Path) -> anyhow::Result<Store> {
    ensure_data_dir(data)?;
    Store::open(&db_path(data), CLI_CACHE_BYTES, u64::MAX)
        .with_context(|| format!("opening the store in {}", data.display()))
}

/// `app user create`: prints the new user as JSON.
pub fn user_create(args: &UserCreateArgs) -> anyhow::Result<()> {
    let draft = match UserDraft::parse(args.email.clone(), args.password.clone(), &args.role) {
        Ok(draft) => draft,
        Err(errors) => {
            let problems: Vec<String> = errors
                .0
                .iter()
                .map(|(field, message)| format!("--{field} {message}"))
                .collect();
            bail!("invalid user: {}", problems.join("; "));
        }
    };
    let password_hash = hash_password(draft.password.expose());
    let new = draft.into_new_user(password_hash);
    let user = with_offline_writer(&args.data.data, |writer| writer.create_user_blocking(new))?;
    println!("{}", serde_json::to_string(&UserView::from(&user))?);
    Ok(())
}

/// `app user password`: sets the password of an existing user, revoking its older tokens;
/// prints the user as JSON.
pub fn user_password(args: &UserPasswordArgs) -> anyhow::Result<()> {
    let password = Password::parse(args.password.clone())
        .map_err(|why| anyhow::anyhow!("--password {why}"))?;
    let password_hash = hash_password(password.expose());
    change_access(
        &args.data.data,
        &args.email,
        AccessChange::Password(password_hash),
    )
}

/// `app user disable` / `app user enable`: prints the user as JSON.
pub fn user_set_disabled(args: &UserEmailArgs, disabled: bool) -> anyhow::Result<()> {
    change_access(
        &args.data.data,
        &args.email,
        AccessChange::Disabled(disabled),
    )
}

fn change_access(data: &Path, email: &str, change: AccessChange) -> anyhow::Result<()> {
    let email = Email::parse(email.to_string()).map_err(|why| anyhow::anyhow!("--email {why}"))?;
    let who = UserRef::Email(email.as_str().to_string());
    let (user, access) =
        with_offline_writer(data, |writer| writer.change_access_blocking(who, change)).map_err(
            |error| match error.downcast_ref::<StoreError>() {
                Some(StoreError::NotFound(_)) => {
                    anyhow::anyhow!("no user with email {}", email.as_str())
                }
                _ => error,
            },
        )?;
    println!("{}", serde_json::to_string(&UserView::new(&user, access))?);
    Ok(())
}

/// Runs `apply` against a writer of its own over the data folder (same rules and durability
/// as the server's), for a command run while the server is stopped.
fn with_offline_writer<T>(
    data: &Path,
    apply: impl FnOnce(&Writer) -> Result<T, StoreError>,
) -> anyhow::Result<T> {
    let store = open_store(data)?;
    let stamp = MailStamp {
        epoch: store.epoch().to_string(),
        domain: "localhost".into(),
        // Offline commands book nothing, so they schedule no reminder.
        reminder_micros: 0,
    };
    let health = crate::health::StoreHealth::new(Default::default());
    let (writer, _, thread) = Writer::start(store, stamp, health)?;
    let result = apply(&writer);
    drop(writer);
    let _ = thread.join();
    Ok(result?)
}

/// `app token`: prints a token for the user, signed with the data folder's secret.
pub fn token(args: &TokenArgs) -> anyhow::Result<()> {
    if args.ttl > MAX_TOKEN_TTL_SECONDS {
        bail!(
            "--ttl {} is longer than 30 days ({MAX_TOKEN_TTL_SECONDS} seconds); use a shorter one",
            args.ttl
        );
    }
    if args.ttl == 0 {
        bail!("--ttl must be greater than zero");
    }
    let email = Email::parse(args.email.clone()).map_err(|why| anyhow::anyhow!("--email {why}"))?;
    let store = open_store(&args.data.data)?;
    let user = store
        .user_by_email(email.as_str())?
        .with_context(|| format!("no user with email {}", email.as_str()))?;
    let access = store.access_state(user.id)?;
    if access.disabled {
        bail!(
            "user {} is disabled; `app user enable` first",
            email.as_str()
        );
    }
    let secret = load_or_create_secret(&args.data.data, args.jwt_secret.as_deref())?;
    let keys = JwtKeys::new(&secret, args.ttl);
    let (token, _) = keys.issue_with_ttl(&user, access.generation, args.ttl);
    println!("{token}");
    Ok(())
}
