//! SeaORM over pgrw's routing (feature `sea-orm`): [`RwDatabase`] routes each
//! statement as `&RwPool` does, [`RwSession`] as a [`Session`] does (reads
//! see the session's writes). `Entity::find()…one(&db)` reads from a replica,
//! `ActiveModel::insert(&db)` (an `INSERT … RETURNING`) writes on the primary:
//! routing is by SQL text, through the same classifier.
//!
//! ```no_run
//! # async fn example(pool: pgrw::RwPool) -> Result<(), sea_orm::DbErr> {
//! use sea_orm::ConnectionTrait;
//! let db = pgrw::sea_orm::RwDatabase::new(pool);
//! let session = db.session(); // one per request: reads see its writes
//! session.execute_unprepared("UPDATE t SET x = 1").await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ::sea_orm::sea_query::Values;
use ::sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, QueryStream, RuntimeErr, SqlxPostgresConnector,
    Statement, StreamTrait, TransactionError, TransactionOptions, TransactionTrait,
};
use pgrw_core::route::SessionState;
use pgrw_core::sql::classify::classify;
use pgrw_core::{StatementClass, TxAccess};
use sea_query_sqlx::SqlxValues;
use sqlx::{AssertSqlSafe, Executor, PgPool, Postgres};

use crate::pool::RwPool;
use crate::session::Session;

/// A SeaORM connection over an [`RwPool`]: each statement is routed on its
/// own (no read-your-writes; use [`RwDatabase::session`] for that).
#[derive(Debug, Clone)]
pub struct RwDatabase {
    pool: RwPool,
}

/// A SeaORM connection over a [`Session`]: reads see the session's writes.
/// Make one per request or task with [`RwDatabase::session`].
#[derive(Debug)]
pub struct RwSession {
    session: Session,
}

impl RwDatabase {
    /// SeaORM over `pool`.
    pub fn new(pool: RwPool) -> RwDatabase {
        RwDatabase { pool }
    }

    /// A session whose reads see its own writes.
    pub fn session(&self) -> RwSession {
        RwSession {
            session: self.pool.session(),
        }
    }

    /// The pool underneath.
    pub fn pool(&self) -> &RwPool {
        &self.pool
    }
}

impl From<RwPool> for RwDatabase {
    fn from(pool: RwPool) -> RwDatabase {
        RwDatabase::new(pool)
    }
}

impl RwSession {
    /// The session underneath (its token, its sqlx executor).
    pub fn session(&self) -> &Session {
        &self.session
    }
}

fn sqlx_query(statement: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = statement.values.clone().unwrap_or(Values(Vec::new()));
    // SeaORM built the SQL (its values are bound apart): safe to send as is.
    sqlx::query_with(AssertSqlSafe(statement.sql.clone()), SqlxValues(values))
}

fn connection_error(error: sqlx::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(Arc::new(error)))
}

async fn execute<'x, X>(executor: X, statement: Statement) -> Result<ExecResult, DbErr>
where
    X: Executor<'x, Database = Postgres>,
{
    sqlx_query(&statement)
        .execute(executor)
        .await
        .map(ExecResult::from)
        .map_err(|error| DbErr::Exec(RuntimeErr::SqlxError(Arc::new(error))))
}

async fn execute_unprepared<'x, X>(executor: X, sql: &'x str) -> Result<ExecResult, DbErr>
where
    X: Executor<'x, Database = Postgres>,
{
    // With no arguments, the SQL goes as a simple query: several statements
    // are allowed, as SeaORM expects of an unprepared execution. The caller
    // wrote it: sent as it is, as SeaORM does.
    executor
        .execute(AssertSqlSafe(sql))
        .await
        .map(ExecResult::from)
        .map_err(|error| DbErr::Exec(RuntimeErr::SqlxError(Arc::new(error))))
}

async fn query_one<'x, X>(executor: X, statement: Statement) -> Result<Option<QueryResult>, DbErr>
where
    X: Executor<'x, Database = Postgres>,
{
    sqlx_query(&statement)
        .fetch_optional(executor)
        .await
        .map(|row| row.map(QueryResult::from))
        .map_err(|error| DbErr::Query(RuntimeErr::SqlxError(Arc::new(error))))
}

async fn query_all<'x, X>(executor: X, statement: Statement) -> Result<Vec<QueryResult>, DbErr>
where
    X: Executor<'x, Database = Postgres>,
{
    sqlx_query(&statement)
        .fetch_all(executor)
        .await
        .map(|rows| rows.into_iter().map(QueryResult::from).collect())
        .map_err(|error| DbErr::Query(RuntimeErr::SqlxError(Arc::new(error))))
}

/// A SeaORM connection to the node a statement of `class` goes to now.
fn node_connection(
    pool: &RwPool,
    class: StatementClass,
    session: &SessionState,
) -> Result<DatabaseConnection, DbErr> {
    let placed = pool
        .shared
        .place_now(class, session)
        .map_err(connection_error)?;
    let node: PgPool = pool.shared.pool(placed.node).clone();
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(node))
}

/// The class a transaction with `access_mode` begins with.
fn begin_class(access_mode: Option<AccessMode>) -> StatementClass {
    match access_mode {
        Some(AccessMode::ReadOnly) => StatementClass::Begin(TxAccess::ReadOnly),
        Some(AccessMode::ReadWrite) => StatementClass::Begin(TxAccess::ReadWrite),
        None => StatementClass::Begin(TxAccess::Unspecified),
    }
}

/// Streams `statement` from the node it is routed to now (no retry on
/// another node: the stream may have been read from when it fails).
async fn stream_from(
    pool: &RwPool,
    session: SessionState,
    statement: Statement,
) -> Result<QueryStream, DbErr> {
    let class = classify(statement.sql.as_bytes(), &pool.shared.catalog).class;
    let connection = node_connection(pool, class, &session)?;
    connection.stream_raw(statement).await
}

/// `ConnectionTrait` for a type whose field `$executor` is a sqlx executor by
/// reference (`&RwPool`, `&Session`): the two differ only in that executor.
macro_rules! connection_over {
    ($connection:ty, $executor:ident) => {
        #[async_trait::async_trait]
        impl ConnectionTrait for $connection {
            fn get_database_backend(&self) -> DbBackend {
                DbBackend::Postgres
            }

            async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
                execute(&self.$executor, statement).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                execute_unprepared(&self.$executor, sql).await
            }

            async fn query_one_raw(
                &self,
                statement: Statement,
            ) -> Result<Option<QueryResult>, DbErr> {
                query_one(&self.$executor, statement).await
            }

            async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
                query_all(&self.$executor, statement).await
            }
        }
    };
}

connection_over!(RwDatabase, pool);
connection_over!(RwSession, session);

impl StreamTrait for RwDatabase {
    type Stream<'a> = QueryStream;

    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    fn stream_raw<'a>(
        &'a self,
        statement: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<QueryStream, DbErr>> + 'a + Send>> {
        Box::pin(stream_from(&self.pool, SessionState::new(), statement))
    }
}

impl StreamTrait for RwSession {
    type Stream<'a> = QueryStream;

    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    fn stream_raw<'a>(
        &'a self,
        statement: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<QueryStream, DbErr>> + 'a + Send>> {
        let state = self.session.state();
        Box::pin(stream_from(&self.session.pool, state, statement))
    }
}

/// Transactions run wholly on one node: the primary, or for
/// `AccessMode::ReadOnly` a replica.
#[async_trait::async_trait]
impl TransactionTrait for RwDatabase {
    type Transaction = DatabaseTransaction;

    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.begin_with_config(None, None).await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.begin_with_config(options.isolation_level, options.access_mode)
            .await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        let node = node_connection(&self.pool, begin_class(access_mode), &SessionState::new())?;
        node.begin_with_config(isolation_level, access_mode).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.transaction_with_config(callback, None, None).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let node = node_connection(&self.pool, begin_class(access_mode), &SessionState::new())
            .map_err(TransactionError::Connection)?;
        node.transaction_with_config(callback, isolation_level, access_mode)
            .await
    }
}

/// As for [`RwDatabase`]. A transaction run with `transaction(…)` records its
/// position when it commits, so the session's reads see it. One begun with
/// `begin()` commits out of the session's sight: after it, the session's
/// reads all go to the primary (safe, not fast) — prefer `transaction(…)`.
#[async_trait::async_trait]
impl TransactionTrait for RwSession {
    type Transaction = DatabaseTransaction;

    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.begin_with_config(None, None).await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.begin_with_config(options.isolation_level, options.access_mode)
            .await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        let class = begin_class(access_mode);
        let node = node_connection(&self.session.pool, class, &self.session.state())?;
        if access_mode != Some(AccessMode::ReadOnly) {
            self.session.record_unknown_write();
        }
        node.begin_with_config(isolation_level, access_mode).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.transaction_with_config(callback, None, None).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let class = begin_class(access_mode);
        let node = node_connection(&self.session.pool, class, &self.session.state())
            .map_err(TransactionError::Connection)?;
        let result = node
            .transaction_with_config(callback, isolation_level, access_mode)
            .await;
        if result.is_ok() && access_mode != Some(AccessMode::ReadOnly) {
            self.session.record_primary_position().await;
        }
        result
    }
}
