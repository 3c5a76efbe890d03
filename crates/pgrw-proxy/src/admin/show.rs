//! The tables `SHOW …` answers with. Column names are PgBouncer's where the
//! concept is the same (`database`, `user`, `cl_active`, `sv_idle`, …), so
//! that habits and scripts carry over; the rest say what pgrw adds.

use super::command::{COMMANDS, Show};
use super::report::{node_reports, since};
use super::table::{Kind, Table, cell, utc};
use crate::config::{AuthMethod, ProxyConfig};
use crate::server::ProxyState;

/// The table for `what`.
pub(crate) fn show(state: &ProxyState, what: Show) -> Table {
    match what {
        Show::Nodes => nodes(state),
        Show::Pools => pools(state),
        Show::Clients => clients(state),
        Show::Servers => servers(state),
        Show::Stats => stats(state),
        Show::Config => config(&state.config_now()),
        Show::Version => {
            let mut table = Table::new(&[("version", Kind::Text)]);
            table.row(vec![cell(format!("pgrw {}", env!("CARGO_PKG_VERSION")))]);
            table
        }
        Show::Help => {
            let mut table = Table::new(&[("command", Kind::Text), ("description", Kind::Text)]);
            for (command, description) in COMMANDS {
                table.row(vec![cell(command), cell(description)]);
            }
            table
        }
    }
}

fn nodes(state: &ProxyState) -> Table {
    let mut table = Table::new(&[
        ("name", Kind::Text),
        ("address", Kind::Text),
        ("role", Kind::Text),
        ("health", Kind::Text),
        ("banned_until", Kind::Text),
        ("replay_lsn", Kind::Text),
        ("lag_bytes", Kind::Int),
        ("lag_ms", Kind::Int),
        ("follows_primary", Kind::Text),
        ("reads", Kind::Int),
        ("writes", Kind::Int),
        ("other", Kind::Int),
        ("errors", Kind::Int),
        ("sv_active", Kind::Int),
        ("sv_idle", Kind::Int),
    ]);
    let stats = state.stats();
    for node in node_reports(state, &stats) {
        let banned_until = match (node.operator_banned, node.banned_until) {
            (true, _) => cell("until UNBAN"),
            (false, until) => until.map(utc),
        };
        let follows = match (&node.orphan, node.role) {
            (Some(why), _) => cell(format!("no: {why}")),
            (None, pgrw_core::route::Role::Replica) => cell("yes"),
            (None, _) => None,
        };
        table.row(vec![
            cell(&node.name),
            cell(&node.address),
            cell(node.role),
            cell(node.health_label()),
            banned_until,
            node.lsn.map(|lsn| lsn.to_string()),
            node.lag_bytes.map(|bytes| bytes.to_string()),
            node.lag_ms.map(|ms| ms.to_string()),
            follows,
            cell(node.routed.reads),
            cell(node.routed.writes),
            cell(node.routed.other),
            cell(node.errors),
            cell(node.in_use),
            cell(node.idle),
        ]);
    }
    table
}

fn pools(state: &ProxyState) -> Table {
    let mut table = Table::new(&[
        ("database", Kind::Text),
        ("user", Kind::Text),
        ("node", Kind::Text),
        ("cl_active", Kind::Int),
        ("cl_waiting", Kind::Int),
        ("sv_active", Kind::Int),
        ("sv_idle", Kind::Int),
        ("pool_size", Kind::Int),
        ("pool_mode", Kind::Text),
    ]);
    let clients = state.clients.all();
    let mode = match state.config_now().pool.mode {
        crate::config::PoolMode::Transaction => "transaction",
        crate::config::PoolMode::Session => "session",
    };
    for pool in state.pools.all() {
        let login = pool.login();
        let usage = pool.usage();
        let logged_in = clients
            .iter()
            .filter(|client| client.user == login.user && client.database == login.database)
            .count();
        table.row(vec![
            cell(&login.database),
            cell(&login.user),
            cell(&login.node_name),
            cell(logged_in),
            cell(usage.waiting),
            cell(usage.checked_out),
            cell(usage.idle),
            cell(usage.size),
            cell(mode),
        ]);
    }
    table
}

fn clients(state: &ProxyState) -> Table {
    let mut table = Table::new(&[
        ("type", Kind::Text),
        ("user", Kind::Text),
        ("database", Kind::Text),
        ("state", Kind::Text),
        ("addr", Kind::Text),
        ("port", Kind::Int),
        ("connect_time", Kind::Text),
        ("pid", Kind::Int),
        ("tls", Kind::Text),
        ("node", Kind::Text),
        ("server_pid", Kind::Int),
    ]);
    for client in state.clients.all() {
        let running = client.running_on();
        table.row(vec![
            cell("C"),
            cell(&client.user),
            cell(&client.database),
            cell(client.state()),
            client.peer.map(|peer| peer.ip().to_string()),
            client.peer.map(|peer| peer.port().to_string()),
            cell(utc(client.connected_at)),
            cell(client.process_id),
            cell(client.tls),
            running
                .as_ref()
                .and_then(|target| node_at(state, &target.host, target.port)),
            running.map(|target| target.process_id.to_string()),
        ]);
    }
    table
}

fn servers(state: &ProxyState) -> Table {
    let mut table = Table::new(&[
        ("type", Kind::Text),
        ("user", Kind::Text),
        ("database", Kind::Text),
        ("node", Kind::Text),
        ("state", Kind::Text),
        ("addr", Kind::Text),
        ("port", Kind::Int),
        ("connect_time", Kind::Text),
        ("pid", Kind::Int),
        ("client_pid", Kind::Int),
    ]);
    for pool in state.pools.all() {
        let login = pool.login();
        for (pid, age) in pool.idle_connections() {
            table.row(vec![
                cell("S"),
                cell(&login.user),
                cell(&login.database),
                cell(&login.node_name),
                cell("idle"),
                cell(&login.host),
                cell(login.port),
                cell(utc(since(age))),
                cell(pid),
                None,
            ]);
        }
    }
    for client in state.clients.all() {
        let Some(target) = client.running_on() else {
            continue;
        };
        table.row(vec![
            cell("S"),
            cell(&client.user),
            cell(&client.database),
            node_at(state, &target.host, target.port),
            cell("active"),
            cell(&target.host),
            cell(target.port),
            None,
            cell(target.process_id),
            cell(client.process_id),
        ]);
    }
    table
}

fn stats(state: &ProxyState) -> Table {
    let mut table = Table::new(&[
        ("kind", Kind::Text),
        ("name", Kind::Text),
        ("statements", Kind::Int),
        ("errors", Kind::Int),
        ("total_time_us", Kind::Int),
        ("avg_time_us", Kind::Int),
    ]);
    let stats = state.stats();
    let mut row = |kind: &str, name: &str, tally: crate::stats::TallySnapshot| {
        let average = tally.time_us.checked_div(tally.statements).unwrap_or(0);
        table.row(vec![
            cell(kind),
            cell(name),
            cell(tally.statements),
            cell(tally.errors),
            cell(tally.time_us),
            cell(average),
        ]);
    };
    for (id, node) in state.nodes.live() {
        if let Some(timing) = stats.routes.nodes.get(id.index()) {
            row("node", &node.name, timing.tally);
        }
    }
    for (reason, tally) in &stats.routes.reasons {
        row("reason", reason.label(), *tally);
    }
    table
}

/// Every key in use, passwords left out (the file is not shown as written:
/// defaults are filled in).
fn config(config: &ProxyConfig) -> Table {
    let mut table = Table::new(&[("key", Kind::Text), ("value", Kind::Text)]);
    let mut set = |key: String, value: String| table.row(vec![cell(key), cell(value)]);
    set("listen".into(), config.listen.clone());
    set("workers".into(), config.workers.to_string());
    set(
        "login_timeout_ms".into(),
        config.login_timeout_ms.to_string(),
    );
    set(
        "max_client_connections".into(),
        config.max_client_connections.to_string(),
    );
    set(
        "shutdown_timeout_ms".into(),
        config.shutdown_timeout_ms.to_string(),
    );
    for (index, node) in config.nodes.iter().enumerate() {
        set(format!("nodes[{index}].name"), node.name.clone());
        set(format!("nodes[{index}].host"), node.host.clone());
        set(format!("nodes[{index}].port"), node.port.to_string());
        set(format!("nodes[{index}].weight"), node.weight.to_string());
    }
    for (index, user) in config.users.iter().enumerate() {
        set(format!("users[{index}].name"), user.name.clone());
        let auth = match user.auth {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Trust => "trust",
        };
        set(format!("users[{index}].auth"), auth.into());
        set(format!("users[{index}].admin"), user.admin.to_string());
    }
    let pool = &config.pool;
    set("pool.size".into(), pool.size.to_string());
    set(
        "pool.mode".into(),
        format!("{:?}", pool.mode).to_lowercase(),
    );
    set(
        "pool.idle_timeout_secs".into(),
        pool.idle_timeout_secs.to_string(),
    );
    set(
        "pool.max_lifetime_secs".into(),
        pool.max_lifetime_secs.to_string(),
    );
    set(
        "pool.connect_timeout_ms".into(),
        pool.connect_timeout_ms.to_string(),
    );
    set(
        "pool.checkout_timeout_ms".into(),
        pool.checkout_timeout_ms.to_string(),
    );
    set(
        "pool.stall_timeout_ms".into(),
        pool.stall_timeout_ms.to_string(),
    );
    let policy = &config.policy;
    set(
        "policy.balancing".into(),
        snake(&format!("{:?}", policy.balancing)),
    );
    set(
        "policy.primary_reads".into(),
        snake(&format!("{:?}", policy.primary_reads)),
    );
    let limit = |value: Option<u64>| value.map_or("none".to_string(), |value| value.to_string());
    set("policy.max_lag_bytes".into(), limit(policy.max_lag_bytes));
    set("policy.max_lag_ms".into(), limit(policy.max_lag_ms));
    set(
        "policy.consistency".into(),
        snake(&format!("{:?}", policy.consistency)),
    );
    set(
        "policy.read_your_writes".into(),
        policy.read_your_writes.to_string(),
    );
    set(
        "policy.read_your_writes_wait_ms".into(),
        policy.read_your_writes_wait_ms.to_string(),
    );
    set(
        "tls.mode".into(),
        format!("{:?}", config.tls.mode()).to_lowercase(),
    );
    let path = |path: &Option<std::path::PathBuf>| {
        path.as_ref()
            .map_or("none".to_string(), |path| path.display().to_string())
    };
    set("tls.cert_file".into(), path(&config.tls.cert_file));
    set("tls.key_file".into(), path(&config.tls.key_file));
    set(
        "admin.metrics_listen".into(),
        config
            .admin
            .metrics_listen
            .clone()
            .unwrap_or_else(|| "none".into()),
    );
    table
}

/// `LeastOutstanding` → `least_outstanding`: the file's spelling of a variant.
fn snake(variant: &str) -> String {
    let mut out = String::new();
    for (index, char) in variant.chars().enumerate() {
        if char.is_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(char.to_ascii_lowercase());
    }
    out
}

/// The name of the configured node at `host:port`.
fn node_at(state: &ProxyState, host: &str, port: u16) -> Option<String> {
    state
        .config
        .nodes
        .iter()
        .find(|node| node.host == host && node.port == port)
        .map(|node| node.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_is_shown_as_the_file_spells_it() {
        assert_eq!(snake("LeastOutstanding"), "least_outstanding");
        assert_eq!(snake("WhenNoReplica"), "when_no_replica");
        assert_eq!(snake("Proxy"), "proxy");
    }

    #[test]
    fn no_password_is_shown() {
        let text = "[[nodes]]\nname = \"p\"\nport = 5432\n[[users]]\nname = \"u\"\npassword = \"hunter2\"\n";
        let config = ProxyConfig::from_toml("t.toml", text).expect("a valid config");
        let mut out = bytes::BytesMut::new();
        super::config(&config).encode(&mut out);
        let shown = String::from_utf8_lossy(&out);
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("users[0].name"));
    }
}
