//! The offline subcommands: `app user create` and `app token`, working on the data folder
//! (sled allows one process at a time, so these need the server stopped).

use crate::auth::{hash_password, JwtKeys};
use crate::cli::{TokenArgs, UserCreateArgs};
use crate::config::{db_path, ensure_data_dir, load_or_create_secret};
use crate::domain::validate::{self, FieldErrors};
use crate::domain::{NewUser, Role, UserView};
use crate::store::{Applied, MailStamp, Mutation, Store};
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
    let mut errors = FieldErrors::default();
    let email = errors.check("email", validate::email(args.email.clone()));
    let password = errors.check("password", validate::password(args.password.clone()));
    let role = Role::parse(&args.role);
    let (Some(email), Some(password), Some(role)) = (email, password, role) else {
        let problems: Vec<String> = errors
            .0
            .iter()
            .map(|(field, message)| format!("--{field} {message}"))
            .collect();
        bail!("invalid user: {}", problems.join("; "));
    };
    let store = open_store(&args.data.data)?;
    let stamp = MailStamp {
        epoch: store.epoch().to_string(),
        domain: "localhost".into(),
    };
    let (writer, _, thread) = Writer::start(store, stamp)?;
    let result = writer.submit_blocking(Mutation::CreateUser(NewUser {
        email,
        password_hash: hash_password(&password),
        role,
    }));
    drop(writer);
    let _ = thread.join();
    match result? {
        Applied::User(user) => {
            println!("{}", serde_json::to_string(&UserView::from(&user))?);
            Ok(())
        }
        other => bail!("unexpected result {other:?}"),
    }
}

/// `app token`: prints a token for the user, signed with the data folder's secret.
pub fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let email =
        validate::email(args.email.clone()).map_err(|why| anyhow::anyhow!("--email {why}"))?;
    let store = open_store(&args.data.data)?;
    let user = store
        .user_by_email(&email)?
        .with_context(|| format!("no user with email {email}"))?;
    let secret = load_or_create_secret(&args.data.data, args.jwt_secret.as_deref())?;
    let keys = JwtKeys::new(&secret, args.ttl);
    let (token, _) = keys.issue_with_ttl(&user, args.ttl);
    println!("{token}");
    Ok(())
}
