//! Errors of kiln-models.

use std::path::PathBuf;

/// Everything that can go wrong while finding, loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// User error: a file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// User error: a required file is missing from the model directory.
    #[error("{dir}: no {what} found")]
    MissingFile {
        /// The model directory.
        dir: PathBuf,
        /// Which file (or files) was looked for.
        what: String,
    },
    /// User error: a config file is malformed or has values kiln cannot use.
    #[error("invalid {path}: {message}")]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// User error: `model_type` names a family kiln does not know.
    #[error("{path}: unsupported model_type {model_type:?} (supported: {supported})")]
    UnsupportedModel {
        /// The config file.
        path: PathBuf,
        /// The value found.
        model_type: String,
        /// The families kiln supports.
        supported: String,
    },
    /// User error: a weights file is malformed or truncated.
    #[error("invalid weights file {path}: {message}")]
    InvalidWeights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// User error: a tensor the family needs is not in the weights.
    #[error("tensor {name} not found in {files}")]
    MissingTensor {
        /// The tensor name.
        name: String,
        /// The weight files searched.
        files: String,
    },
    /// User error: a tensor has a shape that does not match the config.
    #[error("{path}: tensor {name} has shape {actual:?}, expected {expected:?} from config.json")]
    ShapeMismatch {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape in the file.
        actual: Vec<usize>,
        /// The shape the config implies.
        expected: Vec<usize>,
    },
    /// User error: a model name that is neither a local path nor a hub id.
    #[error("{0:?} is neither a local model directory nor a hub id of the form org/name")]
    UnknownModelRef(String),
    /// User error (often network): downloading from the hub failed.
    #[error("hub download of {repo}/{file} failed: {message}")]
    Hub {
        /// The repository id.
        repo: String,
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// User error (usually the network): a file could not be downloaded or
    /// was not what was expected.
    #[error("downloading {url}: {message}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// User error: the input is invalid for this model (empty prompt, too long, bad id).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Tokenizer error.
    #[error(transparent)]
    Tokenizer(#[from] kiln_core::CoreError),
    /// Internal error: a tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
