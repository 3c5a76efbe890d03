//! `pgrw`: the command-line face of pgrw.
//!
//! Each subcommand lives in its own module; this file only parses the command
//! line, runs the chosen subcommand and turns an error into one line on stderr
//! and a non-zero exit code.

mod check;
mod cluster;
mod console;
mod demo;
mod logging;
mod proxy;
mod route;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// PostgreSQL read/write splitting: writes to the primary, reads to replicas.
#[derive(Debug, Parser)]
#[command(name = "pgrw", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: logging::LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local primary with streaming replicas, and inject faults into it.
    Cluster(cluster::ClusterCommand),
    /// Print where a statement would run (primary or replica), and why.
    Route(route::RouteCommand),
    /// Serve the wire-protocol proxy: reads to replicas, writes to the primary.
    Proxy(proxy::ProxyCommand),
    /// Start the local cluster (if not running) and the proxy in front of it.
    Up(proxy::UpCommand),
    /// Check a configuration: the file, every node's role and lag, who follows whom,
    /// where reads and writes would go; non-zero exit when something is wrong.
    Check(check::CheckCommand),
    /// Run the origin's User scenario through the proxy, showing where each statement ran.
    Demo(demo::DemoCommand),
}

/// The error every subcommand returns: its `Display` is the whole message.
type CliError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `pgrw up` draws a live status block: info lines would repeat what it
    // prints; warnings (a node banned, a split brain) are what it cannot show.
    let default_level = match cli.command {
        Command::Up(_) => logging::Level::Warn,
        _ => logging::Level::Info,
    };
    if let Err(error) = logging::init(&cli.log, default_level) {
        return fail(&error);
    }
    let json_log = cli.log.json();
    // One thread, as pgbouncer: a proxy's work per message is a few system
    // calls, and handing sockets between worker threads cost more in wakeups
    // than a second thread gave (docs/benchmarks.md). `workers = N` adds
    // N - 1 threads, each a runtime like this one with its own listener,
    // started by the proxy itself (pgrw_proxy's `workers` module); this
    // thread is worker 0.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("starting the async runtime: {error}")),
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Cluster(command) => cluster::run(command).await,
            Command::Route(command) => route::run(command).await,
            Command::Proxy(command) => proxy::run_proxy(command).await,
            Command::Up(command) => proxy::run_up(command).await,
            Command::Demo(command) => demo::run(command).await,
            Command::Check(command) => check::run(command).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // A log shipper reading JSON lines gets the reason as one more.
        Err(error) if json_log => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
        Err(error) => fail(&error.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("pgrw: error: {message}");
    ExitCode::FAILURE
}
