//! The [`Embedder`] trait: what retrieval needs from an embedding model,
//! so `kiln-rag` never depends on a backend.

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
