//! # kiln-engine
//!
//! Turns a prompt and [`kiln_core::GenerationParams`] into text: prefill once,
//! then decode with kiln-sampling's processor chain (greedy, seeded sampling,
//! several sequences sharing the prefill, or beam search), stopping at EOS,
//! stop strings, `max_new_tokens` or the context length, and streaming
//! UTF-8-safe text deltas as [`Event`]s.
//!
//! ```no_run
//! use kiln_core::GenerationParams;
//! use kiln_engine::{generate, Request};
//! let model = kiln_models::Model::load_dir(std::path::Path::new("model-dir"))?;
//! let prompt = model.tokenizer()?.encode("Hello", true)?.ids;
//! let params = GenerationParams { max_new_tokens: Some(8), ..Default::default() };
//! let out = generate(&model, &Request { prompt_ids: prompt, params }, |_event| {})?;
//! println!("{}", out.sequences[0].text);
//! # Ok::<(), kiln_engine::EngineError>(())
//! ```
#![warn(missing_docs)]

mod batching;
mod beam;
mod error;
mod generate;
mod local;
mod sequence;

pub use batching::{Engine, EngineConfig, MetricsSnapshot, RequestStream, StreamEvent};
pub use error::{EngineError, Result};
pub use generate::{constraint_for, generate, prepare, Event, Output, Request, SequenceOutput};
pub use local::LocalGenerator;
