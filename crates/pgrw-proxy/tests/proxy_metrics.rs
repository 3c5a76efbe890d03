//! `[admin] metrics_listen`: `/metrics` scraped and parsed while statements
//! run (its counters grow), and `/healthz` answering 200 with a primary and
//! 503 once the primary is stopped.

#[path = "support/admin_console.rs"]
mod admin_console;
#[path = "support/proxy_cluster.rs"]
mod proxy_cluster;

use std::time::Duration;

use admin_console::{http_get, samples};
use pgrw_cluster::testing::wait_until;
use proxy_cluster::ProxiedCluster;

/// Bounds every wait in these tests; far above what each should take.
const DEADLINE: Duration = Duration::from_secs(30);

const METRICS: &str = "[admin]\nmetrics_listen = \"127.0.0.1:0\"";

#[tokio::test]
async fn metrics_are_scraped_while_statements_run_and_their_counters_grow() {
    let proxied = ProxiedCluster::start(1, METRICS).await;
    let address = proxied.proxy.metrics_addr().expect("a metrics listener");
    let app = proxied.connect().await;
    let running = tokio::spawn(async move {
        for _ in 0..200 {
            app.simple_query("SELECT 1").await.expect("a read");
        }
        app
    });

    let (status, first) = http_get(address, "/metrics").await;
    assert_eq!(status, 200);
    let first = samples(&first);
    assert_eq!(first.get("pgrw_node_up{node=\"primary\"}"), Some(&1.0));
    assert_eq!(
        first.get("pgrw_node_role{node=\"replica1\",role=\"replica\"}"),
        Some(&1.0)
    );
    assert!(first.contains_key("pgrw_client_connections"));
    assert!(first.contains_key("pgrw_stale_avoidance_total{outcome=\"primary_fallback\"}"));

    let app = tokio::time::timeout(DEADLINE, running)
        .await
        .expect("the reads finish")
        .expect("their task");
    let routed = |samples: &std::collections::HashMap<String, f64>| {
        ["primary", "replica1"]
            .iter()
            .map(|node| {
                samples
                    .get(&format!(
                        "pgrw_statements_routed_total{{node=\"{node}\",kind=\"read\"}}"
                    ))
                    .copied()
                    .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    let (_, second) = http_get(address, "/metrics").await;
    let second = samples(&second);
    assert!(
        routed(&second) >= routed(&first) + 1.0,
        "reads were counted"
    );
    assert!(routed(&second) >= 200.0);
    let histogram_count = ["primary", "replica1"]
        .iter()
        .map(|node| second[&format!("pgrw_statement_duration_seconds_count{{node=\"{node}\"}}")])
        .sum::<f64>();
    assert!(histogram_count >= 200.0, "every read was timed");
    let inf = second["pgrw_statement_duration_seconds_bucket{node=\"replica1\",le=\"+Inf\"}"];
    assert_eq!(
        inf,
        second["pgrw_statement_duration_seconds_count{node=\"replica1\"}"]
    );
    assert!(second["pgrw_route_reason_total{reason=\"read\"}"] >= 1.0);
    drop(app);
}

#[tokio::test]
async fn healthz_is_200_with_a_primary_and_503_once_the_primary_is_stopped() {
    let proxied = ProxiedCluster::start(1, METRICS).await;
    let address = proxied.proxy.metrics_addr().expect("a metrics listener");
    let (status, body) = http_get(address, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok: primary primary\n"));
    assert_eq!(http_get(address, "/elsewhere").await.0, 404);

    proxied.cluster.stop("primary").await;
    wait_until(DEADLINE, "/healthz says 503", async || {
        http_get(address, "/healthz").await.0 == 503
    })
    .await;
    let (_, body) = http_get(address, "/healthz").await;
    assert!(body.starts_with("unavailable: no usable primary"), "{body}");
}

#[tokio::test]
async fn every_metric_the_grafana_dashboard_uses_is_served() {
    let proxied = ProxiedCluster::start(0, METRICS).await;
    let address = proxied.proxy.metrics_addr().expect("a metrics listener");
    let (_, text) = http_get(address, "/metrics").await;
    let served: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .collect();
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana-pgrw.json"
    ))
    .expect("deploy/grafana-pgrw.json");
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    let mut used = 0;
    for (start, _) in dashboard.match_indices("pgrw_") {
        let name: String = dashboard[start..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            served.contains(family),
            "the dashboard uses {name}, not served"
        );
        used += 1;
    }
    assert!(used > 10, "the dashboard queries pgrw's metrics");
}
