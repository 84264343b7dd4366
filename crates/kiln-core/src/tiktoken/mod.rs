//! OpenAI's tiktoken encodings (`cl100k_base`, `o200k_base`), to count and
//! encode tokens for hosted models exactly as the `tiktoken` package does:
//! the text is split by the encoding's regex, and each piece is encoded by
//! byte-pair merging in rank order (lowest rank first, leftmost on ties).
//!
//! The rank files are not bundled; [`TiktokenEncoding::from_file`] reads one
//! (kiln-models downloads and caches them, checking [`KnownEncoding::sha256`]).

mod known;
mod ranks;

use std::collections::HashMap;
use std::path::Path;

pub use known::{known_encoding, KnownEncoding, KNOWN_ENCODINGS};

use crate::{CoreError, TokenId};

/// A loaded tiktoken encoding.
#[derive(Debug, Clone)]
pub struct TiktokenEncoding {
    name: String,
    ranks: HashMap<Vec<u8>, TokenId>,
    tokens: HashMap<TokenId, Vec<u8>>,
    special: Vec<(String, TokenId)>,
    splitter: fancy_regex::Regex,
}

impl TiktokenEncoding {
    /// Loads a known encoding's rank file (`known` gives the pattern and
    /// special tokens).
    pub fn from_file(known: &KnownEncoding, path: &Path) -> Result<Self, CoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| CoreError::InvalidTokenizer {
            path: path.to_path_buf(),
            message,
        };
        let ranks = ranks::parse_ranks(&text).map_err(invalid)?;
        let special = known
            .special_tokens
            .iter()
            .map(|(t, id)| (t.to_string(), *id))
            .collect();
        Self::new(known.name, ranks, special, known.pattern).map_err(invalid)
    }

    /// An encoding from its parts: `(token bytes, rank)` pairs, special
    /// tokens and the split pattern. Every single byte must have a rank.
    pub fn new(
        name: &str,
        ranks: Vec<(Vec<u8>, TokenId)>,
        special: Vec<(String, TokenId)>,
        pattern: &str,
    ) -> Result<Self, String> {
        let splitter = fancy_regex::Regex::new(pattern)
            .map_err(|e| format!("bad split pattern for {name}: {e}"))?;
        let tokens: HashMap<TokenId, Vec<u8>> =
            ranks.iter().map(|(b, r)| (*r, b.clone())).collect();
        let ranks: HashMap<Vec<u8>, TokenId> = ranks.into_iter().collect();
        if let Some(byte) = (0..=255u8).find(|b| !ranks.contains_key([*b].as_slice())) {
            return Err(format!("{name}: byte {byte:#04x} has no rank"));
        }
        let mut special: Vec<(String, TokenId)> = special;
        // Longest first, so that a special token that is a prefix of another
        // never wins.
        special.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
        Ok(Self {
            name: name.to_string(),
            ranks,
            tokens,
            special,
            splitter,
        })
    }

    /// The encoding's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One more than the largest id, special tokens included (tiktoken's `n_vocab`).
    pub fn vocab_size(&self) -> usize {
        let ordinary = self.tokens.keys().max().copied().unwrap_or(0);
        let special = self.special.iter().map(|(_, id)| *id).max().unwrap_or(0);
        ordinary.max(special) as usize + 1
    }

    /// Encodes text with special-token text treated as ordinary text
    /// (tiktoken's `encode_ordinary`).
    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<TokenId>, CoreError> {
        let mut ids = Vec::new();
        self.encode_pieces(text, &mut ids)?;
        Ok(ids)
    }

    /// Encodes text, turning special-token text (`<|endoftext|>`) into the
    /// special ids (tiktoken's `encode(text, allowed_special="all")`).
    pub fn encode_with_special(&self, text: &str) -> Result<Vec<TokenId>, CoreError> {
        let mut ids = Vec::new();
        let mut rest = text;
        while let Some((at, token, id)) = self.next_special(rest) {
            self.encode_pieces(&rest[..at], &mut ids)?;
            ids.push(id);
            rest = &rest[at + token.len()..];
        }
        self.encode_pieces(rest, &mut ids)?;
        Ok(ids)
    }

    /// The number of tokens in `text` (special-token text counted as text).
    pub fn count(&self, text: &str) -> Result<usize, CoreError> {
        Ok(self.encode_ordinary(text)?.len())
    }

    /// The text of `ids`; bytes that do not form UTF-8 become U+FFFD.
    /// Unknown ids are an error.
    pub fn decode(&self, ids: &[TokenId]) -> Result<String, CoreError> {
        let mut bytes = Vec::new();
        for &id in ids {
            if let Some(token) = self.tokens.get(&id) {
                bytes.extend_from_slice(token);
            } else if let Some((text, _)) = self.special.iter().find(|(_, s)| *s == id) {
                bytes.extend_from_slice(text.as_bytes());
            } else {
                return Err(CoreError::Tokenization(format!(
                    "id {id} is not in {}",
                    self.name
                )));
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The first special token in `text`: its byte offset, text and id.
    fn next_special(&self, text: &str) -> Option<(usize, &str, TokenId)> {
        self.special
            .iter()
            .filter_map(|(token, id)| text.find(token.as_str()).map(|at| (at, token, *id)))
            .min_by_key(|(at, _, _)| *at)
            .map(|(at, token, id)| (at, token.as_str(), id))
    }

    /// Splits `text` by the pattern and appends each piece's ids.
    fn encode_pieces(&self, text: &str, ids: &mut Vec<TokenId>) -> Result<(), CoreError> {
        for piece in self.splitter.find_iter(text) {
            let piece = piece
                .map_err(|e| CoreError::Tokenization(format!("{}: {e}", self.name)))?
                .as_str()
                .as_bytes();
            match self.ranks.get(piece) {
                Some(&id) => ids.push(id),
                None => self.merge(piece, ids),
            }
        }
        Ok(())
    }

    /// Byte-pair merging of one piece: repeatedly joins the adjacent pair
    /// whose concatenation has the lowest rank (leftmost on ties).
    fn merge(&self, piece: &[u8], ids: &mut Vec<TokenId>) {
        let rank = |a: usize, b: usize| self.ranks.get(&piece[a..b]).copied();
        // Part boundaries, and the rank of each part joined with the next.
        let mut bounds: Vec<usize> = (0..=piece.len()).collect();
        let mut pair_ranks: Vec<Option<TokenId>> = (0..piece.len().saturating_sub(1))
            .map(|i| rank(i, i + 2))
            .collect();
        loop {
            let best = pair_ranks
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.map(|r| (r, i)))
                .min();
            let Some((_, i)) = best else { break };
            bounds.remove(i + 1);
            pair_ranks.remove(i);
            if i < pair_ranks.len() {
                pair_ranks[i] = rank(bounds[i], bounds[i + 2]);
            }
            if i > 0 {
                pair_ranks[i - 1] = rank(bounds[i - 1], bounds[i + 1]);
            }
        }
        // Every single byte has a rank (checked in `new`), so each part does.
        ids.extend(bounds.windows(2).filter_map(|w| rank(w[0], w[1])));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy encoding: all bytes, then merges "ab" < "bc" < "abc".
    fn toy() -> TiktokenEncoding {
        let mut ranks: Vec<(Vec<u8>, TokenId)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        ranks.push((b"ab".to_vec(), 256));
        ranks.push((b"bc".to_vec(), 257));
        ranks.push((b"abc".to_vec(), 258));
        ranks.push((b"cc".to_vec(), 259));
        let special = vec![("<|end|>".to_string(), 300)];
        TiktokenEncoding::new("toy", ranks, special, r"\S+|\s+").unwrap()
    }

    #[test]
    fn merges_lowest_rank_first_and_leftmost_on_ties() {
        let enc = toy();
        // "abc": "ab" (256) beats "bc" (257), then "ab"+"c" = "abc" (258).
        assert_eq!(enc.encode_ordinary("abc").unwrap(), vec![258]);
        // "bcc": "bc" (257) beats "cc" (259); "bc"+"c" has no rank.
        assert_eq!(enc.encode_ordinary("bcc").unwrap(), vec![257, b'c' as u32]);
        // "cccc": ties resolve leftmost: cc, cc.
        assert_eq!(enc.encode_ordinary("cccc").unwrap(), vec![259, 259]);
        assert_eq!(enc.decode(&[258, 32, 259]).unwrap(), "abc cc");
    }

    #[test]
    fn special_tokens_only_when_asked() {
        let enc = toy();
        assert_eq!(
            enc.encode_with_special("ab<|end|>").unwrap(),
            vec![256, 300]
        );
        assert_eq!(enc.encode_ordinary("<|end|>").unwrap().len(), 7);
        assert_eq!(enc.decode(&[300]).unwrap(), "<|end|>");
        assert!(enc.decode(&[999]).is_err());
        assert_eq!(enc.vocab_size(), 301);
    }

    #[test]
    fn missing_single_bytes_are_rejected() {
        let err =
            TiktokenEncoding::new("bad", vec![(b"a".to_vec(), 0)], vec![], r"\S+").unwrap_err();
        assert!(err.contains("has no rank"), "{err}");
    }
}
