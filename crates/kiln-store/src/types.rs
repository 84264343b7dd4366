//! Records stored and returned.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A source document (one file, one JSONL record, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Stable id (e.g. the path); re-indexing the same id replaces it.
    pub id: String,
    /// Where it came from.
    pub source: String,
    /// Hash of its content: an unchanged document is skipped.
    pub content_hash: String,
    /// Free metadata (filterable).
    pub metadata: Map<String, Value>,
}

/// One chunk of a document, with its vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// The text.
    pub text: String,
    /// Page number (1-based) when the source has pages.
    pub page: Option<u32>,
    /// Character offsets in the document's text.
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
    /// Heading path for markdown (`"Setup > Tests"`), if any.
    pub heading: Option<String>,
    /// Chunk metadata (merged over the document's in filters).
    pub metadata: Map<String, Value>,
    /// Embedding.
    pub vector: Vec<f32>,
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Chunk row id.
    pub chunk_id: i64,
    /// Document id.
    pub document: String,
    /// Document source.
    pub source: String,
    /// Chunk text.
    pub text: String,
    /// Page, if any.
    pub page: Option<u32>,
    /// Heading path, if any.
    pub heading: Option<String>,
    /// Offsets in the document.
    pub start: usize,
    /// End offset.
    pub end: usize,
    /// Score (cosine similarity, BM25, or a fused score).
    pub score: f32,
    /// The chunk's embedding (for re-ranking such as MMR; not serialised).
    #[serde(skip)]
    pub vector: Vec<f32>,
}

/// Keeps the `k` best hits, best first (ties: lower chunk id first).
pub(crate) fn top_k(hits: &mut Vec<Hit>, k: usize) {
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    hits.truncate(k);
}
