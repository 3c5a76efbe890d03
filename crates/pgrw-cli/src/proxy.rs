//! `pgrw proxy --config pgrw.toml` and `pgrw up`: the wire-protocol proxy in
//! the foreground, alone or in front of the local cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pgrw_cluster::{Cluster, ClusterSpec};
use pgrw_proxy::{Proxy, ProxyConfig, StartError};

use crate::CliError;
use crate::status;

/// How long to wait for the node monitor's first look at every node.
const MONITOR_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// `pgrw proxy`.
#[derive(Debug, Args)]
pub struct ProxyCommand {
    /// The configuration file (listen address, nodes, users, pools, policy).
    #[arg(long, default_value = "pgrw.toml")]
    config: PathBuf,
}

/// `pgrw up`.
#[derive(Debug, Args)]
pub struct UpCommand {
    /// The cluster directory.
    #[arg(long, default_value = ".pgrw/cluster")]
    dir: PathBuf,
    /// The proxy's port.
    #[arg(long, default_value_t = 6432)]
    port: u16,
    /// The primary's port; replica N listens on PORT+N [default: 5432, or the existing cluster's]
    #[arg(long)]
    cluster_port: Option<u16>,
    /// How many streaming replicas [default: 2, or the existing cluster's]
    #[arg(long)]
    replicas: Option<usize>,
    /// The password of `postgres`, for the cluster and for clients of the proxy
    /// [default: postgres, or the existing cluster's]
    #[arg(long)]
    password: Option<String>,
    /// Once the proxy is listening, run `pgrw demo` through it.
    #[arg(long)]
    demo: bool,
    /// Also write the configuration the proxy runs with to FILE (mode 0600: it
    /// holds the password), to serve the same with `pgrw proxy --config FILE`.
    #[arg(long, value_name = "FILE")]
    write_config: Option<PathBuf>,
    /// Milliseconds between two refreshes of the node status (tests shorten it).
    #[arg(long, hide = true, default_value_t = 1000)]
    status_refresh_ms: u64,
}

/// Runs the proxy from a configuration file until Ctrl-C or SIGTERM.
pub async fn run_proxy(command: ProxyCommand) -> Result<(), CliError> {
    let config = ProxyConfig::load(&command.config)?;
    if let Some(warning) = pgrw_proxy::limits::raise_open_file_limit(&config) {
        tracing::warn!("{warning}");
    }
    let proxy = Proxy::bind(config).await?;
    proxy.state().set_config_path(command.config.clone());
    log_started(&proxy);
    if let Err(not_ready) = proxy.ready(MONITOR_READY_TIMEOUT).await {
        tracing::warn!("{not_ready}; serving anyway");
    }
    println!("pgrw proxy listening on {}", proxy.local_addr());
    if let Some(metrics) = proxy.metrics_addr() {
        tracing::info!(%metrics, "serving /metrics and /healthz");
        println!("pgrw metrics on http://{metrics}/metrics");
    }
    let reloads = tokio::spawn(reload_on_sighup(proxy.state()));
    let drain = shutdown_notice(proxy.state().config.shutdown_timeout_ms);
    proxy
        .serve_until(
            async {
                stop_requested().await;
                tracing::info!("{drain}");
                println!("{drain}");
            },
            stop_requested(),
        )
        .await;
    reloads.abort();
    tracing::info!("pgrw proxy stopped");
    println!("pgrw proxy stopped");
    Ok(())
}

/// Reads the configuration file again on every SIGHUP, as `RELOAD` on the
/// admin console does: applied if valid, else refused with the reason
/// logged and the old configuration kept (docs/configuration.md, "Reload").
async fn reload_on_sighup(state: std::sync::Arc<pgrw_proxy::ProxyState>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP cannot be listened for: reload with RELOAD on the admin console");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        // The outcome is logged by the reload itself.
        let _ = pgrw_proxy::reload(&state);
    }
}

/// Brings up the local cluster (if not running) and serves the proxy in front of it.
pub async fn run_up(command: UpCommand) -> Result<(), CliError> {
    let existing = Cluster::open(&command.dir).ok();
    let was_running = match &existing {
        Some(cluster) => cluster.status().await.nodes.iter().all(|node| node.up),
        None => false,
    };
    let existing_state = existing.as_ref().map(|cluster| cluster.state().clone());
    let mut spec = ClusterSpec::new(&command.dir);
    if let Some(state) = &existing_state {
        spec.base_port = state.base_port;
        spec.replicas = state.replicas;
        spec.password = state.password.clone();
    }
    spec.base_port = command.cluster_port.unwrap_or(spec.base_port);
    spec.replicas = command.replicas.unwrap_or(spec.replicas);
    if let Some(password) = &command.password {
        spec.password = password.clone();
    }
    let cluster = spec.up().await?;
    let password = cluster.state().password.clone();

    let config_text = generated_config(&cluster, command.port, &password);
    let mut started = bind_generated(&config_text).await;
    if let (Ok(_), Some(path)) = (&started, &command.write_config)
        && let Err(error) = write_config(path, &config_text)
    {
        started = Err(error);
    }
    let proxy = match started {
        Ok(proxy) => proxy,
        Err(error) => {
            // Nothing may stay behind that this command started.
            if !was_running {
                if let Err(down) = cluster.down(false).await {
                    return Err(format!("{error}; stopping the cluster failed too: {down}").into());
                }
                return Err(format!("{error}; the cluster it started is stopped").into());
            }
            return Err(error);
        }
    };
    log_started(&proxy);
    if let Err(not_ready) = proxy.ready(MONITOR_READY_TIMEOUT).await {
        tracing::warn!("{not_ready}; serving anyway");
    }
    println!(
        "cluster in {}: a primary and {} streaming replica(s){}",
        cluster.dir().display(),
        cluster.state().replicas,
        if was_running {
            " (already running)"
        } else {
            ""
        }
    );
    println!("pgrw proxy listening on {}", proxy.local_addr());
    if let Some(path) = &command.write_config {
        println!(
            "configuration written to {0}: `pgrw proxy --config {0}` serves the same",
            path.display()
        );
    }
    println!(
        "connect: postgres://postgres:{password}@127.0.0.1:{}/postgres",
        proxy.local_addr().port()
    );
    println!(
        "Ctrl-C stops the proxy{}",
        if was_running { "" } else { " and the cluster" }
    );
    let demo = command.demo.then(|| {
        let url = format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres",
            proxy.local_addr().port()
        );
        // The listener is bound: the demo's connection waits in its backlog until serving starts.
        tokio::spawn(async move {
            if let Err(error) = crate::demo::run_scenario(&url).await {
                eprintln!("pgrw: demo failed: {error}");
            }
        })
    });
    let refresh = Duration::from_millis(command.status_refresh_ms.max(1));
    let (stop_status, status_stopped) = tokio::sync::oneshot::channel();
    // After the demo, if any: its lines and the status block must not interleave.
    let status = tokio::spawn(status::show_live(
        proxy.state(),
        refresh,
        demo,
        status_stopped,
    ));
    let drain = shutdown_notice(proxy.state().config.shutdown_timeout_ms);
    proxy
        .serve_until(
            async {
                stop_requested().await;
                // The block stops before anything else is printed below it.
                let _ = stop_status.send(());
                let _ = status.await;
                tracing::info!("{drain}");
                println!("{drain}");
            },
            stop_requested(),
        )
        .await;
    if !was_running {
        cluster.down(false).await?;
        tracing::info!(dir = %cluster.dir().display(), "cluster stopped");
        println!("cluster stopped");
    }
    tracing::info!("pgrw proxy stopped");
    println!("pgrw proxy stopped");
    Ok(())
}

/// The proxy `pgrw up` serves, from its generated `text`; a port in use says
/// which flag picks another.
async fn bind_generated(text: &str) -> Result<Proxy, CliError> {
    let config = ProxyConfig::from_toml("generated config", text)?;
    if let Some(warning) = pgrw_proxy::limits::raise_open_file_limit(&config) {
        tracing::warn!("{warning}");
    }
    Proxy::bind(config).await.map_err(|error| match error {
        StartError::Listen { address, source } => format!(
            "the proxy cannot listen on {address} ({source}): choose another port with --port"
        )
        .into(),
        error => error.into(),
    })
}

/// The start line: where the proxy listens, its nodes, pools and policy
/// (never a password).
fn log_started(proxy: &Proxy) {
    let config = &proxy.state().config;
    let nodes = config
        .nodes
        .iter()
        .map(|node| format!("{}={}:{}", node.name, node.host, node.port))
        .collect::<Vec<_>>()
        .join(", ");
    let policy = config.policy.policy();
    tracing::info!(
        listen = %proxy.local_addr(),
        nodes,
        pool_size = config.pool.size,
        pool_mode = ?config.pool.mode,
        balancing = %policy.balancing,
        primary_reads = %policy.primary_reads,
        consistency = %config.policy.consistency(),
        read_your_writes_wait_ms = config.policy.read_your_writes_wait_ms,
        max_lag_ms = config.policy.max_lag_ms.filter(|&limit| limit > 0),
        max_lag_bytes = config.policy.max_lag_bytes.filter(|&limit| limit > 0),
        "pgrw proxy started"
    );
}

/// The proxy config `pgrw up` serves: every node of the cluster, user
/// `postgres` with the cluster's password.
fn generated_config(cluster: &Cluster, port: u16, password: &str) -> String {
    let mut text = format!("listen = \"127.0.0.1:{port}\"\n");
    for node in cluster.nodes() {
        text.push_str(&format!(
            "[[nodes]]\nname = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\n",
            node.name, node.port
        ));
    }
    text.push_str(&format!(
        "[[users]]\nname = \"postgres\"\npassword = {}\n",
        toml_string(password)
    ));
    text
}

/// Writes `pgrw up`'s configuration to `path`, readable by its owner only.
fn write_config(path: &std::path::Path, text: &str) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let header = "# Written by `pgrw up --write-config`: the configuration it served the local\n\
                  # cluster with. `pgrw proxy --config THIS_FILE` serves the same; every key is\n\
                  # in docs/configuration.md.\n";
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(format!("{header}{text}").as_bytes()))
        .map_err(|error| format!("writing the configuration to {}: {error}", path.display()).into())
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            character if character.is_control() => {
                quoted.push_str(&format!("\\u{:04x}", character as u32))
            }
            character => quoted.push(character),
        }
    }
    quoted.push('"');
    quoted
}

/// What `pgrw` prints when a first signal starts the graceful shutdown.
fn shutdown_notice(timeout_ms: u64) -> String {
    format!(
        "pgrw proxy shutting down: new connections are refused, idle clients are closed, \
         running transactions have {timeout_ms} ms to finish (shutdown_timeout_ms); \
         a second Ctrl-C or SIGTERM stops at once"
    )
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, the signal service managers and
/// container runtimes stop a process with. The first starts the proxy's
/// graceful shutdown; a second one (listened for only from then on: the
/// future registers its handlers when first polled) stops it at once.
async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    // Without a signal handler there is no clean way to stop: run until killed.
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = terminate => {}
        () = interrupt => {}
    }
}

#[cfg(test)]
mod tests {
    use super::toml_string;

    #[test]
    fn passwords_are_quoted_for_toml() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        let password = "x\"\\\ny";
        let text = format!(
            "[[nodes]]\nname = \"p\"\nport = 5432\n[[users]]\nname = \"u\"\npassword = {}\n",
            toml_string(password)
        );
        let config = pgrw_proxy::ProxyConfig::from_toml("test", &text).unwrap();
        assert_eq!(config.users[0].password, password);
    }
}
