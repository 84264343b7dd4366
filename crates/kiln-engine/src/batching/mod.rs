//! Continuous batching: an [`Engine`] owns a model and a scheduler thread;
//! requests are queued, join the running batch at any step, prefill (in
//! chunks) alongside other requests' decode steps, stream their events over
//! a bounded channel and leave the batch when they finish or their receiver
//! is dropped.

mod config;
mod engine;
mod metrics;
mod scheduler;

pub use config::EngineConfig;
pub use engine::{Engine, RequestStream, StreamEvent};
pub use metrics::MetricsSnapshot;
