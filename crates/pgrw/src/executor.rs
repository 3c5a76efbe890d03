//! The sqlx `Executor` for `&RwPool` and `&Session`: classify each
//! statement's SQL once, place it, run it on that node's pool; a read that
//! cannot reach its replica is placed again elsewhere before the caller sees
//! an error.

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::StreamExt;
use pgrw_core::StatementClass;
use pgrw_core::sql::classify::classify;
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Either, Execute, Executor, PgConnection, Postgres, SqlStr};

use crate::placement::{Placed, Placement, is_node_failure};
use crate::pool::{RwPool, Shared};
use crate::session::{Session, current_wal_lsn};

/// A statement's SQL and arguments, kept so that a read can be sent again to
/// another node when the first one broke before answering.
struct Statement {
    sql: SqlStr,
    arguments: Option<PgArguments>,
    persistent: bool,
}

impl Statement {
    fn take<'q>(mut query: impl Execute<'q, Postgres>) -> Result<Statement, sqlx::Error> {
        let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
        let persistent = query.persistent();
        Ok(Statement {
            sql: query.sql(),
            arguments,
            persistent,
        })
    }

    /// One sending of the statement. The arguments are copied only when the
    /// statement may be sent again (a read); otherwise they move.
    fn attempt(&mut self, class: StatementClass) -> Attempt {
        let arguments = if class == StatementClass::Read {
            self.arguments.clone()
        } else {
            self.arguments.take()
        };
        Attempt {
            sql: self.sql.clone(),
            arguments,
            persistent: self.persistent,
        }
    }
}

/// One sending of a [`Statement`] to one node.
struct Attempt {
    sql: SqlStr,
    arguments: Option<PgArguments>,
    persistent: bool,
}

impl Execute<'_, Postgres> for Attempt {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&PgStatement> {
        None
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, sqlx::error::BoxDynError> {
        Ok(self.arguments.take())
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Whether a failed statement may be sent again elsewhere: a read (no side
/// effects) on a replica that broke before anything reached the caller.
fn may_resend(class: StatementClass, placed: &Placed, error: &sqlx::Error) -> bool {
    class == StatementClass::Read && placed.on_replica && is_node_failure(error)
}

/// After a statement ran: a session that wrote records the primary's
/// position; one that read, where (monotonic reads).
async fn after_success(
    shared: &Shared,
    session: Option<&Session>,
    class: StatementClass,
    placed: &Placed,
    connection: &mut PgConnection,
) {
    let Some(session) = session else { return };
    if class == StatementClass::Read {
        session.record_read(placed.node, shared.monitor.now());
        return;
    }
    if class != StatementClass::Write || placed.on_replica {
        return;
    }
    match current_wal_lsn(connection).await {
        Some(lsn) => session.record_write(lsn),
        None => session.record_unknown_write(),
    }
}

fn fetch_optional<'e>(
    shared: &'e Shared,
    session: Option<&'e Session>,
    statement: Result<Statement, sqlx::Error>,
) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>> {
    Box::pin(async move {
        let mut statement = statement?;
        let classification = classify(statement.sql.as_str().as_bytes(), &shared.catalog);
        let state = session.map(Session::state).unwrap_or_default();
        let mut placement =
            Placement::new(shared, classification.class, classification.hint, &state);
        let class = placement.class();
        loop {
            let (placed, mut connection) = placement.acquire().await?;
            match connection.fetch_optional(statement.attempt(class)).await {
                Ok(row) => {
                    after_success(shared, session, class, &placed, &mut connection).await;
                    return Ok(row);
                }
                Err(error) => {
                    if is_node_failure(&error) {
                        connection.close_on_drop();
                    }
                    if !(may_resend(class, &placed, &error) && placement.failed(&placed, &error)) {
                        return Err(error);
                    }
                }
            }
        }
    })
}

type Step = Either<PgQueryResult, PgRow>;

fn fetch_many<'e>(
    shared: &'e Shared,
    session: Option<&'e Session>,
    statement: Result<Statement, sqlx::Error>,
) -> BoxStream<'e, Result<Step, sqlx::Error>> {
    Box::pin(async_stream::try_stream! {
        let mut statement = statement?;
        let classification = classify(statement.sql.as_str().as_bytes(), &shared.catalog);
        let state = session.map(Session::state).unwrap_or_default();
        let mut placement = Placement::new(shared, classification.class, classification.hint, &state);
        let class = placement.class();
        'placing: loop {
            let (placed, mut connection) = placement.acquire().await?;
            let mut answered = false;
            let mut failure = None;
            {
                let mut steps = connection.fetch_many(statement.attempt(class));
                while let Some(step) = steps.next().await {
                    match step {
                        Ok(step) => {
                            answered = true;
                            yield step;
                        }
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
            }
            match failure {
                None => {
                    after_success(shared, session, class, &placed, &mut connection).await;
                    break 'placing;
                }
                Some(error) => {
                    if is_node_failure(&error) {
                        connection.close_on_drop();
                    }
                    let resend = !answered
                        && may_resend(class, &placed, &error)
                        && placement.failed(&placed, &error);
                    if !resend {
                        Err(error)?;
                    }
                }
            }
        }
    })
}

fn prepare_with<'e>(
    pool: &'e RwPool,
    sql: SqlStr,
    parameters: &'e [PgTypeInfo],
) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>> {
    Box::pin(async move {
        let mut connection = pool.primary()?.acquire().await?;
        connection.prepare_with(sql, parameters).await
    })
}

/// Each statement is classified and routed on its own; no read-your-writes
/// (use a [`Session`] for that). `prepare` goes to the primary.
impl<'c> Executor<'c> for &'c RwPool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Step, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        fetch_many(&self.shared, None, Statement::take(query))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        fetch_optional(&self.shared, None, Statement::take(query))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        prepare_with(self, sql, parameters)
    }
}

/// As for `&RwPool`, and reads see the session's writes and token.
impl<'c> Executor<'c> for &'c Session {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Step, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        fetch_many(&self.pool.shared, Some(self), Statement::take(query))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        fetch_optional(&self.pool.shared, Some(self), Statement::take(query))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        prepare_with(&self.pool, sql, parameters)
    }
}
