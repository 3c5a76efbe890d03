//! Why a statement was classified the way it was: [`Reason`], printable and
//! allocation-free in every common case.

use std::fmt;

use crate::catalog::PrimaryBecause;
use crate::classification::RouteHint;

/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
pub const MAX_NAME_LEN: usize = 63;

/// A function or operator name held inline (no heap), as written after
/// PostgreSQL's downcasing of unquoted identifiers; longer names are cut at
/// [`MAX_NAME_LEN`] bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InlineName {
    bytes: [u8; MAX_NAME_LEN],
    len: u8,
}

impl InlineName {
    /// Copies (up to [`MAX_NAME_LEN`] bytes of) `name`.
    pub fn new(name: &[u8]) -> InlineName {
        let len = name.len().min(MAX_NAME_LEN);
        let mut bytes = [0u8; MAX_NAME_LEN];
        bytes[..len].copy_from_slice(&name[..len]);
        InlineName {
            bytes,
            len: len as u8,
        }
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Display for InlineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Debug for InlineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Why a statement was classified the way it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Only reads.
    Read,
    /// Nothing to execute.
    Empty,
    /// A data-changing statement: `INSERT`, `UPDATE`, `DELETE`, `MERGE`.
    Writes(&'static str),
    /// A schema or permission change: `CREATE`, `ALTER`, `DROP`, `TRUNCATE`, `GRANT`, ….
    Ddl(&'static str),
    /// A `WITH` query whose CTE or main statement writes.
    WritableCte,
    /// `SELECT … INTO` creates a table.
    SelectInto,
    /// A row-locking clause (`FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY SHARE`).
    Locks(&'static str),
    /// A command that only the primary may run (`CALL`, `DO`, `LOCK`, `VACUUM`,
    /// `LISTEN`, `NOTIFY`, `COPY FROM`, `PREPARE TRANSACTION`, `EXECUTE`, …).
    Command(&'static str),
    /// A function call that must run on the primary.
    Function {
        /// The function, as called (schema-qualified names give the function part).
        name: InlineName,
        /// What makes it primary-only.
        because: PrimaryBecause,
    },
    /// An operator that is not one of PostgreSQL's built-in operators (a user
    /// operator may call any function).
    Operator(InlineName),
    /// Reads state of this server (`pg_locks`, `pg_prepared_xacts`,
    /// `pg_stat_activity`, `SHOW transaction_read_only`, …): the primary's
    /// answer is the one the application must see. The name is what it reads.
    NodeState(InlineName),
    /// Reads, and the state of the session's own backend: the statements
    /// and cursors its client made there (`pg_prepared_statements`,
    /// `pg_cursors`). The primary answers, as for [`Reason::NodeState`],
    /// except inside a deferred transaction that reads on a replica (its
    /// read leg), whose backend is the one that client's statements use.
    /// Only a statement that does nothing else has this reason.
    SessionBackendState(InlineName),
    /// Uses a temporary table (`pg_temp.…`), which exists only on one backend.
    TempTable,
    /// Names an unlogged relation (known from the catalog): a standby has
    /// none of its rows and refuses to read it.
    UnloggedRelation(InlineName),
    /// `EXPLAIN` without `ANALYZE` of a writing statement: the statement is only planned.
    ExplainWithoutAnalyze,
    /// Transaction control (`BEGIN`, `COMMIT`, `SAVEPOINT`, `SET TRANSACTION`, …).
    Transaction(&'static str),
    /// A change of session state only (`SET`, `RESET`, `DISCARD`, `PREPARE`, `DEALLOCATE`).
    Session(&'static str),
    /// Reads through a cursor (`FETCH`, `MOVE`, `CLOSE`).
    Cursor(&'static str),
    /// Leaves state in its backend that pins the session there (a `WITH HOLD`
    /// cursor, a SQL-level `PREPARE`, …): the pin must be on the primary,
    /// where the session's later writes can reach that state. The string is
    /// the pinning effect's label.
    PinsSession(&'static str),
    /// A multi-statement string with transaction control or session commands.
    MultiStatement(&'static str),
    /// A routing hint in a comment decided it.
    Hint(RouteHint),
    /// A `pgrw:replica` hint on a definite write was ignored; the inner reason is the write.
    ReplicaHintIgnored(Box<Reason>),
    /// A backslash in a plain string reads differently under
    /// `standard_conforming_strings = off`, and the two readings disagree.
    AmbiguousEscapes,
    /// Something the classifier does not fully understand.
    Unrecognised(&'static str),
}

impl Reason {
    /// Whether a `pgrw:replica` hint may override this reason: only doubts
    /// about user or unknown functions and operators, and questions about
    /// the server (which only read: the hint asks a replica about itself on
    /// purpose), never a write the classifier is sure of or text it could not read.
    pub fn hint_may_override(&self) -> bool {
        match self {
            Reason::Function { because, .. } => because.hint_may_override(),
            Reason::Operator(_) | Reason::NodeState(_) | Reason::SessionBackendState(_) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Read => f.write_str("read"),
            Reason::Empty => f.write_str("empty"),
            Reason::Writes(what) => write!(f, "writes: {what}"),
            Reason::Ddl(what) => write!(f, "DDL: {what}"),
            Reason::WritableCte => f.write_str("writable CTE"),
            Reason::SelectInto => f.write_str("SELECT … INTO creates a table"),
            Reason::Locks(what) => write!(f, "locks: {what}"),
            Reason::Command(what) => write!(f, "primary-only command: {what}"),
            Reason::Function { name, because } => write!(f, "function {name} {because}"),
            Reason::Operator(name) => write!(f, "operator {name} is not built in"),
            Reason::NodeState(name) => {
                write!(f, "asks about this server: {name} (the primary answers)")
            }
            Reason::SessionBackendState(name) => write!(
                f,
                "asks about this server: {name}, this session's backend (the primary answers, \
                 or a deferred transaction's replica)"
            ),
            Reason::TempTable => f.write_str("uses a temporary table"),
            Reason::UnloggedRelation(name) => {
                write!(
                    f,
                    "reads unlogged relation {name} (only the primary has its rows)"
                )
            }
            Reason::ExplainWithoutAnalyze => f.write_str("EXPLAIN without ANALYZE (only plans)"),
            Reason::Transaction(what) => write!(f, "transaction control: {what}"),
            Reason::Session(what) => write!(f, "session state: {what}"),
            Reason::Cursor(what) => write!(f, "cursor: {what}"),
            Reason::PinsSession(what) => {
                write!(f, "pins the session to the primary: {what}")
            }
            Reason::MultiStatement(what) => write!(f, "multi-statement string with {what}"),
            Reason::Hint(RouteHint::Primary) => f.write_str("hint pgrw:primary"),
            Reason::Hint(RouteHint::Replica) => f.write_str("hint pgrw:replica"),
            Reason::ReplicaHintIgnored(inner) => {
                write!(f, "hint pgrw:replica ignored on a definite write ({inner})")
            }
            Reason::AmbiguousEscapes => f.write_str(
                "backslash in a string: standard_conforming_strings on/off readings disagree",
            ),
            Reason::Unrecognised(what) => write!(f, "unrecognised: {what}"),
        }
    }
}
