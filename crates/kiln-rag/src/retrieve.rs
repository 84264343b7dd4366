//! Retrieval: dense (cosine), BM25, or both fused by reciprocal rank
//! (RRF, k = 60), with an optional score threshold.

use kiln_core::{Embedder, Reranker};
use kiln_store::{Filter, Hit, VectorStore};

use crate::{RagError, Result};

/// Which ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Embedding similarity.
    Vector,
    /// BM25 over the chunk texts.
    Bm25,
    /// Both, fused by reciprocal rank.
    Hybrid,
    /// Embedding similarity re-ranked by maximal marginal relevance
    /// (λ = 0.5): relevant and unlike the chunks already chosen.
    Mmr,
}

impl std::str::FromStr for Mode {
    type Err = RagError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "vector" | "dense" => Ok(Mode::Vector),
            "bm25" | "keyword" => Ok(Mode::Bm25),
            "hybrid" => Ok(Mode::Hybrid),
            "mmr" => Ok(Mode::Mmr),
            other => Err(RagError::Invalid(format!(
                "unknown search mode {other:?}: use vector, bm25, hybrid or mmr"
            ))),
        }
    }
}

/// Reciprocal-rank fusion constant (Cormack et al.).
const RRF_K: f32 = 60.0;

/// What a search returns and how it ranks.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions<'a> {
    /// Number of chunks.
    pub k: usize,
    /// The ranking.
    pub mode: Mode,
    /// A metadata filter.
    pub filter: Option<&'a Filter>,
    /// Hits scoring below this are dropped.
    pub min_score: Option<f32>,
}

/// The best chunks for `query`.
pub fn search(
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    query: &str,
    options: &SearchOptions<'_>,
) -> Result<Vec<Hit>> {
    search_texts(store, embedder, query, query, options)
}

/// HyDE (Gao et al.): the dense side embeds `hypothetical`, an answer a
/// model wrote without sources, which usually lies nearer the relevant
/// chunks than the question; BM25 keeps the question's words.
pub fn search_hyde(
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    question: &str,
    hypothetical: &str,
    options: &SearchOptions<'_>,
) -> Result<Vec<Hit>> {
    search_texts(store, embedder, hypothetical, question, options)
}

/// Search with `dense_text` embedded for the vector side and `query` for
/// the keyword side.
fn search_texts(
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    dense_text: &str,
    query: &str,
    options: &SearchOptions<'_>,
) -> Result<Vec<Hit>> {
    let SearchOptions {
        k,
        mode,
        filter,
        min_score,
    } = *options;
    let embed_query = || -> Result<Vec<f32>> {
        embedder
            .embed(&[dense_text])?
            .into_iter()
            .next()
            .ok_or_else(|| RagError::Invalid("the embedder returned nothing".into()))
    };
    let dense =
        |n: usize| -> Result<Vec<Hit>> { Ok(store.vector_search(&embed_query()?, n, filter)?) };
    let mut hits = match mode {
        Mode::Vector => dense(k)?,
        Mode::Mmr => {
            let q = embed_query()?;
            mmr(
                &q,
                store.vector_search(&q, (k * 4).max(20), filter)?,
                k,
                0.5,
            )
        }
        Mode::Bm25 => store.bm25_search(query, k, filter)?,
        Mode::Hybrid => {
            let pool = (k * 4).max(20);
            fuse(&[dense(pool)?, store.bm25_search(query, pool, filter)?], k)
        }
    };
    if let Some(min) = min_score {
        hits.retain(|h| h.score >= min);
    }
    Ok(hits)
}

/// Reciprocal-rank fusion of ranked lists: score = Σ 1 / (60 + rank).
pub fn fuse(lists: &[Vec<Hit>], k: usize) -> Vec<Hit> {
    let mut fused: Vec<Hit> = Vec::new();
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let add = 1.0 / (RRF_K + rank as f32 + 1.0);
            match fused.iter_mut().find(|h| h.chunk_id == hit.chunk_id) {
                Some(h) => h.score += add,
                None => fused.push(Hit {
                    score: add,
                    ..hit.clone()
                }),
            }
        }
    }
    fused.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    fused.truncate(k);
    fused
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// Maximal marginal relevance (Carbonell & Goldstein): repeatedly takes the
/// candidate maximising `λ·sim(query, d) − (1 − λ)·max sim(d, chosen)`.
/// Scores stay the query similarities.
pub fn mmr(query: &[f32], mut candidates: Vec<Hit>, k: usize, lambda: f32) -> Vec<Hit> {
    let mut chosen: Vec<Hit> = Vec::new();
    while chosen.len() < k && !candidates.is_empty() {
        let value = |h: &Hit| {
            let redundancy = chosen
                .iter()
                .map(|c| cosine(&h.vector, &c.vector))
                .fold(f32::NEG_INFINITY, f32::max)
                .max(if chosen.is_empty() {
                    0.0
                } else {
                    f32::NEG_INFINITY
                });
            lambda * cosine(query, &h.vector) - (1.0 - lambda) * redundancy
        };
        let best = candidates
            .iter()
            .enumerate()
            .max_by(|(_, a), (_, b)| value(a).total_cmp(&value(b)))
            .map_or(0, |(i, _)| i);
        chosen.push(candidates.remove(best));
    }
    chosen
}

/// Re-ranks `hits` with a cross-encoder: each hit's score becomes the
/// reranker's score for (`query`, hit text); the `k` best come first.
/// Retrieve a larger pool (e.g. 4k) first so the reranker has choices.
pub fn rerank(hits: Vec<Hit>, query: &str, reranker: &dyn Reranker, k: usize) -> Result<Vec<Hit>> {
    let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
    let scores = reranker.score(query, &texts)?;
    if scores.len() != hits.len() {
        return Err(RagError::Invalid(format!(
            "the reranker gave {} scores for {} passages",
            scores.len(),
            hits.len()
        )));
    }
    let mut out: Vec<Hit> = hits
        .into_iter()
        .zip(scores)
        .map(|(h, score)| Hit { score, ..h })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    out.truncate(k);
    Ok(out)
}
