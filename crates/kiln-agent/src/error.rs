//! Errors of kiln-agent.

/// What can go wrong in an agent run or a tool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A tool failed (shown to the model as an observation).
    #[error("{0}")]
    Tool(String),
    /// The model failed (internal or backend error).
    #[error(transparent)]
    Model(#[from] kiln_core::CoreError),
    /// User error: a prompt template or its variables are wrong.
    #[error("template: {0}")]
    Template(String),
}
