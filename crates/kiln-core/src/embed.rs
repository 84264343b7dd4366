//! The [`Embedder`] and [`Reranker`] traits: what retrieval needs from
//! embedding and cross-encoder models, so `kiln-rag` never depends on a
//! backend.

use crate::CoreError;

/// Turns texts into vectors.
pub trait Embedder: Send + Sync {
    /// A stable name (stored with an index; a different model is refused).
    fn name(&self) -> &str;
    /// Width of the vectors.
    fn dimension(&self) -> usize;
    /// One vector per text.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, CoreError>;
}

/// Scores how well each passage answers a query (a cross-encoder): higher
/// is more relevant. Used to re-rank retrieved chunks.
pub trait Reranker: Send + Sync {
    /// One score per passage, in order.
    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, CoreError>;
}
