//! # kiln-rag
//!
//! Retrieval-augmented generation without a model dependency: load files
//! ([`load`]), split them ([`split`]), embed and store them ([`ingest`], via
//! the [`kiln_core::Embedder`] trait and `kiln-store`), retrieve by vector,
//! BM25 or both fused ([`retrieve`]), and build the prompt that asks a model
//! to answer from numbered sources ([`answer`]).
#![warn(missing_docs)]

pub mod answer;
mod error;
pub mod eval;
pub mod ingest;
pub mod load;
pub mod pdf;
pub mod retrieve;
pub mod split;
pub mod stream;
pub mod summarize;

pub use error::{RagError, Result};
