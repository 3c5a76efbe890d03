//! Prometheus metrics and a health check over a minimal HTTP/1.1 listener
//! (`[admin] metrics_listen`): `GET /metrics` answers in the text exposition
//! format 0.0.4, `GET /healthz` with 200 while a primary is known and the
//! proxy serves, 503 and the reason otherwise. One request per connection;
//! no web framework: a scraper or a load balancer needs no more.
//!
//! Every name is `pgrw_…` and documented in docs/operations.md (Monitoring).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use pgrw_core::route::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::admin::report::node_reports;
use crate::server::ProxyState;
use crate::shutdown::Phase;
use crate::stats::LATENCY_BUCKETS_US;

/// The most a request may take to arrive, and its largest size.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_LIMIT: usize = 8 * 1024;

/// Serves `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, state: Arc<ProxyState>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, state.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Reads one request and answers it; a slow or oversized one is dropped.
async fn answer(mut stream: TcpStream, state: Arc<ProxyState>) {
    let mut request = Vec::with_capacity(512);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|window| window == b"\r\n\r\n") {
            let read = stream.read(&mut buffer).await.ok()?;
            if read == 0 || request.len() + read > REQUEST_LIMIT {
                return None;
            }
            request.extend_from_slice(&buffer[..read]);
        }
        Some(())
    })
    .await;
    if !matches!(read, Ok(Some(()))) {
        return;
    }
    let line = request
        .split(|&byte| byte == b'\r')
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let mut words = line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(&state),
        ),
        ("GET", "/healthz") => match health(&state) {
            Ok(body) => ("200 OK", "text/plain; charset=utf-8", body),
            Err(body) => ("503 Service Unavailable", "text/plain; charset=utf-8", body),
        },
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "pgrw serves /metrics and /healthz\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    if method != "HEAD" {
        let _ = stream.write_all(body.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

/// `Ok` (200) while a primary is known and the proxy serves; `Err` (503)
/// with the reason otherwise.
pub(crate) fn health(state: &ProxyState) -> Result<String, String> {
    if state.shutdown.watch().phase() != Phase::Serving {
        return Err("unavailable: pgrw is shutting down\n".to_string());
    }
    let topology = state.topology();
    match topology.writable_primary() {
        Ok(primary) => {
            let name = topology.node(primary).map_or("?", |node| &*node.name);
            Ok(format!("ok: primary {name}\n"))
        }
        Err(why) => Err(format!("unavailable: no usable primary ({why:?})\n")),
    }
}

/// Every metric, in the text exposition format.
pub(crate) fn render(state: &ProxyState) -> String {
    let stats = state.stats();
    let nodes = node_reports(state, &stats);
    let mut out = Metrics(String::with_capacity(8 * 1024));

    out.help(
        "pgrw_node_up",
        "gauge",
        "1 when the node can be routed to (up, not banned), else 0",
    );
    for node in &nodes {
        let up = node.health == pgrw_core::route::Health::Up;
        out.sample("pgrw_node_up", &[("node", &node.name)], u64::from(up));
    }
    out.help(
        "pgrw_node_banned",
        "gauge",
        "1 while the node is banned (by its probes or by an operator)",
    );
    for node in &nodes {
        let banned = matches!(node.health, pgrw_core::route::Health::Banned { .. });
        out.sample(
            "pgrw_node_banned",
            &[("node", &node.name)],
            u64::from(banned),
        );
    }
    out.help(
        "pgrw_node_operator_banned",
        "gauge",
        "1 while an operator's BAN holds the node",
    );
    for node in &nodes {
        out.sample(
            "pgrw_node_operator_banned",
            &[("node", &node.name)],
            u64::from(node.operator_banned),
        );
    }
    out.help(
        "pgrw_node_role",
        "gauge",
        "1 for the node's current role (primary, replica, unknown)",
    );
    for node in &nodes {
        for role in [Role::Primary, Role::Replica, Role::Unknown] {
            let role_name = role.to_string();
            let value = u64::from(node.role == role);
            out.sample(
                "pgrw_node_role",
                &[("node", &node.name), ("role", &role_name)],
                value,
            );
        }
    }
    out.help(
        "pgrw_node_lag_bytes",
        "gauge",
        "WAL bytes a replica is behind the primary (absent when unknown)",
    );
    for node in &nodes {
        if let Some(bytes) = node.lag_bytes {
            out.sample("pgrw_node_lag_bytes", &[("node", &node.name)], bytes);
        }
    }
    out.help(
        "pgrw_node_lag_seconds",
        "gauge",
        "how much older a replica's data is than the primary's (absent when unknown)",
    );
    for node in &nodes {
        if let Some(millis) = node.lag_ms {
            out.float(
                "pgrw_node_lag_seconds",
                &[("node", &node.name)],
                millis as f64 / 1000.0,
            );
        }
    }
    out.help(
        "pgrw_pool_connections",
        "gauge",
        "backend connections to the node, over all pools, by state (in_use, idle)",
    );
    for node in &nodes {
        out.sample(
            "pgrw_pool_connections",
            &[("node", &node.name), ("state", "in_use")],
            node.in_use,
        );
        out.sample(
            "pgrw_pool_connections",
            &[("node", &node.name), ("state", "idle")],
            node.idle,
        );
    }
    out.help(
        "pgrw_statements_routed_total",
        "counter",
        "units of work routed to the node, by kind (read, write, other)",
    );
    for node in &nodes {
        for (kind, count) in [
            ("read", node.routed.reads),
            ("write", node.routed.writes),
            ("other", node.routed.other),
        ] {
            out.sample(
                "pgrw_statements_routed_total",
                &[("node", &node.name), ("kind", kind)],
                count,
            );
        }
    }
    out.help(
        "pgrw_node_errors_total",
        "counter",
        "units on the node answered with an error or lost, and statements given up on as hung",
    );
    for node in &nodes {
        out.sample(
            "pgrw_node_errors_total",
            &[("node", &node.name)],
            node.errors,
        );
    }
    out.help(
        "pgrw_statement_duration_seconds",
        "histogram",
        "time of a unit of work on the node, from checkout to ReadyForQuery",
    );
    for node in &nodes {
        let Some(timing) = stats.routes.nodes.get(node.id.index()) else {
            continue;
        };
        for (bound, count) in LATENCY_BUCKETS_US.iter().zip(&timing.cumulative_buckets) {
            let le = format!("{}", *bound as f64 / 1_000_000.0);
            out.sample(
                "pgrw_statement_duration_seconds_bucket",
                &[("node", &node.name), ("le", &le)],
                *count,
            );
        }
        let all = timing.cumulative_buckets.last().copied().unwrap_or(0);
        out.sample(
            "pgrw_statement_duration_seconds_bucket",
            &[("node", &node.name), ("le", "+Inf")],
            all,
        );
        out.float(
            "pgrw_statement_duration_seconds_sum",
            &[("node", &node.name)],
            timing.tally.time_us as f64 / 1_000_000.0,
        );
        out.sample(
            "pgrw_statement_duration_seconds_count",
            &[("node", &node.name)],
            timing.tally.statements,
        );
    }
    out.help(
        "pgrw_route_reason_total",
        "counter",
        "units of work by the rule that routed them",
    );
    for (reason, tally) in &stats.routes.reasons {
        out.sample(
            "pgrw_route_reason_total",
            &[("reason", reason.label())],
            tally.statements,
        );
    }
    out.help(
        "pgrw_route_reason_errors_total",
        "counter",
        "units answered with an error, by the rule that routed them",
    );
    for (reason, tally) in &stats.routes.reasons {
        out.sample(
            "pgrw_route_reason_errors_total",
            &[("reason", reason.label())],
            tally.errors,
        );
    }
    out.help(
        "pgrw_stale_avoidance_total",
        "counter",
        "reads that had a position to see: replica_served, waited_then_replica, primary_fallback",
    );
    for (outcome, count) in &stats.routes.stale {
        out.sample(
            "pgrw_stale_avoidance_total",
            &[("outcome", outcome.label())],
            *count,
        );
    }
    out.help(
        "pgrw_reads_rerun_total",
        "counter",
        "reads a replica refused, run again on the primary, by reason",
    );
    for (reason, count) in [
        ("read_only_transaction", stats.reruns.read_only_transaction),
        ("recovery_relation", stats.reruns.recovery_relation),
        ("recovery_conflict", stats.reruns.recovery_conflict),
    ] {
        out.sample("pgrw_reads_rerun_total", &[("reason", reason)], count);
    }
    out.help(
        "pgrw_client_connections",
        "gauge",
        "client connections open now",
    );
    out.sample("pgrw_client_connections", &[], stats.connections_open);
    out.help(
        "pgrw_client_connections_total",
        "counter",
        "client connections accepted since the proxy started",
    );
    out.sample(
        "pgrw_client_connections_total",
        &[],
        stats.connections_total,
    );
    out.help(
        "pgrw_statements_abandoned_total",
        "counter",
        "statements cancelled because their client left",
    );
    out.sample("pgrw_statements_abandoned_total", &[], stats.abandoned);
    out.help(
        "pgrw_paused",
        "gauge",
        "1 while PAUSE holds new transactions",
    );
    out.sample("pgrw_paused", &[], u64::from(state.pause.is_paused()));
    out.help(
        "pgrw_primary_known",
        "gauge",
        "1 when exactly one usable primary is known (writes can be served)",
    );
    out.sample(
        "pgrw_primary_known",
        &[],
        u64::from(state.topology().writable_primary().is_ok()),
    );
    out.0
}

/// The text being written.
struct Metrics(String);

impl Metrics {
    fn help(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.labels(name, labels);
        let _ = writeln!(self.0, " {value}");
    }

    fn float(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.labels(name, labels);
        let _ = writeln!(self.0, " {value}");
    }

    fn labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.0.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.0.push('{');
        for (index, (label, value)) in labels.iter().enumerate() {
            if index > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "{label}=\"{}\"", escape(value));
        }
        self.0.push('}');
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format asks.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }

    #[test]
    fn a_sample_is_written_with_its_labels() {
        let mut metrics = Metrics(String::new());
        metrics.sample("pgrw_x", &[("node", "p"), ("kind", "read")], 3);
        metrics.sample("pgrw_y", &[], 0);
        metrics.float("pgrw_z", &[("node", "p")], 0.25);
        assert_eq!(
            metrics.0,
            "pgrw_x{node=\"p\",kind=\"read\"} 3\npgrw_y 0\npgrw_z{node=\"p\"} 0.25\n"
        );
    }
}
