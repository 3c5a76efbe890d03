//! Select-only throughput through an `RwPool` against a plain `PgPool` to the
//! same node (the replica the `RwPool` reads from), with the same number of
//! client tasks and connections. Prints both rates and their ratio.
//!
//! ```text
//! cargo bench -p pgrw --bench select_throughput
//! ```
//!
//! Against an existing cluster, set `PGRW_PRIMARY` and `PGRW_REPLICA`
//! (connection strings); otherwise it starts a throw-away primary and replica.
//! `PGRW_BENCH_SECONDS` (per run, default 2) and `PGRW_BENCH_TASKS` (default 16) tune it.

use std::time::{Duration, Instant};

use pgrw::RwPool;
use pgrw_cluster::testing::TestCluster;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool, Postgres};

const QUERY: &str = "SELECT 1";
const ROUNDS: usize = 5;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

/// Queries per second from `tasks` tasks running `QUERY` on `executor` for `length`.
async fn throughput<X>(executor: X, tasks: u64, length: Duration) -> f64
where
    X: Clone + Send + Sync + 'static,
    for<'c> &'c X: Executor<'c, Database = Postgres>,
{
    // Warm up: open the connections.
    let warm: Vec<_> = (0..tasks)
        .map(|_| {
            let executor = executor.clone();
            tokio::spawn(async move {
                sqlx::query(QUERY)
                    .execute(&executor)
                    .await
                    .expect("warm-up query");
            })
        })
        .collect();
    for task in warm {
        task.await.expect("warm-up task");
    }
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let executor = executor.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while started.elapsed() < length {
                    sqlx::query(QUERY)
                        .fetch_one(&executor)
                        .await
                        .expect("query");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let seconds = env_number("PGRW_BENCH_SECONDS", 2);
    let tasks = env_number("PGRW_BENCH_TASKS", 16);
    let length = Duration::from_secs(seconds);
    let mut _cluster = None;
    let (primary, replica) = match (std::env::var("PGRW_PRIMARY"), std::env::var("PGRW_REPLICA")) {
        (Ok(primary), Ok(replica)) => (primary, replica),
        _ => {
            let cluster = TestCluster::start(1).await;
            // URLs: sqlx's PgPool takes no key=value connection strings.
            let url = |name: &str| {
                format!(
                    "postgres://postgres:{}@127.0.0.1:{}/postgres",
                    pgrw_cluster::testing::TEST_PASSWORD,
                    cluster.port(name)
                )
            };
            let dsns = (url("primary"), url("replica1"));
            _cluster = Some(cluster);
            dsns
        }
    };
    let connections = u32::try_from(tasks).unwrap_or(u32::MAX);
    let routed = RwPool::builder(&primary)
        .replica(&replica)
        .max_connections(connections)
        .connect()
        .await
        .expect("RwPool connects");
    let direct: PgPool = PgPoolOptions::new()
        .max_connections(connections)
        .connect(&replica)
        .await
        .expect("PgPool connects");

    // Alternate short runs, so that drift on a shared machine hits both alike,
    // and compare medians.
    let mut through_pgrw = Vec::new();
    let mut through_sqlx = Vec::new();
    for _ in 0..ROUNDS {
        through_sqlx.push(throughput(direct.clone(), tasks, length).await);
        through_pgrw.push(throughput(routed.clone(), tasks, length).await);
    }
    let (pgrw_rate, sqlx_rate) = (median(&mut through_pgrw), median(&mut through_sqlx));
    println!("select-only, {tasks} tasks, {ROUNDS} alternating runs of {seconds} s, medians:");
    println!("  plain PgPool to the replica: {sqlx_rate:>10.0} queries/s");
    println!("  RwPool (routed to it):       {pgrw_rate:>10.0} queries/s");
    println!(
        "  ratio RwPool / PgPool:       {:>10.3}",
        pgrw_rate / sqlx_rate
    );
}

fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}
