//! Knowledge of SQL functions: which write, lock or change session state.
//!
//! [`FunctionCatalog::builtin`] knows PostgreSQL's own primary-only functions
//! (sequences, advisory locks, large objects, `set_config`, `pg_notify`,
//! replication and admin functions) and an allowlist of read-only ones. A
//! driver connected to the database adds the volatility of user functions
//! from `pg_proc` ([`USER_FUNCTIONS_QUERY`], [`FunctionCatalog::add_user_function`]);
//! configuration can force names either way. A function known nowhere is
//! what PostgreSQL makes a user function by default, volatile: the primary.
//!
//! The same driver adds the database's unlogged relations
//! ([`UNLOGGED_RELATIONS_QUERY`], [`FunctionCatalog::add_unlogged_relation`]):
//! a standby has none of their rows and refuses to read them, so a statement
//! naming one runs on the primary. While a driver knows its copy may be out of
//! date (DDL committed, not yet reloaded), [`FunctionCatalog::doubting`] gives
//! a copy that trusts no function outside `pg_catalog`-qualified calls.

mod builtin;

use std::collections::{HashMap, HashSet};
use std::fmt;

use builtin::{Builtin, Knowledge, READ_ONLY_OPERATORS, knowledge};

use crate::sql::classify::{Effect, SessionEffects};

/// SQL listing every function outside `pg_catalog` and `information_schema`
/// with its volatility: columns `schema`, `name`, `volatility` (`pg_proc.provolatile`:
/// `i`, `s` or `v`). Feed each row to [`FunctionCatalog::add_user_function`].
pub const USER_FUNCTIONS_QUERY: &str = "SELECT n.nspname::text AS schema, p.proname::text AS name, \
     p.provolatile::text AS volatility \
     FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'a', 'w')";

/// SQL listing the database's unlogged tables, materialized views and
/// sequences (`pg_class.relpersistence = 'u'`), one column `name`. Feed each
/// row to [`FunctionCatalog::add_unlogged_relation`].
pub const UNLOGGED_RELATIONS_QUERY: &str = "SELECT c.relname::text AS name \
     FROM pg_catalog.pg_class c \
     WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p', 'm', 'S')";

/// A function's volatility, as in `pg_proc.provolatile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Volatility {
    /// `i`: same result for the same arguments, no side effects.
    Immutable,
    /// `s`: no side effects; stable within a statement.
    Stable,
    /// `v`: may do anything, including write (PostgreSQL's default).
    Volatile,
}

impl Volatility {
    /// Parses `pg_proc.provolatile` (`"i"`, `"s"`, `"v"`).
    pub fn from_provolatile(code: &str) -> Option<Volatility> {
        match code {
            "i" => Some(Volatility::Immutable),
            "s" => Some(Volatility::Stable),
            "v" => Some(Volatility::Volatile),
            _ => None,
        }
    }
}

/// Why a function call must run on the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrimaryBecause {
    /// A built-in that writes data or changes the server.
    Writes,
    /// A built-in that takes a lock (advisory locks).
    TakesLock,
    /// A built-in that changes session state (`set_config(…, false)`, `setseed`).
    ChangesSession,
    /// A built-in that fails on a standby (`pg_current_wal_lsn`).
    PrimaryOnly,
    /// A built-in that asks about this server (`pg_is_in_recovery`,
    /// `pg_backend_pid`, `pg_lock_status`): the primary's answer is the one
    /// the application must see.
    AsksTheNode,
    /// A user function `pg_proc` marks volatile.
    Volatile,
    /// Known nowhere: volatile, as PostgreSQL makes user functions by default.
    Unknown,
    /// Configured primary-only.
    Configured,
    /// Its name cannot be read reliably (`U&"…"` escapes, over 63 bytes).
    OpaqueName,
    /// DDL committed since the catalog was loaded: until it is loaded again,
    /// any function may have been created, replaced or shadowed.
    CatalogReloading,
}

impl PrimaryBecause {
    /// Whether a `pgrw:replica` hint may override this: for user and
    /// unknown functions, which the application knows better than we do, and
    /// for questions about the server (an operator asking a replica about
    /// itself on purpose: such a call only reads).
    pub fn hint_may_override(self) -> bool {
        matches!(
            self,
            PrimaryBecause::Volatile
                | PrimaryBecause::Unknown
                | PrimaryBecause::AsksTheNode
                | PrimaryBecause::CatalogReloading
        )
    }
}

impl fmt::Display for PrimaryBecause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrimaryBecause::Writes => "writes",
            PrimaryBecause::TakesLock => "takes a lock",
            PrimaryBecause::ChangesSession => "changes session state",
            PrimaryBecause::PrimaryOnly => "only works on the primary",
            PrimaryBecause::AsksTheNode => "asks about this server (the primary answers)",
            PrimaryBecause::Volatile => "is volatile",
            PrimaryBecause::Unknown => "is unknown (volatile by default)",
            PrimaryBecause::Configured => "is configured primary-only",
            PrimaryBecause::OpaqueName => "has a name pgrw cannot read",
            PrimaryBecause::CatalogReloading => {
                "may have changed (DDL committed, catalog being reloaded)"
            }
        })
    }
}

/// The catalog's judgement on one function call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionVerdict {
    /// Only reads: replica-eligible.
    ReadOnly,
    /// Must run on the primary, with the session effects it has.
    Primary(PrimaryBecause, SessionEffects),
    /// `set_config`: a session change (primary) unless its `is_local`
    /// argument is literally `true`, which makes it transaction-local.
    SetConfig,
}

/// One user function overload: its schema and volatility.
type Overload = (Box<[u8]>, Volatility);

/// What the classifier knows about functions: built-in knowledge, user
/// functions' volatility, and configured overrides.
#[derive(Debug, Clone, Default)]
pub struct FunctionCatalog {
    /// Lowercased function name → (schema, volatility) of each overload.
    user_functions: HashMap<Box<[u8]>, Vec<Overload>>,
    /// `name` or `schema.name` entries forced to the primary.
    forced_primary: HashSet<Box<[u8]>>,
    /// `name` or `schema.name` entries forced read-only.
    forced_read_only: HashSet<Box<[u8]>>,
    /// Extra operators (from extensions) known to be read-only.
    read_only_operators: HashSet<Box<[u8]>>,
    /// Treat functions known nowhere as read-only.
    trust_unknown: bool,
    /// Names (as in `pg_class.relname`) of unlogged relations.
    unlogged_relations: HashSet<Box<[u8]>>,
    /// The user functions may have changed since they were loaded: only
    /// built-in knowledge of `pg_catalog`-qualified calls is trusted.
    doubting: bool,
}

/// Room for `schema.name` with both at PostgreSQL's 63-byte limit.
const QUALIFIED_CAPACITY: usize = 128;

fn qualified_key(schema: &[u8], name: &[u8]) -> Option<([u8; QUALIFIED_CAPACITY], usize)> {
    let len = schema.len() + 1 + name.len();
    if len > QUALIFIED_CAPACITY {
        return None;
    }
    let mut key = [0u8; QUALIFIED_CAPACITY];
    key[..schema.len()].copy_from_slice(schema);
    key[schema.len()] = b'.';
    key[schema.len() + 1..len].copy_from_slice(name);
    Some((key, len))
}

fn lowercase_key(text: &str) -> Box<[u8]> {
    text.to_ascii_lowercase().into_bytes().into_boxed_slice()
}

fn builtin_verdict(builtin: Builtin) -> FunctionVerdict {
    let primary = |because, effect: Option<Effect>| {
        FunctionVerdict::Primary(
            because,
            effect.map(SessionEffects::from).unwrap_or_default(),
        )
    };
    match builtin {
        Builtin::Writes => primary(PrimaryBecause::Writes, None),
        Builtin::Sequence => primary(PrimaryBecause::Writes, Some(Effect::SEQUENCE)),
        Builtin::SessionLock => primary(PrimaryBecause::TakesLock, Some(Effect::ADVISORY_LOCK)),
        Builtin::XactLock => primary(PrimaryBecause::TakesLock, Some(Effect::ADVISORY_XACT_LOCK)),
        Builtin::Unlock => primary(PrimaryBecause::TakesLock, Some(Effect::ADVISORY_UNLOCK)),
        Builtin::SetConfig => FunctionVerdict::SetConfig,
        Builtin::Session => primary(
            PrimaryBecause::ChangesSession,
            Some(Effect::SESSION_FUNCTION),
        ),
        Builtin::PrimaryOnly => primary(PrimaryBecause::PrimaryOnly, None),
        Builtin::NodeLocal => primary(PrimaryBecause::AsksTheNode, None),
    }
}

impl FunctionCatalog {
    /// The built-in knowledge only: PostgreSQL's primary-only functions and
    /// read-only allowlist; unknown functions go to the primary.
    pub fn builtin() -> FunctionCatalog {
        FunctionCatalog::default()
    }

    /// Records a user function's volatility, as listed by [`USER_FUNCTIONS_QUERY`]
    /// (names as stored in `pg_proc`, i.e. already case-folded by PostgreSQL).
    pub fn add_user_function(&mut self, schema: &str, name: &str, volatility: Volatility) {
        let overloads = self
            .user_functions
            .entry(name.as_bytes().into())
            .or_default();
        overloads.push((schema.as_bytes().into(), volatility));
    }

    /// Records an unlogged relation, as listed by [`UNLOGGED_RELATIONS_QUERY`]
    /// (the name as stored in `pg_class`).
    pub fn add_unlogged_relation(&mut self, name: &str) {
        self.unlogged_relations.insert(name.as_bytes().into());
    }

    /// Whether any unlogged relation is known (so that names are worth looking up).
    pub fn knows_unlogged_relations(&self) -> bool {
        !self.unlogged_relations.is_empty()
    }

    /// Whether `name` (as PostgreSQL resolves it: unquoted identifiers
    /// already lowercased) names an unlogged relation in some schema.
    pub fn is_unlogged_relation(&self, name: &[u8]) -> bool {
        !self.unlogged_relations.is_empty() && self.unlogged_relations.contains(name)
    }

    /// A copy of this catalog for while it may be out of date: every call
    /// not qualified with `pg_catalog` whose verdict would be read-only goes
    /// to the primary ([`PrimaryBecause::CatalogReloading`]) instead — a user
    /// function may just have shadowed a built-in name, or been replaced by a
    /// volatile one. Configured names keep their verdicts.
    pub fn doubting(&self) -> FunctionCatalog {
        FunctionCatalog {
            doubting: true,
            ..self.clone()
        }
    }

    /// Forces calls of `name` (or `schema.name`) to the primary. Case-insensitive.
    pub fn force_primary(&mut self, name: &str) {
        self.forced_primary.insert(lowercase_key(name));
    }

    /// Declares `name` (or `schema.name`) read-only, whatever `pg_proc` says.
    /// Case-insensitive. It does not override built-in knowledge that a
    /// function writes (`nextval` stays primary).
    pub fn force_read_only(&mut self, name: &str) {
        self.forced_read_only.insert(lowercase_key(name));
    }

    /// Declares an extension's operator read-only (built-in operators already are).
    pub fn allow_operator(&mut self, operator: &str) {
        self.read_only_operators.insert(operator.as_bytes().into());
    }

    /// Treats functions known nowhere as read-only instead of volatile. Only
    /// for deployments whose every function is loaded or configured.
    pub fn trust_unknown_functions(&mut self, trust: bool) {
        self.trust_unknown = trust;
    }

    fn forced(set: &HashSet<Box<[u8]>>, schema: Option<&[u8]>, name: &[u8]) -> bool {
        if set.is_empty() {
            return false;
        }
        if set.contains(name) {
            return true;
        }
        schema
            .and_then(|schema| qualified_key(schema, name))
            .is_some_and(|(key, len)| set.contains(&key[..len]))
    }

    /// Judges a call of `name`, optionally schema-qualified, both as
    /// PostgreSQL resolves them (unquoted identifiers already lowercased).
    ///
    /// Order: configured primary; built-in primary-only (for unqualified or
    /// `pg_catalog` calls); configured read-only; a writer's name in another
    /// schema (judged like the writer); well-known extension
    /// functions; user functions (any volatile overload → primary); built-in
    /// read-only; otherwise unknown → primary unless unknown functions are trusted.
    pub fn judge(&self, schema: Option<&[u8]>, name: &[u8]) -> FunctionVerdict {
        if name.len() > crate::sql::classify::MAX_NAME_LEN {
            return FunctionVerdict::Primary(PrimaryBecause::OpaqueName, SessionEffects::NONE);
        }
        if Self::forced(&self.forced_primary, schema, name) {
            return FunctionVerdict::Primary(PrimaryBecause::Configured, SessionEffects::NONE);
        }
        let builtin_scope = schema.is_none_or(|schema| schema == b"pg_catalog");
        let known = knowledge(name);
        if builtin_scope && let Some(Knowledge::Primary(builtin)) = known {
            return builtin_verdict(builtin);
        }
        if Self::forced(&self.forced_read_only, schema, name) {
            return FunctionVerdict::ReadOnly;
        }
        // `app.nextval(…)`: a function sharing a writer's name is judged like
        // the writer unless configured otherwise (a replica hint cannot override).
        if !builtin_scope && let Some(Knowledge::Primary(builtin)) = known {
            return builtin_verdict(builtin);
        }
        if self.doubting && schema != Some(b"pg_catalog".as_slice()) {
            return FunctionVerdict::Primary(
                PrimaryBecause::CatalogReloading,
                SessionEffects::NONE,
            );
        }
        if builtin_scope && known == Some(Knowledge::ExtensionReadOnly) {
            return FunctionVerdict::ReadOnly;
        }
        let overloads = if self.user_functions.is_empty() {
            None
        } else {
            self.user_functions.get(name)
        };
        if let Some(overloads) = overloads {
            let mut matching = overloads
                .iter()
                .filter(|(owner, _)| schema.is_none_or(|schema| **owner == *schema));
            let worst = matching.by_ref().map(|(_, volatility)| *volatility).max();
            match worst {
                Some(Volatility::Volatile) => {
                    return FunctionVerdict::Primary(
                        PrimaryBecause::Volatile,
                        SessionEffects::NONE,
                    );
                }
                Some(_) => return FunctionVerdict::ReadOnly,
                None => {}
            }
        }
        if builtin_scope && known == Some(Knowledge::ReadOnly) {
            return FunctionVerdict::ReadOnly;
        }
        if self.trust_unknown {
            FunctionVerdict::ReadOnly
        } else {
            FunctionVerdict::Primary(PrimaryBecause::Unknown, SessionEffects::NONE)
        }
    }

    /// Whether `operator` is built in (or declared read-only): a user operator
    /// may call any function, so others go to the primary.
    pub fn is_read_only_operator(&self, operator: &[u8]) -> bool {
        READ_ONLY_OPERATORS.contains(operator)
            || (!self.read_only_operators.is_empty() && self.read_only_operators.contains(operator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary_because(verdict: FunctionVerdict) -> Option<PrimaryBecause> {
        match verdict {
            FunctionVerdict::Primary(because, _) => Some(because),
            _ => None,
        }
    }

    #[test]
    fn nextval_writes_and_touches_sequence_state() {
        let verdict = FunctionCatalog::builtin().judge(None, b"nextval");
        assert_eq!(
            verdict,
            FunctionVerdict::Primary(PrimaryBecause::Writes, Effect::SEQUENCE.into())
        );
    }

    #[test]
    fn pg_catalog_qualified_builtin_is_still_known() {
        let verdict = FunctionCatalog::builtin().judge(Some(b"pg_catalog"), b"nextval");
        assert_eq!(primary_because(verdict), Some(PrimaryBecause::Writes));
    }

    #[test]
    fn lo_family_is_primary_by_prefix() {
        assert_eq!(
            primary_because(FunctionCatalog::builtin().judge(None, b"lo_from_bytea")),
            Some(PrimaryBecause::Writes)
        );
    }

    #[test]
    fn xact_advisory_lock_is_not_a_session_lock() {
        let verdict = FunctionCatalog::builtin().judge(None, b"pg_advisory_xact_lock");
        assert_eq!(
            verdict,
            FunctionVerdict::Primary(PrimaryBecause::TakesLock, Effect::ADVISORY_XACT_LOCK.into())
        );
    }

    #[test]
    fn allowlisted_builtin_is_read_only() {
        assert_eq!(
            FunctionCatalog::builtin().judge(None, b"random"),
            FunctionVerdict::ReadOnly
        );
    }

    #[test]
    fn unknown_function_is_primary_by_default() {
        assert_eq!(
            primary_because(FunctionCatalog::builtin().judge(None, b"my_func")),
            Some(PrimaryBecause::Unknown)
        );
    }

    #[test]
    fn trusted_unknown_function_is_read_only() {
        let mut catalog = FunctionCatalog::builtin();
        catalog.trust_unknown_functions(true);
        assert_eq!(catalog.judge(None, b"my_func"), FunctionVerdict::ReadOnly);
    }

    #[test]
    fn stable_user_function_is_read_only() {
        let mut catalog = FunctionCatalog::builtin();
        catalog.add_user_function("public", "price_of", Volatility::Stable);
        assert_eq!(catalog.judge(None, b"price_of"), FunctionVerdict::ReadOnly);
        assert_eq!(
            catalog.judge(Some(b"public"), b"price_of"),
            FunctionVerdict::ReadOnly
        );
    }

    #[test]
    fn volatile_user_overload_makes_the_name_primary() {
        let mut catalog = FunctionCatalog::builtin();
        catalog.add_user_function("public", "f", Volatility::Immutable);
        catalog.add_user_function("audit", "f", Volatility::Volatile);
        assert_eq!(
            primary_because(catalog.judge(None, b"f")),
            Some(PrimaryBecause::Volatile)
        );
        assert_eq!(
            catalog.judge(Some(b"public"), b"f"),
            FunctionVerdict::ReadOnly
        );
    }

    #[test]
    fn user_function_shadowing_a_read_only_builtin_name_is_judged_by_volatility() {
        let mut catalog = FunctionCatalog::builtin();
        catalog.add_user_function("public", "lower", Volatility::Volatile);
        assert_eq!(
            primary_because(catalog.judge(None, b"lower")),
            Some(PrimaryBecause::Volatile)
        );
    }

    #[test]
    fn forced_read_only_overrides_volatility_but_not_builtin_writes() {
        let mut catalog = FunctionCatalog::builtin();
        catalog.add_user_function("public", "report", Volatility::Volatile);
        catalog.force_read_only("Report");
        catalog.force_read_only("nextval");
        assert_eq!(catalog.judge(None, b"report"), FunctionVerdict::ReadOnly);
        assert_eq!(
            primary_because(catalog.judge(None, b"nextval")),
            Some(PrimaryBecause::Writes)
        );
    }

    #[test]
    fn forced_primary_matches_qualified_entries() {
        let mut catalog = FunctionCatalog::builtin();
        catalog.force_primary("app.now");
        assert_eq!(
            primary_because(catalog.judge(Some(b"app"), b"now")),
            Some(PrimaryBecause::Configured)
        );
        assert_eq!(catalog.judge(None, b"now"), FunctionVerdict::ReadOnly);
    }

    #[test]
    fn builtin_names_in_a_user_schema_are_not_trusted() {
        assert_eq!(
            primary_because(FunctionCatalog::builtin().judge(Some(b"public"), b"random")),
            Some(PrimaryBecause::Unknown)
        );
    }

    #[test]
    fn writer_name_in_a_user_schema_is_judged_like_the_writer() {
        let mut catalog = FunctionCatalog::builtin();
        assert_eq!(
            primary_because(catalog.judge(Some(b"app"), b"nextval")),
            Some(PrimaryBecause::Writes)
        );
        catalog.force_read_only("app.nextval");
        assert_eq!(
            catalog.judge(Some(b"app"), b"nextval"),
            FunctionVerdict::ReadOnly
        );
    }

    #[test]
    fn a_doubting_catalog_trusts_only_pg_catalog_calls() {
        let mut catalog = FunctionCatalog::builtin();
        catalog.add_user_function("public", "price_of", Volatility::Stable);
        catalog.force_read_only("report");
        let doubting = catalog.doubting();
        for name in [&b"lower"[..], b"price_of"] {
            assert_eq!(
                primary_because(doubting.judge(None, name)),
                Some(PrimaryBecause::CatalogReloading)
            );
        }
        assert_eq!(
            doubting.judge(Some(b"pg_catalog"), b"lower"),
            FunctionVerdict::ReadOnly
        );
        assert_eq!(doubting.judge(None, b"report"), FunctionVerdict::ReadOnly);
        assert_eq!(
            primary_because(doubting.judge(None, b"nextval")),
            Some(PrimaryBecause::Writes)
        );
        assert_eq!(catalog.judge(None, b"price_of"), FunctionVerdict::ReadOnly);
    }

    #[test]
    fn unlogged_relations_are_known_by_exact_name() {
        let mut catalog = FunctionCatalog::builtin();
        assert!(!catalog.is_unlogged_relation(b"scratch"));
        catalog.add_unlogged_relation("scratch");
        catalog.add_unlogged_relation("Mixed");
        assert!(catalog.is_unlogged_relation(b"scratch"));
        assert!(catalog.is_unlogged_relation(b"Mixed"));
        assert!(!catalog.is_unlogged_relation(b"mixed"));
    }

    #[test]
    fn provolatile_codes_parse() {
        assert_eq!(
            Volatility::from_provolatile("v"),
            Some(Volatility::Volatile)
        );
        assert_eq!(Volatility::from_provolatile("x"), None);
    }
}
