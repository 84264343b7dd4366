//! Errors of kiln-core.

use std::path::PathBuf;

/// Everything that can go wrong in kiln-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// User error: a file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// User error: a tokenizer file is malformed.
    #[error("invalid tokenizer file {path}: {message}")]
    InvalidTokenizer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// User error: a JSON file is malformed.
    #[error("invalid JSON in {path}: {message}")]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// User error: a generation parameter is out of range.
    #[error("invalid {field}: {message}")]
    InvalidParameter {
        /// The parameter.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// User error: a chat template failed to compile or render.
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// User error: text could not be encoded or ids decoded.
    #[error("tokenization failed: {0}")]
    Tokenization(String),
    /// Internal error: a model behind a trait (embedder, generator) failed.
    #[error("model failed: {0}")]
    Model(String),
}
