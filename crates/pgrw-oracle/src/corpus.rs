//! The statement corpus (`corpus/statements.jsonl` at the workspace root):
//! the SQL shapes ORMs and psql really send, plus every routing pitfall.

use std::path::PathBuf;

use serde::Deserialize;

/// Where a corpus statement should run, as its author expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// May run on a replica.
    Replica,
    /// Must run on the primary.
    Primary,
}

/// One corpus line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusEntry {
    /// The SQL text, exactly as a client sends it.
    pub sql: String,
    /// Who emits this shape (`peewee`, `django`, `psql`, `pitfall`, `hint`, …).
    pub source: String,
    /// Where it should run.
    pub expect: Expected,
    /// Why the entry is there, when that is not obvious.
    #[serde(default)]
    pub note: Option<String>,
}

impl CorpusEntry {
    /// Whether the entry carries a routing hint (`/* pgrw:… */` or
    /// `SET pgrw.route`): the parser cannot see hints, so the judge does not
    /// apply to these and `expect` alone decides.
    pub fn is_hint(&self) -> bool {
        self.source == "hint"
    }
}

/// Path of the corpus file.
pub fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/statements.jsonl")
}

/// A corpus line that is not a valid entry.
#[derive(Debug)]
pub struct CorpusLineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Parses corpus text: one JSON object per non-empty line.
pub fn parse_corpus(text: &str) -> Result<Vec<CorpusEntry>, CorpusLineError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str::<CorpusEntry>(line).map_err(|error| CorpusLineError {
                line: index + 1,
                message: error.to_string(),
            })
        })
        .collect()
}

/// Loads the corpus, panicking with the offending line when it is malformed
/// (for tests, benches and the fuzz loop, where a broken corpus is a bug).
pub fn load_corpus() -> Vec<CorpusEntry> {
    let path = corpus_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse_corpus(&text).unwrap_or_else(|e| panic!("{}:{}: {}", path.display(), e.line, e.message))
}
