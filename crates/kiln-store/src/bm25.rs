//! BM25 ranking (Lucene's idf, Anserini's defaults k1 = 0.9, b = 0.4) over
//! an in-memory inverted index built from chunk texts, with Lucene's
//! English analyzer: Unicode words (apostrophes inside words kept),
//! possessive `'s` removed, lowercased, English stopwords removed, Porter
//! stemming.

use std::collections::HashMap;

/// English stopwords (Lucene's classic list).
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// The analyzer: words, possessives dropped, lowercased, stopwords
/// removed, stemmed.
pub fn terms(text: &str) -> Vec<String> {
    let apostrophe = |c: char| c == '\'' || c == '\u{2019}';
    text.split(|c: char| !(c.is_alphanumeric() || apostrophe(c)))
        .map(|w| w.trim_matches(apostrophe))
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w.to_lowercase();
            match w.strip_suffix("'s").or_else(|| w.strip_suffix("\u{2019}s")) {
                Some(base) => base.to_string(),
                None => w,
            }
        })
        .filter(|w| !w.is_empty() && !STOPWORDS.contains(&w.as_str()))
        .map(|w| crate::porter::stem(&w))
        .collect()
}

/// BM25 parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Term-frequency saturation.
    pub k1: f32,
    /// Length normalisation.
    pub b: f32,
}

impl Default for Params {
    fn default() -> Self {
        Self { k1: 0.9, b: 0.4 }
    }
}

/// An inverted index over documents numbered `0..n`.
#[derive(Debug, Default)]
pub struct Index {
    postings: HashMap<String, Vec<(u32, u32)>>,
    lengths: Vec<u32>,
    average: f32,
}

impl Index {
    /// Indexes `texts` (document `i` is `texts[i]`).
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut lengths = Vec::new();
        for (i, text) in texts.into_iter().enumerate() {
            let words = terms(text);
            lengths.push(words.len() as u32);
            let mut tf: HashMap<String, u32> = HashMap::new();
            for w in words {
                *tf.entry(w).or_default() += 1;
            }
            for (w, n) in tf {
                postings.entry(w).or_default().push((i as u32, n));
            }
        }
        let average = if lengths.is_empty() {
            0.0
        } else {
            lengths.iter().map(|&l| l as f32).sum::<f32>() / lengths.len() as f32
        };
        Self {
            postings,
            lengths,
            average,
        }
    }

    /// Scores of every document matching at least one query term.
    pub fn scores(&self, query: &str, p: Params) -> HashMap<u32, f32> {
        let n = self.lengths.len() as f32;
        let mut out: HashMap<u32, f32> = HashMap::new();
        // A term repeated in the query counts as often as it appears
        // (Anserini's bag-of-words query boosts each term by its count).
        let mut counts: Vec<(String, f32)> = Vec::new();
        for term in terms(query) {
            match counts.iter_mut().find(|(t, _)| *t == term) {
                Some((_, c)) => *c += 1.0,
                None => counts.push((term, 1.0)),
            }
        }
        for (term, qtf) in counts {
            let Some(list) = self.postings.get(&term) else {
                continue;
            };
            let df = list.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(doc, tf) in list {
                let tf = tf as f32;
                let dl = self.lengths[doc as usize] as f32;
                let norm = p.k1 * (1.0 - p.b + p.b * dl / self.average.max(1e-9));
                *out.entry(doc).or_default() += qtf * idf * tf * (p.k1 + 1.0) / (tf + norm);
            }
        }
        out
    }
}

/// The `k` of `hits` (candidate chunks, in chunk order) with the best
/// BM25 score for `query`, scored over exactly these chunks — the ranking
/// every backend shares.
pub(crate) fn rank(hits: Vec<crate::Hit>, query: &str, k: usize) -> Vec<crate::Hit> {
    let index = Index::build(hits.iter().map(|h| h.text.as_str()));
    let scores = index.scores(query, Params::default());
    let mut slots: Vec<Option<crate::Hit>> = hits.into_iter().map(Some).collect();
    let mut out: Vec<crate::Hit> = scores
        .into_iter()
        .filter_map(|(i, score)| {
            slots
                .get_mut(i as usize)
                .and_then(Option::take)
                .map(|h| crate::Hit { score, ..h })
        })
        .collect();
    crate::types::top_k(&mut out, k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_terms_and_short_documents_rank_higher() {
        let docs = [
            "the cat sat on the mat",
            "the dog sat on the log with the other dog",
            "birds and fish",
        ];
        let index = Index::build(docs);
        let s = index.scores("dog", Params::default());
        assert!(s.contains_key(&1) && !s.contains_key(&0));
        // Exact value: one matching document of three.
        let idf = (1.0f32 + (3.0 - 1.0 + 0.5) / (1.0 + 0.5)).ln();
        let lengths = [
            terms(docs[0]).len(),
            terms(docs[1]).len(),
            terms(docs[2]).len(),
        ];
        let avg = lengths.iter().sum::<usize>() as f32 / 3.0;
        let norm = 0.9 * (1.0 - 0.4 + 0.4 * lengths[1] as f32 / avg);
        let want = idf * 2.0 * 1.9 / (2.0 + norm);
        assert!((s[&1] - want).abs() < 1e-6);
        assert_eq!(terms("The Cats, the HAT's!"), ["cat", "hat"]);
        assert_eq!(
            terms("Computing systems don't"),
            ["comput", "system", "don't"]
        );
    }
}
