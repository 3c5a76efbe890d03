//! `pgrw route`: the routing decision made visible.
//!
//! It classifies SQL and routes it with the same core function the proxy and
//! the library use, against a nominal healthy topology (a primary and one
//! caught-up replica) and a fresh session, so what it prints is what pgrw
//! decides for that text when every node is well.

use std::io::{BufRead, Write};
use std::time::Duration;

use clap::Args;
use pgrw_core::catalog::Volatility;
use pgrw_core::route::{
    self, Balancer, Node, Policy, Role, RouteRequest, SessionState, Target, Topology,
};
use pgrw_core::sql::classify::{Classification, classify};
use pgrw_core::{FunctionCatalog, Lsn, StatementClass, TxAccess};
use serde::{Deserialize, Serialize};

use crate::CliError;

/// Print where a statement would run, and why.
#[derive(Debug, Args)]
pub struct RouteCommand {
    /// The SQL to route (one string; it may hold several statements).
    #[arg(required_unless_present = "jsonl", conflicts_with = "jsonl")]
    sql: Option<String>,
    /// Read `{"sql": "…"}` lines on stdin; write `{"route", "reason", "class"}` lines.
    #[arg(long)]
    jsonl: bool,
    /// Load user functions' volatility from this database (`pg_proc`), so
    /// stable and immutable user functions may go to replicas.
    #[arg(long, value_name = "DSN")]
    dsn: Option<String>,
}

/// One line of `--jsonl` input.
#[derive(Deserialize)]
struct Input {
    sql: String,
}

/// One line of `--jsonl` output.
#[derive(Serialize)]
struct Output {
    route: &'static str,
    reason: String,
    class: &'static str,
}

/// Runs `pgrw route`.
pub async fn run(command: RouteCommand) -> Result<(), CliError> {
    let catalog = match &command.dsn {
        Some(dsn) => catalog_from(dsn).await?,
        None => FunctionCatalog::builtin(),
    };
    let router = NominalRouter::new(catalog);
    match command.sql {
        Some(sql) => {
            let decision = router.decide(&sql);
            println!("{}: {}", decision.route, decision.reason);
            Ok(())
        }
        None => route_lines(&router),
    }
}

fn route_lines(router: &NominalRouter) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for (index, line) in stdin.lock().lines().enumerate() {
        let line = line.map_err(|error| format!("reading stdin: {error}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let input: Input = serde_json::from_str(&line).map_err(|error| {
            format!(
                r#"stdin line {}: expected {{"sql": "…"}}: {error}"#,
                index + 1
            )
        })?;
        serde_json::to_writer(&mut stdout, &router.decide(&input.sql))?;
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(())
}

/// The core's decision against a primary and one caught-up replica.
struct NominalRouter {
    catalog: FunctionCatalog,
    topology: Topology,
}

impl NominalRouter {
    fn new(catalog: FunctionCatalog) -> NominalRouter {
        let topology = Topology::new(
            vec![
                Node::new("primary", Role::Primary),
                Node::new("replica", Role::Replica),
            ],
            Lsn::ZERO,
        );
        NominalRouter { catalog, topology }
    }

    fn decide(&self, sql: &str) -> Output {
        let classification = classify(sql.as_bytes(), &self.catalog);
        let request = RouteRequest::new(classification.class, classification.hint, Duration::ZERO);
        let decided = route::route(
            &request,
            &SessionState::new(),
            &self.topology,
            &Policy::default(),
            &mut Balancer::with_seed(0),
        );
        let route = match decided.target {
            Target::Node(id)
                if self
                    .topology
                    .node(id)
                    .is_some_and(|node| node.role == Role::Replica) =>
            {
                "replica"
            }
            _ => "primary",
        };
        Output {
            route,
            reason: reason_of(&classification),
            class: class_name(classification.class),
        }
    }
}

/// The classifier's reason, with the session effects a driver acts on.
fn reason_of(classification: &Classification) -> String {
    let mut reason = classification.reason.to_string();
    let effects: Vec<&str> = classification
        .effects
        .iter()
        .map(|effect| effect.label())
        .collect();
    if !effects.is_empty() {
        reason.push_str(&format!(" (session: {})", effects.join(", ")));
    }
    reason
}

fn class_name(class: StatementClass) -> &'static str {
    match class {
        StatementClass::Read => "read",
        StatementClass::Write => "write",
        StatementClass::Begin(TxAccess::ReadOnly) => "begin read only",
        StatementClass::Begin(TxAccess::ReadWrite) => "begin read write",
        StatementClass::Begin(TxAccess::Unspecified) => "begin",
        StatementClass::SetTransaction(TxAccess::ReadOnly) => "set transaction read only",
        StatementClass::SetTransaction(_) => "set transaction",
        StatementClass::Commit => "commit",
        StatementClass::Rollback => "rollback",
        StatementClass::Savepoint => "savepoint",
        StatementClass::Session => "session",
        StatementClass::Empty => "empty",
    }
}

/// The built-in catalog plus every user function's volatility and every
/// unlogged relation from `dsn`, as the proxy loads them.
async fn catalog_from(dsn: &str) -> Result<FunctionCatalog, CliError> {
    let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .map_err(|error| format!("connecting to {dsn} to read pg_proc: {error}"))?;
    let driver = tokio::spawn(connection);
    let rows = client
        .query(pgrw_core::catalog::USER_FUNCTIONS_QUERY, &[])
        .await
        .map_err(|error| format!("reading user functions from pg_proc: {error}"))?;
    let unlogged = client
        .query(pgrw_core::catalog::UNLOGGED_RELATIONS_QUERY, &[])
        .await
        .map_err(|error| format!("reading unlogged relations from pg_class: {error}"))?;
    drop(client);
    let _ = driver.await;
    let mut catalog = FunctionCatalog::builtin();
    for row in rows {
        let schema: String = row.get("schema");
        let name: String = row.get("name");
        let code: String = row.get("volatility");
        let volatility = Volatility::from_provolatile(&code).unwrap_or(Volatility::Volatile);
        catalog.add_user_function(&schema, &name, volatility);
    }
    for row in unlogged {
        catalog.add_unlogged_relation(row.get("name"));
    }
    Ok(catalog)
}
