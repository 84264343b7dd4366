//! # kiln-agent
//!
//! The composition layer above the models: a ReAct agent loop
//! ([`react`]) and native tool calling through chat templates ([`native`]),
//! over tools ([`tools`]: calculator, HTTP fetch with an allow-list, a shell
//! without an interpreter, closures such as retrieval); a real arithmetic
//! evaluator ([`calculator`]); prompt templates ([`prompt`]); chat memory
//! ([`memory`]); polite crawling ([`crawl`], [`robots`]); and remote backends
//! ([`remote`]: any OpenAI-compatible server as a generator and embedder).
//! Models are reached only through [`kiln_core::TextGenerator`], so the same
//! agent runs on a local model or a remote OpenAI-compatible server.
#![warn(missing_docs)]

pub mod calculator;
pub mod crawl;
mod error;
pub mod memory;
pub mod native;
pub mod prompt;
pub mod react;
pub mod remote;
pub mod robots;
pub mod tools;

pub use error::AgentError;
pub use memory::{ChatSession, Memory, SessionStore};
pub use native::ToolCallingAgent;
pub use prompt::{PromptLibrary, PromptTemplate, RenderedPrompt};
pub use react::{Ending, Outcome, ReactAgent, Step};
pub use remote::{RemoteClient, RemoteConfig, RemoteEmbedder};
pub use tools::{Calculator, FnTool, HttpFetch, Shell, Tool};
