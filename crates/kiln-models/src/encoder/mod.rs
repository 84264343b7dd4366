//! Encoder models for embeddings and classification: the BERT family (BERT,
//! MiniLM, RoBERTa, XLM-RoBERTa), MPNet and DeBERTa v2/v3, loaded from
//! Hugging Face directories, plus sentence-transformers' pooling and
//! normalisation ([`SentenceEmbedder`], which also pools decoder models),
//! and cross-encoders for re-ranking ([`CrossEncoder`]).

mod backbone;
mod config;
mod cross;
mod deberta;
mod fused;
mod model;
mod packed;
mod sentence;
mod zero_shot;

pub use config::{EncoderConfig, EncoderKind};
pub use cross::CrossEncoder;
pub use model::Encoder;
pub use sentence::{Pooling, SentenceEmbedder};
pub use zero_shot::{zero_shot, LabelScore};
