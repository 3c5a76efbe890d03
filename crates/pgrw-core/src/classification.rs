//! What the classifier says about a statement: the contract between the SQL
//! classifier ([`crate::sql`]) and the routing policy ([`crate::route`]).
//!
//! The classifier may only say [`StatementClass::Read`] when it is sure; every
//! doubt becomes [`StatementClass::Write`] with a [`Reason`] saying why.

/// Where a statement may run, as far as its text tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementClass {
    /// Only reads: may run on a replica (SELECT, VALUES, TABLE, SHOW, EXPLAIN, COPY … TO).
    Read,
    /// Writes, locks, changes the schema or the server's state, or is not fully
    /// understood: the primary only.
    Write,
    /// Starts a transaction (`BEGIN`, `START TRANSACTION`), with the access mode it names.
    Begin(TxAccess),
    /// `SET TRANSACTION … READ ONLY|READ WRITE` inside a transaction.
    SetTransaction(TxAccess),
    /// Ends a transaction successfully (`COMMIT`, `END`).
    Commit,
    /// Ends a transaction without committing (`ROLLBACK`, `ABORT`).
    Rollback,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`: runs wherever its transaction runs.
    Savepoint,
    /// Changes only session state (`SET`, `RESET`, `DISCARD`, `DEALLOCATE`, …): runs
    /// on the session's current backend and is remembered for replay.
    Session,
    /// Nothing to execute: an empty string, or only comments and semicolons.
    Empty,
}

/// The access mode a transaction was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TxAccess {
    /// No access mode named: the session default (read write, unless changed).
    #[default]
    Unspecified,
    /// `READ ONLY`: the whole transaction may run on a replica.
    ReadOnly,
    /// `READ WRITE`: the primary.
    ReadWrite,
}

/// A routing hint carried by the statement itself (`/* pgrw:primary */`,
/// `/* pgrw:replica */`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteHint {
    /// Run on the primary whatever the statement is.
    Primary,
    /// Run on a replica. The classifier only sets this when the statement is not
    /// a definite write; a replica hint on an `INSERT` is dropped with a reason.
    Replica,
}

pub use crate::sql::classify::{
    Classification, DefaultIsolation, Effect, Reason, RouteSetting, RouteSettingChange,
    SessionEffects,
};
