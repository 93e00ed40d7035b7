//! Builds every handle, spawns every long-lived task, and runs the shutdown sequence:
//! cancel → warp stops accepting and finishes HTTP → sessions send 1001 and end → the
//! drainer finishes its send → the writer drains and flushes → exit 0 (DESIGN invariant 6).

use crate::api::{self, AppState, RateLimiter};
use crate::auth::{hash_password, JwtKeys};
use crate::bus::Bus;
use crate::config::Config;
use crate::domain::{validate, NewUser, Role};
use crate::mail::drainer::{self, Drainer};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::record::{self, Admission};
use crate::store::{MailStamp, Mutation, Store};
use crate::writer::Writer;
use anyhow::Context;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest wait for open WebSockets to close on shutdown.
const SESSIONS_GRACE: Duration = Duration::from_secs(5);

/// Runs the server until SIGINT/SIGTERM, then shuts down cleanly.
///
/// # Errors
/// When the store cannot be opened (locked, corrupt) or the address cannot be bound.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let mailer = Mailer::from_config(&config)?;
    // Before anything is served: a store sled cannot read, or one behind its outside record,
    // is refused (exit 2), or starts on a new epoch with --accept-data-loss.
    let store = {
        let (data, cache, retention, accept) = (
            config.data_dir.clone(),
            config.cache_bytes,
            config.event_retention,
            config.accept_data_loss,
        );
        let (store, admission) = tokio::task::spawn_blocking(move || {
            let store = record::open_for_serve(&data, cache, retention, accept)
                .with_context(|| format!("opening the store in {}", data.display()))?;
            record::admit(store, &data, accept)
        })
        .await??;
        if let Admission::NewEpoch { problems } = admission {
            tracing::warn!(
                epoch = store.epoch(),
                next_event_id = store.next_event_id()?,
                lost = %problems.join("; "),
                "the store was behind its outside record; started a new epoch (--accept-data-loss)"
            );
        }
        store
    };
    let stamp = MailStamp {
        epoch: store.epoch().to_string(),
        domain: config.mail_domain(),
    };
    let (writer, watermark, writer_thread) = Writer::start(store.clone(), stamp)?;
    let shutdown = CancellationToken::new();
    let signals = crate::shutdown::install()?;
    let tracker = TaskTracker::new();
    let drainer_watermark = watermark.clone();
    let (bus, publisher) = Bus::start(&store, watermark, shutdown.clone())?;
    let metrics = Arc::new(Metrics::default());
    tracker.spawn(count_events(bus.clone(), metrics.clone(), shutdown.clone()));
    let drainer = Drainer::new(
        store.clone(),
        mailer,
        drainer_watermark,
        metrics.clone(),
        &config,
    );
    tracker.spawn(drainer::run(drainer, bus.clone(), shutdown.clone()));
    tracker.spawn(record::keep(
        store.clone(),
        config.data_dir.clone(),
        shutdown.clone(),
    ));

    let first_run_password = bootstrap_admin(&store, &writer, &config).await?;

    let state = AppState {
        store: store.clone(),
        writer: writer.clone(),
        bus: bus.clone(),
        keys: Arc::new(JwtKeys::new(&config.secret, config.token_ttl_seconds)),
        metrics: metrics.clone(),
        config: config.clone(),
        booking_limiter: Arc::new(RateLimiter::new(config.booking_rate_per_minute)),
        shutdown: shutdown.clone(),
    };

    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    let addr = listener.local_addr()?;
    // A closed stdout (its reader went away) is no reason to stop serving.
    if let Err(error) = print_banner(addr, &store, &config, first_run_password.as_deref()) {
        tracing::warn!(%error, "could not print the startup banner");
    }
    tracing::info!(%addr, data = %config.data_dir.display(), "serving");

    tokio::spawn(crate::shutdown::on_signal(signals, shutdown.clone()));
    warp::serve(api::routes(state.clone()))
        .incoming(listener)
        .graceful(shutdown.clone().cancelled_owned())
        .run()
        .await;

    // warp has stopped accepting and finished its HTTP requests; WebSocket sessions were
    // spawned outside its graceful shutdown, and close themselves with 1001 on `shutdown`.
    let deadline = tokio::time::Instant::now() + SESSIONS_GRACE;
    while metrics.ws_connections.load(Ordering::Relaxed) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracker.close();
    if tokio::time::timeout(SESSIONS_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not stop in time");
    }
    drop(state);
    writer.stop().await;
    let joined = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    if !matches!(joined, Ok(Ok(()))) {
        tracing::error!("the writer thread failed while stopping");
    }
    publisher.abort();
    // After the writer's last flush: the record names exactly what the store holds.
    let (final_store, data) = (store.clone(), config.data_dir.clone());
    match tokio::task::spawn_blocking(move || record::write_final(&final_store, &data)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "could not write the outside record"),
        Err(error) => tracing::error!(%error, "the outside record task failed"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Counts published events for `/metrics` (a bus subscriber like any other).
async fn count_events(bus: Bus, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut events = bus.subscribe();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Ok(_) => Metrics::inc(&metrics.events_total),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    metrics.events_total.fetch_add(n, Ordering::Relaxed);
                }
                Err(_) => return,
            }
        }
    }
}

/// Creates the first super admin when no user exists. Returns the generated password when
/// there was none configured (printed once).
async fn bootstrap_admin(
    store: &Store,
    writer: &Writer,
    config: &Config,
) -> anyhow::Result<Option<String>> {
    if store.user_count() > 0 {
        return Ok(None);
    }
    let (email, password, generated) = match (&config.admin_email, &config.admin_password) {
        (Some(email), Some(password)) => (email.clone(), password.clone(), false),
        _ => {
            let password: String = {
                use rand::distr::{Alphanumeric, SampleString};
                Alphanumeric.sample_string(&mut rand::rng(), 20)
            };
            ("admin@localhost".to_string(), password, true)
        }
    };
    let email = validate::email(email).map_err(|why| anyhow::anyhow!("APP_ADMIN_EMAIL {why}"))?;
    let password =
        validate::password(password).map_err(|why| anyhow::anyhow!("APP_ADMIN_PASSWORD {why}"))?;
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_password(&password)).await?
    };
    writer
        .submit(Mutation::CreateUser(NewUser {
            email,
            password_hash: hash,
            role: Role::SuperAdmin,
        }))
        .await
        .context("creating the first super admin")?;
    Ok(generated.then_some(password))
}

/// Prints where the server is and how to log in (stdout: read by people and tests).
fn print_banner(
    addr: std::net::SocketAddr,
    store: &Store,
    config: &Config,
    first_run_password: Option<&str>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "app listening on http://{addr}")?;
    writeln!(out, "dashboard: http://{addr}/")?;
    match first_run_password {
        Some(password) => {
            writeln!(out, "first run: created super admin admin@localhost")?;
            writeln!(
                out,
                "  password: {password}   (shown once; to change it, stop the server and run `app user password`)"
            )?;
        }
        None => {
            let admins = store
                .users()?
                .into_iter()
                .filter(|user| user.role == Role::SuperAdmin)
                .map(|user| user.email)
                .collect::<Vec<_>>();
            writeln!(out, "log in as: {}", admins.join(", "))?;
        }
    }
    if config.smtp_url.is_none() {
        writeln!(
            out,
            "emails are written to {}",
            config.data_dir.join("mail").display()
        )?;
    }
    out.flush()?;
    Ok(())
}
