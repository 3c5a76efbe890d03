//! A set of words built at compile time into an open-addressing hash table,
//! so that looking a word up costs one hash and (usually) one comparison —
//! no allocation, no chain of string comparisons.
//!
//! The words come as one whitespace-separated string (compact to write and to
//! review); a word may carry a one-byte tag after a colon (`nextval:s`).

/// FNV-1a over ASCII-lowercased bytes `start..end` of `bytes`.
const fn hash(bytes: &[u8], start: usize, end: usize) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let mut at = start;
    while at < end {
        hash ^= bytes[at].to_ascii_lowercase() as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        at += 1;
    }
    hash
}

/// One word: where it is in the list, and its tag (0 when untagged).
#[derive(Clone, Copy)]
struct Entry {
    start: u16,
    len: u8,
    tag: u8,
}

/// The words of a static list. `SLOTS` must be a power of two larger than
/// the number of words (checked at compile time).
pub(crate) struct WordTable<const SLOTS: usize> {
    list: &'static str,
    entries: [Entry; SLOTS],
    /// 0 for an empty slot, else 1 + the index of the word in `entries`.
    slots: [u16; SLOTS],
}

const fn is_separator(byte: u8) -> bool {
    byte == b' ' || byte == b'\n'
}

impl<const SLOTS: usize> WordTable<SLOTS> {
    /// Builds the table from whitespace-separated, distinct words (compared as
    /// each lookup says: exactly or ignoring ASCII case),
    /// each optionally followed by `:` and a one-byte tag.
    pub(crate) const fn new(list: &'static str) -> Self {
        let bytes = list.as_bytes();
        assert!(
            SLOTS.is_power_of_two() && SLOTS < u16::MAX as usize && bytes.len() < u16::MAX as usize
        );
        let mut entries = [Entry {
            start: 0,
            len: 0,
            tag: 0,
        }; SLOTS];
        let mut slots = [0u16; SLOTS];
        let mut count = 0;
        let mut at = 0;
        while at < bytes.len() {
            if is_separator(bytes[at]) {
                at += 1;
                continue;
            }
            let start = at;
            while at < bytes.len() && !is_separator(bytes[at]) && bytes[at] != b':' {
                at += 1;
            }
            let end = at;
            let mut tag = 0;
            if at < bytes.len() && bytes[at] == b':' {
                assert!(at + 1 < bytes.len());
                tag = bytes[at + 1];
                at += 2;
            }
            assert!(count + 1 < SLOTS && end - start < 256);
            entries[count] = Entry {
                start: start as u16,
                len: (end - start) as u8,
                tag,
            };
            let mut slot = hash(bytes, start, end) as usize & (SLOTS - 1);
            while slots[slot] != 0 {
                slot = (slot + 1) & (SLOTS - 1);
            }
            count += 1;
            slots[slot] = count as u16;
        }
        WordTable {
            list,
            entries,
            slots,
        }
    }

    fn word(&self, entry: Entry) -> &'static [u8] {
        let start = entry.start as usize;
        let list: &'static [u8] = self.list.as_bytes();
        list.get(start..start + entry.len as usize)
            .unwrap_or_default()
    }

    /// The word at `index` in list order (empty when out of range).
    pub(crate) fn word_at(&self, index: usize) -> &'static str {
        let list: &'static str = self.list;
        match self.entries.get(index) {
            Some(entry) => {
                let start = entry.start as usize;
                list.get(start..start + entry.len as usize)
                    .unwrap_or_default()
            }
            None => "",
        }
    }

    /// The list position of `word` (ignoring ASCII case), if it is in the table.
    pub(crate) fn index_ignore_case(&self, word: &[u8]) -> Option<usize> {
        let mut slot = hash(word, 0, word.len()) as usize & (SLOTS - 1);
        loop {
            let index = self.slots[slot];
            if index == 0 {
                return None;
            }
            let position = usize::from(index - 1);
            if self.word(self.entries[position]).eq_ignore_ascii_case(word) {
                return Some(position);
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
    }

    fn probe(&self, word: &[u8], same: impl Fn(&[u8], &[u8]) -> bool) -> Option<Entry> {
        let mut slot = hash(word, 0, word.len()) as usize & (SLOTS - 1);
        loop {
            let index = self.slots[slot];
            if index == 0 {
                return None;
            }
            let entry = self.entries[usize::from(index - 1)];
            if same(self.word(entry), word) {
                return Some(entry);
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
    }

    /// Whether `word` is in the table, compared exactly.
    pub(crate) fn contains(&self, word: &[u8]) -> bool {
        self.probe(word, |entry, word| entry == word).is_some()
    }

    /// Whether `word` is in the table, ignoring ASCII case.
    pub(crate) fn contains_ignore_case(&self, word: &[u8]) -> bool {
        self.probe(word, |entry, word| entry.eq_ignore_ascii_case(word))
            .is_some()
    }

    /// The tag of `word` (compared exactly), if it is in the table.
    pub(crate) fn tag(&self, word: &[u8]) -> Option<u8> {
        self.probe(word, |entry, word| entry == word)
            .map(|entry| entry.tag)
    }

    /// Every word with its tag, in list order.
    #[cfg(test)]
    pub(crate) fn words(&self) -> impl Iterator<Item = (&'static [u8], u8)> + '_ {
        self.entries
            .iter()
            .take_while(|entry| entry.len > 0)
            .map(|entry| (self.word(*entry), entry.tag))
    }
}

#[cfg(test)]
mod tests {
    use super::WordTable;

    static TABLE: WordTable<8> = WordTable::new("select from:f\n  where");

    #[test]
    fn finds_every_word_and_nothing_else() {
        assert!(TABLE.contains(b"from"));
        assert!(!TABLE.contains(b"FROM"));
        assert!(TABLE.contains_ignore_case(b"FROM"));
        assert!(!TABLE.contains(b"insert"));
        assert!(!TABLE.contains(b""));
    }

    #[test]
    fn tags_follow_a_colon() {
        assert_eq!(TABLE.tag(b"from"), Some(b'f'));
        assert_eq!(TABLE.tag(b"where"), Some(0));
        assert_eq!(TABLE.words().count(), 3);
    }
}
