//! `pgrw demo`: the origin's User scenario through the proxy — create the
//! table, `get_or_create` a user, `get` it by email, list users — printing for
//! every statement the node that ran it and why (`SHOW pgrw.route`).
//!
//! Statements go over the simple protocol with literals, as psycopg2 sends
//! peewee's: the extended protocol's statement Close would be the last
//! routed message before `SHOW pgrw.route`.

use clap::Args;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, SimpleQueryRow};

use crate::CliError;

/// The proxy `pgrw up` serves by default.
pub const DEFAULT_PROXY_URL: &str = "postgres://postgres:postgres@127.0.0.1:6432/postgres";

/// The origin's user.
const DEMO_NAME: &str = "张三";
/// The origin's user's email.
const DEMO_EMAIL: &str = "zhangsan@example.com";

/// The width of the statement column in the printed table.
const STATEMENT_WIDTH: usize = 58;

/// `pgrw demo`.
#[derive(Debug, Args)]
pub struct DemoCommand {
    /// The proxy to run the scenario through.
    #[arg(long, default_value = DEFAULT_PROXY_URL)]
    url: String,
}

/// Runs the demo scenario through the proxy at `--url`.
pub async fn run(command: DemoCommand) -> Result<(), CliError> {
    run_scenario(&command.url).await
}

/// The origin's User scenario through the proxy at `url`, one printed line per statement.
pub async fn run_scenario(url: &str) -> Result<(), CliError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|error| format!("connecting to the proxy at {url}: {error}"))?;
    let connection = tokio::spawn(connection);
    let demo = Demo { client: &client };
    println!("{:<STATEMENT_WIDTH$}  {:<10}  why", "statement", "node");

    let (name, email) = (quote_literal(DEMO_NAME), quote_literal(DEMO_EMAIL));
    demo.run(
        "CREATE TABLE IF NOT EXISTS \"user\" (id serial PRIMARY KEY, \
         name varchar(255) NOT NULL, email varchar(255) NOT NULL UNIQUE)",
    )
    .await?;

    // get_or_create, as peewee does it: look first, insert when missing.
    let found = demo
        .run(&format!(
            "SELECT id, name, email FROM \"user\" WHERE name = {name} AND email = {email} LIMIT 1"
        ))
        .await?;
    if found.is_empty() {
        demo.run(&format!(
            "INSERT INTO \"user\" (name, email) VALUES ({name}, {email}) RETURNING id"
        ))
        .await?;
    }

    // get, right after the create: read-your-writes must find the row.
    let got = demo
        .run(&format!(
            "SELECT id, name, email FROM \"user\" WHERE email = {email} LIMIT 1"
        ))
        .await?;
    if got.is_empty() {
        return Err(format!("read-your-writes broken: no user with email {DEMO_EMAIL}").into());
    }

    let users = demo
        .run("SELECT id, name, email FROM \"user\" ORDER BY id")
        .await?;
    println!();
    println!("users:");
    for user in &users {
        let column = |name| user.get(name).unwrap_or("NULL");
        println!("  {} {} {}", column("id"), column("name"), column("email"));
    }
    drop(client);
    // The connection ends once the client is gone; its outcome adds nothing.
    let _ = connection.await;
    Ok(())
}

/// One client through the proxy, printing each statement's route.
struct Demo<'client> {
    client: &'client Client,
}

impl Demo<'_> {
    /// Runs one statement, prints its route, and returns its rows.
    async fn run(&self, sql: &str) -> Result<Vec<SimpleQueryRow>, CliError> {
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(|error| format!("{sql}: {error}"))?;
        self.print_route(sql).await?;
        Ok(messages
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .collect())
    }

    /// Prints `sql` (shortened), the node that ran it and why, from `SHOW pgrw.route`.
    async fn print_route(&self, sql: &str) -> Result<(), CliError> {
        let messages = self
            .client
            .simple_query("SHOW pgrw.route")
            .await
            .map_err(|error| format!("SHOW pgrw.route (is {sql:?} served by pgrw?): {error}"))?;
        let route = messages
            .iter()
            .find_map(|message| match message {
                SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
            .ok_or("SHOW pgrw.route returned no row")?;
        let (node, why) = route.split_once(": ").unwrap_or(("?", route.as_str()));
        println!(
            "{:<STATEMENT_WIDTH$}  {node:<10}  {why}",
            shorten(sql, STATEMENT_WIDTH)
        );
        Ok(())
    }
}

/// `text` as an SQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `sql` on one line, cut to `width` characters with an ellipsis.
fn shorten(sql: &str, width: usize) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= width {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::{quote_literal, shorten};

    #[test]
    fn quotes_in_literals_are_doubled() {
        assert_eq!(quote_literal("o'hara"), "'o''hara'");
    }

    #[test]
    fn long_statements_are_cut_to_the_column_width_with_an_ellipsis() {
        let cut = shorten("SELECT id, name, email FROM \"user\" WHERE email = $1", 20);
        assert_eq!(cut, "SELECT id, name, em…");
        assert_eq!(cut.chars().count(), 20);
    }

    #[test]
    fn short_statements_are_kept_on_one_line() {
        assert_eq!(shorten("SELECT\n  1", 20), "SELECT 1");
    }
}
