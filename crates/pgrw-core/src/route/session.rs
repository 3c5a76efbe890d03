//! What routing must remember about one client session: its open transaction,
//! what pins it to one node, and the WAL positions its reads must see.
//!
//! The driver (proxy client loop, library `Session`) owns a [`SessionState`]
//! and updates it after each statement runs; [`crate::route::route`] only reads it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::classification::{DefaultIsolation, TxAccess};
use crate::lsn::{Lsn, ParseLsnError};
use crate::route::policy::Policy;
use crate::route::topology::NodeId;

/// An open transaction: every statement in it runs on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transaction {
    /// The node the transaction began on.
    pub node: NodeId,
    /// The access mode it was opened with.
    pub access: TxAccess,
}

/// A `READ COMMITTED` transaction the driver acknowledged without opening it
/// anywhere ([`crate::route::TransactionReads::Replica`]). Its leading reads
/// run in a read-only transaction on one replica, its read leg
/// ([`SessionState::transaction`] names that replica once the first read ran
/// there); the first statement that is not a plain read opens the real
/// transaction on the primary, and the session leaves this state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Deferred {
    /// A statement failed on the read leg: the transaction is aborted, and
    /// every statement goes to the leg, which answers as PostgreSQL does
    /// (`25P02`, and `ROLLBACK` for a `COMMIT`); nothing opens the primary.
    pub failed: bool,
}

/// Why a session must stay on one node: state that lives in that backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinReason {
    /// It created a temporary table.
    TempTable,
    /// It holds a session-level advisory lock.
    AdvisoryLock,
    /// It is listening (`LISTEN`) for notifications.
    Listen,
    /// It has a `WITH HOLD` cursor open.
    HoldCursor,
    /// It prepared a statement that must be executed on the same backend.
    PreparedStatement,
}

impl fmt::Display for PinReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinReason::TempTable => "temp table",
            PinReason::AdvisoryLock => "advisory lock",
            PinReason::Listen => "LISTEN",
            PinReason::HoldCursor => "WITH HOLD cursor",
            PinReason::PreparedStatement => "prepared statement",
        })
    }
}

/// A session pinned to one node, and the first reason it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin {
    /// The node holding the session's state.
    pub node: NodeId,
    /// What pinned it.
    pub reason: PinReason,
}

/// The session's `SET pgrw.route = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RouteMode {
    /// `auto` (the default): route by what each statement is.
    #[default]
    Auto,
    /// `primary`: everything to the primary.
    Primary,
    /// `replica`: reads to replicas only (writes still go to the primary).
    Replica,
}

impl fmt::Display for RouteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteMode::Auto => "auto",
            RouteMode::Primary => "primary",
            RouteMode::Replica => "replica",
        })
    }
}

/// A `pgrw.route` value that is not `primary`, `replica` or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseRouteModeError;

impl fmt::Display for ParseRouteModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid value for pgrw.route; expected primary, replica or auto")
    }
}

impl std::error::Error for ParseRouteModeError {}

impl FromStr for RouteMode {
    type Err = ParseRouteModeError;

    /// Parses `primary`, `replica` or `auto` in any case; `default` means `auto`.
    fn from_str(text: &str) -> Result<RouteMode, ParseRouteModeError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") || text.eq_ignore_ascii_case("default") {
            Ok(RouteMode::Auto)
        } else if text.eq_ignore_ascii_case("primary") {
            Ok(RouteMode::Primary)
        } else if text.eq_ignore_ascii_case("replica") {
            Ok(RouteMode::Replica)
        } else {
            Err(ParseRouteModeError)
        }
    }
}

/// A causal-consistency token: the WAL position a reader must see, carried by
/// the client between connections or services (a cookie, a queue message).
///
/// It is the LSN text (`0/3000060`), so it is readable and can be checked with
/// `pg_last_wal_replay_lsn() >= '0/3000060'` by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConsistencyToken(pub Lsn);

impl fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ConsistencyToken {
    type Err = ParseLsnError;

    fn from_str(text: &str) -> Result<ConsistencyToken, ParseLsnError> {
        text.parse().map(ConsistencyToken)
    }
}

/// Where a session last read, for monotonic reads: a later read may run on
/// this node, on the primary, or on a replica that has replayed the primary's
/// position as of a probe begun after `at` (which bounds what this read saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LastRead {
    /// The node the read ran on.
    pub node: NodeId,
    /// When it ended (monotonic time, the monitor's clock).
    pub at: Duration,
}

/// Everything routing needs to know about one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SessionState {
    /// The open transaction, if any.
    pub transaction: Option<Transaction>,
    /// The open transaction is deferred (see [`Deferred`]); `transaction`
    /// is then its read leg, if a read ran.
    pub deferred: Option<Deferred>,
    /// The node the session is pinned to, if any.
    pub pin: Option<Pin>,
    /// The primary's WAL position after the session's last write
    /// (read-your-writes); [`Lsn::INVALID`] before any write.
    pub last_write_lsn: Lsn,
    /// The position the client said its reads must see (from a
    /// [`ConsistencyToken`]); [`Lsn::INVALID`] when none.
    pub min_lsn: Lsn,
    /// What the driver requires of every session's reads (the proxy: every
    /// write committed through it); not part of the session's own token.
    pub shared_lsn: Lsn,
    /// `SET pgrw.route`.
    pub route_mode: RouteMode,
    /// Where the session last read, unless a later write bounds it.
    pub last_read: Option<LastRead>,
    /// The session's default transaction isolation is serializable: a hot
    /// standby refuses it, so its reads (and `BEGIN READ ONLY`) go to the primary.
    pub serializable_default: bool,
    /// What `RESET`/`DISCARD ALL` bring [`Self::serializable_default`] back
    /// to: serializable by the login (startup options, role or database settings).
    pub serializable_at_login: bool,
    /// The session's default isolation keeps one snapshot per transaction
    /// (repeatable read or serializable): its transactions are not deferred.
    pub snapshot_default: bool,
    /// What `RESET`/`DISCARD ALL` bring [`Self::snapshot_default`] back to.
    pub snapshot_at_login: bool,
}

impl SessionState {
    /// A new session: no transaction, no pin, nothing written, `auto` routing.
    pub fn new() -> SessionState {
        SessionState::default()
    }

    /// The WAL position a read by this session must see: its last write (when
    /// the policy has read-your-writes on), its token or the driver's shared
    /// requirement, whichever is latest.
    pub fn required_lsn(&self, policy: &Policy) -> Lsn {
        let own = if policy.read_your_writes {
            self.last_write_lsn
        } else {
            Lsn::INVALID
        };
        own.max(self.min_lsn).max(self.shared_lsn)
    }

    /// Records that a write committed with the primary at `lsn`; positions only
    /// move forward.
    ///
    /// `lsn` must be read after the commit: the primary's `pg_current_wal_lsn()`
    /// then (or any later reading of it, such as the monitor's next probe) is at
    /// or past the commit record, so a replica that has replayed it sees the write.
    pub fn record_write(&mut self, lsn: Lsn) {
        self.last_write_lsn = self.last_write_lsn.max(lsn);
        // Whatever the session saw before is at or before the primary's
        // position after this write, which its reads now require.
        self.last_read = None;
    }

    /// Records that a statement ran on `node` and its answer was complete at
    /// `at`: the session's later reads must not see an older state.
    pub fn record_read(&mut self, node: NodeId, at: Duration) {
        self.last_read = Some(LastRead { node, at });
    }

    /// Requires this session's reads to see `token` (and keeps any later
    /// position it already requires).
    pub fn require(&mut self, token: ConsistencyToken) {
        self.min_lsn = self.min_lsn.max(token.0);
    }

    /// The token another connection can pass to [`SessionState::require`] to
    /// see everything this session wrote or was required to see.
    pub fn token(&self) -> ConsistencyToken {
        ConsistencyToken(self.last_write_lsn.max(self.min_lsn))
    }

    /// Sets whether the login's default isolation is serializable (the
    /// session's default starts as it).
    pub fn set_login_serializable(&mut self, serializable: bool) {
        self.set_login_isolation(if serializable {
            DefaultIsolation::Serializable
        } else {
            DefaultIsolation::Other
        });
    }

    /// Sets the login's default isolation (startup options, role or
    /// database settings); the session's default starts as it.
    /// [`DefaultIsolation::LoginDefault`] reads as read committed.
    pub fn set_login_isolation(&mut self, isolation: DefaultIsolation) {
        self.serializable_at_login = isolation == DefaultIsolation::Serializable;
        self.snapshot_at_login = matches!(
            isolation,
            DefaultIsolation::Serializable | DefaultIsolation::RepeatableRead
        );
        self.serializable_default = self.serializable_at_login;
        self.snapshot_default = self.snapshot_at_login;
    }

    /// Applies a change of the default isolation that ran (outside a
    /// transaction, or in one that committed).
    pub fn change_default_isolation(&mut self, change: DefaultIsolation) {
        (self.serializable_default, self.snapshot_default) = match change {
            DefaultIsolation::Serializable => (true, true),
            DefaultIsolation::RepeatableRead => (false, true),
            DefaultIsolation::Other => (false, false),
            DefaultIsolation::LoginDefault => (self.serializable_at_login, self.snapshot_at_login),
        };
    }

    /// Whether a `BEGIN` may be deferred ([`Deferred`]) under `policy`:
    /// the mode is on, no transaction is open, nothing pins the session, and
    /// its reads are not all sent to the primary. `explicit_read_committed`:
    /// the `BEGIN` names its level, so the session's default does not matter.
    pub fn may_defer(&self, policy: &Policy, explicit_read_committed: bool) -> bool {
        policy.transaction_reads == crate::route::TransactionReads::Replica
            && self.transaction.is_none()
            && self.deferred.is_none()
            && self.pin.is_none()
            && self.route_mode != RouteMode::Primary
            && (explicit_read_committed || !self.snapshot_default)
    }

    /// Records a deferred `BEGIN`: the client is in a transaction that runs
    /// nowhere yet.
    pub fn defer(&mut self) {
        self.deferred = Some(Deferred::default());
    }

    /// Records that the deferred transaction's read leg opened on `node`.
    pub fn open_read_leg(&mut self, node: NodeId) {
        self.transaction = Some(Transaction {
            node,
            access: TxAccess::ReadOnly,
        });
    }

    /// The deferred transaction's read leg, if one is open.
    pub fn read_leg(&self) -> Option<NodeId> {
        self.deferred?;
        self.transaction.map(|transaction| transaction.node)
    }

    /// Records that the deferred transaction's read leg ended (before the
    /// transaction opens on the primary).
    pub fn leave_read_leg(&mut self) {
        if self.deferred.is_some() {
            self.transaction = None;
        }
    }

    /// Records that the deferred transaction opened on `node` (the primary)
    /// with `access`: an ordinary transaction from now on.
    pub fn open_deferred(&mut self, node: NodeId, access: TxAccess) {
        self.deferred = None;
        self.begin(node, access);
    }

    /// Records that a transaction began on `node`.
    pub fn begin(&mut self, node: NodeId, access: TxAccess) {
        self.transaction = Some(Transaction { node, access });
    }

    /// Records that the transaction ended (commit or rollback), deferred or not.
    pub fn end_transaction(&mut self) {
        self.transaction = None;
        self.deferred = None;
    }

    /// Pins the session to `node`. A session already pinned keeps its node and
    /// first reason: its state cannot move.
    pub fn pin(&mut self, node: NodeId, reason: PinReason) {
        self.pin.get_or_insert(Pin { node, reason });
    }

    /// Releases the pin (e.g. after `DISCARD ALL`, or when the last pinning
    /// state is gone).
    pub fn unpin(&mut self) {
        self.pin = None;
    }

    /// Keeps the pin only while pinning state remains: `remaining` is what
    /// still holds the session to its node (the pin's reason becomes it), or
    /// `None` when nothing does (the pin is released).
    pub fn retain_pin(&mut self, remaining: Option<PinReason>) {
        self.pin = match (self.pin, remaining) {
            (Some(pin), Some(reason)) => Some(Pin { reason, ..pin }),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_lsn_ignores_own_writes_when_read_your_writes_is_off() {
        let mut session = SessionState::new();
        session.record_write(Lsn(200));
        session.require(ConsistencyToken(Lsn(100)));
        let on = Policy::default();
        let off = Policy {
            read_your_writes: false,
            ..Policy::default()
        };
        assert_eq!(session.required_lsn(&on), Lsn(200));
        assert_eq!(session.required_lsn(&off), Lsn(100));
    }

    #[test]
    fn recorded_writes_never_move_the_position_back() {
        let mut session = SessionState::new();
        session.record_write(Lsn(300));
        session.record_write(Lsn(200));
        assert_eq!(session.last_write_lsn, Lsn(300));
    }

    #[test]
    fn a_write_bounds_what_earlier_reads_saw() {
        let mut session = SessionState::new();
        session.record_read(NodeId(1), Duration::from_millis(5));
        assert!(session.last_read.is_some());
        session.record_write(Lsn(10));
        assert_eq!(session.last_read, None);
    }

    #[test]
    fn token_round_trips_through_its_text() {
        let mut session = SessionState::new();
        session.record_write("0/3000060".parse().unwrap());
        let text = session.token().to_string();
        assert_eq!(text, "0/3000060");
        let mut other = SessionState::new();
        other.require(text.parse().unwrap());
        assert_eq!(other.min_lsn, session.last_write_lsn);
    }

    #[test]
    fn a_pinned_session_keeps_its_first_node_and_reason() {
        let mut session = SessionState::new();
        session.pin(NodeId(0), PinReason::TempTable);
        session.pin(NodeId(1), PinReason::Listen);
        assert_eq!(
            session.pin,
            Some(Pin {
                node: NodeId(0),
                reason: PinReason::TempTable
            })
        );
    }

    #[test]
    fn a_pin_is_kept_for_the_state_that_remains_and_released_when_none_does() {
        let mut session = SessionState::new();
        session.pin(NodeId(0), PinReason::TempTable);
        session.retain_pin(Some(PinReason::Listen));
        assert_eq!(
            session.pin,
            Some(Pin {
                node: NodeId(0),
                reason: PinReason::Listen
            })
        );
        session.retain_pin(None);
        assert_eq!(session.pin, None);
        session.retain_pin(Some(PinReason::Listen));
        assert_eq!(session.pin, None, "retaining never pins");
    }

    #[test]
    fn a_reset_brings_the_default_isolation_back_to_the_logins() {
        let mut session = SessionState::new();
        session.change_default_isolation(DefaultIsolation::Serializable);
        assert!(session.serializable_default);
        session.change_default_isolation(DefaultIsolation::LoginDefault);
        assert!(!session.serializable_default);
        session.set_login_serializable(true);
        session.change_default_isolation(DefaultIsolation::Other);
        assert!(!session.serializable_default);
        session.change_default_isolation(DefaultIsolation::LoginDefault);
        assert!(session.serializable_default);
    }

    #[test]
    fn route_mode_parses_the_setting_values_in_any_case() {
        assert_eq!("PRIMARY".parse(), Ok(RouteMode::Primary));
        assert_eq!(" replica ".parse(), Ok(RouteMode::Replica));
        assert_eq!("auto".parse(), Ok(RouteMode::Auto));
        assert_eq!("default".parse(), Ok(RouteMode::Auto));
        assert_eq!("standby".parse::<RouteMode>(), Err(ParseRouteModeError));
    }
}
