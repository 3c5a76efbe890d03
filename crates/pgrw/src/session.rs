//! [`Session`]: read-your-writes by WAL position. A session remembers the
//! primary's LSN after its last write and reads only from replicas that have
//! replayed it (waiting a bounded time, else the primary).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pgrw_core::Lsn;
use pgrw_core::route::{ConsistencyToken, NodeId, SessionState};
use pgrw_core::{StatementClass, TxAccess};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::pool::RwPool;

/// A cheap handle over an [`RwPool`] whose reads see its own writes: make one
/// per request or task with [`RwPool::session`]. `&Session` is a
/// `sqlx::Executor`, like `&RwPool`.
///
/// After each write it runs, the session reads the primary's
/// `pg_current_wal_lsn()` (at or past the write's commit); its later reads go
/// only to replicas whose replayed LSN has reached it, else (after the
/// configured wait, none by default) to the primary.
///
/// ```no_run
/// # async fn example(pool: &pgrw::RwPool) -> Result<(), sqlx::Error> {
/// let session = pool.session();
/// sqlx::query("INSERT INTO users (email) VALUES ($1)").bind("ada@example.com").execute(&session).await?;
/// // Sees the row: a replica that replayed the insert, or the primary.
/// let id: i32 = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
///     .bind("ada@example.com")
///     .fetch_one(&session)
///     .await?;
/// // Carry the position to another process (a cookie, a queue message):
/// let token = session.token().to_string();
/// # Ok(()) }
/// ```
pub struct Session {
    pub(crate) pool: RwPool,
    state: Mutex<SessionState>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(pool: RwPool) -> Session {
        Session {
            pool,
            state: Mutex::new(SessionState::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SessionState> {
        // The state is plain data, valid even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The routing state now (a copy).
    pub(crate) fn state(&self) -> SessionState {
        *self.lock()
    }

    /// The pool this session routes over.
    pub fn pool(&self) -> &RwPool {
        &self.pool
    }

    /// The position every read of another session must see to see everything
    /// this one wrote (or was required to see). Its text form (`0/3000060`)
    /// parses back with `str::parse`.
    pub fn token(&self) -> ConsistencyToken {
        self.lock().token()
    }

    /// Requires this session's reads to see `token`.
    pub fn require(&self, token: ConsistencyToken) {
        self.lock().require(token);
    }

    /// The primary's WAL position after this session's last write
    /// ([`Lsn::INVALID`] before any).
    pub fn last_write_lsn(&self) -> Lsn {
        self.lock().last_write_lsn
    }

    /// Records that this session's write committed with the primary at `lsn`.
    pub(crate) fn record_write(&self, lsn: Lsn) {
        self.lock().record_write(lsn);
    }

    /// Records that a statement of this session read on `node`, finishing at
    /// monitor time `at`: its later reads never see an older state.
    pub(crate) fn record_read(&self, node: NodeId, at: Duration) {
        self.lock().record_read(node, at);
    }

    /// Records that this session wrote but its position could not be read:
    /// its reads go to the primary from now on (safe, not fast).
    pub(crate) fn record_unknown_write(&self) {
        self.lock().record_write(Lsn(u64::MAX));
    }

    /// Records the primary's current position, read after a commit (or an
    /// unknown write when it cannot be read).
    pub(crate) async fn record_primary_position(&self) {
        let lsn = match self.pool.primary() {
            Ok(primary) => match primary.acquire().await {
                Ok(mut connection) => current_wal_lsn(&mut connection).await,
                Err(_) => None,
            },
            Err(_) => None,
        };
        match lsn {
            Some(lsn) => self.record_write(lsn),
            None => self.record_unknown_write(),
        }
    }

    /// Begins a transaction on the primary; committing it through
    /// [`SessionTransaction::commit`] records its position for later reads.
    pub async fn begin(&self) -> Result<SessionTransaction<'_>, sqlx::Error> {
        let transaction = self.pool.begin().await?;
        Ok(SessionTransaction {
            session: self,
            transaction,
        })
    }

    /// Begins a `READ ONLY` transaction on a replica that has replayed what
    /// this session must see (or the primary).
    pub async fn begin_read_only(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let class = StatementClass::Begin(TxAccess::ReadOnly);
        self.pool
            .shared
            .begin_on_replica(class, &self.state())
            .await
    }
}

/// Reads the primary's current WAL position on `connection` (a connection to
/// the primary, after a write committed).
pub(crate) async fn current_wal_lsn(connection: &mut PgConnection) -> Option<Lsn> {
    let text: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(connection)
        .await
        .ok()?;
    text.parse().ok()
}

/// A transaction on the primary begun by [`Session::begin`]. It derefs to the
/// connection (`&mut *tx` is an executor); commit it with
/// [`SessionTransaction::commit`] so the session's reads see it. Dropped
/// without commit, it rolls back.
pub struct SessionTransaction<'s> {
    session: &'s Session,
    transaction: Transaction<'static, Postgres>,
}

impl fmt::Debug for SessionTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTransaction").finish_non_exhaustive()
    }
}

impl SessionTransaction<'_> {
    /// Commits, then records the primary's position in the session.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.transaction.commit().await?;
        self.session.record_primary_position().await;
        Ok(())
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.transaction.rollback().await
    }
}

impl Deref for SessionTransaction<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.transaction
    }
}

impl DerefMut for SessionTransaction<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.transaction
    }
}
