//! # kiln-sampling
//!
//! Logits processors as a chain with `apply` + `accept` (stateful processors
//! see each accepted token), with transformers' semantics and order;
//! samplers (greedy, seeded multinomial), the beam-search scorer, stop-string
//! matching and log-probabilities. No ML backend: everything works on `&mut [f32]`.
//!
//! ```
//! use kiln_core::GenerationParams;
//! use kiln_sampling::{build_chain, History, Rng, Sampler};
//! let params = GenerationParams { temperature: Some(0.7), top_k: Some(2), ..Default::default() };
//! let mut chain = build_chain(&params, &[0]);
//! let mut logits = vec![1.0, 3.0, 2.0, 0.5];
//! chain.apply(&mut logits, &History { all_ids: &[1, 2], prompt_len: 2 });
//! assert!(logits[0].is_infinite() && logits[3].is_infinite());
//! let token = Sampler::Multinomial(Rng::new(42)).sample(&logits).unwrap();
//! assert!(token == 1 || token == 2);
//! ```
#![warn(missing_docs)]

mod beam;
mod chain;
pub mod constrain;
mod logprobs;
mod processor;
pub mod processors;
mod rng;
mod sampler;
mod softmax;
mod stop;

pub use beam::{BeamHypothesis, BeamSearch};
pub use chain::{build_chain, build_chain_with, push_warpers};
pub use constrain::{Constraint, ConstraintError, Grammar};
pub use logprobs::{token_logprob, TokenLogprob};
pub use processor::{History, LogitsProcessor, ProcessorChain};
pub use rng::Rng;
pub use sampler::{argmax, Sampler};
pub use softmax::{log_softmax, softmax};
pub use stop::{StopMatcher, StopStatus};
