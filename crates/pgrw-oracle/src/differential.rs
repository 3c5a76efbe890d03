//! One differential check: pgrw's classifier against the judge, on one SQL
//! text. Shared by the corpus tests, the time-limited fuzz loop and the
//! cargo-fuzz target, so all three enforce the same rule.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pgrw_core::FunctionCatalog;
use pgrw_core::sql::classify::classify;

use crate::judge::{Effect, judge};

/// The unsafe disagreement: PostgreSQL's parser sees a write, a lock or a
/// session change, and pgrw would still send the text to a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeReplica {
    /// The SQL text.
    pub sql: String,
    /// Why the judge says it needs the primary.
    pub judge_reason: String,
    /// pgrw's class and reason for calling it replica-eligible.
    pub pgrw_verdict: String,
}

impl std::fmt::Display for UnsafeReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}\n    postgres: {}\n    pgrw:     {}",
            self.sql, self.judge_reason, self.pgrw_verdict
        )
    }
}

/// What checking one text found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// PostgreSQL rejects the text (or it is not UTF-8): nothing to judge.
    NotSql,
    /// Both sides agree it is safe (or pgrw is the more cautious one).
    Agree {
        /// What the judge said.
        effect: Effect,
        /// Whether pgrw called it replica-eligible.
        replica_eligible: bool,
    },
    /// The failure this oracle exists to catch.
    Unsafe(UnsafeReplica),
    /// pgrw's classifier panicked (it must never panic on any bytes).
    ClassifierPanicked,
}

/// pgrw's verdict on `sql`: whether it is replica-eligible, and its class and
/// reason as text. `None` when the classifier panicked.
pub fn pgrw_verdict(sql: &[u8], catalog: &FunctionCatalog) -> Option<(bool, String)> {
    catch_unwind(AssertUnwindSafe(|| {
        let classification = classify(sql, catalog);
        (
            classification.replica_eligible(),
            format!("{:?}: {}", classification.class, classification.reason),
        )
    }))
    .ok()
}

/// Checks one text: classifies it with pgrw, and when PostgreSQL parses it,
/// judges it and compares.
pub fn check(sql: &[u8], catalog: &FunctionCatalog) -> Outcome {
    let Some((replica_eligible, verdict)) = pgrw_verdict(sql, catalog) else {
        return Outcome::ClassifierPanicked;
    };
    let Ok(text) = std::str::from_utf8(sql) else {
        return Outcome::NotSql;
    };
    // pg_query can panic on trees its Rust side does not expect; that is not
    // pgrw's fault, so treat it like a rejection.
    let judged = catch_unwind(|| judge(text)).ok().and_then(Result::ok);
    match judged {
        None => Outcome::NotSql,
        Some(Effect::Primary(why)) if replica_eligible => Outcome::Unsafe(UnsafeReplica {
            sql: text.to_owned(),
            judge_reason: why,
            pgrw_verdict: verdict,
        }),
        Some(Effect::MaybeWrites(why)) if replica_eligible && !has_replica_hint(text) => {
            Outcome::Unsafe(UnsafeReplica {
                sql: text.to_owned(),
                judge_reason: why,
                pgrw_verdict: verdict,
            })
        }
        Some(effect) => Outcome::Agree {
            effect,
            replica_eligible,
        },
    }
}

/// Whether a comment, as PostgreSQL's scanner delimits comments, carries a
/// `pgrw:replica` hint: the user vouching that the functions called only read.
/// Found independently of pgrw's hint parser.
pub fn has_replica_hint(sql: &str) -> bool {
    use pg_query::protobuf::Token;
    let Ok(scanned) = pg_query::scan(sql) else {
        return false;
    };
    scanned.tokens.iter().any(|token| {
        let is_comment =
            token.token == Token::CComment as i32 || token.token == Token::SqlComment as i32;
        let text = usize::try_from(token.start)
            .ok()
            .zip(usize::try_from(token.end).ok())
            .and_then(|(start, end)| sql.get(start..end));
        is_comment && text.is_some_and(|text| text.to_ascii_lowercase().contains("pgrw:replica"))
    })
}
