//! Structure-aware SQL mutation for the differential fuzz loop: new statements
//! made from corpus statements by splicing, wrapping, inserting SQL fragments
//! (writes, locks, comments, every string form), and changing case and spacing.
//!
//! Deterministic for a given seed, so any finding can be replayed.

/// A small, fast, seedable pseudo-random generator (xorshift64*). Quality is
/// ample for choosing mutations; no external crate needed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (zero is replaced: xorshift needs a set bit).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (`0` when `bound` is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            return 0;
        }
        let bound = u64::try_from(bound).unwrap_or(u64::MAX);
        usize::try_from(self.next_u64() % bound).unwrap_or(0)
    }

    /// One element of `items`, or `None` when it is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

/// Fragments spliced into statements: the shapes that decide routing and the
/// lexical traps around them.
pub const FRAGMENTS: &[&str] = &[
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET a = 1",
    "DELETE FROM t",
    "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
    "FOR UPDATE",
    "FOR NO KEY UPDATE",
    "FOR SHARE",
    "FOR KEY SHARE",
    "FOR UPDATE SKIP LOCKED",
    "NOWAIT",
    "INTO tmp",
    "INTO TEMP t2",
    "nextval('s')",
    "setval('s', 1)",
    "currval('s')",
    "lastval()",
    "pg_advisory_lock(1)",
    "pg_try_advisory_xact_lock(2)",
    "txid_current()",
    "pg_current_xact_id()",
    "lo_create(0)",
    "set_config('a.b', 'c', false)",
    "pg_notify('c', 'p')",
    "my_func(1)",
    "public.f()",
    "count(*)",
    "lower(name)",
    "now()",
    "random()",
    "like('a')",
    "app.select(1)",
    "x.in(1)",
    "over(1)",
    "sets(1)",
    "OPERATOR(pg_catalog.+)",
    "OPERATOR(pg_catalog.~)",
    "GROUPING SETS ((a), ())",
    "ROLLUP (a)",
    "app.nextval('s')",
    "pg_catalog.nextval('s')",
    "WITH w AS (DELETE FROM t RETURNING *)",
    "RETURNING *",
    "ON CONFLICT DO NOTHING",
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "AS",
    "WITH",
    "RECURSIVE",
    "UNION",
    "VALUES",
    "TABLE",
    "EXPLAIN",
    "ANALYZE",
    "EXPLAIN (ANALYZE)",
    "COPY",
    "TO STDOUT",
    "FROM STDIN",
    "CALL",
    "DO",
    "LOCK",
    "SET",
    "SHOW",
    "BEGIN",
    "COMMIT",
    "SAVEPOINT a",
    "PREPARE",
    "EXECUTE",
    "LISTEN",
    "NOTIFY",
    "VACUUM",
    ";",
    "; ",
    ";;",
    ",",
    "(",
    ")",
    "[",
    "]",
    "::",
    "::int",
    ".",
    ":",
    "=>",
    ":=",
    "..",
    "*",
    "-",
    "+",
    "-1",
    "=-1",
    "<>",
    "!=",
    "@>",
    "->>",
    "#>>",
    "||",
    "~*",
    "?",
    "$1",
    "$23",
    "'str'",
    "''",
    "'it''s'",
    "'a;b'",
    "'/* x'",
    "'--'",
    "E'\\''",
    "E'\\\\'",
    "e'x\\'y'",
    "U&'d\\0061t'",
    "U&\"a\"",
    "B'101'",
    "X'1F'",
    "N'n'",
    "$$ DELETE $$",
    "$q$ ; $$ $q$",
    "$a$'$a$",
    "\"insert\"",
    "\"for\"",
    "\"a\"\"b\"",
    "\"DELETE FROM t\"",
    "insert_log",
    "update_at",
    "nextval_x",
    "/* c */",
    "/* DELETE */",
    "/* /* nested */ */",
    "/**/",
    "-- INSERT\n",
    "--\n",
    "/* pgrw:replica */",
    "/* pgrw:primary */",
    "1.5e3",
    ".5",
    "0x1F",
    "1_000",
    "1e",
    "\n",
    "\t",
    "  ",
];

/// Makes one mutant of `base`, possibly using `other` (another corpus
/// statement) as splice material.
pub fn mutate(rng: &mut Rng, base: &str, other: &str) -> String {
    let rounds = 1 + rng.below(3);
    let mut sql = base.to_owned();
    for _ in 0..rounds {
        sql = mutate_once(rng, &sql, other);
    }
    sql
}

fn mutate_once(rng: &mut Rng, sql: &str, other: &str) -> String {
    match rng.below(10) {
        0 => splice(rng, sql, other),
        1 => format!("{sql}; {other}"),
        2 => wrap(rng, sql),
        3 | 4 => insert_fragment(rng, sql),
        5 => change_case(rng, sql),
        6 => replace_spacing(rng, sql),
        7 => delete_span(rng, sql),
        8 => duplicate_span(rng, sql),
        _ => flip_byte(rng, sql),
    }
}

/// Positions in `sql` that are char boundaries (every byte of ASCII text).
fn char_cut(rng: &mut Rng, sql: &str) -> usize {
    let mut at = rng.below(sql.len() + 1);
    while !sql.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A cut preferring spaces and punctuation, so fragments land between tokens
/// more often than not.
fn token_cut(rng: &mut Rng, sql: &str) -> usize {
    let cuts: Vec<usize> = sql
        .char_indices()
        .filter(|(_, c)| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';'))
        .map(|(i, _)| i)
        .collect();
    if cuts.is_empty() || rng.below(4) == 0 {
        char_cut(rng, sql)
    } else {
        cuts[rng.below(cuts.len())]
    }
}

fn splice(rng: &mut Rng, sql: &str, other: &str) -> String {
    let (a, b) = (token_cut(rng, sql), token_cut(rng, other));
    format!("{}{}", &sql[..a], &other[b..])
}

fn wrap(rng: &mut Rng, sql: &str) -> String {
    let inner = sql.trim_end_matches(';');
    match rng.below(7) {
        0 => format!("WITH w AS ({inner}) SELECT * FROM w"),
        1 => format!("EXPLAIN ANALYZE {inner}"),
        2 => format!("EXPLAIN {inner}"),
        3 => format!("SELECT * FROM ({inner}) s"),
        4 => format!("COPY ({inner}) TO STDOUT"),
        5 => format!("/* pgrw:replica */ {inner}"),
        _ => format!("{inner} FOR UPDATE"),
    }
}

fn insert_fragment(rng: &mut Rng, sql: &str) -> String {
    let at = token_cut(rng, sql);
    let fragment = rng.pick(FRAGMENTS).copied().unwrap_or(" ");
    format!("{} {fragment} {}", &sql[..at], &sql[at..])
}

fn change_case(rng: &mut Rng, sql: &str) -> String {
    let mode = rng.below(3);
    sql.chars()
        .map(|c| match mode {
            0 => c.to_ascii_uppercase(),
            1 => c.to_ascii_lowercase(),
            _ if rng.below(2) == 0 => c.to_ascii_uppercase(),
            _ => c.to_ascii_lowercase(),
        })
        .collect()
}

fn replace_spacing(rng: &mut Rng, sql: &str) -> String {
    let spaces: Vec<usize> = sql
        .char_indices()
        .filter(|(_, c)| *c == ' ')
        .map(|(i, _)| i)
        .collect();
    let Some(&at) = rng.pick(&spaces) else {
        return sql.to_owned();
    };
    let filler = *rng
        .pick(&["/**/", "\n", "\t", "-- x\n", "/* ; */", "", "  "])
        .unwrap_or(&" ");
    format!("{}{filler}{}", &sql[..at], &sql[at + 1..])
}

fn delete_span(rng: &mut Rng, sql: &str) -> String {
    let a = char_cut(rng, sql);
    let mut b = (a + 1 + rng.below(12)).min(sql.len());
    while !sql.is_char_boundary(b) {
        b += 1;
    }
    format!("{}{}", &sql[..a], &sql[b..])
}

fn duplicate_span(rng: &mut Rng, sql: &str) -> String {
    let a = char_cut(rng, sql);
    let mut b = (a + 1 + rng.below(20)).min(sql.len());
    while !sql.is_char_boundary(b) {
        b += 1;
    }
    format!("{}{}", &sql[..b], &sql[a..])
}

fn flip_byte(rng: &mut Rng, sql: &str) -> String {
    const INTERESTING: &[u8] = b"'\"$;-/*\\()eEuU&:=<>!@#%^|`?~+.,[]{} \n0123456789";
    let at = char_cut(rng, sql);
    let byte = INTERESTING[rng.below(INTERESTING.len())];
    let mut out = String::with_capacity(sql.len() + 1);
    out.push_str(&sql[..at]);
    out.push(char::from(byte));
    let rest = &sql[at..];
    // Replace the next char when there is one, else append.
    let mut chars = rest.chars();
    if rng.below(2) == 0 {
        chars.next();
    }
    out.push_str(chars.as_str());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_mutants() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..200 {
            assert_eq!(
                mutate(&mut a, "SELECT 'ü' FROM t", "DELETE FROM u"),
                mutate(&mut b, "SELECT 'ü' FROM t", "DELETE FROM u")
            );
        }
    }

    #[test]
    fn mutating_non_ascii_text_never_cuts_inside_a_character() {
        // Slicing a `str` off a char boundary panics: this fails if a cut is wrong.
        let mut rng = Rng::new(11);
        for _ in 0..5000 {
            mutate(&mut rng, "SELECT 'ü😀' AS \"ä\"", "SELECT ñ FROM ö");
        }
    }
}
