//! Tracks `WITH name (columns) AS (…)` preludes, so that a CTE's column list
//! is not mistaken for a function call — while anything that does not fit the
//! CTE grammar exactly stops the tracking (the safe direction: a call).

use super::scan::Sig;
use crate::sql::keywords::Kw;
use crate::sql::lexer::TokenKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After `WITH`, `WITH RECURSIVE` or `,`: a CTE name comes next.
    ExpectName,
    /// After the name: `(` columns or `AS`.
    AfterName,
    /// Inside the column list: only names and commas.
    InColumns,
    /// After the column list: `AS`.
    AfterColumns,
    /// After `AS`: `[NOT] MATERIALIZED`, then `(`.
    AfterAs,
    /// Inside the CTE's query.
    InBody,
    /// After the query: `,` and another CTE, or the main statement.
    AfterBody,
}

#[derive(Debug, Clone, Copy)]
struct Level {
    depth: u32,
    state: State,
}

/// What the tracker concluded about one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CteEvent {
    /// Nothing special.
    None,
    /// This `(` opens a CTE's column list or body: not a call.
    NotACall,
    /// Text that started like a CTE column list but is not one.
    Malformed,
}

const LEVELS: usize = 8;

/// Nested `WITH` preludes, innermost last (deeper nesting is not tracked: its
/// column lists then read as calls, which errs towards the primary).
#[derive(Debug, Clone, Copy)]
pub(super) struct CteTracker {
    levels: [Level; LEVELS],
    len: usize,
}

impl Default for CteTracker {
    fn default() -> Self {
        CteTracker {
            levels: [Level {
                depth: 0,
                state: State::ExpectName,
            }; LEVELS],
            len: 0,
        }
    }
}

fn is_name(sig: &Sig) -> bool {
    matches!(
        sig.kind,
        TokenKind::Identifier | TokenKind::QuotedIdentifier
    )
}

impl CteTracker {
    /// Observes a significant token at paren depth `depth` (for `(`, the depth
    /// outside it; for `)`, the depth after it).
    #[inline]
    pub(super) fn observe(&mut self, sig: &Sig, text: &[u8], depth: u32) -> CteEvent {
        if self.len == 0 && sig.kw != Some(Kw::With) {
            return CteEvent::None;
        }
        while self.len > 0 && self.levels[self.len - 1].depth > depth {
            self.len -= 1;
        }
        let event = match self.len.checked_sub(1).map(|top| self.levels[top]) {
            Some(level) => self.step(level, sig, text, depth),
            None => CteEvent::None,
        };
        if sig.kw == Some(Kw::With) && self.len < LEVELS {
            self.levels[self.len] = Level {
                depth,
                state: State::ExpectName,
            };
            self.len += 1;
        }
        event
    }

    fn set(&mut self, state: State) {
        self.levels[self.len - 1].state = state;
    }

    fn pop(&mut self) {
        self.len -= 1;
    }

    fn step(&mut self, level: Level, sig: &Sig, text: &[u8], depth: u32) -> CteEvent {
        use TokenKind::{CloseParen, Comma, OpenParen};
        if depth > level.depth {
            if level.state == State::InColumns && !(is_name(sig) || sig.kind == Comma) {
                self.pop();
                return CteEvent::Malformed;
            }
            return CteEvent::None;
        }
        match (level.state, sig.kind) {
            (State::ExpectName, _) if sig.kw == Some(Kw::Recursive) => {}
            (State::ExpectName, _) if is_name(sig) => self.set(State::AfterName),
            (State::AfterName, OpenParen) => {
                self.set(State::InColumns);
                return CteEvent::NotACall;
            }
            (State::AfterName, _) if sig.kw == Some(Kw::As) => self.set(State::AfterAs),
            (State::InColumns, CloseParen) => self.set(State::AfterColumns),
            (State::AfterColumns, _) if sig.kw == Some(Kw::As) => self.set(State::AfterAs),
            (State::AfterColumns, _) => {
                self.pop();
                return CteEvent::Malformed;
            }
            (State::AfterAs, _)
                if sig.kw == Some(Kw::Not) || text.eq_ignore_ascii_case(b"materialized") => {}
            (State::AfterAs, OpenParen) => {
                self.set(State::InBody);
                return CteEvent::NotACall;
            }
            (State::InBody, CloseParen) => self.set(State::AfterBody),
            (State::InBody, _) => {}
            (State::AfterBody, Comma) => self.set(State::ExpectName),
            _ => self.pop(),
        }
        CteEvent::None
    }
}
