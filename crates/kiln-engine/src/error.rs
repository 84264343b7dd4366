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
    /// User error: the requested output constraint cannot be built.
    #[error(transparent)]
    Constraint(#[from] kiln_sampling::ConstraintError),
    /// User error: empty prompt.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// User error: `max_new_tokens` does not fit after the prompt.
    #[error("the prompt has {prompt} tokens and {max_new_tokens} more were asked for, but the model's context is {context}")]
    ContextExceeded {
        /// Prompt tokens.
        prompt: usize,
        /// Requested new tokens.
        max_new_tokens: usize,
        /// Context length.
        context: usize,
    },
    /// User error: more sequences than the engine runs at once.
    #[error("{requested} sequences were asked for; this engine runs at most {limit} at once")]
    TooManySequences {
        /// Requested sequences.
        requested: usize,
        /// The engine's limit.
        limit: usize,
    },
    /// Busy: the queue is full (retry later).
    #[error("the request queue is full ({limit} waiting); retry later")]
    QueueFull {
        /// The queue limit.
        limit: usize,
    },
    /// The engine is shutting down and accepts no new requests.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// User error: an engine limit that cannot work.
    #[error("invalid engine configuration: {0}")]
    InvalidConfig(String),
    /// Internal error: a tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, EngineError>;
