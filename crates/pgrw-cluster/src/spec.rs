//! Creating a cluster: initdb, replication slots, base backups, streaming.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::binaries::PgBinaries;
use crate::cluster::{Cluster, READY_TIMEOUT, stop_immediately};
use crate::connection::{connect, sql_error};
use crate::error::{ClusterError, Result};
use crate::layout::{ClusterLayout, ClusterState, NodeLayout};
use crate::ports;
use crate::programs::PgPrograms;
use crate::server_user::ServerUser;

/// What cluster to bring up, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// The cluster directory (state, data directories, logs).
    pub dir: PathBuf,
    /// The primary's port; replica `i` gets `base_port + i`.
    pub base_port: u16,
    /// How many streaming replicas.
    pub replicas: usize,
    /// The password of the `postgres` role.
    pub password: String,
    /// The PostgreSQL binary directory; found automatically when `None`.
    pub pg_bin: Option<PathBuf>,
}

impl ClusterSpec {
    /// The default cluster in `dir`: port 5432, 2 replicas, password `postgres`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ClusterSpec {
            dir: dir.into(),
            base_port: 5432,
            replicas: 2,
            password: "postgres".to_string(),
            pg_bin: None,
        }
    }

    /// Brings the cluster up and returns once every replica streams.
    ///
    /// On a running cluster this changes nothing; on a stopped one it starts the
    /// nodes. A new cluster checks all its ports before creating anything, and
    /// if creation fails midway it stops what it started and removes what it
    /// created, keeping only the server logs the error points to.
    pub async fn up(&self) -> Result<Cluster> {
        let layout = ClusterLayout::new(&self.dir);
        if let Some(existing) = layout.read_state()? {
            self.ensure_matches(&existing)?;
            let cluster = Cluster::with_state(layout, existing)?;
            cluster.start_all().await?;
            return Ok(cluster);
        }
        let last_port = self.base_port as usize + self.replicas;
        if self.base_port == 0 || last_port > u16::MAX as usize {
            return Err(ClusterError::InvalidSpec(format!(
                "ports {}..={last_port} are not all valid TCP ports: choose another --port",
                self.base_port
            )));
        }
        ensure_empty_or_absent(layout.dir())?;
        let binaries = PgBinaries::locate(self.pg_bin.as_deref())?;
        let user = ServerUser::detect()?;
        let state = ClusterState {
            base_port: self.base_port,
            replicas: self.replicas,
            pg_bin: binaries.dir().to_path_buf(),
            password: self.password.clone(),
        };
        ports::ensure_free(&layout.nodes(&state))?;

        let dir = layout.dir().to_path_buf();
        let created_dir = dir
            .ancestors()
            .take_while(|ancestor| !ancestor.exists())
            .last()
            .map(Path::to_path_buf);
        std::fs::create_dir_all(&dir)
            .map_err(|error| ClusterError::io(format!("creating {}", dir.display()), error))?;
        let cluster = Cluster {
            programs: PgPrograms::new(binaries, user, &dir),
            layout,
            state,
        };
        match create(&cluster).await {
            Ok(()) => Ok(cluster),
            Err(error) => {
                undo_create(&cluster, created_dir).await;
                Err(error)
            }
        }
    }

    fn ensure_matches(&self, existing: &ClusterState) -> Result<()> {
        if existing.base_port == self.base_port && existing.replicas == self.replicas {
            return Ok(());
        }
        Err(ClusterError::SpecMismatch {
            dir: self.dir.clone(),
            existing: format!(
                "port {} and {} replicas",
                existing.base_port, existing.replicas
            ),
            requested: format!("port {} and {} replicas", self.base_port, self.replicas),
        })
    }
}

/// A new cluster only goes where it cannot clobber (or, on failure, delete) anything.
fn ensure_empty_or_absent(dir: &Path) -> Result<()> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(ClusterError::io(
                format!("reading {}", dir.display()),
                error,
            ));
        }
    };
    if entries.next().is_none() {
        return Ok(());
    }
    Err(ClusterError::InvalidSpec(format!(
        "{} is not empty and holds no pgrw cluster (no cluster.json): choose a new or empty directory",
        dir.display()
    )))
}

async fn create(cluster: &Cluster) -> Result<()> {
    let layout = &cluster.layout;
    let user = cluster.programs.user();
    user.ensure_reachable(layout.dir())?;
    for dir in [layout.data_root(), layout.log_root()] {
        std::fs::create_dir(&dir)
            .map_err(|error| ClusterError::io(format!("creating {}", dir.display()), error))?;
        user.own(&dir)?;
    }
    user.own(layout.dir())?;
    layout.write_state(&cluster.state)?;

    let nodes = cluster.nodes();
    let (primary, replicas) = nodes.split_first().expect("a cluster always has a primary");
    init_primary(cluster, primary).await?;
    cluster.programs.start(primary).await?;

    let client = connect(primary, &cluster.state.password).await?;
    for replica in replicas {
        client
            .execute(
                // Reserving WAL now keeps every replica's start point while the
                // other base backups checkpoint and recycle segments.
                "SELECT pg_create_physical_replication_slot($1, true)",
                &[&replica.name],
            )
            .await
            .map_err(|source| sql_error(primary, "creating a replication slot", source))?;
    }
    // The replicas are copied and started side by side; every one is waited
    // for, so that no pg_basebackup outlives a failure and its cleanup.
    let mut creations = tokio::task::JoinSet::new();
    for replica in replicas {
        let (cluster, replica, primary) = (cluster.clone(), replica.clone(), primary.clone());
        creations.spawn(async move { create_replica(&cluster, &replica, &primary).await });
    }
    let mut first_error = None;
    while let Some(outcome) = creations.join_next().await {
        let outcome = outcome.unwrap_or_else(|panic| {
            Err(ClusterError::io(
                "creating a replica",
                std::io::Error::other(panic.to_string()),
            ))
        });
        if let Err(error) = outcome {
            first_error.get_or_insert(error);
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    cluster.wait_until_streaming(READY_TIMEOUT).await
}

async fn create_replica(
    cluster: &Cluster,
    replica: &NodeLayout,
    primary: &NodeLayout,
) -> Result<()> {
    let password = &cluster.state.password;
    cluster
        .programs
        .basebackup(replica, primary, password)
        .await?;
    let port = format!("port = {}\n", replica.port);
    append(&replica.data_dir.join("postgresql.conf"), &port)?;
    cluster.programs.start(replica).await
}

async fn init_primary(cluster: &Cluster, primary: &NodeLayout) -> Result<()> {
    let password_file = cluster.layout.dir().join(".initdb-password");
    let write_password = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&password_file)?;
        file.write_all(cluster.state.password.as_bytes())
    };
    write_password()
        .map_err(|error| ClusterError::io(format!("writing {}", password_file.display()), error))?;
    let initialised = match cluster.programs.user().own(&password_file) {
        Ok(()) => cluster.programs.initdb(primary, &password_file).await,
        Err(error) => Err(error),
    };
    let _ = std::fs::remove_file(&password_file);
    initialised?;
    let senders = cluster.state.replicas + 4;
    append(
        &primary.data_dir.join("postgresql.conf"),
        &server_settings(primary.port, senders),
    )?;
    std::fs::write(primary.data_dir.join("pg_hba.conf"), HBA_RULES).map_err(|error| {
        ClusterError::io(format!("writing pg_hba.conf of {}", primary.name), error)
    })
}

/// Settings appended to the primary's postgresql.conf; replicas inherit them
/// through the base backup and only override the port.
fn server_settings(port: u16, senders: usize) -> String {
    format!(
        "\n# Added by `pgrw cluster up`: a disposable local cluster.\n\
         listen_addresses = '127.0.0.1'\n\
         port = {port}\n\
         unix_socket_directories = ''\n\
         max_connections = 200\n\
         shared_buffers = 32MB\n\
         wal_level = replica\n\
         max_wal_senders = {senders}\n\
         max_replication_slots = {senders}\n\
         hot_standby = on\n\
         hot_standby_feedback = on\n\
         wal_receiver_status_interval = 1s\n\
         # Reconnect quickly after a fault: these clusters exist to inject them.\n\
         wal_retrieve_retry_interval = 250ms\n\
         # No durability across OS crashes: the cluster is for development and tests.\n\
         fsync = off\n\
         log_line_prefix = '%m [%p] '\n"
    )
}

/// Password (scram-sha-256) logins over loopback TCP, for sessions and replication.
const HBA_RULES: &str = "\
# Written by `pgrw cluster up`.
# TYPE  DATABASE     USER  ADDRESS       METHOD
host    all          all   127.0.0.1/32  scram-sha-256
host    all          all   ::1/128       scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
host    replication  all   ::1/128       scram-sha-256
";

fn append(path: &Path, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|error| ClusterError::io(format!("opening {}", path.display()), error))?;
    file.write_all(text.as_bytes())
        .map_err(|error| ClusterError::io(format!("writing {}", path.display()), error))
}

/// Stops what a failed `up` started and removes what it created, except the
/// server logs (the error points to them). When no log was written, the
/// directories this call created go too, up to `created_dir`, the topmost.
async fn undo_create(cluster: &Cluster, created_dir: Option<PathBuf>) {
    for node in cluster.nodes().iter().rev() {
        stop_immediately(node).await;
    }
    let layout = &cluster.layout;
    let _ = std::fs::remove_dir_all(layout.data_root());
    let _ = std::fs::remove_file(layout.state_file());
    let logs_empty = std::fs::read_dir(layout.log_root())
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(true);
    if logs_empty {
        let _ = std::fs::remove_dir(layout.log_root());
        if let Some(topmost) = created_dir {
            // Only empty directories go: this call created them and put nothing else there.
            for created in layout.dir().ancestors() {
                if std::fs::remove_dir(created).is_err() || created == topmost {
                    break;
                }
            }
        }
    }
}
