//! A batch split by a Flush whose rest needs another node than its first part.
//!
//! The first part of a batch (up to a Flush) is routed by what it runs, and
//! the rest normally follows it to the same backend. When the first part only
//! read on a replica outside any transaction, and the rest writes, sending
//! the rest there would make a replica refuse a write the client meant for
//! the primary (`25006`). Instead the proxy ends the first part on the replica
//! with a Sync of its own (the implicit transaction, which only read, commits
//! harmlessly; its ReadyForQuery is the proxy's, not the client's), and routes
//! the rest afresh as a unit of its own. The client sees the messages a direct
//! connection to the primary would send. Statements the first part prepared
//! (the unnamed one too) follow the rest as any statement follows a client:
//! the proxy prepares them again where they are missing.
//!
//! A portal the first part bound and the rest uses (executes, describes or
//! closes) lives on the replica: the proxy binds it again on the rest's
//! backend, ahead of the rest, with the client's own Bind (its BindComplete
//! hidden) — the same statement, parameters and formats, so the same rows. It
//! can do so only for a portal the first part did not start executing (a
//! suspended portal's position cannot move) and whose statement it did not
//! parse again after binding it; otherwise the rest stays on the replica.
//!
//! The split is not made inside a transaction (the rest must see what the
//! first part did: inside `BEGIN READ ONLY` a write is refused by the replica
//! with `25006`, as PostgreSQL refuses it), except in a deferred transaction
//! (`transaction_reads = "replica"`) whose first part read on its read leg:
//! there the rest that opens the transaction on the primary (a write, a
//! `SAVEPOINT`, …: see [`Session::opens_deferred`]) ends the first part with
//! a Sync (inside the leg's transaction, which it does not end) and is routed
//! on its own, so the leg closes and the client's `BEGIN` runs on the primary
//! before it, as for a simple query. An error in the first part skips the
//! rest up to Sync before any of this.

use bytes::BytesMut;
use pgrw_core::{RouteHint, StatementClass, TxAccess};

use crate::pool::PooledBackend;
use crate::protocol::Message;
use crate::protocol::backend::TransactionStatus;
use crate::protocol::frontend::{FrontendMessage, Target, encode_sync};
use crate::session::Session;
use crate::session::client::SessionEnd;
use crate::session::dispatch::Unit;
use crate::session::relay::{Exchange, Relayed, Step};

/// Where the first part of a Flush-split batch ran.
#[derive(Debug, Clone, Copy)]
pub(super) struct FirstPart {
    /// What it ran (the strictest of its statements).
    pub(super) class: StatementClass,
    /// Whether its backend is on a replica (not the writable primary).
    pub(super) on_replica: bool,
    /// Whether it ran outside any transaction: the backend was idle before
    /// it and the session holds no transaction.
    pub(super) outside_transaction: bool,
    /// Whether it ran on the read leg of a deferred transaction
    /// (`transaction_reads`) that has not failed.
    pub(super) on_read_leg: bool,
}

/// Whether the rest of a batch (`rest`, what it runs) must end the first
/// part and be routed on its own; `rest_opens_deferred` when, in a deferred
/// transaction, the rest is what opens the transaction on the primary (see
/// [`Session::opens_deferred`]); `uses_earlier_portal` when the rest
/// executes, describes or closes a portal it does not bind itself and that
/// cannot be bound again elsewhere (see [`rebinds`]).
pub(super) fn ends_first_part(
    first: FirstPart,
    rest: &Unit,
    rest_opens_deferred: bool,
    uses_earlier_portal: bool,
) -> bool {
    let first_only_read = matches!(first.class, StatementClass::Read | StatementClass::Empty);
    if !first.on_replica || !first_only_read || uses_earlier_portal {
        return false;
    }
    if first.on_read_leg {
        // The rest opens the transaction on the primary, as a simple query would.
        return rest_opens_deferred;
    }
    let rest_needs_primary = matches!(
        rest.class,
        StatementClass::Write | StatementClass::Begin(TxAccess::ReadWrite | TxAccess::Unspecified)
    ) || rest.hint == Some(RouteHint::Primary);
    first.outside_transaction && rest_needs_primary
}

/// The portals `batch` uses (Execute, Describe or Close of one) without
/// binding them first, in the order it first uses them.
fn earlier_portals(batch: &[Message]) -> Result<Vec<&[u8]>, SessionEnd> {
    let mut bound: Vec<&[u8]> = Vec::new();
    let mut earlier: Vec<&[u8]> = Vec::new();
    for message in batch {
        match FrontendMessage::decode(message.view())? {
            FrontendMessage::Bind(bind) => bound.push(bind.portal),
            FrontendMessage::Execute { portal, .. }
            | FrontendMessage::Describe {
                target: Target::Portal,
                name: portal,
            }
            | FrontendMessage::Close {
                target: Target::Portal,
                name: portal,
            } if !bound.contains(&portal) && !earlier.contains(&portal) => earlier.push(portal),
            _ => {}
        }
    }
    Ok(earlier)
}

/// The Binds to send again ahead of `rest` on another backend, for the
/// portals it uses that the parts already sent (`sent`) bound; `None` when
/// one of them cannot move: not bound there, or executed or closed after its
/// Bind, or its statement parsed again after it (a Bind now would use the
/// new statement).
pub(super) fn rebinds(
    sent: &[Message],
    rest: &[Message],
) -> Result<Option<Vec<Message>>, SessionEnd> {
    let mut binds = Vec::new();
    for portal in earlier_portals(rest)? {
        let mut found: Option<(&Message, &[u8])> = None;
        for message in sent {
            match FrontendMessage::decode(message.view())? {
                FrontendMessage::Bind(bind) if bind.portal == portal => {
                    found = Some((message, bind.statement));
                }
                FrontendMessage::Execute { portal: used, .. }
                | FrontendMessage::Close {
                    target: Target::Portal,
                    name: used,
                } if used == portal => found = None,
                FrontendMessage::Parse(parse)
                    if found.is_some_and(|(_, statement)| statement == parse.statement) =>
                {
                    found = None;
                }
                _ => {}
            }
        }
        match found {
            Some((bind, _)) => binds.push(bind.clone()),
            None => return Ok(None),
        }
    }
    Ok(Some(binds))
}

impl Session {
    /// Whether the rest of the batch, `batch`, must leave `backend` (which
    /// ran the first part, `unit`, whose messages are `sent`) for a node of
    /// its own: then the Binds to send again there first (see [`rebinds`]).
    pub(super) fn splits_at_flush(
        &self,
        backend: &mut PooledBackend,
        unit: &Unit,
        sent: &[Message],
        batch: &[Message],
    ) -> Result<Option<Vec<Message>>, SessionEnd> {
        if batch.is_empty() {
            return Ok(None);
        }
        let on_read_leg = self.routing.read_leg() == Some(backend.node())
            && self
                .routing
                .deferred
                .is_some_and(|deferred| !deferred.failed);
        let first = FirstPart {
            class: unit.class,
            on_replica: self.state.topology().writable_primary() != Ok(backend.node()),
            outside_transaction: self.routing.transaction.is_none()
                && backend.connection().status == TransactionStatus::Idle,
            on_read_leg,
        };
        let rest = self.batch_unit(batch)?;
        let rebinds = rebinds(sent, batch)?;
        let splits = ends_first_part(first, &rest, self.opens_deferred(&rest), rebinds.is_none());
        Ok(rebinds.filter(|_| splits))
    }

    /// Ends the first part of a split batch on `backend` with a Sync whose
    /// ReadyForQuery the client does not see, and settles it as the unit it
    /// was. A backend that fails here is dropped: the client has the first
    /// part's answers, and its implicit transaction only read.
    pub(super) async fn end_first_part(
        &mut self,
        mut backend: PooledBackend,
        unit: Unit,
    ) -> Result<(), SessionEnd> {
        let node = backend.node();
        let mut out = BytesMut::new();
        encode_sync(&mut out);
        let failed = match backend.connection().send(&out).await {
            Err(error) => Some(error.to_string()),
            Ok(()) => {
                let mut exchange = Exchange::default();
                exchange.steps.push_back(Step::Sync);
                exchange.ready_left = 1;
                match self.relay(backend, exchange).await? {
                    Relayed::Ready(backend, _proxys_own) => {
                        return self.settle_answering(backend, &unit, None).await;
                    }
                    Relayed::Failed(_, error) => Some(error.to_string()),
                    // Not asked for (one Sync, not rerunnable): drop the backend.
                    Relayed::Flushed(_) | Relayed::Rerun(..) => {
                        Some("unexpected end of exchange".to_owned())
                    }
                }
            }
        };
        if let Some(error) = failed {
            self.state.monitor.report_suspect(node);
            tracing::warn!(
                node = %self.state.topology().node(node).map_or("?", |node| &node.name),
                %error,
                "the backend failed while ending a batch's reads before its write"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgrw_core::classification::SessionEffects;

    fn unit(class: StatementClass) -> Unit {
        Unit {
            class,
            hint: None,
            effects: SessionEffects::NONE,
            transaction_time: false,
            reads_session_backend: false,
            shows_backend_state: false,
        }
    }

    const READ_ON_REPLICA: FirstPart = FirstPart {
        class: StatementClass::Read,
        on_replica: true,
        outside_transaction: true,
        on_read_leg: false,
    };

    const READ_ON_READ_LEG: FirstPart = FirstPart {
        outside_transaction: false,
        on_read_leg: true,
        ..READ_ON_REPLICA
    };

    #[test]
    fn a_write_after_reads_on_a_replica_ends_the_reads_and_goes_its_own_way() {
        assert!(ends_first_part(
            READ_ON_REPLICA,
            &unit(StatementClass::Write),
            false,
            false
        ));
        assert!(ends_first_part(
            READ_ON_REPLICA,
            &unit(StatementClass::Begin(TxAccess::Unspecified)),
            false,
            false
        ));
    }

    #[test]
    fn reads_after_reads_stay_on_the_replica() {
        assert!(!ends_first_part(
            READ_ON_REPLICA,
            &unit(StatementClass::Read),
            false,
            false
        ));
        assert!(!ends_first_part(
            READ_ON_REPLICA,
            &unit(StatementClass::Begin(TxAccess::ReadOnly)),
            false,
            false
        ));
    }

    #[test]
    fn a_primary_hint_in_the_rest_ends_the_reads() {
        let mut rest = unit(StatementClass::Read);
        rest.hint = Some(RouteHint::Primary);
        assert!(ends_first_part(READ_ON_REPLICA, &rest, false, false));
    }

    #[test]
    fn a_batch_on_the_primary_is_never_split() {
        let first = FirstPart {
            on_replica: false,
            ..READ_ON_REPLICA
        };
        assert!(!ends_first_part(
            first,
            &unit(StatementClass::Write),
            false,
            false
        ));
    }

    #[test]
    fn inside_a_transaction_the_write_meets_the_replica_as_postgresql_answers_it() {
        let first = FirstPart {
            outside_transaction: false,
            ..READ_ON_REPLICA
        };
        assert!(!ends_first_part(
            first,
            &unit(StatementClass::Write),
            false,
            false
        ));
        let began = FirstPart {
            class: StatementClass::Begin(TxAccess::ReadOnly),
            ..READ_ON_REPLICA
        };
        assert!(!ends_first_part(
            began,
            &unit(StatementClass::Write),
            false,
            false
        ));
    }

    #[test]
    fn in_a_deferred_transaction_what_opens_the_primary_ends_the_reads_on_the_read_leg() {
        for class in [
            StatementClass::Write,
            StatementClass::Savepoint,
            StatementClass::Read,
        ] {
            assert!(ends_first_part(READ_ON_READ_LEG, &unit(class), true, false));
        }
    }

    #[test]
    fn in_a_deferred_transaction_reads_and_its_end_stay_on_the_read_leg() {
        for class in [
            StatementClass::Read,
            StatementClass::Commit,
            StatementClass::Write,
        ] {
            assert!(!ends_first_part(
                READ_ON_READ_LEG,
                &unit(class),
                false,
                false
            ));
        }
        // A portal the reads began to run cannot move.
        assert!(!ends_first_part(
            READ_ON_READ_LEG,
            &unit(StatementClass::Write),
            true,
            true
        ));
    }

    #[test]
    fn a_rest_that_uses_the_first_parts_portal_stays_with_it() {
        assert!(!ends_first_part(
            READ_ON_REPLICA,
            &unit(StatementClass::Write),
            false,
            true
        ));
    }

    fn message(bytes: &BytesMut) -> Message {
        let mut buffer = bytes.clone();
        Message::split_from(&mut buffer, &crate::protocol::FrameLimits::default())
            .ok()
            .flatten()
            .expect("a whole message")
    }

    fn bind(portal: &[u8], statement: &[u8]) -> Message {
        use crate::protocol::frontend::{Bind, bind_parameters, encode_bind};
        let parameters = bind_parameters(&[], &[], &[]);
        let mut out = BytesMut::new();
        let bind = Bind {
            portal,
            statement,
            parameters: &parameters,
        };
        encode_bind(&mut out, &bind);
        message(&out)
    }

    fn execute(portal: &[u8]) -> Message {
        let mut out = BytesMut::new();
        crate::protocol::frontend::encode_execute(&mut out, portal, 0);
        message(&out)
    }

    fn parse(statement: &[u8]) -> Message {
        let mut out = BytesMut::new();
        crate::protocol::frontend::encode_parse(&mut out, statement, b"SELECT 1", &[]);
        message(&out)
    }

    #[test]
    fn a_portal_is_earlier_unless_the_rest_binds_it() {
        let bound_here = [bind(b"", b""), execute(b"")];
        assert!(earlier_portals(&bound_here).expect("valid").is_empty());
        let bound_before = [execute(b"")];
        assert_eq!(earlier_portals(&bound_before).expect("valid"), [&b""[..]]);
    }

    #[test]
    fn a_portal_bound_but_not_run_before_the_flush_is_bound_again() {
        let sent = [parse(b"s"), bind(b"p", b"s"), bind(b"", b"s")];
        let rest = [parse(b"w"), bind(b"", b"w"), execute(b""), execute(b"p")];
        let binds = rebinds(&sent, &rest).expect("valid");
        assert_eq!(binds, Some(vec![bind(b"p", b"s")]));
        assert_eq!(
            rebinds(&sent, &[execute(b"")]).expect("valid"),
            Some(vec![bind(b"", b"s")])
        );
    }

    #[test]
    fn a_portal_that_cannot_move_keeps_the_rest_on_its_backend() {
        let rest = [execute(b"p")];
        let started = [bind(b"p", b"s"), execute(b"p")];
        assert_eq!(rebinds(&started, &rest).expect("valid"), None);
        let reparsed = [parse(b"s"), bind(b"p", b"s"), parse(b"s")];
        assert_eq!(rebinds(&reparsed, &rest).expect("valid"), None);
        assert_eq!(rebinds(&[], &rest).expect("valid"), None);
    }
}
