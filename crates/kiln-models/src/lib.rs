//! # kiln-models
//!
//! Weights (safetensors, hub download), `config.json` → validated
//! [`ModelSpec`], and **one generic decoder** that runs every supported
//! family (see [`arch::REGISTRY`]), with a KV cache for incremental decoding.
//!
//! ```no_run
//! use kiln_models::{generation::{generate_greedy, GreedyOptions}, HubOptions, Model};
//! let model = Model::load("HuggingFaceTB/SmolLM2-135M", &HubOptions::from_env())?;
//! let ids = model.tokenizer()?.encode("Hello", true)?.ids;
//! let opts = GreedyOptions { max_new_tokens: 8, min_new_tokens: 0, eos_token_ids: model.eos_token_ids() };
//! let out = generate_greedy(&model.decoder, &ids, &opts, false, |_| {})?;
//! println!("{:?}", out.token_ids);
//! # Ok::<(), kiln_models::ModelError>(())
//! ```
#![warn(missing_docs)]

pub mod arch;
pub mod bench;
pub mod config;
mod decoder;
mod error;
pub mod generation;
pub mod generation_config;
pub mod hub;
mod kv_cache;
mod linear;
mod model;
mod model_files;
mod spec;
pub mod weights;

pub use decoder::{Decoder, Logits};
pub use error::{ModelError, Result};
pub use hub::HubOptions;
pub use kv_cache::KvCache;
pub use linear::Linear;
pub use model::Model;
pub use model_files::ModelFiles;
pub use spec::*;
