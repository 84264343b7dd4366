//! Constrained decoding: output guaranteed to match a JSON Schema (or to be
//! one of a list of labels), as a logits processor.
//!
//! A schema compiles to a [`Grammar`] (`schema.rs`); a byte-level pushdown
//! machine (`machine.rs`) tracks where the output is; at each step the
//! processor (`processor.rs`) walks the vocabulary's prefix tree with the
//! machine and masks every token that cannot continue a valid prefix. A
//! token budget is respected: once the tokens left barely suffice to close
//! the value, only tokens that keep it closable in time stay allowed, so
//! the output is complete JSON whenever `max_new_tokens` allows it at all.

mod machine;
mod processor;
mod schema;

pub use processor::Constraint;
pub use schema::{Grammar, MAX_DEPTH};

/// A constraint that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConstraintError {
    /// User error: the schema uses something that cannot be enforced, or is
    /// malformed.
    #[error("invalid schema: {0}")]
    Schema(String),
    /// User error: the model cannot end its output (no EOS token).
    #[error("constrained output needs a model with an end-of-sequence token")]
    NoEos,
}
