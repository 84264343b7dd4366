//! Errors of kiln-rag.

use std::path::PathBuf;

/// Everything that can go wrong while loading, indexing or retrieving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RagError {
    /// User error: a file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// User error or internal error from the store.
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
    /// Internal error from the embedding model.
    #[error(transparent)]
    Model(#[from] kiln_core::CoreError),
    /// User error: bad settings.
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, RagError>;
