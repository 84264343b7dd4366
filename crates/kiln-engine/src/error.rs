//! Errors of kiln-engine.

/// Everything that can go wrong while generating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// User error: bad parameters or prompt.
    #[error(transparent)]
    Core(#[from] kiln_core::CoreError),
    /// User error or internal error from the model.
    #[error(transparent)]
    Model(#[from] kiln_models::ModelError),
    /// User error: the prompt does not fit.
    #[error("the prompt has {prompt} tokens but the model's context is {context}")]
    PromptTooLong {
        /// Prompt tokens.
        prompt: usize,
        /// Context length.
        context: usize,
    },
    /// User error: empty prompt.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// Internal error: a tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, EngineError>;
