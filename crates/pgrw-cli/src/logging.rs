//! The log every subcommand writes to stderr: `tracing` events of the proxy,
//! the node monitor and the CLI, filtered by `--log-level` or `RUST_LOG`, as
//! human-readable lines or JSON objects (docs/operations.md, "Logs").

use std::io::{IsTerminal, Write};

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::console;

/// The crates whose events `--log-level` lets through; everything else
/// (tokio, rustls…) only from `warn` up, unless `RUST_LOG` says otherwise.
const PGRW_TARGETS: [&str; 6] = [
    "pgrw",
    "pgrw_cli",
    "pgrw_cluster",
    "pgrw_core",
    "pgrw_monitor",
    "pgrw_proxy",
];

/// The flags every subcommand takes.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The least severe events logged to stderr: error, warn, info, debug (every
    /// routing decision) or trace [default: info; warn for `pgrw up`]. `RUST_LOG`,
    /// when set, wins.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<Level>,
    /// Log lines for people (human) or one JSON object per line (json).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

/// A `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Level {
    /// Nothing at all.
    Off,
    /// Failures only.
    Error,
    /// Also what an operator should know: bans, orphans, split brain, hung nodes.
    Warn,
    /// Also start, configuration, nodes up and unbanned, shutdown.
    Info,
    /// Also every routing decision and its reason.
    Debug,
    /// Everything.
    Trace,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

/// A `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// A line per event: time, level, target, message, fields.
    Human,
    /// A JSON object per event: `timestamp`, `level`, `message`, the fields, `target`.
    Json,
}

/// The filter `--log-level` stands for: `level` for pgrw's own crates, at most
/// `warn` for the others.
fn filter_directives(level: Level) -> String {
    let others = level.min(Level::Warn).as_str();
    let mut directives = others.to_string();
    for target in PGRW_TARGETS {
        directives.push_str(&format!(",{target}={}", level.as_str()));
    }
    directives
}

impl LogArgs {
    /// Whether log lines are JSON objects: then so is the closing error.
    pub fn json(&self) -> bool {
        self.log_format == LogFormat::Json
    }
}

/// Installs the process's log subscriber: `RUST_LOG` when set, else
/// `--log-level` (or `default_level`), onto stderr.
pub fn init(args: &LogArgs, default_level: Level) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|error| format!("RUST_LOG={directives:?} is not a log filter: {error}"))?,
        _ => EnvFilter::new(filter_directives(args.log_level.unwrap_or(default_level))),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match args.log_format {
        LogFormat::Human => tracing::subscriber::set_global_default(builder.finish()),
        LogFormat::Json => tracing::subscriber::set_global_default(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    };
    installed.map_err(|error| format!("installing the log subscriber: {error}"))
}

/// stderr, clearing `pgrw up`'s live status block off the terminal first
/// ([`console`]): the block is redrawn below the log line.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        console::before_log_line(|| std::io::stderr().lock().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().lock().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_applies_to_pgrw_and_at_most_warn_to_dependencies() {
        let debug = filter_directives(Level::Debug);
        assert!(debug.starts_with("warn,"), "{debug}");
        assert!(debug.contains("pgrw_proxy=debug"), "{debug}");
        assert!(debug.contains("pgrw_monitor=debug"), "{debug}");
        let error = filter_directives(Level::Error);
        assert!(error.starts_with("error,"), "{error}");
        assert!(EnvFilter::try_new(&debug).is_ok());
        assert!(EnvFilter::try_new(filter_directives(Level::Off)).is_ok());
    }
}
