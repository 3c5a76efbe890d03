//! A statement's shape: its tokens with literals and comments taken out, so
//! that statements differing only in constants (`… WHERE id = 1`, `… WHERE
//! id = 2`) are known as one; and a bounded memory of shapes.
//!
//! The proxy remembers the shapes of reads that a replica refused because
//! they can run only on the primary (a function the catalog thinks read-only
//! writes; an unlogged table), so that the next such statement goes to the
//! primary first. A shape is a 64-bit hash: two statements whose hashes
//! collide both go to the primary, the safe direction.

use std::collections::HashMap;

use super::lexer::{TokenKind, tokens};

/// The shape of one SQL text (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape(u64);

/// The shape of `sql`: comments dropped, every literal (string, number) one
/// placeholder, unquoted identifiers and keywords folded to lower case.
pub fn shape(sql: &[u8]) -> Shape {
    let mut hash = Fnv::new();
    for token in tokens(sql) {
        match token.kind {
            TokenKind::Comment => continue,
            kind if kind.is_literal() => hash.write(b"?"),
            TokenKind::Identifier => {
                for byte in token.text(sql) {
                    hash.write(&[byte.to_ascii_lowercase()]);
                }
            }
            _ => hash.write(token.text(sql)),
        }
        // Tokens end visibly: `ab c` and `a bc` differ.
        hash.write(&[0]);
    }
    Shape(hash.0)
}

/// 64-bit FNV-1a: stable across runs and builds, no allocation.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A bounded set of shapes that forgets the least recently used one when
/// full.
#[derive(Debug)]
pub struct ShapeMemory {
    capacity: usize,
    /// Each shape with the tick of its last use.
    used: HashMap<Shape, u64>,
    tick: u64,
}

impl ShapeMemory {
    /// An empty memory of at most `capacity` shapes (at least one).
    pub fn new(capacity: usize) -> ShapeMemory {
        ShapeMemory {
            capacity: capacity.max(1),
            used: HashMap::new(),
            tick: 0,
        }
    }

    /// Whether `shape` is remembered; a remembered one counts as used now.
    pub fn recalls(&mut self, shape: Shape) -> bool {
        self.tick += 1;
        match self.used.get_mut(&shape) {
            Some(last) => {
                *last = self.tick;
                true
            }
            None => false,
        }
    }

    /// Remembers `shape`, forgetting the least recently used one if full.
    /// Whether it is new.
    pub fn remember(&mut self, shape: Shape) -> bool {
        self.tick += 1;
        if let Some(last) = self.used.get_mut(&shape) {
            *last = self.tick;
            return false;
        }
        if self.used.len() >= self.capacity
            && let Some(oldest) = self
                .used
                .iter()
                .min_by_key(|(_, last)| **last)
                .map(|(shape, _)| *shape)
        {
            // A linear scan, only when a new shape arrives at a full memory:
            // rare, since a shape is learned once.
            self.used.remove(&oldest);
        }
        self.used.insert(shape, self.tick);
        true
    }

    /// How many shapes are remembered.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_differing_only_in_literals_comments_and_case_share_a_shape() {
        let one = shape(b"SELECT * FROM t WHERE id = 1 AND name = 'a'");
        assert_eq!(
            one,
            shape(b"select *  from T /* c */ where id = 42 and name = $$b$$")
        );
        assert_eq!(
            one,
            shape(b"SELECT * FROM t WHERE id = 1.5 AND name = E'x'")
        );
    }

    #[test]
    fn statements_differing_in_names_or_structure_have_different_shapes() {
        let one = shape(b"SELECT f(1)");
        assert_ne!(one, shape(b"SELECT g(1)"));
        assert_ne!(one, shape(b"SELECT f(1, 2)"));
        assert_ne!(one, shape(b"SELECT \"F\"(1)"));
        assert_ne!(shape(b"SELECT ab c"), shape(b"SELECT a bc"));
        assert_ne!(shape(b"SELECT $1"), shape(b"SELECT $2"));
    }

    #[test]
    fn a_remembered_shape_is_recalled_once_and_only_once_learned() {
        let mut memory = ShapeMemory::new(4);
        let a = shape(b"SELECT f()");
        assert!(!memory.recalls(a));
        assert!(memory.remember(a));
        assert!(!memory.remember(a), "already known");
        assert!(memory.recalls(a));
        assert_eq!(memory.len(), 1);
    }

    #[test]
    fn a_full_memory_forgets_the_least_recently_used_shape() {
        let mut memory = ShapeMemory::new(2);
        let (a, b, c) = (shape(b"SELECT a"), shape(b"SELECT b"), shape(b"SELECT c"));
        memory.remember(a);
        memory.remember(b);
        assert!(memory.recalls(a), "a is now the most recently used");
        memory.remember(c);
        assert_eq!(memory.len(), 2);
        assert!(memory.recalls(a));
        assert!(memory.recalls(c));
        assert!(!memory.recalls(b), "b was the least recently used");
    }
}
