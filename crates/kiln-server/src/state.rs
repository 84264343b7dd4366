//! What the handlers share: the served models by name, the API key and the
//! limits.

use std::sync::Arc;

use kiln_engine::Engine;

use crate::ApiError;

/// One model the server answers for.
#[derive(Debug, Clone)]
pub struct ServedModel {
    /// The name clients put in `model`.
    pub name: String,
    /// The engine running it.
    pub engine: Arc<Engine>,
    /// Unix time it was loaded (OpenAI's `created`).
    pub created: u64,
}

/// An embedding model served on `/v1/embeddings`.
#[derive(Debug, Clone)]
pub struct ServedEmbedder {
    /// The name clients put in `model`.
    pub name: String,
    /// The model.
    pub model: Arc<kiln_models::encoder::SentenceEmbedder>,
    /// Unix time it was loaded.
    pub created: u64,
}

/// Shared server state.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Served models; the first is the default for the web page.
    pub models: Arc<Vec<ServedModel>>,
    /// Served embedding models.
    pub embedders: Arc<Vec<ServedEmbedder>>,
    /// Bearer token required on every route but `/health`, if set.
    pub api_key: Option<Arc<str>>,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Interval of SSE keep-alive comments on idle streams.
    pub keep_alive: std::time::Duration,
}

impl AppState {
    /// State serving `models` with no API key and a 2 MiB body limit.
    pub fn new(models: Vec<ServedModel>) -> Self {
        Self {
            models: Arc::new(models),
            embedders: Arc::new(Vec::new()),
            api_key: None,
            max_body_bytes: 2 << 20,
            keep_alive: std::time::Duration::from_secs(10),
        }
    }

    /// The model a request names: `model`, or the adapter `lora` served
    /// with it (`MODEL:LORA`).
    pub fn model_for(&self, model: &str, lora: Option<&str>) -> Result<&ServedModel, ApiError> {
        match lora.filter(|l| !l.is_empty()) {
            Some(lora) => self.model(&format!("{model}:{lora}")),
            None => self.model(model),
        }
    }

    /// The model called `name`. Only names registered at start resolve;
    /// nothing from a request ever reaches the file system.
    pub fn model(&self, name: &str) -> Result<&ServedModel, ApiError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ApiError::unknown_model(name))
    }
}
