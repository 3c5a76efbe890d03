//! The judge: decides from PostgreSQL's own parse tree whether SQL only reads.
//!
//! It shares no code with pgrw's classifier. The statement kind is read from
//! the typed tree; everything below a statement is walked generically (as the
//! tree's serde form), so no node type can hide a nested write, a locking
//! clause or a function call from it, whatever the grammar nests where.

use pg_query::NodeEnum;
use serde_json::Value;

use crate::functions::{FunctionEffect as Known, function_effect};

/// What a SQL string does, as PostgreSQL's parser shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Only reads: may run on a hot standby without changing anything the
    /// session could notice afterwards.
    Read,
    /// Writes data, takes a lock, changes session or server state: the
    /// primary only, whatever any hint says. The string says why.
    Primary(String),
    /// Reads, but calls a function the oracle cannot judge (user-defined or
    /// extension; only `pg_proc` knows its volatility), or asks about this
    /// server (whose answer must be the primary's): the primary unless the
    /// user vouches for it with a `/* pgrw:replica */` hint or an allow-list.
    MaybeWrites(String),
    /// Neither reads nor writes by itself (transaction control, cursor use, or
    /// nothing to execute): it follows its transaction. The string says what.
    Neutral(String),
}

impl Effect {
    /// Whether this must run on the primary absent a user's vouching
    /// ([`Effect::Primary`] or [`Effect::MaybeWrites`]).
    pub fn needs_primary(&self) -> bool {
        matches!(self, Effect::Primary(_) | Effect::MaybeWrites(_))
    }

    /// The effect of running `self` then `next` in one string: the strongest
    /// wins, in the order primary, maybe-writes, neutral (a transaction
    /// boundary), read.
    fn then(self, next: Effect) -> Effect {
        match (self, next) {
            (p @ Effect::Primary(_), _) | (_, p @ Effect::Primary(_)) => p,
            (m @ Effect::MaybeWrites(_), _) | (_, m @ Effect::MaybeWrites(_)) => m,
            (n @ Effect::Neutral(_), _) | (_, n @ Effect::Neutral(_)) => n,
            (Effect::Read, Effect::Read) => Effect::Read,
        }
    }
}

/// Parses `sql` with PostgreSQL's parser and judges it. `Err` when PostgreSQL
/// rejects the text (then the server would too, and nothing is judged).
pub fn judge(sql: &str) -> Result<Effect, pg_query::Error> {
    let parsed = pg_query::parse(sql)?;
    let mut effect = Effect::Neutral("nothing to execute".to_owned());
    let mut first = true;
    for raw in &parsed.protobuf.stmts {
        let stmt_effect = match raw.stmt.as_ref().and_then(|node| node.node.as_ref()) {
            Some(stmt) => judge_statement(stmt),
            None => Effect::Neutral("empty statement".to_owned()),
        };
        effect = if first {
            stmt_effect
        } else {
            effect.then(stmt_effect)
        };
        first = false;
    }
    Ok(effect)
}

/// PostgreSQL's `CURSOR_OPT_HOLD` (parsenodes.h): the cursor is WITH HOLD.
const CURSOR_OPT_HOLD: i32 = 0x0020;

/// Judges one top-level statement.
fn judge_statement(stmt: &NodeEnum) -> Effect {
    use pg_query::protobuf::{TransactionStmtKind as Tx, VariableSetKind};
    match stmt {
        NodeEnum::VariableShowStmt(show) if asks_the_server(&show.name) => {
            Effect::MaybeWrites(format!("SHOW {}: a standby answers differently", show.name))
        }
        NodeEnum::SelectStmt(_) | NodeEnum::VariableShowStmt(_) => judge_subtree(stmt),
        NodeEnum::ExplainStmt(explain) => {
            let analyze = explain.options.iter().any(|option| match &option.node {
                Some(NodeEnum::DefElem(def)) => {
                    def.defname == "analyze" && !is_false(def.arg.as_deref())
                }
                _ => false,
            });
            let inner = explain.query.as_ref().and_then(|q| q.node.as_ref());
            match (analyze, inner) {
                // Plain EXPLAIN plans without executing (PostgreSQL skips the
                // read-only check for EXPLAIN-only), so it reads whatever it explains.
                (false, _) => Effect::Read,
                (true, Some(inner)) => match judge_statement(inner) {
                    Effect::Read => Effect::Read,
                    Effect::Primary(why) => {
                        Effect::Primary(format!("EXPLAIN ANALYZE executes it: {why}"))
                    }
                    Effect::MaybeWrites(why) => {
                        Effect::MaybeWrites(format!("EXPLAIN ANALYZE executes it: {why}"))
                    }
                    Effect::Neutral(what) => Effect::Primary(format!("EXPLAIN ANALYZE of {what}")),
                },
                (true, None) => Effect::Primary("EXPLAIN ANALYZE of nothing".to_owned()),
            }
        }
        NodeEnum::CopyStmt(copy) => {
            if copy.is_from {
                Effect::Primary("COPY FROM writes rows".to_owned())
            } else if copy.is_program {
                Effect::Primary("COPY TO PROGRAM runs a program on the server".to_owned())
            } else if !copy.filename.is_empty() {
                Effect::Primary("COPY TO a file writes on the server's file system".to_owned())
            } else {
                judge_subtree(stmt)
            }
        }
        NodeEnum::TransactionStmt(tx) => match Tx::try_from(tx.kind) {
            Ok(Tx::TransStmtPrepare) => Effect::Primary("PREPARE TRANSACTION".to_owned()),
            Ok(Tx::TransStmtCommitPrepared) => Effect::Primary("COMMIT PREPARED".to_owned()),
            Ok(Tx::TransStmtRollbackPrepared) => Effect::Primary("ROLLBACK PREPARED".to_owned()),
            Ok(kind) => Effect::Neutral(format!("transaction control {}", kind.as_str_name())),
            Err(_) => Effect::Primary("unknown transaction statement".to_owned()),
        },
        NodeEnum::VariableSetStmt(set)
            if set.kind == VariableSetKind::VarSetMulti as i32 && set.name == "TRANSACTION" =>
        {
            Effect::Neutral("SET TRANSACTION".to_owned())
        }
        NodeEnum::VariableSetStmt(set) => {
            Effect::Primary(format!("changes session setting `{}`", set.name))
        }
        // A cursor reads what its query reads. One WITH HOLD outlives its
        // transaction: session state the client fetches from later, maybe
        // inside a read-write transaction, so it belongs where writes run.
        NodeEnum::DeclareCursorStmt(declare) => {
            match declare.query.as_ref().and_then(|q| q.node.as_ref()) {
                Some(_) if declare.options & CURSOR_OPT_HOLD != 0 => Effect::Primary(
                    "a WITH HOLD cursor is session state that outlives its transaction".to_owned(),
                ),
                Some(query) => judge_statement(query),
                None => Effect::Primary("DECLARE without a query".to_owned()),
            }
        }
        NodeEnum::FetchStmt(_) | NodeEnum::ClosePortalStmt(_) => {
            Effect::Neutral("cursor use: runs where its cursor is".to_owned())
        }
        other => Effect::Primary(format!("{} is not a read", node_type_name(other))),
    }
}

/// Whether a `DefElem` argument spells false (`EXPLAIN (ANALYZE false)`).
fn is_false(arg: Option<&pg_query::protobuf::Node>) -> bool {
    match arg.and_then(|node| node.node.as_ref()) {
        Some(NodeEnum::Boolean(b)) => !b.boolval,
        Some(NodeEnum::String(s)) => matches!(
            s.sval.to_ascii_lowercase().as_str(),
            "false" | "off" | "no" | "0"
        ),
        Some(NodeEnum::Integer(i)) => i.ival == 0,
        _ => false,
    }
}

/// The node's type name, as the tree's serde form spells it (`"InsertStmt"`).
fn node_type_name(node: &NodeEnum) -> String {
    match serde_json::to_value(node) {
        Ok(Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        _ => "unknown statement".to_owned(),
    }
}

/// Judges a statement that reads at its top by everything found below it.
fn judge_subtree(stmt: &NodeEnum) -> Effect {
    match serde_json::to_value(stmt) {
        Ok(tree) => {
            let mut maybe = None;
            match find_primary_need(&tree, &mut maybe) {
                Some(why) => Effect::Primary(why),
                None => maybe.map_or(Effect::Read, Effect::MaybeWrites),
            }
        }
        Err(error) => Effect::Primary(format!("tree not walkable: {error}")),
    }
}

/// Node types that modify data wherever they appear (writable CTEs,
/// `COPY (INSERT … RETURNING) TO`).
const DATA_MODIFYING_NODES: &[&str] = &["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"];

/// Walks a subtree in its serde form and returns why it needs the primary, if
/// anything in it does. Objects are recognised by their fields, so a node is
/// found both as a tagged `Node` and as a typed field (e.g. `CopyStmt.relation`).
/// Calls of functions the oracle cannot judge are noted in `maybe` (the first
/// one) and the walk goes on, since a definite reason may come later.
fn find_primary_need(value: &Value, maybe: &mut Option<String>) -> Option<String> {
    match value {
        Value::Array(items) => items.iter().find_map(|item| find_primary_need(item, maybe)),
        Value::Object(map) => {
            for (key, child) in map {
                if DATA_MODIFYING_NODES.contains(&key.as_str()) {
                    return Some(format!("data-modifying {key} nested in a read"));
                }
                if key == "into_clause" && !child.is_null() {
                    return Some("SELECT … INTO creates a table".to_owned());
                }
                if key == "locking_clause" && child.as_array().is_some_and(|a| !a.is_empty()) {
                    return Some("locking clause (FOR UPDATE/SHARE…)".to_owned());
                }
            }
            match function_call_effect(map) {
                Some(FunctionEffect::Primary(why)) => return Some(why),
                Some(FunctionEffect::Unknown(why)) => {
                    maybe.get_or_insert(why);
                }
                _ => {}
            }
            if let Some(why) = temp_relation_need(map) {
                return Some(why);
            }
            if let Some(why) = server_state_relation_need(map) {
                maybe.get_or_insert(why);
            }
            map.values()
                .find_map(|child| find_primary_need(child, maybe))
        }
        _ => None,
    }
}

/// What calling one function does, with the reason in words.
enum FunctionEffect {
    ReadOnly,
    Primary(String),
    Unknown(String),
}

/// The effect of a `FuncCall` (recognised by its `funcname` and `agg_star`
/// fields); `None` for any other object.
fn function_call_effect(map: &serde_json::Map<String, Value>) -> Option<FunctionEffect> {
    if !map.contains_key("agg_star") {
        return None;
    }
    let parts = map.get("funcname")?.as_array()?;
    let name = parts.last()?.pointer("/node/String/sval")?.as_str()?;
    if name == "current_setting" {
        let first = map
            .get("args")
            .and_then(Value::as_array)
            .and_then(|args| args.first())
            .and_then(|arg| arg.pointer("/node/AConst/val/Sval/sval"))
            .and_then(Value::as_str);
        if first.is_some_and(asks_the_server) {
            return Some(FunctionEffect::Unknown(
                "current_setting of a setting a standby answers differently".to_owned(),
            ));
        }
    }
    if name == "set_config" && is_transaction_local(map.get("args")) {
        // set_config(…, …, true) is SET LOCAL: gone when the transaction ends,
        // and the transaction runs on one node.
        return Some(FunctionEffect::ReadOnly);
    }
    let schema = parts
        .len()
        .checked_sub(2)
        .and_then(|i| parts.get(i))
        .and_then(|p| p.pointer("/node/String/sval"));
    if schema.is_some_and(|schema| schema != "pg_catalog") {
        // `app.nextval(…)` is a user function that happens to share a name.
        return Some(FunctionEffect::Unknown(format!(
            "calls user function {name}() outside pg_catalog"
        )));
    }
    Some(match function_effect(name) {
        Known::ReadOnly => FunctionEffect::ReadOnly,
        Known::Primary => FunctionEffect::Primary(format!(
            "calls {name}(), which writes, locks or changes state"
        )),
        Known::Unknown => {
            FunctionEffect::Unknown(format!("calls {name}(), not known to be read-only"))
        }
        Known::AsksTheServer => {
            FunctionEffect::Unknown(format!("calls {name}(), which asks about this server"))
        }
    })
}

/// Whether `set_config`'s arguments end in a literal `true` (`is_local`).
fn is_transaction_local(args: Option<&Value>) -> bool {
    let Some(third) = args
        .and_then(Value::as_array)
        .filter(|args| args.len() == 3)
        .and_then(|args| args.get(2))
    else {
        return false;
    };
    match third.pointer("/node/AConst/val") {
        Some(value) => {
            value.pointer("/Boolval/boolval") == Some(&Value::Bool(true))
                || value
                    .pointer("/Sval/sval")
                    .and_then(Value::as_str)
                    .is_some_and(|text| {
                        matches!(
                            text.to_ascii_lowercase().as_str(),
                            "t" | "true" | "on" | "yes" | "y" | "1"
                        )
                    })
        }
        None => false,
    }
}

/// Settings whose value shows that a server is a standby (`all` shows them all).
fn asks_the_server(setting: &str) -> bool {
    matches!(
        setting.to_ascii_lowercase().as_str(),
        "transaction_read_only" | "in_hot_standby" | "all"
    )
}

/// A `RangeVar` naming a view of this server's own state: its sessions,
/// locks, prepared transactions, replication, statistics counters.
fn server_state_relation_need(map: &serde_json::Map<String, Value>) -> Option<String> {
    map.get("relpersistence")?;
    let name = map.get("relname")?.as_str()?;
    let server_state = name.starts_with("pg_stat_")
        || name.starts_with("pg_statio_")
        || matches!(
            name,
            "pg_prepared_xacts"
                | "pg_locks"
                | "pg_replication_slots"
                | "pg_replication_origin_status"
                | "pg_prepared_statements"
                | "pg_cursors"
                | "pg_backend_memory_contexts"
        );
    server_state.then(|| format!("reads {name}, this server's own state"))
}

/// A `RangeVar` (recognised by its `relpersistence` field) naming a temporary
/// table: temp tables live in one backend's session.
fn temp_relation_need(map: &serde_json::Map<String, Value>) -> Option<String> {
    let persistence = map.get("relpersistence")?.as_str()?;
    let schema = map
        .get("schemaname")
        .and_then(Value::as_str)
        .unwrap_or_default();
    (persistence == "t" || schema == "pg_temp")
        .then(|| "uses a temporary table (session-local)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(sql: &str) -> Effect {
        judge(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn plain_select_is_a_read() {
        assert_eq!(
            effect("SELECT id FROM users WHERE email = 'a@b'"),
            Effect::Read
        );
    }

    #[test]
    fn writable_cte_needs_the_primary() {
        assert!(effect("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x").needs_primary());
    }

    #[test]
    fn select_into_needs_the_primary() {
        assert!(effect("SELECT * INTO t2 FROM t").needs_primary());
    }

    #[test]
    fn locking_in_a_subquery_needs_the_primary() {
        assert!(effect("SELECT * FROM (SELECT * FROM t FOR UPDATE SKIP LOCKED) s").needs_primary());
    }

    #[test]
    fn nextval_anywhere_needs_the_primary() {
        assert!(effect("SELECT 1 WHERE 2 > (SELECT pg_catalog.nextval('s'))").needs_primary());
    }

    #[test]
    fn a_builtin_name_in_another_schema_is_a_user_function() {
        assert!(matches!(
            effect("SELECT app.nextval('s')"),
            Effect::MaybeWrites(_)
        ));
        assert!(matches!(
            effect("SELECT app.lower('s')"),
            Effect::MaybeWrites(_)
        ));
        assert!(matches!(
            effect("SELECT pg_catalog.nextval('s')"),
            Effect::Primary(_)
        ));
        assert_eq!(effect("SELECT pg_catalog.lower('s')"), Effect::Read);
    }

    #[test]
    fn a_question_about_the_server_needs_the_primary() {
        for sql in [
            "SELECT count(*) FROM pg_prepared_xacts",
            "SELECT * FROM pg_catalog.pg_locks",
            "SELECT * FROM pg_stat_activity",
            "SELECT pg_is_in_recovery()",
            "SELECT pg_backend_pid()",
            "SELECT current_setting('transaction_read_only')",
            "SHOW transaction_read_only",
        ] {
            assert!(matches!(effect(sql), Effect::MaybeWrites(_)), "{sql}");
        }
        assert_eq!(effect("SELECT inet_server_port()"), Effect::Read);
        assert_eq!(effect("SELECT current_setting('port')"), Effect::Read);
        assert_eq!(effect("SELECT * FROM pg_stats"), Effect::Read);
    }

    #[test]
    fn unknown_function_may_write() {
        assert!(matches!(
            effect("SELECT refresh_report(1)"),
            Effect::MaybeWrites(_)
        ));
    }

    #[test]
    fn a_definite_write_outranks_an_unknown_function() {
        assert!(matches!(
            effect("SELECT refresh_report(1), nextval('s')"),
            Effect::Primary(_)
        ));
        assert!(matches!(
            effect("SELECT refresh_report(1); DELETE FROM t"),
            Effect::Primary(_)
        ));
    }

    #[test]
    fn explain_analyze_of_a_write_needs_the_primary_and_plain_explain_reads() {
        assert!(effect("EXPLAIN ANALYZE INSERT INTO t VALUES (1)").needs_primary());
        assert_eq!(effect("EXPLAIN INSERT INTO t VALUES (1)"), Effect::Read);
        assert_eq!(effect("EXPLAIN (ANALYZE, BUFFERS) SELECT 1"), Effect::Read);
        assert_eq!(
            effect("EXPLAIN (ANALYZE false) DELETE FROM t"),
            Effect::Read
        );
    }

    #[test]
    fn copy_direction_decides() {
        assert!(effect("COPY t FROM STDIN").needs_primary());
        assert_eq!(effect("COPY t TO STDOUT"), Effect::Read);
        assert!(effect("COPY (DELETE FROM t RETURNING *) TO STDOUT").needs_primary());
    }

    #[test]
    fn transaction_control_is_neutral_but_prepare_transaction_is_not() {
        assert!(matches!(effect("BEGIN READ ONLY"), Effect::Neutral(_)));
        assert!(matches!(
            effect("SET TRANSACTION READ ONLY"),
            Effect::Neutral(_)
        ));
        assert!(effect("PREPARE TRANSACTION 'x'").needs_primary());
    }

    #[test]
    fn a_hidden_write_makes_a_multi_statement_string_primary() {
        assert!(effect("SELECT 1; UPDATE t SET a = 1; SELECT 2").needs_primary());
    }

    #[test]
    fn set_config_is_primary_unless_transaction_local() {
        assert!(effect("SELECT set_config('search_path', 'app', false)").needs_primary());
        assert!(effect("SELECT set_config('search_path', 'app', $1)").needs_primary());
        assert_eq!(
            effect("SELECT set_config('app.user', '42', true)"),
            Effect::Read
        );
    }

    #[test]
    fn a_cursor_reads_what_its_query_reads() {
        assert_eq!(effect("DECLARE c CURSOR FOR SELECT * FROM t"), Effect::Read);
        assert!(effect("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t").needs_primary());
        assert!(effect("DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE").needs_primary());
        assert!(matches!(effect("FETCH 10 FROM c"), Effect::Neutral(_)));
    }

    #[test]
    fn temp_schema_needs_the_primary() {
        assert!(effect("SELECT * FROM pg_temp.scratch").needs_primary());
    }

    #[test]
    fn session_settings_need_the_primary() {
        assert!(effect("SET search_path TO app").needs_primary());
        assert_eq!(effect("SHOW search_path"), Effect::Read);
    }

    #[test]
    fn invalid_sql_is_not_judged() {
        assert!(judge("SELEC 1").is_err());
    }
}
