//! `pgrw cluster …`: a local primary with streaming replicas, and fault controls.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use pgrw_cluster::{Cluster, ClusterSpec, ClusterStatus, NodeStatus, Role};

use crate::CliError;

/// `pgrw cluster <action>`.
#[derive(Debug, Args)]
pub struct ClusterCommand {
    #[command(subcommand)]
    action: ClusterAction,
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// Create and start a primary and its replicas (or start a stopped cluster); waits until they stream.
    ///
    /// The cluster is disposable, for development and tests: fsync is off.
    Up(UpArgs),
    /// Show each node: up/down, role, LSN, replication lag.
    Status {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON for machines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop every node.
    Down {
        #[command(flatten)]
        dir: DirArg,
        /// Also delete the cluster directory (data and logs).
        #[arg(long)]
        purge: bool,
    },
    /// Stop a node (fast shutdown).
    Stop(NodeArgs),
    /// Start a stopped or killed node.
    Start(NodeArgs),
    /// Kill a node's postmaster with SIGKILL, like a crash.
    Kill(NodeArgs),
    /// Freeze a node (SIGSTOP to all its processes): it keeps its connections but answers nothing.
    Freeze(NodeArgs),
    /// Let a frozen node run again (SIGCONT).
    Thaw(NodeArgs),
    /// Pause WAL replay on a replica: its lag grows while the primary takes writes.
    PauseReplay(NodeArgs),
    /// Resume WAL replay on a replica.
    ResumeReplay(NodeArgs),
    /// Promote a replica to a primary.
    Promote(NodeArgs),
}

#[derive(Debug, Args)]
struct DirArg {
    /// The cluster directory.
    #[arg(long, default_value = ".pgrw/cluster")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct UpArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The primary's port; replica N listens on PORT+N [default: 5432, or the existing cluster's]
    #[arg(long)]
    port: Option<u16>,
    /// How many streaming replicas [default: 2, or the existing cluster's]
    #[arg(long)]
    replicas: Option<usize>,
    /// The password of the `postgres` role (for a new cluster).
    #[arg(long, default_value = "postgres")]
    password: String,
    /// The directory holding initdb, pg_ctl, pg_basebackup and postgres [default: $PGRW_PG_BIN, pg_config --bindir, …]
    #[arg(long)]
    pg_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// The node: primary, replica1, replica2, …
    node: String,
    #[command(flatten)]
    dir: DirArg,
}

/// Runs one `pgrw cluster` action.
pub async fn run(command: ClusterCommand) -> Result<(), CliError> {
    match command.action {
        ClusterAction::Up(args) => up(args).await,
        ClusterAction::Status { dir, json } => {
            let status = Cluster::open(&dir.dir)?.status().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", render_table(&status));
            }
            Ok(())
        }
        ClusterAction::Down { dir, purge } => {
            Cluster::open(&dir.dir)?.down(purge).await?;
            let what = if purge {
                "stopped and deleted"
            } else {
                "stopped"
            };
            println!("cluster in {} {what}", dir.dir.display());
            Ok(())
        }
        ClusterAction::Stop(args) => on_node(args, "stopped", async |c, n| c.stop(n).await).await,
        ClusterAction::Start(args) => on_node(args, "started", async |c, n| c.start(n).await).await,
        ClusterAction::Kill(args) => {
            on_node(args, "killed (SIGKILL)", async |c, n| c.kill(n).await).await
        }
        ClusterAction::Freeze(args) => {
            on_node(args, "frozen (SIGSTOP)", async |c, n| c.freeze(n).await).await
        }
        ClusterAction::Thaw(args) => {
            on_node(args, "thawed (SIGCONT)", async |c, n| c.thaw(n).await).await
        }
        ClusterAction::PauseReplay(args) => {
            on_node(args, "replay paused", async |c, n| c.pause_replay(n).await).await
        }
        ClusterAction::ResumeReplay(args) => {
            on_node(args, "replay resumed", async |c, n| {
                c.resume_replay(n).await
            })
            .await
        }
        ClusterAction::Promote(args) => {
            on_node(args, "promoted", async |c, n| c.promote(n).await).await
        }
    }
}

async fn up(args: UpArgs) -> Result<(), CliError> {
    let mut spec = ClusterSpec::new(&args.dir.dir);
    // An existing cluster keeps its shape unless the caller explicitly asks for another.
    let existing = Cluster::open(&args.dir.dir)
        .ok()
        .map(|cluster| cluster.state().clone());
    spec.base_port = args
        .port
        .or(existing.as_ref().map(|state| state.base_port))
        .unwrap_or(spec.base_port);
    spec.replicas = args
        .replicas
        .or(existing.as_ref().map(|state| state.replicas))
        .unwrap_or(spec.replicas);
    spec.password = args.password;
    spec.pg_bin = args.pg_bin;
    let cluster = spec.up().await?;
    let status = cluster.status().await;
    let verb = if existing.is_some() {
        "is up"
    } else {
        "created"
    };
    println!(
        "cluster in {} {verb}: a primary and {} streaming replica(s)\n",
        cluster.dir().display(),
        cluster.state().replicas
    );
    print!("{}", render_table(&status));
    println!(
        "\nconnect: PGPASSWORD=<password> psql -h 127.0.0.1 -p {} -U postgres",
        cluster.state().base_port
    );
    Ok(())
}

async fn on_node(
    args: NodeArgs,
    done: &str,
    action: impl AsyncFnOnce(&Cluster, &str) -> pgrw_cluster::Result<()>,
) -> Result<(), CliError> {
    let cluster = Cluster::open(&args.dir.dir)?;
    action(&cluster, &args.node).await?;
    println!("{}: {done}", args.node);
    Ok(())
}

const HEADERS: [&str; 9] = [
    "NODE",
    "PORT",
    "STATE",
    "ROLE",
    "LSN",
    "REPLICATION",
    "PAUSED",
    "LAG BYTES",
    "LAG SECONDS",
];

/// The status as an aligned table, with a note under it for each node that is down.
fn render_table(status: &ClusterStatus) -> String {
    let rows: Vec<[String; 9]> = status.nodes.iter().map(row).collect();
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].len())
                .chain([HEADERS[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut table = line(&HEADERS);
    for row in &rows {
        table.push_str(&line(&row.each_ref().map(String::as_str)));
    }
    for node in status.nodes.iter().filter(|node| !node.up) {
        let log = node.log_file.display().to_string();
        let reason = node.error.as_deref().unwrap_or("not answering");
        table.push_str(&format!("\n{} is down: {reason}\n", node.name));
        if !reason.contains(&log) {
            table.push_str(&format!("  server log: {log}\n"));
        }
    }
    table
}

fn row(node: &NodeStatus) -> [String; 9] {
    let dash = || "-".to_string();
    let (role, lsn) = match node.role {
        Some(Role::Primary) => ("primary", node.current_lsn),
        Some(Role::Replica) => ("replica", node.replay_lsn),
        None => ("-", None),
    };
    [
        node.name.clone(),
        node.port.to_string(),
        (if node.up { "up" } else { "down" }).to_string(),
        role.to_string(),
        lsn.map(|lsn| lsn.to_string()).unwrap_or_else(dash),
        node.replication.clone().unwrap_or_else(dash),
        node.replay_paused
            .map(|paused| if paused { "yes" } else { "no" }.to_string())
            .unwrap_or_else(dash),
        node.lag_bytes
            .map(|bytes| bytes.to_string())
            .unwrap_or_else(dash),
        node.lag_seconds
            .map(|seconds| format!("{seconds:.1}"))
            .unwrap_or_else(dash),
    ]
}
