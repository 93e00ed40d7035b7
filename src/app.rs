//! Builds every handle, spawns every long-lived task, and runs the shutdown sequence:
//! cancel → the accept loop ([`crate::server`]) stops accepting and finishes HTTP → sessions
//! send 1001 and end → the drainer finishes its send → the writer drains and flushes → exit 0
//! (DESIGN invariant 6). Every wait on a client ends with `--shutdown-grace-secs`.
//!
//! [`Application::build`] does everything up to a bound listener, and
//! [`Application::run_until_stopped`] serves until its shutdown token is cancelled, so a test
//! can run the server in-process; [`serve`] is the two with the banner and the signal
//! handlers, as `app serve` runs them.

use crate::auth::{hash_password, JwtKeys};
use crate::bus::Bus;
use crate::config::Config;
use crate::domain::{Role, UserDraft};
use crate::health::StoreHealth;
use crate::login_gate::LoginGate;
use crate::mail::drainer::{self, Drainer};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::recovery::Recovery;
use crate::server::host::HostPolicy;
use crate::server::{listener, EdgeSettings, Timeouts};
use crate::state::{AppState, Handles};
use crate::store::record::{self, Admission};
use crate::store::{MailStamp, Store};
use crate::writer::Writer;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shortest wait for open WebSockets to send their 1001 on shutdown, even with no grace.
const SESSIONS_MIN_GRACE: Duration = Duration::from_secs(1);
/// A request whose answer is not ready this long after its head (a body trickling in, a
/// handler stuck) loses its connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// An idle keep-alive connection is closed after this (API.md).
const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(75);
/// A WebSocket upgrade must be done within this of its `101` (API.md).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the server until SIGINT/SIGTERM, then shuts down cleanly.
///
/// # Errors
/// When the store cannot be opened (locked, corrupt) or the address cannot be bound.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Before building: a signal while the node starts (a cluster node catches up with the log
    // first, for as long as that takes) or right after the banner must stop it.
    let signals = crate::shutdown::install()?;
    let signalled = CancellationToken::new();
    tokio::spawn(crate::shutdown::on_signal(signals, signalled.clone()));
    let app = tokio::select! {
        app = Application::build(config) => app?,
        // Nothing was served or acknowledged yet, and whatever the writer applied is flushed
        // batch by batch: stopping here is no worse than a kill before serving.
        () = signalled.cancelled() => {
            tracing::info!("stopped before serving");
            return Ok(());
        }
    };
    // A closed stdout (its reader went away) is no reason to stop serving.
    if let Err(error) = print_banner(
        app.addr,
        &app.state.store,
        &app.state.config,
        app.first_run_password.as_deref(),
    ) {
        tracing::warn!(%error, "could not print the startup banner");
    }
    tracing::info!(addr = %app.addr, data = %app.state.config.data_dir.display(), "serving");
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        signalled.cancelled().await;
        shutdown.cancel();
    });
    let recovery = app.recovery.clone();
    tokio::spawn(crate::recovery::watch(
        recovery.clone(),
        app.state.config.data_dir.clone(),
        app.shutdown_token(),
    ));
    app.run_until_stopped().await?;
    if recovery.reexec_requested() {
        return Err(recovery.reexec());
    }
    Ok(())
}

/// A server with every handle built, every background task running and its address bound;
/// it accepts connections once [`Application::run_until_stopped`] runs.
pub struct Application {
    state: AppState,
    listener: TcpListener,
    addr: SocketAddr,
    edge: EdgeSettings,
    tracker: TaskTracker,
    writer_thread: std::thread::JoinHandle<()>,
    publisher: std::thread::JoinHandle<()>,
    first_run_password: Option<String>,
    /// The store's health, and the re-exec that leaves the degraded state.
    recovery: Arc<Recovery>,
}

impl Application {
    /// Opens the store, starts the writer, bus and drainer, creates the first super admin
    /// if there is no user, and binds `config.addr`.
    ///
    /// # Errors
    /// When the store cannot be opened (locked, corrupt), the first admin's settings are
    /// invalid, or the address cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let mailer = Mailer::from_config(&config)?;
        // Cluster mode: the log first, since the store takes its epoch.
        let cluster = match &config.cluster {
            Some(settings) => Some(crate::cluster::Cluster::connect(settings).await?),
            None => None,
        };
        let log = cluster.as_ref().map(|c| (c.epoch().to_string(), c.first()));
        // Before anything is served: a store sled cannot read, or one behind its outside
        // record, is refused (exit 2), or starts on a new epoch with --accept-data-loss.
        let store = {
            let (data, cache, retention, accept) = (
                config.data_dir.clone(),
                config.cache_bytes,
                config.event_retention,
                config.accept_data_loss,
            );
            let (store, admission) = tokio::task::spawn_blocking(move || {
                let mut store = record::open_for_serve(&data, cache, retention, accept)
                    .with_context(|| format!("opening the store in {}", data.display()))?;
                if let Some((epoch, first)) = log {
                    // Behind the log's retention first: the fix for both is a seeded folder.
                    crate::cluster::check_reachable(store.cluster_applied()?, first)?;
                    store = store.adopt_epoch(&epoch)?;
                }
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
            reminder_micros: config.reminder_micros,
        };
        let metrics = Arc::new(Metrics::default());
        let health = StoreHealth::new(metrics.clone());
        let recovery = Recovery::new(health.clone());
        let (writer, watermark, writer_thread) =
            Writer::start(store.clone(), stamp, health.clone())?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        if let Some(cluster) = cluster {
            writer.join_cluster(cluster.clone());
            tracker.spawn(crate::cluster::follow(
                cluster.clone(),
                store.clone(),
                writer.clone(),
                health.clone(),
                shutdown.clone(),
            ));
            cluster.caught_up(&shutdown).await;
        }
        let drainer_watermark = watermark.clone();
        let push_watermark = watermark.clone();
        let (bus, publisher) =
            Bus::start(&store, watermark, config.bus_capacity, shutdown.clone())?;
        writer.pace_closes(config.bus_capacity, bus.backlog_probe());
        tracker.spawn(count_events(bus.clone(), metrics.clone(), shutdown.clone()));
        let drainer = Drainer::new(
            (store.clone(), writer.clone(), health.clone()),
            mailer,
            drainer_watermark,
            metrics.clone(),
            &config,
        );
        tracker.spawn(drainer::run(drainer, bus.clone(), shutdown.clone()));
        let vapid = Arc::new(crate::push::vapid::load_or_create(&config.data_dir)?);
        let push_sender = crate::push::drainer::Sender::new((*vapid).clone(), config.push.clone())?;
        let push_drainer = crate::push::drainer::PushDrainer::new(
            (store.clone(), health.clone()),
            push_sender,
            push_watermark,
            &config,
        );
        tracker.spawn(crate::push::drainer::run(
            push_drainer,
            bus.clone(),
            shutdown.clone(),
        ));
        tracker.spawn(record::keep(
            store.clone(),
            config.data_dir.clone(),
            shutdown.clone(),
        ));
        tracker.spawn(crate::writer::sweep_sessions(
            store.clone(),
            writer.clone(),
            shutdown.clone(),
        ));

        let first_run_password = bootstrap_admin(&store, &writer, &config).await?;

        let state = AppState::new(Handles {
            vapid,
            store,
            writer,
            bus,
            keys: Arc::new(JwtKeys::new(&config.secret, config.token_ttl_seconds)),
            metrics,
            health,
            config: config.clone(),
            booking_limiter: Arc::new(RateLimiter::new(config.booking_rate_per_minute)),
            login: Arc::new(LoginGate::new(config.login)?),
            business_booking_limiter: Arc::new(RateLimiter::new(
                config.booking_rate_per_business_per_minute,
            )),
            shutdown,
        });

        let edge = edge_settings(&config);
        let listener = recovery.listener(config.addr).await?;
        let addr = listener.local_addr()?;
        Ok(Self {
            state,
            listener,
            addr,
            edge,
            tracker,
            writer_thread,
            publisher,
            first_run_password,
            recovery,
        })
    }

    /// The bound address (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The generated password of the super admin created on first run, if one was.
    pub fn first_run_password(&self) -> Option<&str> {
        self.first_run_password.as_deref()
    }

    /// Cancelling this token shuts the server down (what SIGINT/SIGTERM do in [`serve`]).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then runs the shutdown sequence.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for a shutdown step that can fail.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            state,
            listener,
            edge,
            tracker,
            writer_thread,
            publisher,
            ..
        } = self;
        let shutdown = state.shutdown.clone();
        let metrics = state.metrics.clone();
        let writer = state.writer.clone();
        let routes = crate::routes::routes(state.clone());
        let grace_ends =
            crate::server::serve(listener, routes, edge, metrics.clone(), shutdown.clone()).await;

        // HTTP is done (finished, or cut at the end of the grace); WebSocket sessions left
        // the accept loop at their upgrade, and close themselves with 1001 on `shutdown`.
        let deadline = grace_ends.max(tokio::time::Instant::now() + SESSIONS_MIN_GRACE);
        while metrics.ws_connections.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracker.close();
        if tokio::time::timeout_at(deadline, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in time");
        }
        let (final_store, data) = (state.store.clone(), state.config.data_dir.clone());
        drop(state);
        writer.stop().await;
        let joined = tokio::task::spawn_blocking(move || writer_thread.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!("the writer thread failed while stopping");
        }
        // It stopped on the shutdown token; the join only confirms it.
        if !matches!(
            tokio::task::spawn_blocking(move || publisher.join()).await,
            Ok(Ok(()))
        ) {
            tracing::error!("the bus publisher failed while stopping");
        }
        // After the writer's last flush: the record names exactly what the store holds.
        match tokio::task::spawn_blocking(move || record::write_final(&final_store, &data)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "could not write the outside record"),
            Err(error) => tracing::error!(%error, "the outside record task failed"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The edge's settings; raises the soft open-file limit first, since the default cap
/// follows from it.
fn edge_settings(config: &Config) -> EdgeSettings {
    let open_files = match listener::raise_open_file_limit() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "could not read or raise the open-file limit");
            1024
        }
    };
    let max_connections = listener::connection_cap(config.max_connections, open_files);
    tracing::info!(open_files, max_connections, "connection cap");
    EdgeSettings {
        timeouts: Timeouts {
            header: config.header_timeout,
            request: REQUEST_TIMEOUT,
            idle: KEEP_ALIVE_IDLE,
            upgrade: UPGRADE_TIMEOUT,
        },
        max_connections,
        shutdown_grace: config.shutdown_grace,
        hosts: HostPolicy::new(config.addr.ip(), &config.allowed_hosts),
    }
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
    let draft = UserDraft::parse(email, password, Role::SuperAdmin.as_str()).map_err(|errors| {
        // The first problem, named by the setting that caused it.
        let (field, why) = errors
            .0
            .first()
            .cloned()
            .unwrap_or(("email", String::new()));
        anyhow::anyhow!("APP_ADMIN_{} {why}", field.to_uppercase())
    })?;
    let password = draft.password.clone();
    let new = tokio::task::spawn_blocking(move || {
        let password_hash = hash_password(draft.password.expose());
        draft.into_new_user(password_hash)
    })
    .await?;
    match writer.create_user(new).await {
        Ok(_) => Ok(generated.then_some(password.expose().to_string())),
        // In a cluster, nodes started together race to create the admin; one wins.
        Err(crate::store::StoreError::Conflict { .. }) if writer.cluster().is_some() => Ok(None),
        Err(error) => Err(anyhow::Error::new(error).context("creating the first super admin")),
    }
}

/// Prints where the server is and how to log in (stdout: read by people and tests).
fn print_banner(
    addr: SocketAddr,
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
