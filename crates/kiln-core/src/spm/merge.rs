//! The merge loop of SentencePiece-style BPE, as llama.cpp's
//! `llm_tokenizer_spm_session` runs it: every adjacent pair whose joined
//! text is a vocabulary piece is a candidate, the highest-scoring candidate
//! (leftmost among equals) merges first, and the merged symbol's new
//! neighbours become candidates.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;

/// A candidate merge of the symbols starting at characters `left` and `right`.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Bytes of the joined text when the candidate was made: stale
    /// candidates (a side merged since) no longer add up to it.
    bytes: usize,
}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

/// Merges the characters of `text` (byte ranges `chars`, in order and back
/// to back) while `score` knows the joined text; returns each resulting
/// symbol as a range of character indices.
pub(super) fn merge(
    text: &str,
    chars: &[Range<usize>],
    score: impl Fn(&str) -> Option<f32>,
) -> Vec<Range<usize>> {
    let n = chars.len();
    // Per symbol (indexed by its first character): byte length (0 once
    // merged into its left neighbour) and links.
    let mut bytes: Vec<usize> = chars.iter().map(|c| c.len()).collect();
    let mut next: Vec<Option<usize>> = (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect();
    let mut prev: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
    let mut queue = BinaryHeap::new();
    let candidate = |bytes: &[usize], left: Option<usize>, right: Option<usize>| {
        let (left, right) = (left?, right?);
        let size = bytes[left] + bytes[right];
        let start = chars[left].start;
        let score = score(text.get(start..start + size)?)?;
        Some(Bigram {
            score,
            left,
            right,
            bytes: size,
        })
    };
    for i in 1..n {
        queue.extend(candidate(&bytes, Some(i - 1), Some(i)));
    }
    while let Some(pair) = queue.pop() {
        let (l, r) = (pair.left, pair.right);
        if bytes[l] == 0 || bytes[r] == 0 || bytes[l] + bytes[r] != pair.bytes {
            continue;
        }
        bytes[l] += bytes[r];
        bytes[r] = 0;
        next[l] = next[r];
        if let Some(after) = next[r] {
            prev[after] = Some(l);
        }
        queue.extend(candidate(&bytes, prev[l], Some(l)));
        queue.extend(candidate(&bytes, Some(l), next[l]));
    }
    let mut symbols = Vec::new();
    let mut at = (n > 0).then_some(0);
    while let Some(i) = at {
        symbols.push(i..next[i].unwrap_or(n));
        at = next[i];
    }
    symbols
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, vocab: &[(&str, f32)]) -> Vec<String> {
        let chars: Vec<Range<usize>> = text
            .char_indices()
            .map(|(i, c)| i..i + c.len_utf8())
            .collect();
        merge(text, &chars, |p| {
            vocab.iter().find(|(v, _)| *v == p).map(|&(_, s)| s)
        })
        .into_iter()
        .map(|r| text[chars[r.start].start..chars[r.end - 1].end].to_string())
        .collect()
    }

    #[test]
    fn merges_highest_score_first() {
        // "ab" outranks "bc", so "abc" splits as ab|c, then "abc" forms.
        let vocab = [("ab", -1.0), ("bc", -2.0), ("abc", -3.0)];
        assert_eq!(run("abc", &vocab), ["abc"]);
        // Without "abc": ab|c even though bc exists.
        assert_eq!(run("abc", &vocab[..2]), ["ab", "c"]);
        // "bc" first when it scores higher; "abc" cannot form from a|bc
        // unless a+bc is asked for, which it is.
        let vocab = [("ab", -2.0), ("bc", -1.0), ("abc", -3.0)];
        assert_eq!(run("abc", &vocab), ["abc"]);
    }

    #[test]
    fn equal_scores_merge_leftmost_first() {
        let vocab = [("aa", 0.0)];
        assert_eq!(run("aaa", &vocab), ["aa", "a"]);
    }

    #[test]
    fn multibyte_characters_and_empty_text() {
        let vocab = [("▁é", 0.0), ("▁éa", 1.0), ("éa", 2.0)];
        // éa scores highest, then ▁+éa is a piece? "▁éa" yes.
        assert_eq!(run("▁éa", &vocab), ["▁éa"]);
        assert!(run("", &vocab).is_empty());
    }
}
