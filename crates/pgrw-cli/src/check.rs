//! `pgrw check --config pgrw.toml`: is this configuration ready to serve?
//! It checks the file, connects to every node as the proxy would (its
//! `sslmode`, its socket directory), prints each node's role and lag, who
//! streams from whom, and where a read and a write would go now; it exits
//! non-zero, with the reasons, when the file is unusable, a node is down,
//! there is no primary or more than one, or a replica follows nothing.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pgrw_core::route::{self, Balancer, HealthPolicy, NoPrimary, Role, RouteRequest, SessionState};
use pgrw_core::sql::classify::classify;
use pgrw_core::{FunctionCatalog, Lsn};
use pgrw_monitor::{Monitor, MonitorConfig, NodeAddress};
use pgrw_proxy::ProxyConfig;

use crate::CliError;

/// `pgrw check`.
#[derive(Debug, Args)]
pub struct CheckCommand {
    /// The configuration file to check.
    #[arg(long, default_value = "pgrw.toml")]
    config: PathBuf,
    /// How long connecting to one node, and the monitor's first look at all of
    /// them, may take (milliseconds).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

/// What one node said, asked directly.
#[derive(Debug, Clone)]
struct NodeLook {
    in_recovery: bool,
    /// A primary's current LSN, a replica's replay LSN.
    lsn: Option<Lsn>,
    /// A primary's timeline (from its WAL file name); a replica's received one.
    timeline: Option<u32>,
    /// `pg_control_system()`: the same on every node of one cluster.
    system_identifier: String,
    /// A replica's WAL receiver: status and where it streams from.
    receiver: Option<Receiver>,
    /// A primary's `pg_stat_replication`: who streams from it.
    senders: Vec<Sender>,
}

#[derive(Debug, Clone)]
struct Receiver {
    status: String,
    upstream: String,
}

#[derive(Debug, Clone)]
struct Sender {
    client: String,
    state: String,
    replay_lsn: Option<Lsn>,
}

const LOOK_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text \
          ELSE pg_current_wal_lsn()::text END, \
     CASE WHEN pg_is_in_recovery() THEN receiver.received_tli::text \
          ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END, \
     (SELECT system_identifier::text FROM pg_control_system()), \
     receiver.status, \
     receiver.sender_host || ':' || receiver.sender_port \
     FROM (VALUES (1)) AS one LEFT JOIN pg_stat_wal_receiver AS receiver ON true";

const SENDERS_SQL: &str = "SELECT coalesce(host(client_addr), 'local') || ' (' || application_name || ')', \
     state, replay_lsn::text FROM pg_stat_replication ORDER BY 1";

/// Runs the check; `Err` lists every problem found.
pub async fn run(command: CheckCommand) -> Result<(), CliError> {
    let config = ProxyConfig::load(&command.config)?;
    // CA files are read at start, as the proxy does: a bad one is a bad file.
    config.node_tls()?;
    let timeout = Duration::from_millis(command.timeout_ms.max(1));
    println!(
        "{}: valid ({} node(s), {} user(s), listen {})",
        command.config.display(),
        config.nodes.len(),
        config.users.len(),
        config.listen
    );
    let addresses = config.node_addresses();
    let mut looks = Vec::new();
    for address in &addresses {
        looks.push(look_at(address, timeout).await);
    }
    let mut problems = Vec::new();
    println!("nodes:");
    for (address, look) in addresses.iter().zip(&looks) {
        println!("  {}", describe_node(address, look, &looks));
        if let Err(why) = look {
            problems.push(format!(
                "node {} ({}) is down: {why}",
                address.name,
                place(address)
            ));
        }
    }
    let primaries: Vec<usize> = looks
        .iter()
        .enumerate()
        .filter(|(_, look)| look.as_ref().is_ok_and(|look| !look.in_recovery))
        .map(|(index, _)| index)
        .collect();
    match primaries.as_slice() {
        [] => problems.push(
            "no primary: no node that answered is out of recovery; promote one \
             (pg_ctl promote, or SELECT pg_promote()) or add the primary to [[nodes]]"
                .to_string(),
        ),
        [_] => {}
        several => problems.push(format!(
            "{} nodes are primaries ({}): a split brain; writes are refused until one is \
             stopped or turned into a replica of the other",
            several.len(),
            several
                .iter()
                .map(|&index| addresses[index].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    println!("replication:");
    for &index in &primaries {
        print_senders(&addresses[index], &looks[index]);
    }
    for (index, (address, look)) in addresses.iter().zip(&looks).enumerate() {
        let Ok(look) = look else { continue };
        if !look.in_recovery {
            continue;
        }
        let primary = (primaries.len() == 1).then(|| primaries[0]);
        match follows(look, primary.and_then(|p| looks[p].as_ref().ok())) {
            Ok(()) => println!(
                "  {} follows {}",
                address.name,
                primary.map_or("?", |p| addresses[p].name.as_str())
            ),
            Err(why) => {
                println!("  {} follows nothing: {why}", address.name);
                if primaries.len() == 1 {
                    problems.push(format!(
                        "replica {} (node {index}) does not follow {}, the primary: {why}",
                        address.name, addresses[primaries[0]].name
                    ));
                }
            }
        }
    }
    print_policy(&config, addresses, timeout).await;
    if problems.is_empty() {
        println!("ok: every node answers, one primary, every replica follows it");
        return Ok(());
    }
    let mut message = format!(
        "{} problem(s) in {}:",
        problems.len(),
        command.config.display()
    );
    for problem in &problems {
        let _ = write!(message, "\n  - {problem}");
    }
    Err(message.into())
}

/// `host:port`, or the socket file.
fn place(address: &NodeAddress) -> String {
    match pgrw_monitor::tls::unix_socket_path(&address.host, address.port) {
        Some(path) => path.display().to_string(),
        None => format!("{}:{}", address.host, address.port),
    }
}

async fn look_at(address: &NodeAddress, timeout: Duration) -> Result<NodeLook, String> {
    let client = pgrw_monitor::connect(address, timeout).await?;
    let asked = async {
        let row = client.query_one(LOOK_SQL, &[]).await?;
        let text = |index: usize| row.get::<_, Option<String>>(index);
        let in_recovery: bool = row.get(0);
        let timeline = text(2).and_then(|tli| {
            if in_recovery {
                tli.parse().ok()
            } else {
                u32::from_str_radix(&tli, 16).ok()
            }
        });
        let receiver = text(4).map(|status| Receiver {
            status,
            upstream: text(5).unwrap_or_else(|| "?".to_string()),
        });
        let mut senders = Vec::new();
        if !in_recovery {
            for sender in client.query(SENDERS_SQL, &[]).await? {
                senders.push(Sender {
                    client: sender.get::<_, Option<String>>(0).unwrap_or_default(),
                    state: sender.get::<_, Option<String>>(1).unwrap_or_default(),
                    replay_lsn: sender
                        .get::<_, Option<String>>(2)
                        .and_then(|lsn| lsn.parse().ok()),
                });
            }
        }
        Ok::<_, tokio_postgres::Error>(NodeLook {
            in_recovery,
            lsn: text(1).and_then(|lsn| lsn.parse().ok()),
            timeline,
            system_identifier: text(3).unwrap_or_default(),
            receiver,
            senders,
        })
    };
    match tokio::time::timeout(timeout, asked).await {
        Ok(Ok(look)) => Ok(look),
        Ok(Err(error)) => Err(format!("asking its role: {error}")),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

fn describe_node(
    address: &NodeAddress,
    look: &Result<NodeLook, String>,
    looks: &[Result<NodeLook, String>],
) -> String {
    let look = match look {
        Ok(look) => look,
        Err(why) => return format!("{:<10} {:<22} DOWN: {why}", address.name, place(address)),
    };
    let lsn = look.lsn.map_or("?".to_string(), |lsn| lsn.to_string());
    if !look.in_recovery {
        return format!(
            "{:<10} {:<22} primary  lsn {lsn}  timeline {}  sslmode {}",
            address.name,
            place(address),
            look.timeline.map_or("?".to_string(), |tli| tli.to_string()),
            address.tls.mode
        );
    }
    // Lag in bytes behind the (one) primary.
    let primary_lsns: Vec<Lsn> = looks
        .iter()
        .filter_map(|other| other.as_ref().ok())
        .filter(|other| !other.in_recovery)
        .filter_map(|other| other.lsn)
        .collect();
    let lag = match (primary_lsns.as_slice(), look.lsn) {
        ([primary], Some(replay)) => format!("lag {} B", primary.bytes_since(replay)),
        _ => "lag ?".to_string(),
    };
    let receiver = match &look.receiver {
        Some(receiver) => format!("{} from {}", receiver.status, receiver.upstream),
        None => "no WAL receiver".to_string(),
    };
    format!(
        "{:<10} {:<22} replica  replay {lsn}  {lag}  {receiver}  sslmode {}",
        address.name,
        place(address),
        address.tls.mode
    )
}

fn print_senders(address: &NodeAddress, look: &Result<NodeLook, String>) {
    let Ok(look) = look else { return };
    if look.senders.is_empty() {
        println!("  {} streams to nobody", address.name);
    }
    for sender in &look.senders {
        let lag = match (look.lsn, sender.replay_lsn) {
            (Some(current), Some(replayed)) => {
                format!(", {} B behind", current.bytes_since(replayed))
            }
            _ => String::new(),
        };
        println!(
            "  {} → {} ({}{lag})",
            address.name, sender.client, sender.state
        );
    }
}

/// Whether a replica streams from `primary`: a WAL receiver that streams,
/// the same system, the primary's timeline (as core's `route::follows` judges).
fn follows(replica: &NodeLook, primary: Option<&NodeLook>) -> Result<(), String> {
    let Some(receiver) = &replica.receiver else {
        return Err("its WAL receiver is not running (check primary_conninfo and its log)".into());
    };
    if receiver.status != "streaming" {
        return Err(format!(
            "its WAL receiver is {:?}, not streaming, from {}",
            receiver.status, receiver.upstream
        ));
    }
    let Some(primary) = primary else {
        return Err(format!(
            "it streams from {}, and there is no one primary",
            receiver.upstream
        ));
    };
    if replica.system_identifier != primary.system_identifier {
        return Err(format!(
            "it streams from {}, a copy of another cluster (system {} vs the primary's {})",
            receiver.upstream, replica.system_identifier, primary.system_identifier
        ));
    }
    match (replica.timeline, primary.timeline) {
        (Some(replica_tli), Some(primary_tli)) if replica_tli != primary_tli => Err(format!(
            "it streams timeline {replica_tli} from {}, the primary is on timeline {primary_tli}",
            receiver.upstream
        )),
        _ => Ok(()),
    }
}

/// Where a read and a write would go now: the proxy's own monitor and
/// routing function over what it sees.
async fn print_policy(config: &ProxyConfig, addresses: Vec<NodeAddress>, timeout: Duration) {
    let policy = config.policy.policy();
    let monitor = Monitor::start(
        addresses,
        MonitorConfig {
            health: HealthPolicy::with_lag_limits_of(&policy),
            ..MonitorConfig::default()
        },
    );
    let _ = monitor.ready(timeout).await;
    let topology = monitor.topology();
    let catalog = FunctionCatalog::builtin();
    println!(
        "policy now (balancing {}, primary_reads {}, consistency {}):",
        policy.balancing,
        policy.primary_reads,
        config.policy.consistency()
    );
    for (what, sql) in [
        ("a read ", "SELECT 1"),
        ("a write", "INSERT INTO t VALUES (1)"),
    ] {
        let classification = classify(sql.as_bytes(), &catalog);
        let request = RouteRequest::new(classification.class, classification.hint, monitor.now());
        let decided = route::route(
            &request,
            &SessionState::new(),
            &topology,
            &policy,
            &mut Balancer::with_seed(0),
        );
        println!("  {what} ({sql}) → {}", decided.explain(&topology));
    }
    if let Err(NoPrimary::Ambiguous(..)) = topology.writable_primary() {
        println!("  (the monitor sees two primaries: it refuses writes)");
    }
    for (_, node) in topology.iter() {
        if node.role == Role::Replica
            && let Some(orphan) = node.orphan
        {
            println!("  {} gets no reads: {orphan}", node.name);
        }
    }
    monitor.shutdown();
}
