//! The bytes each token stands for, as constrained decoding needs them:
//! byte-level BPE pieces mapped back through GPT-2's byte alphabet,
//! SentencePiece pieces with `▁` as a space and `<0xNN>` byte fallbacks as
//! their byte. Special tokens have no bytes (they are never text).

use crate::{TokenId, Tokenizer};

/// Per-token byte strings of a vocabulary; `None` for special tokens.
/// Also holds a prefix tree of the tokens, so constrained decoding can
/// test a whole vocabulary by walking shared prefixes once.
#[derive(Debug, Clone)]
pub struct TokenBytes {
    bytes: Vec<Option<Vec<u8>>>,
    trie: TokenTrie,
    /// Per token: its character count when it is plain string text (no
    /// quote, backslash or control byte, well-formed UTF-8 start), else 0.
    plain_chars: Vec<u32>,
    /// Per plain token: the UTF-8 continuation bytes still owed at its end
    /// (a character split across tokens), else 0.
    plain_owed: Vec<u8>,
    /// The tokens that are not plain text.
    special_trie: TokenTrie,
}

/// A prefix tree over token byte strings: node 0 is the root; each node
/// lists its children (sorted by byte) and the tokens that end there.
#[derive(Debug, Clone, Default)]
pub struct TokenTrie {
    /// Per node: range into `edges`.
    edge_ranges: Vec<(u32, u32)>,
    /// `(byte, child node)`.
    edges: Vec<(u8, u32)>,
    /// Per node: range into `ends`.
    end_ranges: Vec<(u32, u32)>,
    /// Token ids, grouped by the node where they end.
    ends: Vec<TokenId>,
}

impl TokenTrie {
    /// Builds the tree of the given tokens (ids with no bytes are left out).
    pub fn new(bytes: &[Option<Vec<u8>>], include: impl Fn(&[u8]) -> bool) -> Self {
        let mut order: Vec<TokenId> = (0..bytes.len() as TokenId)
            .filter(|&id| {
                bytes[id as usize]
                    .as_deref()
                    .is_some_and(|b| !b.is_empty() && include(b))
            })
            .collect();
        order.sort_by(|&a, &b| bytes[a as usize].cmp(&bytes[b as usize]));
        // Nodes are created in sorted (pre-)order; children of a node are
        // contiguous once collected per parent.
        let mut children: Vec<Vec<(u8, u32)>> = vec![Vec::new()];
        let mut ends: Vec<Vec<TokenId>> = vec![Vec::new()];
        let mut path: Vec<u32> = vec![0];
        let mut prev: &[u8] = &[];
        for &id in &order {
            let Some(b) = bytes[id as usize].as_deref() else {
                continue;
            };
            let common = prev.iter().zip(b).take_while(|(x, y)| x == y).count();
            path.truncate(common + 1);
            for &byte in &b[common..] {
                let parent = path[path.len() - 1];
                let node = children.len() as u32;
                children.push(Vec::new());
                ends.push(Vec::new());
                children[parent as usize].push((byte, node));
                path.push(node);
            }
            ends[path[path.len() - 1] as usize].push(id);
            prev = b;
        }
        let mut trie = TokenTrie::default();
        for (c, e) in children.iter().zip(&ends) {
            let start = trie.edges.len() as u32;
            trie.edges.extend_from_slice(c);
            trie.edge_ranges.push((start, trie.edges.len() as u32));
            let start = trie.ends.len() as u32;
            trie.ends.extend_from_slice(e);
            trie.end_ranges.push((start, trie.ends.len() as u32));
        }
        trie
    }

    /// The children of `node` as `(byte, child)`.
    pub fn children(&self, node: u32) -> &[(u8, u32)] {
        let (a, b) = self.edge_ranges[node as usize];
        &self.edges[a as usize..b as usize]
    }

    /// The tokens whose bytes end exactly at `node`.
    pub fn tokens_at(&self, node: u32) -> &[TokenId] {
        let (a, b) = self.end_ranges[node as usize];
        &self.ends[a as usize..b as usize]
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.edge_ranges.len()
    }
}

impl TokenBytes {
    /// Builds the table for every id of `tokenizer`.
    pub fn new(tokenizer: &Tokenizer) -> Self {
        let inner = match (tokenizer.huggingface(), tokenizer.spm()) {
            (Some(inner), _) => inner,
            (None, Some(spm)) => return Self::from_pieces(spm.token_bytes()),
            (None, None) => return Self::from_pieces(Vec::new()),
        };
        let byte_level = inner
            .get_decoder()
            .and_then(|d| serde_json::to_string(d).ok())
            .is_some_and(|s| s.contains("\"ByteLevel\""));
        let unicode_to_byte = byte_level.then(gpt2_unicode_to_byte);
        let added = inner.get_added_tokens_decoder();
        let n = tokenizer.vocab_size();
        let bytes = (0..n as TokenId)
            .map(|id| {
                if let Some(token) = added.get(&id) {
                    return (!token.special).then(|| token.content.as_bytes().to_vec());
                }
                let piece = inner.id_to_token(id)?;
                if tokenizer.is_byte_fallback(id) {
                    return u8::from_str_radix(&piece[3..5], 16).ok().map(|b| vec![b]);
                }
                match &unicode_to_byte {
                    Some(map) => piece
                        .chars()
                        .map(|c| map.get(&c).copied())
                        .collect::<Option<Vec<u8>>>(),
                    None => Some(piece.replace('\u{2581}', " ").into_bytes()),
                }
            })
            .collect();
        Self::from_pieces(bytes)
    }

    /// A table from explicit byte strings (tests, synthetic vocabularies).
    pub fn from_pieces(bytes: Vec<Option<Vec<u8>>>) -> Self {
        let trie = TokenTrie::new(&bytes, |_| true);
        let (plain_chars, plain_owed) = bytes
            .iter()
            .map(|b| b.as_deref().map_or((0, 0), plain_text))
            .unzip();
        let special_trie = TokenTrie::new(&bytes, |b| plain_text(b).0 == 0);
        Self {
            bytes,
            trie,
            plain_chars,
            plain_owed,
            special_trie,
        }
    }

    /// Per token: the number of characters when the token is plain text
    /// that can sit unescaped inside a JSON string, else 0.
    pub fn plain_chars(&self) -> &[u32] {
        &self.plain_chars
    }

    /// Per plain token: UTF-8 continuation bytes owed at its end.
    pub fn plain_owed(&self) -> &[u8] {
        &self.plain_owed
    }

    /// The prefix tree of the tokens that are not plain text.
    pub fn special_trie(&self) -> &TokenTrie {
        &self.special_trie
    }

    /// The prefix tree of every token with bytes.
    pub fn trie(&self) -> &TokenTrie {
        &self.trie
    }

    /// The bytes of `id`, or `None` for special or unknown tokens.
    pub fn get(&self, id: TokenId) -> Option<&[u8]> {
        self.bytes.get(id as usize)?.as_deref()
    }

    /// Number of ids in the table.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the table has no ids.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Characters of `bytes` when it is plain JSON-string text (printable, no
/// `"` or `\\`, UTF-8 that starts on a character and is well-formed up to
/// its end, which may stop inside a character) and the continuation bytes
/// owed at its end; `(0, 0)` otherwise.
fn plain_text(bytes: &[u8]) -> (u32, u8) {
    let mut chars = 0;
    let mut owed = 0u8;
    let mut range = (0x80, 0xBF);
    for &b in bytes {
        if owed > 0 {
            if !(range.0..=range.1).contains(&b) {
                return (0, 0);
            }
            owed -= 1;
            range = (0x80, 0xBF);
            continue;
        }
        if matches!(b, b'"' | b'\\' | 0..=0x1F | 0x7F) {
            return (0, 0);
        }
        match utf8_lead(b) {
            Some((n, first)) => {
                owed = n;
                range = first;
            }
            None => return (0, 0),
        }
        chars += 1;
    }
    (chars, owed)
}

/// For a byte that can start a UTF-8 character: how many continuation
/// bytes follow and the range the first of them must lie in (which rules
/// out overlong forms, surrogates and code points past U+10FFFF).
pub fn utf8_lead(b: u8) -> Option<(u8, (u8, u8))> {
    Some(match b {
        0x00..=0x7F => (0, (0x80, 0xBF)),
        0xC2..=0xDF => (1, (0x80, 0xBF)),
        0xE0 => (2, (0xA0, 0xBF)),
        0xED => (2, (0x80, 0x9F)),
        0xE1..=0xEF => (2, (0x80, 0xBF)),
        0xF0 => (3, (0x90, 0xBF)),
        0xF1..=0xF3 => (3, (0x80, 0xBF)),
        0xF4 => (3, (0x80, 0x8F)),
        _ => return None,
    })
}

/// Inverse of GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100 onwards in order.
fn gpt2_unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut next = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + next).unwrap_or(char::REPLACEMENT_CHARACTER);
            next += 1;
            c
        };
        map.insert(c, b);
    }
    map
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn trie_finds_every_token_by_its_bytes() {
        let pieces = ["a", "ab", "abc", "b", "ba", "", "ab"];
        let table = TokenBytes::from_pieces(
            pieces
                .iter()
                .map(|p| Some(p.as_bytes().to_vec()))
                .chain([None])
                .collect(),
        );
        let trie = table.trie();
        let mut found = Vec::new();
        let mut stack = vec![(0u32, Vec::new())];
        while let Some((node, prefix)) = stack.pop() {
            for &id in trie.tokens_at(node) {
                found.push((id, String::from_utf8(prefix.clone()).unwrap()));
            }
            for &(b, child) in trie.children(node) {
                let mut p = prefix.clone();
                p.push(b);
                stack.push((child, p));
            }
        }
        found.sort();
        let want: Vec<(u32, String)> = [
            (0, "a"),
            (1, "ab"),
            (2, "abc"),
            (3, "b"),
            (4, "ba"),
            (6, "ab"),
        ]
        .iter()
        .map(|&(i, s)| (i, s.to_string()))
        .collect();
        assert_eq!(found, want);
        assert_eq!(trie.node_count(), 6);
    }

    #[test]
    fn plain_text_is_what_a_json_string_holds_unescaped() {
        assert_eq!(plain_text(b"hello"), (5, 0));
        assert_eq!(plain_text("é!".as_bytes()), (2, 0));
        assert_eq!(plain_text(&"é".as_bytes()[..1]), (1, 1));
        assert_eq!(plain_text(&"é".as_bytes()[1..]).0, 0);
        assert_eq!(plain_text(b"a\"b").0, 0);
        assert_eq!(plain_text(b"a\\").0, 0);
        assert_eq!(plain_text(b"a\n").0, 0);
        assert_eq!(plain_text(&[0xE0, 0x80]).0, 0, "overlong");
        assert_eq!(plain_text(&[0xED, 0xA0]).0, 0, "surrogate");
    }

    #[test]
    fn byte_alphabet_is_a_bijection() {
        let map = gpt2_unicode_to_byte();
        assert_eq!(map.len(), 256);
        assert_eq!(map[&'\u{120}'], b' ');
        assert_eq!(map[&'\u{10A}'], b'\n');
        assert_eq!(map[&'A'], b'A');
    }
}
