//! The store interface every backend implements — the embedded
//! [`crate::Store`] and PostgreSQL/pgvector ([`crate::postgres`]) — split
//! into reading (many at once) and writing (one writer at a time).

use crate::{Chunk, Document, Filter, Hit, Result};

/// Reading an index: what retrieval needs.
pub trait VectorStore {
    /// A free-form setting of the index.
    fn meta(&self, key: &str) -> Result<Option<String>>;
    /// The embedding model name and vector width the index was built with.
    fn embedding_model(&self) -> Result<Option<(String, usize)>>;
    /// The stored content hash of document `id`.
    fn content_hash(&self, id: &str) -> Result<Option<String>>;
    /// Every document, by id.
    fn documents(&self) -> Result<Vec<Document>>;
    /// Number of chunks.
    fn chunk_count(&self) -> Result<usize>;
    /// The `k` chunks most similar to `query` (cosine), through the
    /// backend's ANN index where it has one.
    fn vector_search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>>;
    /// The `k` chunks most similar to `query` by comparing with every
    /// stored vector (the reference for recall).
    fn exact_vector_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>>;
    /// The `k` chunks with the best BM25 score (k1 0.9, b 0.4, English
    /// analyzer: the same scores on every backend).
    fn bm25_search(&self, query: &str, k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>>;
    /// Integrity check of the stored data.
    fn check(&self) -> Result<()>;
}

/// Writing an index; one writer at a time (a second gets
/// [`crate::StoreError::Locked`]).
pub trait VectorStoreWriter: VectorStore {
    /// Stores a free-form setting.
    fn set_meta(&mut self, key: &str, value: &str) -> Result<()>;
    /// Records (on first use) or checks the embedding model and width.
    fn bind_model(&mut self, name: &str, dimension: usize) -> Result<()>;
    /// Replaces document `doc.id` and all its chunks atomically; durable
    /// once it returns.
    fn upsert(&mut self, doc: &Document, chunks: &[Chunk]) -> Result<()>;
    /// Removes a document and its chunks; `false` when it was not there.
    fn delete(&mut self, id: &str) -> Result<bool>;
    /// Makes the ANN index current after a batch of writes (the embedded
    /// store saves its graph; pgvector maintains its own). Returns the
    /// number of vectors in it (0 when none is kept).
    fn finish(&mut self) -> Result<usize>;
}

/// Checks a model binding against the stored one (`stored`): `Ok(true)`
/// when nothing is stored yet and the caller must record it.
pub(crate) fn check_binding(
    stored: Option<(String, usize)>,
    name: &str,
    dimension: usize,
) -> Result<bool> {
    match stored {
        Some((stored, _)) if stored != name => Err(crate::StoreError::ModelMismatch {
            stored,
            given: name.to_string(),
        }),
        Some((_, dim)) if dim != dimension => Err(crate::StoreError::Dimension {
            expected: dim,
            got: dimension,
        }),
        Some(_) => Ok(false),
        None => Ok(true),
    }
}

/// Checks that vectors of width `got` fit an index bound to `stored`.
pub(crate) fn check_width(stored: Option<&(String, usize)>, got: usize) -> Result<()> {
    match stored {
        Some(&(_, dim)) if dim != got => Err(crate::StoreError::Dimension { expected: dim, got }),
        _ => Ok(()),
    }
}
