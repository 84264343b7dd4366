//! Retrieval: dense (cosine), BM25, or both fused by reciprocal rank
//! (RRF, k = 60), with an optional score threshold.

use kiln_core::Embedder;
use kiln_store::{Filter, Hit, Store};

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
}

impl std::str::FromStr for Mode {
    type Err = RagError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "vector" | "dense" => Ok(Mode::Vector),
            "bm25" | "keyword" => Ok(Mode::Bm25),
            "hybrid" => Ok(Mode::Hybrid),
            other => Err(RagError::Invalid(format!(
                "unknown search mode {other:?}: use vector, bm25 or hybrid"
            ))),
        }
    }
}

/// Reciprocal-rank fusion constant (Cormack et al.).
const RRF_K: f32 = 60.0;

/// The `k` best chunks for `query`.
pub fn search(
    store: &Store,
    embedder: &dyn Embedder,
    query: &str,
    k: usize,
    mode: Mode,
    filter: Option<&Filter>,
    min_score: Option<f32>,
) -> Result<Vec<Hit>> {
    let dense = |n: usize| -> Result<Vec<Hit>> {
        let q = embedder
            .embed(&[query])?
            .into_iter()
            .next()
            .ok_or_else(|| RagError::Invalid("the embedder returned nothing".into()))?;
        Ok(store.vector_search(&q, n, filter)?)
    };
    let mut hits = match mode {
        Mode::Vector => dense(k)?,
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
