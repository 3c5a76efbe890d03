//! The names client statements have on backends, and when a backend's
//! statement is too old to hand to a new client Parse.
//!
//! One backend statement serves every client that prepares the same SQL with
//! the same parameter types: its name is `pgrw_<hash>_<length>_g<generation>`.
//! The *statement generation* is a process-wide counter that moves on whenever
//! a relation's shape may have changed: a DDL command completed through the
//! proxy (`CREATE …`, `ALTER …`, `DROP …`), or a backend refused a statement
//! with `0A000` (PostgreSQL's "cached plan must not change result type", as
//! after DDL run directly on a node). A client Parse takes the generation
//! current at that moment, so a Parse after the change gets a new backend
//! statement, planned afresh, while statements the client prepared before keep
//! their old one (and fail as they would on PostgreSQL).
//!
//! The counter is process-wide (a `static`), so proxies in one process (tests)
//! share it: a DDL through one makes the others prepare afresh too, which only
//! costs a Parse.
//!
//! Old statements are bounded: a backend holding more than
//! [`MAX_STATEMENTS_PER_BACKEND`] closes the ones of older generations, then
//! others, down to half that, before its next batch ([`names_to_retire`]); a
//! client statement it no longer has is prepared again on demand.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::protocol::backend::NoticeFields;
use crate::protocol::sqlstate;

/// The statement generation (see the module docs).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Past this many proxy statements, a backend closes some before its next batch.
pub(super) const MAX_STATEMENTS_PER_BACKEND: usize = 1024;

/// The statement generation now.
pub(super) fn current() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// Moves to a new generation: Parses from now on get new backend statements.
pub(super) fn advance() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The statement's name on backends: one per (SQL, parameter types,
/// generation); empty for the unnamed statement.
pub(super) fn backend_name(
    client_name: &[u8],
    sql: &[u8],
    param_types: &[u32],
    generation: u64,
) -> String {
    if client_name.is_empty() {
        return String::new();
    }
    let mut hasher = DefaultHasher::new();
    sql.hash(&mut hasher);
    param_types.hash(&mut hasher);
    format!("pgrw_{:016x}_{}_g{generation}", hasher.finish(), sql.len())
}

/// The generation a backend name was made in; `None` for a name the proxy
/// did not make.
fn generation_of(backend_name: &str) -> Option<u64> {
    let (_, generation) = backend_name.rsplit_once("_g")?;
    generation.parse().ok()
}

/// Whether `backend_name` was made in an older generation than the current
/// one: the statement was parsed before DDL, and a backend that prepares it
/// now may plan a different result.
pub(super) fn is_older_than_current(backend_name: &str) -> bool {
    generation_of(backend_name).is_some_and(|generation| generation < current())
}

/// Whether a CommandComplete tag reports a command that may change what a
/// statement's SQL resolves to (a relation's columns, a type, a function, a
/// new table earlier in the search path). Any DDL: the catalog
/// reloads after it too (`session::catalog`).
pub(in crate::session) fn changes_relations(command_tag: &[u8]) -> bool {
    [&b"CREATE "[..], b"ALTER ", b"DROP ", b"IMPORT "]
        .iter()
        .any(|prefix| command_tag.starts_with(prefix))
}

/// Whether an ErrorResponse body says a backend's cached statement no longer
/// matches the schema: `0A000`, which for a statement PostgreSQL planned
/// before is "cached plan must not change result type" (any other `0A000`
/// only costs the other clients a fresh Parse).
pub(super) fn reports_stale_plan(error_body: &[u8]) -> bool {
    NoticeFields::decode("an ErrorResponse", error_body)
        .is_ok_and(|fields| fields.code == sqlstate::FEATURE_NOT_SUPPORTED)
}

/// The backend statements to close on a backend holding `prepared`, when it
/// holds more than `max`: those of generations before `current` first, then
/// others (in no particular order), down to `max / 2`. Empty at or under `max`.
pub(super) fn names_to_retire(prepared: &HashSet<String>, current: u64, max: usize) -> Vec<String> {
    if prepared.len() <= max {
        return Vec::new();
    }
    let stale = |name: &&String| generation_of(name).is_none_or(|generation| generation < current);
    let mut retiring: Vec<String> = prepared.iter().filter(stale).cloned().collect();
    let keep = max / 2;
    let excess = prepared.len().saturating_sub(keep);
    if retiring.len() < excess {
        let more = excess - retiring.len();
        retiring.extend(
            prepared
                .iter()
                .filter(|name| !stale(name))
                .take(more)
                .cloned(),
        );
    }
    retiring
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sql_and_types_get_one_backend_name_whatever_the_client_calls_it() {
        assert_eq!(
            backend_name(b"a", b"SELECT $1", &[23], 4),
            backend_name(b"b", b"SELECT $1", &[23], 4)
        );
    }

    #[test]
    fn other_parameter_types_get_another_backend_name() {
        assert_ne!(
            backend_name(b"a", b"SELECT $1", &[23], 4),
            backend_name(b"a", b"SELECT $1", &[25], 4)
        );
    }

    #[test]
    fn a_later_generation_gets_another_backend_name() {
        assert_ne!(
            backend_name(b"a", b"SELECT * FROM t", &[], 4),
            backend_name(b"a", b"SELECT * FROM t", &[], 5)
        );
    }

    #[test]
    fn a_backend_name_tells_its_generation() {
        let name = backend_name(b"a", b"SELECT 1", &[], 17);
        assert_eq!(generation_of(&name), Some(17));
        assert!(name.len() <= 63, "within NAMEDATALEN: {name}");
    }

    #[test]
    fn the_unnamed_statement_stays_unnamed() {
        assert_eq!(backend_name(b"", b"SELECT 1", &[], 3), "");
    }

    #[test]
    fn ddl_command_tags_change_relations_and_others_do_not() {
        for tag in ["ALTER TABLE", "DROP TABLE", "CREATE TABLE", "CREATE VIEW"] {
            assert!(changes_relations(tag.as_bytes()), "{tag}");
        }
        for tag in [
            "SELECT 1",
            "INSERT 0 1",
            "UPDATE 3",
            "SET",
            "BEGIN",
            "CREATED",
        ] {
            assert!(!changes_relations(tag.as_bytes()), "{tag}");
        }
    }

    fn names(generations: &[u64]) -> HashSet<String> {
        generations
            .iter()
            .enumerate()
            .map(|(index, generation)| {
                backend_name(b"s", format!("SELECT {index}").as_bytes(), &[], *generation)
            })
            .collect()
    }

    #[test]
    fn nothing_is_retired_at_or_under_the_limit() {
        assert!(names_to_retire(&names(&[0, 0, 1, 1]), 2, 4).is_empty());
    }

    #[test]
    fn older_generations_are_retired_first() {
        let prepared = names(&[0, 0, 0, 2, 2]);
        let retiring = names_to_retire(&prepared, 2, 4);
        assert_eq!(retiring.len(), 3);
        assert!(retiring.iter().all(|name| generation_of(name) == Some(0)));
    }

    #[test]
    fn current_statements_are_retired_down_to_half_the_limit_when_none_is_old() {
        let prepared = names(&[3; 9]);
        let retiring = names_to_retire(&prepared, 3, 8);
        assert_eq!(prepared.len() - retiring.len(), 4);
    }
}
