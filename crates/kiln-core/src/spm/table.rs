//! [`PieceTable`]: a vocabulary's pieces in one string, with an
//! open-addressing index from piece text to id. A 262k-piece vocabulary
//! costs its text plus 12 bytes a piece, where two `HashMap<String, u32>`
//! directions cost several times that.

use crate::TokenId;

/// Every piece's text, looked up both ways.
#[derive(Debug, Clone, Default)]
pub(crate) struct PieceTable {
    /// The pieces, back to back.
    text: String,
    /// Piece `i` is `text[ends[i - 1]..ends[i]]` (`0..ends[0]` for the first).
    ends: Vec<u32>,
    /// Open addressing, a power of two long: `id + 1` of an indexed piece,
    /// 0 for an empty slot.
    slots: Vec<u32>,
}

impl PieceTable {
    /// The pieces in id order; those for which `indexed` is false keep their
    /// id and text but cannot be found by text. Of duplicated pieces the
    /// first indexed one is found. `None` when the text passes 4 GiB.
    pub(crate) fn new<'a>(
        pieces: impl ExactSizeIterator<Item = &'a str>,
        indexed: impl Fn(TokenId) -> bool,
    ) -> Option<Self> {
        let count = pieces.len();
        let mut text = String::new();
        let mut ends = Vec::with_capacity(count);
        for piece in pieces {
            text.push_str(piece);
            ends.push(u32::try_from(text.len()).ok()?);
        }
        text.shrink_to_fit();
        let mut table = Self {
            text,
            ends,
            slots: vec![0; (count * 2).next_power_of_two().max(2)],
        };
        for id in 0..count as TokenId {
            if indexed(id) && table.get(table.piece(id)?).is_none() {
                table.insert(id);
            }
        }
        Some(table)
    }

    /// Number of pieces (indexed or not).
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The text of `id`.
    pub(crate) fn piece(&self, id: TokenId) -> Option<&str> {
        let i = id as usize;
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..end)
    }

    /// The id of an indexed piece.
    pub(crate) fn get(&self, piece: &str) -> Option<TokenId> {
        let mask = self.slots.len() - 1;
        let mut at = hash(piece.as_bytes()) as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return None;
            }
            if self.piece(slot - 1) == Some(piece) {
                return Some(slot - 1);
            }
            at = (at + 1) & mask;
        }
    }

    fn insert(&mut self, id: TokenId) {
        let mask = self.slots.len() - 1;
        let Some(piece) = self.piece(id) else { return };
        let mut at = hash(piece.as_bytes()) as usize & mask;
        while self.slots[at] != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = id + 1;
    }
}

/// FNV-1a with a final mix: pieces are short, so a simple byte loop is as
/// fast as anything heavier.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_pieces_by_text_and_id() {
        let pieces = ["a", "b", "ab", "", "a", "▁the"];
        let table = PieceTable::new(pieces.iter().copied(), |id| id != 1).unwrap();
        assert_eq!(table.len(), 6);
        assert_eq!(table.get("ab"), Some(2));
        assert_eq!(table.get("a"), Some(0), "the first of duplicates wins");
        assert_eq!(table.get("b"), None, "not indexed");
        assert_eq!(table.piece(1), Some("b"), "but still has its text");
        assert_eq!(table.get("▁the"), Some(5));
        assert_eq!(table.get(""), Some(3));
        assert_eq!(table.get("abc"), None);
        assert_eq!(table.piece(6), None);
    }
}
