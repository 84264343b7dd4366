//! Errors of kiln-store.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// User error: another process (or handle) is writing to this index.
    #[error("{0}: another writer holds this index (only one writer at a time; readers are fine)")]
    Locked(PathBuf),
    /// User error: the index does not exist (opened read-only).
    #[error("{0}: no index here (create it by indexing documents)")]
    Missing(PathBuf),
    /// User error: vectors of a different width than the index holds.
    #[error("vector of {got} dimensions, but this index holds {expected}-dimensional vectors")]
    Dimension {
        /// The index's width.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// User error: the index was built with another embedding model.
    #[error("this index was built with embedding model {stored:?}, not {given:?}")]
    ModelMismatch {
        /// Stored model name.
        stored: String,
        /// Given model name.
        given: String,
    },
    /// Internal error: SQLite failed.
    #[error("store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Internal error: file system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An external backend (PostgreSQL) failed or refused.
    #[error("{0}")]
    Backend(String),
    /// Internal error: the stored data is damaged.
    #[error("the index is damaged: {0}")]
    Corrupt(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, StoreError>;
