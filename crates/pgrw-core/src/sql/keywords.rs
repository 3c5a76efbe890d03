//! Keywords the classifier looks at, matched case-insensitively without
//! allocating (compile-time hash tables, see [`WordTable`]). The keyword
//! categories come from PostgreSQL's `src/include/parser/kwlist.h`.

use super::wordtable::WordTable;

/// Lowercases `bytes` (ASCII only) into a stack buffer of `N` bytes; `None`
/// when it does not fit.
pub(crate) fn lowercase<const N: usize>(bytes: &[u8]) -> Option<([u8; N], usize)> {
    if bytes.len() > N {
        return None;
    }
    let mut buffer = [0u8; N];
    for (slot, byte) in buffer.iter_mut().zip(bytes) {
        *slot = byte.to_ascii_lowercase();
    }
    Some((buffer, bytes.len()))
}

/// A keyword that steers classification (in the order of [`KEYWORD_LIST`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub(crate) enum Kw {
    Select,
    Values,
    Table,
    With,
    Show,
    Explain,
    Copy,
    Fetch,
    Move,
    Close,
    Declare,
    Begin,
    Start,
    Set,
    Reset,
    Discard,
    Commit,
    End,
    Rollback,
    Abort,
    Savepoint,
    Release,
    Prepare,
    Execute,
    Deallocate,
    Listen,
    Unlisten,
    Notify,
    Lock,
    Vacuum,
    Analyze,
    Analyse,
    Cluster,
    Reindex,
    Checkpoint,
    Refresh,
    Call,
    Do,
    Insert,
    Update,
    Delete,
    Merge,
    Create,
    Alter,
    Drop,
    Truncate,
    Grant,
    Revoke,
    Comment,
    Security,
    Reassign,
    Import,
    Load,
    For,
    No,
    Key,
    Share,
    Into,
    Temp,
    Temporary,
    Recursive,
    As,
    Tablesample,
    Atomic,
    Case,
    Transaction,
    Work,
    Read,
    Only,
    Write,
    Isolation,
    Level,
    Not,
    Deferrable,
    Local,
    Session,
    Characteristics,
    All,
    Plans,
    Sequences,
    To,
    From,
    Stdout,
    And,
    Chain,
    Prepared,
    On,
    Off,
    True,
    False,
    Verbose,
    Hold,
    Without,
    Cursor,
    Or,
    Replace,
    Global,
    Unlogged,
    Default,
    Program,
    Operator,
    Snapshot,
    Committed,
    Uncommitted,
    Repeatable,
    Serializable,
}

/// The keywords' spellings, in the order of [`Kw`]'s variants.
const KEYWORD_LIST: &str = "
SELECT VALUES TABLE WITH SHOW EXPLAIN COPY FETCH MOVE CLOSE DECLARE BEGIN START SET RESET
DISCARD COMMIT END ROLLBACK ABORT SAVEPOINT RELEASE PREPARE EXECUTE DEALLOCATE LISTEN UNLISTEN
NOTIFY LOCK VACUUM ANALYZE ANALYSE CLUSTER REINDEX CHECKPOINT REFRESH CALL DO INSERT UPDATE
DELETE MERGE CREATE ALTER DROP TRUNCATE GRANT REVOKE COMMENT SECURITY REASSIGN IMPORT LOAD FOR
NO KEY SHARE INTO TEMP TEMPORARY RECURSIVE AS TABLESAMPLE ATOMIC CASE TRANSACTION WORK READ ONLY
WRITE ISOLATION LEVEL NOT DEFERRABLE LOCAL SESSION CHARACTERISTICS ALL PLANS SEQUENCES TO FROM
STDOUT AND CHAIN PREPARED ON OFF TRUE FALSE VERBOSE HOLD WITHOUT CURSOR OR REPLACE GLOBAL
UNLOGGED DEFAULT PROGRAM OPERATOR SNAPSHOT COMMITTED UNCOMMITTED REPEATABLE SERIALIZABLE
";

static KEYWORDS: WordTable<256> = WordTable::new(KEYWORD_LIST);

/// A cheap pre-filter: for each length and first letter, the set of last
/// letters some keyword has. Most identifiers (column names) fail it and are
/// never hashed.
static KEYWORD_SHAPES: [[u32; 26]; 16] = keyword_shapes(KEYWORD_LIST);

const fn keyword_shapes(list: &str) -> [[u32; 26]; 16] {
    let bytes = list.as_bytes();
    let mut shapes = [[0u32; 26]; 16];
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b' ' || bytes[at] == b'\n' {
            at += 1;
            continue;
        }
        let start = at;
        while at < bytes.len() && bytes[at] != b' ' && bytes[at] != b'\n' {
            at += 1;
        }
        let first = bytes[start].to_ascii_lowercase();
        let last = bytes[at - 1].to_ascii_lowercase();
        assert!(at - start < 16 && first.is_ascii_lowercase() && last.is_ascii_lowercase());
        shapes[at - start][(first - b'a') as usize] |= 1 << (last - b'a');
    }
    shapes
}

/// Whether some keyword has this identifier's length, first and last letter.
fn may_be_keyword(identifier: &[u8]) -> bool {
    let (Some(first), Some(last)) = (identifier.first(), identifier.last()) else {
        return false;
    };
    let (first, last) = (first.to_ascii_lowercase(), last.to_ascii_lowercase());
    if identifier.len() >= 16 || !first.is_ascii_lowercase() || !last.is_ascii_lowercase() {
        return false;
    }
    KEYWORD_SHAPES[identifier.len()][usize::from(first - b'a')] & (1 << (last - b'a')) != 0
}

/// The keyword of each word of [`KEYWORD_LIST`].
static KEYWORD_VALUES: &[Kw] = &[
    Kw::Select,
    Kw::Values,
    Kw::Table,
    Kw::With,
    Kw::Show,
    Kw::Explain,
    Kw::Copy,
    Kw::Fetch,
    Kw::Move,
    Kw::Close,
    Kw::Declare,
    Kw::Begin,
    Kw::Start,
    Kw::Set,
    Kw::Reset,
    Kw::Discard,
    Kw::Commit,
    Kw::End,
    Kw::Rollback,
    Kw::Abort,
    Kw::Savepoint,
    Kw::Release,
    Kw::Prepare,
    Kw::Execute,
    Kw::Deallocate,
    Kw::Listen,
    Kw::Unlisten,
    Kw::Notify,
    Kw::Lock,
    Kw::Vacuum,
    Kw::Analyze,
    Kw::Analyse,
    Kw::Cluster,
    Kw::Reindex,
    Kw::Checkpoint,
    Kw::Refresh,
    Kw::Call,
    Kw::Do,
    Kw::Insert,
    Kw::Update,
    Kw::Delete,
    Kw::Merge,
    Kw::Create,
    Kw::Alter,
    Kw::Drop,
    Kw::Truncate,
    Kw::Grant,
    Kw::Revoke,
    Kw::Comment,
    Kw::Security,
    Kw::Reassign,
    Kw::Import,
    Kw::Load,
    Kw::For,
    Kw::No,
    Kw::Key,
    Kw::Share,
    Kw::Into,
    Kw::Temp,
    Kw::Temporary,
    Kw::Recursive,
    Kw::As,
    Kw::Tablesample,
    Kw::Atomic,
    Kw::Case,
    Kw::Transaction,
    Kw::Work,
    Kw::Read,
    Kw::Only,
    Kw::Write,
    Kw::Isolation,
    Kw::Level,
    Kw::Not,
    Kw::Deferrable,
    Kw::Local,
    Kw::Session,
    Kw::Characteristics,
    Kw::All,
    Kw::Plans,
    Kw::Sequences,
    Kw::To,
    Kw::From,
    Kw::Stdout,
    Kw::And,
    Kw::Chain,
    Kw::Prepared,
    Kw::On,
    Kw::Off,
    Kw::True,
    Kw::False,
    Kw::Verbose,
    Kw::Hold,
    Kw::Without,
    Kw::Cursor,
    Kw::Or,
    Kw::Replace,
    Kw::Global,
    Kw::Unlogged,
    Kw::Default,
    Kw::Program,
    Kw::Operator,
    Kw::Snapshot,
    Kw::Committed,
    Kw::Uncommitted,
    Kw::Repeatable,
    Kw::Serializable,
];

impl Kw {
    /// The keyword spelled by an unquoted identifier, if any.
    pub(crate) fn of(identifier: &[u8]) -> Option<Kw> {
        if !may_be_keyword(identifier) {
            return None;
        }
        KEYWORDS
            .index_ignore_case(identifier)
            .and_then(|index| KEYWORD_VALUES.get(index).copied())
    }

    /// The keyword in upper case, for reasons.
    pub(crate) fn name(self) -> &'static str {
        KEYWORDS.word_at(self as usize)
    }
}

/// PostgreSQL's reserved and column-name keywords: followed by `(` they are
/// grammar (`IN (`, `EXISTS (`, `numeric(10,2)`, `COALESCE(`), never a call
/// of a catalog function, which needs an unreserved name.
static GRAMMAR: WordTable<512> = WordTable::new(
    "
all analyse analyze and any array as asc asymmetric between bigint bit boolean both case cast
char character check coalesce collate column constraint create current_catalog current_date
current_role current_time current_timestamp current_user dec decimal default deferrable desc
distinct do else end except exists extract false fetch float for foreign from grant greatest
group grouping having in initially inout int integer intersect interval into json json_array
json_arrayagg json_exists json_object json_objectagg json_query json_scalar json_serialize
json_table json_value lateral leading least limit localtime localtimestamp merge_action national
nchar none normalize not null nullif numeric offset on only or order out overlay placing
position precision primary real references returning row select session_user setof smallint some
substring symmetric system_user table then time timestamp to trailing treat trim true union
unique user using values varchar variadic when where window with xmlattributes xmlconcat
xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
",
);

/// PostgreSQL's type-or-function-name keywords (`JOIN`, `LIKE`, `IS`, …): a
/// function may bear one of these names, but right after an operand they are
/// grammar (`t JOIN (…)`, `x LIKE (…)`).
static INFIX: WordTable<64> = WordTable::new(
    "
authorization binary collation concurrently cross current_schema freeze full ilike inner is
isnull join left like natural notnull outer overlaps right similar tablesample verbose
",
);

/// Unreserved keywords that an expression may directly follow (`ORDER BY f(…)`,
/// `ESCAPE f(…)`, `ROWS f(…) PRECEDING`, `AT TIME ZONE f(…)`, `RETURN f(…)`):
/// after one of these a name and `(` may be a call even when the name is a
/// type-or-function-name keyword.
static EXPRESSION_LEADERS: WordTable<128> = WordTable::new(
    "
absolute at backward by call columns cycle empty encoding error escape first format forward groups
include keep next of omit partition passing path prior range relative return returns rows search
set value values wrapper zone
",
);

/// Whether an unquoted identifier followed by `(` is grammar rather than a
/// function call whatever precedes it (any ASCII case).
pub(crate) fn is_grammar_before_paren(identifier: &[u8]) -> bool {
    GRAMMAR.contains_ignore_case(identifier)
}

/// Whether an unquoted identifier is a type-or-function-name keyword.
pub(crate) fn is_infix_keyword(identifier: &[u8]) -> bool {
    INFIX.contains_ignore_case(identifier)
}

/// Whether an unquoted identifier is an unreserved keyword that an
/// expression may directly follow (see [`EXPRESSION_LEADERS`]).
pub(crate) fn leads_an_expression(identifier: &[u8]) -> bool {
    EXPRESSION_LEADERS.contains_ignore_case(identifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyword_is_found_in_any_case_and_named() {
        assert_eq!(KEYWORDS.words().count(), KEYWORD_VALUES.len());
        for (word, kw) in KEYWORDS.words().map(|(word, _)| word).zip(KEYWORD_VALUES) {
            assert_eq!(Kw::of(word), Some(*kw));
            assert_eq!(Kw::of(&word.to_ascii_lowercase()), Some(*kw));
            assert_eq!(kw.name().as_bytes(), word);
        }
    }

    #[test]
    fn non_keywords_are_not_found() {
        assert_eq!(Kw::of(b"users"), None);
        assert_eq!(Kw::of(b"selects"), None);
    }

    #[test]
    fn grammar_words_are_not_calls() {
        assert!(is_grammar_before_paren(b"EXISTS"));
        assert!(!is_grammar_before_paren(b"nextval"));
        assert!(!is_grammar_before_paren(b"recursive"));
        assert!(is_infix_keyword(b"JOIN"));
        assert!(leads_an_expression(b"ESCAPE"));
    }
}
