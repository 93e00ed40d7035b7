//! The offline subcommands: `app user create`, `app user password` and `app token`, working
//! on the data folder
//! (sled allows one process at a time, so these need the server stopped).

use crate::auth::{hash_password, JwtKeys};
use crate::cli::{TokenArgs, UserCreateArgs, UserPasswordArgs};
use crate::config::{db_path, ensure_data_dir, load_or_create_secret};
use crate::domain::{Email, Password, UserDraft, UserView};
use crate::store::{MailStamp, Store, StoreError};
use crate::writer::Writer;
use anyhow::{bail, Context};
use std::path::Path;

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

/// `app user password`: sets the password of an existing user; prints the user as JSON.
/// Tokens issued before stay valid until they expire (they are not tied to the password).
pub fn user_password(args: &UserPasswordArgs) -> anyhow::Result<()> {
    let email = Email::parse(args.email.clone()).map_err(|why| anyhow::anyhow!("--email {why}"))?;
    let password = Password::parse(args.password.clone())
        .map_err(|why| anyhow::anyhow!("--password {why}"))?;
    let password_hash = hash_password(password.expose());
    let user = with_offline_writer(&args.data.data, |writer| {
        writer.set_password_blocking(email.as_str().to_string(), password_hash)
    })
    .map_err(|error| match error.downcast_ref::<StoreError>() {
        Some(StoreError::NotFound(_)) => anyhow::anyhow!("no user with email {}", email.as_str()),
        _ => error,
    })?;
    println!("{}", serde_json::to_string(&UserView::from(&user))?);
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
    let email = Email::parse(args.email.clone()).map_err(|why| anyhow::anyhow!("--email {why}"))?;
    let store = open_store(&args.data.data)?;
    let user = store
        .user_by_email(email.as_str())?
        .with_context(|| format!("no user with email {}", email.as_str()))?;
    let secret = load_or_create_secret(&args.data.data, args.jwt_secret.as_deref())?;
    let keys = JwtKeys::new(&secret, args.ttl);
    let (token, _) = keys.issue_with_ttl(&user, args.ttl);
    println!("{token}");
    Ok(())
}
