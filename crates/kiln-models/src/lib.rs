//! # kiln-models
//!
//! Weights (safetensors, hub download), `config.json` → validated
//! [`ModelSpec`], and **one generic decoder** that runs every supported
//! family (see [`arch::REGISTRY`]), with a KV cache for incremental decoding.
//!
//! Generation loops live in `kiln-engine`; this crate computes logits.
//!
//! ```no_run
//! use kiln_models::{HubOptions, Logits, Model};
//! let model = Model::load("HuggingFaceTB/SmolLM2-135M", &HubOptions::from_env())?;
//! let ids = model.tokenizer()?.encode("Hello", true)?.ids;
//! let mut cache = model.decoder.new_cache();
//! let logits = model.decoder.forward(&ids, &mut cache, Logits::Last)?; // [1, vocab]
//! println!("{:?}", logits.dims());
//! # Ok::<(), kiln_models::ModelError>(())
//! ```
#![warn(missing_docs)]

pub mod adapter;
pub mod allocator;
pub mod arch;
pub mod bench;
pub mod config;
mod decoder;
pub mod encoder;
mod error;
pub mod generation_config;
pub mod gguf;
pub mod hub;
pub mod kernels;
mod kv_cache;
mod linear;
mod model;
mod model_files;
mod spec;
pub mod tiktoken;
pub mod weights;

pub use decoder::{causal_lm_loss_sum, BatchItem, Decoder, Logits, SequenceGrads};
pub use error::{ModelError, Result};
pub use hub::HubOptions;
pub use kv_cache::KvCache;
pub use linear::{Embedding, Linear};
pub use model::Model;
pub use model_files::ModelFiles;
pub use spec::*;
