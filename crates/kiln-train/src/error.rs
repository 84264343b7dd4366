//! Errors of kiln-train.

use std::path::PathBuf;

/// Everything that can go wrong while preparing data or training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// User error: a data file has a bad record.
    #[error("{path}:{line}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// 1-based line (or record) number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// User error: a setting or input kiln cannot train with.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The model failed.
    #[error(transparent)]
    Model(#[from] kiln_models::ModelError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// kiln-train's result type.
pub type Result<T> = std::result::Result<T, TrainError>;

/// An [`TrainError::Io`] for `path`.
pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}
