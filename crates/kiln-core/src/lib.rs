//! # kiln-core
//!
//! The shared vocabulary of kiln: token ids, the tokenizer wrapper that applies
//! transformers' special-token rules, and a streaming, UTF-8-safe detokenizer.
//! This crate has no ML backend; every other kiln crate depends on it.
//!
//! ```
//! use kiln_core::TokenId;
//! let id: TokenId = 42;
//! assert_eq!(id, 42u32);
//! ```
#![warn(missing_docs)]

mod chat_template;
mod detokenizer;
mod embed;
mod error;
mod generation;
mod generator;
mod params;
mod special_tokens;
mod spm;
pub mod tiktoken;
mod tokenizer;
mod tool_calls;
mod vocab;

pub use chat_template::{BuiltinTemplate, ChatMessage, ChatTemplate, RenderOptions};
pub use detokenizer::DetokenizerStream;
pub use embed::{Embedder, Reranker};
pub use error::CoreError;
pub use generation::{FinishReason, Usage};
pub use generator::{ChatOptions, TextGenerator};
pub use params::{GenerationDefaults, GenerationParams, OutputConstraint, DEFAULT_MAX_NEW_TOKENS};
pub use special_tokens::SpecialTokens;
pub use spm::{PieceKind, SpmTokenizer};
pub use tokenizer::{AddedPiece, BpeParts, Encoding, Tokenizer};
pub use tool_calls::{
    forced_call_schema, forced_reply, function_tool, parse_tool_calls, template_supports_tools,
    ChatReply, ToolCall, ToolChoice, FORCED_CALL_OPENING,
};
pub use vocab::{utf8_lead, TokenBytes, TokenTrie};

/// A token id in a model's vocabulary.
pub type TokenId = u32;
