//! The statement-type decision: from a statement's head (its first tokens)
//! and the [`Findings`] of the whole text, its class, reason and effects.

use super::Reason;
use super::effects::{DefaultIsolation, Effect, RouteSetting, RouteSettingChange, SessionEffects};
use super::reason::InlineName;
use super::scan::{CopyDirection, Findings, Sig, StatementScan};
use crate::classification::{StatementClass, TxAccess};
use crate::sql::keywords::Kw;
use crate::sql::lexer::TokenKind;

/// A statement's verdict before routing hints are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    pub class: StatementClass,
    pub reason: Reason,
    pub effects: SessionEffects,
}

impl Verdict {
    fn new(class: StatementClass, reason: Reason) -> Verdict {
        Verdict {
            class,
            reason,
            effects: SessionEffects::NONE,
        }
    }

    fn write(reason: Reason) -> Verdict {
        Verdict::new(StatementClass::Write, reason)
    }

    fn with(mut self, effect: Effect) -> Verdict {
        self.effects.insert(effect);
        self
    }

    fn with_effects(mut self, effects: SessionEffects) -> Verdict {
        self.effects = self.effects.union(effects);
        self
    }
}

/// The head of a statement and everything needed to read it.
struct Head<'s, 'a> {
    scan: &'s StatementScan<'a>,
    tokens: &'s [Sig],
}

impl Head<'_, '_> {
    fn kw(&self, at: usize) -> Option<Kw> {
        self.tokens.get(at).and_then(|sig| sig.kw)
    }

    fn kind(&self, at: usize) -> Option<TokenKind> {
        self.tokens.get(at).map(|sig| sig.kind)
    }

    fn text(&self, at: usize) -> &[u8] {
        self.tokens
            .get(at)
            .map_or(&[][..], |sig| self.scan.text(sig))
    }

    /// Whether the head is the whole statement and ends exactly at `end`.
    fn ends_at(&self, end: usize) -> bool {
        self.scan.head_is_whole() && self.tokens.len() == end
    }

    fn findings(&self) -> &Findings {
        &self.scan.findings
    }
}

/// Decides a whole statement.
pub(super) fn decide(scan: &StatementScan<'_>) -> Verdict {
    let head = Head {
        scan,
        tokens: scan.head(),
    };
    if head.tokens.is_empty() {
        return Verdict::new(StatementClass::Empty, Reason::Empty);
    }
    let verdict = decide_at(&head, 0);
    let verdict = match &scan.findings.unrecognised {
        Some(reason) if verdict.class != StatementClass::Write => Verdict {
            class: StatementClass::Write,
            reason: reason.clone(),
            ..verdict
        },
        _ => verdict,
    };
    pinned_where_writes_follow(verdict)
}

/// A statement that pins the session to its backend (a `WITH HOLD` cursor
/// declared outside a transaction, a SQL-level `PREPARE`, a session function
/// …) runs on the primary, even when it only reads: the session stays on that
/// backend, and a later write (or read-write transaction) can only run on the
/// primary. A replica hint cannot move it (the reason is not one a hint may
/// override).
fn pinned_where_writes_follow(verdict: Verdict) -> Verdict {
    let Some(pinning) = verdict.effects.pinning() else {
        return verdict;
    };
    let definite_write =
        verdict.class == StatementClass::Write && !verdict.reason.hint_may_override();
    if definite_write {
        return verdict;
    }
    Verdict {
        class: StatementClass::Write,
        reason: Reason::PinsSession(pinning.label()),
        effects: verdict.effects,
    }
}

/// A query that reads unless its text shows otherwise.
fn read_candidate(head: &Head<'_, '_>, read_reason: Reason) -> Verdict {
    let findings = head.findings();
    let verdict = match (
        &findings.unrecognised,
        &findings.keyword_write,
        &findings.function_write,
    ) {
        (Some(reason), _, _) | (None, Some(reason), _) | (None, None, Some(reason)) => {
            Verdict::write(reason.clone())
        }
        // A read but for the session's own backend state.
        (None, None, None) => match &findings.session_backend_state {
            Some(reason) => Verdict::write(reason.clone()),
            None => Verdict::new(StatementClass::Read, read_reason),
        },
    };
    verdict.with_effects(findings.effects)
}

fn decide_at(head: &Head<'_, '_>, start: usize) -> Verdict {
    let mut at = start;
    while head.kind(at) == Some(TokenKind::OpenParen) {
        at += 1;
    }
    let Some(kw) = head.kw(at) else {
        return if at >= head.tokens.len() && !head.scan.head_is_whole() {
            Verdict::write(Reason::Unrecognised("statement head too long to read"))
        } else {
            Verdict::write(Reason::Unrecognised(
                "statement does not start with a known keyword",
            ))
        };
    };
    let effects = head.findings().effects;
    let command = |name| Verdict::write(Reason::Command(name)).with_effects(effects);
    match kw {
        Kw::Select | Kw::Values | Kw::Table | Kw::With => read_candidate(head, Reason::Read),
        // `SHOW transaction_read_only` is `on` on any standby; `SHOW ALL` shows it.
        Kw::Show if head.kw(at + 1) == Some(Kw::All) => {
            Verdict::write(Reason::NodeState(InlineName::new(b"SHOW ALL")))
        }
        Kw::Show if super::scan::is_node_state_setting(head.text(at + 1)) => {
            Verdict::write(Reason::NodeState(InlineName::new(head.text(at + 1))))
        }
        Kw::Show => Verdict::new(StatementClass::Read, Reason::Read),
        Kw::Explain => explain(head, at + 1),
        Kw::Copy => match head.findings().copy_direction {
            Some(CopyDirection::From) => command("COPY FROM"),
            Some(CopyDirection::ToStdout) => read_candidate(head, Reason::Read),
            Some(CopyDirection::ToElsewhere | CopyDirection::ToPending) => {
                command("COPY TO a server file or program")
            }
            None => Verdict::write(Reason::Unrecognised("COPY without FROM or TO")),
        },
        Kw::Fetch | Kw::Move => {
            Verdict::new(StatementClass::Read, Reason::Cursor(kw.name())).with(Effect::CURSOR_USE)
        }
        Kw::Close => {
            Verdict::new(StatementClass::Read, Reason::Cursor("CLOSE")).with(Effect::CLOSE_CURSOR)
        }
        Kw::Declare => {
            let verdict =
                read_candidate(head, Reason::Cursor("DECLARE")).with(Effect::DECLARE_CURSOR);
            if head.findings().hold_cursor {
                verdict.with(Effect::HOLD_CURSOR)
            } else {
                verdict
            }
        }
        Kw::Begin => {
            let modes =
                at + 1 + usize::from(matches!(head.kw(at + 1), Some(Kw::Work | Kw::Transaction)));
            Verdict::new(
                StatementClass::Begin(transaction_access(head, modes)),
                Reason::Transaction("BEGIN"),
            )
        }
        Kw::Start if head.kw(at + 1) == Some(Kw::Transaction) => Verdict::new(
            StatementClass::Begin(transaction_access(head, at + 2)),
            Reason::Transaction("START TRANSACTION"),
        ),
        Kw::Set => set(head, at + 1),
        Kw::Reset => reset(head, at + 1),
        Kw::Discard => discard(head, at + 1),
        Kw::Commit | Kw::End if head.kw(at + 1) == Some(Kw::Prepared) => command("COMMIT PREPARED"),
        Kw::Commit | Kw::End => Verdict::new(StatementClass::Commit, Reason::Transaction("COMMIT")),
        Kw::Rollback | Kw::Abort if head.kw(at + 1) == Some(Kw::Prepared) => {
            command("ROLLBACK PREPARED")
        }
        Kw::Rollback | Kw::Abort
            if head
                .tokens
                .get(at + 1..)
                .unwrap_or_default()
                .iter()
                .take(2)
                .any(|sig| sig.kw == Some(Kw::To)) =>
        {
            Verdict::new(
                StatementClass::Savepoint,
                Reason::Transaction("ROLLBACK TO SAVEPOINT"),
            )
        }
        Kw::Rollback | Kw::Abort => {
            Verdict::new(StatementClass::Rollback, Reason::Transaction("ROLLBACK"))
        }
        Kw::Savepoint | Kw::Release => {
            Verdict::new(StatementClass::Savepoint, Reason::Transaction(kw.name()))
        }
        Kw::Prepare if head.kw(at + 1) == Some(Kw::Transaction) => command("PREPARE TRANSACTION"),
        // The prepared statement is not run yet: only its name is session state.
        Kw::Prepare => {
            Verdict::new(StatementClass::Session, Reason::Session("PREPARE")).with(Effect::PREPARE)
        }
        // What a prepared statement does is not in this text.
        Kw::Execute => command("EXECUTE").with(Effect::EXECUTE),
        Kw::Deallocate => {
            let all = head.kw(at + 1) == Some(Kw::All)
                || (head.kw(at + 1) == Some(Kw::Prepare) && head.kw(at + 2) == Some(Kw::All));
            let effect = if all {
                Effect::DEALLOCATE_ALL
            } else {
                Effect::DEALLOCATE
            };
            Verdict::new(StatementClass::Session, Reason::Session("DEALLOCATE")).with(effect)
        }
        Kw::Listen => command("LISTEN").with(Effect::LISTEN),
        Kw::Unlisten => command("UNLISTEN").with(Effect::UNLISTEN),
        Kw::Insert | Kw::Update | Kw::Delete | Kw::Merge => {
            Verdict::write(Reason::Writes(kw.name())).with_effects(effects)
        }
        Kw::Drop => Verdict::write(Reason::Ddl(kw.name()))
            .with_effects(effects)
            .with(Effect::DROP),
        Kw::Create
        | Kw::Alter
        | Kw::Truncate
        | Kw::Grant
        | Kw::Revoke
        | Kw::Comment
        | Kw::Security
        | Kw::Reassign
        | Kw::Import => Verdict::write(Reason::Ddl(kw.name())).with_effects(effects),
        Kw::Notify
        | Kw::Lock
        | Kw::Vacuum
        | Kw::Analyze
        | Kw::Analyse
        | Kw::Cluster
        | Kw::Reindex
        | Kw::Checkpoint
        | Kw::Refresh
        | Kw::Call
        | Kw::Do
        | Kw::Load => command(kw.name()),
        _ => Verdict::write(Reason::Unrecognised("statement type")),
    }
}

/// `EXPLAIN [ANALYZE] [VERBOSE] stmt` or `EXPLAIN (option [value], …) stmt`.
fn explain(head: &Head<'_, '_>, mut at: usize) -> Verdict {
    let mut analyze = false;
    if head.kind(at) == Some(TokenKind::OpenParen) {
        at += 1;
        loop {
            match head.kind(at) {
                None => return Verdict::write(Reason::Unrecognised("EXPLAIN options")),
                Some(TokenKind::CloseParen) => break,
                _ => {}
            }
            if matches!(head.kw(at), Some(Kw::Analyze | Kw::Analyse)) {
                let disabled = matches!(head.kw(at + 1), Some(Kw::False | Kw::Off))
                    || (head.kind(at + 1) == Some(TokenKind::Integer) && head.text(at + 1) == b"0");
                analyze |= !disabled;
            }
            at += 1;
        }
        at += 1;
    } else {
        while let Some(kw @ (Kw::Analyze | Kw::Analyse | Kw::Verbose)) = head.kw(at) {
            analyze |= kw != Kw::Verbose;
            at += 1;
        }
    }
    let inner = decide_at(head, at);
    if analyze {
        return inner;
    }
    let only_planned = matches!(
        inner.reason,
        Reason::Writes(_)
            | Reason::Ddl("CREATE")
            | Reason::WritableCte
            | Reason::SelectInto
            | Reason::Locks(_)
            | Reason::Function { .. }
            | Reason::Operator(_)
            | Reason::NodeState(_)
            | Reason::SessionBackendState(_)
    );
    match inner.class {
        StatementClass::Read => Verdict::new(StatementClass::Read, Reason::Read),
        StatementClass::Write if only_planned && head.findings().unrecognised.is_none() => {
            Verdict::new(StatementClass::Read, Reason::ExplainWithoutAnalyze)
        }
        StatementClass::Write => inner,
        _ => Verdict::write(Reason::Unrecognised(
            "EXPLAIN of a statement that cannot be explained",
        )),
    }
}

/// Transaction modes from `at`: `READ ONLY`, `READ WRITE`, `ISOLATION LEVEL …`,
/// `[NOT] DEFERRABLE`, comma-separated. Anything else (or a contradiction)
/// gives [`TxAccess::Unspecified`], which the policy treats as read write.
/// So does `ISOLATION LEVEL SERIALIZABLE`, even with `READ ONLY`: a hot
/// standby refuses serializable mode, so the transaction must run on the primary.
fn transaction_access(head: &Head<'_, '_>, mut at: usize) -> TxAccess {
    if !head.scan.head_is_whole() {
        return TxAccess::Unspecified;
    }
    let mut access = TxAccess::Unspecified;
    let mut serializable = false;
    while at < head.tokens.len() {
        let step = match (
            head.kw(at),
            head.kw(at + 1),
            head.kw(at + 2),
            head.kw(at + 3),
        ) {
            (Some(Kw::Read), Some(mode @ (Kw::Only | Kw::Write)), _, _) => {
                let named = if mode == Kw::Only {
                    TxAccess::ReadOnly
                } else {
                    TxAccess::ReadWrite
                };
                if access != TxAccess::Unspecified && access != named {
                    return TxAccess::Unspecified;
                }
                access = named;
                2
            }
            (Some(Kw::Isolation), Some(Kw::Level), Some(Kw::Serializable), _) => {
                serializable = true;
                3
            }
            (Some(Kw::Isolation), Some(Kw::Level), Some(Kw::Repeatable), Some(Kw::Read)) => 4,
            (
                Some(Kw::Isolation),
                Some(Kw::Level),
                Some(Kw::Read),
                Some(Kw::Committed | Kw::Uncommitted),
            ) => 4,
            (Some(Kw::Not), Some(Kw::Deferrable), _, _) => 2,
            (Some(Kw::Deferrable), _, _, _) => 1,
            _ if head.kind(at) == Some(TokenKind::Comma) => 1,
            _ => return TxAccess::Unspecified,
        };
        at += step;
    }
    if serializable {
        return TxAccess::Unspecified;
    }
    access
}

/// The isolation level a list of transaction modes from `at` names, if any.
fn names_level(head: &Head<'_, '_>, at: usize) -> Option<DefaultIsolation> {
    let tokens = head.tokens.get(at..).unwrap_or_default();
    let level = tokens
        .windows(3)
        .find(|w| w[0].kw == Some(Kw::Isolation) && w[1].kw == Some(Kw::Level))
        .map(|w| match w[2].kw {
            Some(Kw::Serializable) => DefaultIsolation::Serializable,
            Some(Kw::Repeatable) => DefaultIsolation::RepeatableRead,
            _ => DefaultIsolation::Other,
        });
    // A list longer than the head: unsure, so serializable (reads to the primary).
    level.or((!head.scan.head_is_whole()).then_some(DefaultIsolation::Serializable))
}

/// `SET [SESSION] default_transaction_isolation {TO | =} value`: the session's
/// default isolation from now on. A value pgrw cannot read counts as
/// serializable (its reads then go to the primary, which takes any level).
fn default_isolation_value(head: &Head<'_, '_>, at: usize) -> DefaultIsolation {
    let value = head.text(at);
    let bare = match head.kind(at) {
        Some(TokenKind::String) => value.get(1..value.len().saturating_sub(1)),
        Some(TokenKind::Identifier) => Some(value),
        _ => None,
    };
    let ends = head.ends_at(at + 1);
    match bare {
        Some(b)
            if ends
                && b.eq_ignore_ascii_case(b"default")
                && head.kind(at) == Some(TokenKind::Identifier) =>
        {
            DefaultIsolation::LoginDefault
        }
        Some(b) if ends && b.eq_ignore_ascii_case(b"repeatable read") => {
            DefaultIsolation::RepeatableRead
        }
        Some(b)
            if ends
                && [&b"read committed"[..], b"read uncommitted"]
                    .iter()
                    .any(|level| b.eq_ignore_ascii_case(level)) =>
        {
            DefaultIsolation::Other
        }
        _ => DefaultIsolation::Serializable,
    }
}

/// Whether tokens at `at` spell `default_transaction_isolation` (maybe quoted).
fn is_default_isolation(head: &Head<'_, '_>, at: usize) -> bool {
    let text = head.text(at);
    match head.kind(at) {
        Some(TokenKind::Identifier) => text.eq_ignore_ascii_case(b"default_transaction_isolation"),
        Some(TokenKind::QuotedIdentifier) => {
            text.get(1..text.len().saturating_sub(1)) == Some(&b"default_transaction_isolation"[..])
        }
        _ => false,
    }
}

/// Whether tokens `at..at + 3` spell `pgrw.route` (either part may be quoted).
fn is_pgrw_route(head: &Head<'_, '_>, at: usize) -> bool {
    let part = |at: usize, name: &[u8]| {
        let text = head.text(at);
        match head.kind(at) {
            Some(TokenKind::Identifier) => text.eq_ignore_ascii_case(name),
            Some(TokenKind::QuotedIdentifier) => text.get(1..text.len() - 1) == Some(name),
            _ => false,
        }
    };
    part(at, b"pgrw") && head.kind(at + 1) == Some(TokenKind::Dot) && part(at + 2, b"route")
}

fn route_setting(text: &[u8], kind: TokenKind) -> Option<RouteSetting> {
    let value = match kind {
        TokenKind::String => text.get(1..text.len() - 1)?,
        TokenKind::Identifier => text,
        _ => return None,
    };
    [
        (&b"primary"[..], RouteSetting::Primary),
        (b"replica", RouteSetting::Replica),
        (b"auto", RouteSetting::Auto),
        (b"default", RouteSetting::Auto),
    ]
    .into_iter()
    .find(|(name, _)| value.eq_ignore_ascii_case(name))
    .map(|(_, setting)| setting)
}

/// `SET [SESSION | LOCAL] …`, `SET TRANSACTION …`, `SET CONSTRAINTS …`.
fn set(head: &Head<'_, '_>, mut at: usize) -> Verdict {
    if head.kw(at) == Some(Kw::Transaction) {
        if head.tokens.get(at + 1).is_some_and(|sig| {
            sig.kw.is_none() && head.scan.text(sig).eq_ignore_ascii_case(b"snapshot")
        }) {
            return Verdict::new(
                StatementClass::SetTransaction(TxAccess::Unspecified),
                Reason::Transaction("SET TRANSACTION"),
            );
        }
        return Verdict::new(
            StatementClass::SetTransaction(transaction_access(head, at + 1)),
            Reason::Transaction("SET TRANSACTION"),
        );
    }
    let local = head.kw(at) == Some(Kw::Local);
    if matches!(head.kw(at), Some(Kw::Local | Kw::Session)) {
        at += 1;
    }
    let transaction_scoped = local || head.text(at).eq_ignore_ascii_case(b"constraints");
    let (effect, name) = if transaction_scoped {
        (Effect::SET_LOCAL, "SET LOCAL")
    } else {
        (Effect::SET, "SET")
    };
    let mut verdict = Verdict::new(StatementClass::Session, Reason::Session(name)).with(effect);
    if !local && head.text(at).eq_ignore_ascii_case(b"characteristics") {
        // `SET SESSION CHARACTERISTICS AS TRANSACTION modes`.
        verdict.effects.default_isolation = names_level(head, at);
        return verdict;
    }
    if is_default_isolation(head, at) {
        let assigns = head.kw(at + 1) == Some(Kw::To) || head.text(at + 1) == b"=";
        if !local {
            verdict.effects.default_isolation = Some(if assigns {
                default_isolation_value(head, at + 2)
            } else {
                DefaultIsolation::Serializable
            });
        }
        return verdict;
    }
    if !is_pgrw_route(head, at) {
        return verdict;
    }
    let assigns = head.kw(at + 3) == Some(Kw::To) || head.text(at + 3) == b"=";
    let value = head
        .kind(at + 4)
        .and_then(|kind| route_setting(head.text(at + 4), kind));
    match value {
        Some(setting) if assigns && head.ends_at(at + 5) => {
            let mut verdict = verdict;
            verdict.effects.route_setting = Some(RouteSettingChange { setting, local });
            verdict
        }
        _ => Verdict::write(Reason::Unrecognised(
            "pgrw.route must be primary, replica or auto",
        )),
    }
}

/// `RESET name` / `RESET ALL`.
fn reset(head: &Head<'_, '_>, at: usize) -> Verdict {
    let all = head.kw(at) == Some(Kw::All);
    let mut verdict =
        Verdict::new(StatementClass::Session, Reason::Session("RESET")).with(if all {
            Effect::RESET_ALL
        } else {
            Effect::RESET
        });
    if all || is_default_isolation(head, at) {
        verdict.effects.default_isolation = Some(DefaultIsolation::LoginDefault);
    }
    if all || is_pgrw_route(head, at) {
        verdict.effects.route_setting = Some(RouteSettingChange {
            setting: RouteSetting::Auto,
            local: false,
        });
    }
    verdict
}

/// `DISCARD ALL | PLANS | SEQUENCES | TEMP | TEMPORARY`.
fn discard(head: &Head<'_, '_>, at: usize) -> Verdict {
    let text = head.text(at);
    let effect = match head.kw(at) {
        Some(Kw::All) => Effect::DISCARD_ALL,
        Some(Kw::Temp | Kw::Temporary) => Effect::DISCARD_TEMP,
        _ if text.eq_ignore_ascii_case(b"plans") => Effect::DISCARD_PLANS,
        _ if text.eq_ignore_ascii_case(b"sequences") => Effect::DISCARD_SEQUENCES,
        _ => return Verdict::write(Reason::Unrecognised("DISCARD of an unknown kind")),
    };
    let mut verdict =
        Verdict::new(StatementClass::Session, Reason::Session("DISCARD")).with(effect);
    if effect == Effect::DISCARD_ALL {
        verdict.effects.default_isolation = Some(DefaultIsolation::LoginDefault);
        verdict.effects.route_setting = Some(RouteSettingChange {
            setting: RouteSetting::Auto,
            local: false,
        });
    }
    verdict
}
