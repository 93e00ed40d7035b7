//! The `app` binary: parse the command line, start logging, run the subcommand, and turn
//! errors into a message on standard error and a non-zero exit code.

use app::cli::{Cli, Command, OutboxCommand, UserCommand};
use clap::Parser;
use std::process::ExitCode;

// The server's single writer thread spends about two fifths of its CPU per durable create in
// the allocator (sled's copy-on-write nodes and transaction write sets, docs/bench.md,
// "Durable creates"); mimalloc's thread-local free lists serve those small, short-lived
// blocks in far fewer instructions than glibc's malloc. Only the binary: the library's tests
// and benches keep the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            use std::io::Write;
            // Not `eprintln!`: it panics when stderr is closed, and the exit code must stay 1.
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            // A store behind its outside record, or a cluster node behind the log's retention:
            // 2, so a supervisor can tell a start that needs the operator from a crash.
            let behind_the_log = matches!(
                error.downcast_ref::<app::cluster::ClusterError>(),
                Some(app::cluster::ClusterError::Behind { .. })
            );
            if behind_the_log
                || error
                    .downcast_ref::<app::store::record::StartRefused>()
                    .is_some()
            {
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = app::config::Config::from_serve(&args)?;
            let runtime = runtime()?;
            let served = runtime.block_on(app::app::serve(config));
            // The shutdown sequence has run; a task still blocked on a client (or a blocking
            // call) must not hold the exit past the grace the operator was promised.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            served
        }
        Command::User(UserCommand::Create(args)) => app::commands::user_create(&args),
        Command::User(UserCommand::Password(args)) => app::commands::user_password(&args),
        Command::User(UserCommand::Disable(args)) => app::commands::user_set_disabled(&args, true),
        Command::User(UserCommand::Enable(args)) => app::commands::user_set_disabled(&args, false),
        Command::Token(args) => app::commands::token(&args),
        Command::Outbox(OutboxCommand::List(args)) => app::mail::cli::list(&args),
        Command::Outbox(OutboxCommand::Retry(args)) => app::mail::cli::retry(&args),
        Command::Watch(args) => runtime()?.block_on(app::watch::run(args)),
        Command::Backup(args) => app::backup::backup(&args),
        Command::Restore(args) => app::backup::restore(&args),
        Command::Check(args) => app::backup::check(&args),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`); colours only on a
/// terminal, so a log file or journald gets plain text.
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A closed stderr (a log pipe whose reader died) must not turn a log line into a
        // panic: tracing-subscriber would report the failed write with `eprintln!`, which
        // panics, and the task that logged (say, the signal handler) would die with it.
        .log_internal_errors(false)
        .init();
}
