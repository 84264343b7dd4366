//! `generation_config.json`: the model author's generation defaults.

use std::path::Path;

use serde::Deserialize;

use crate::config::OneOrMany;
use crate::Result;

/// The generation defaults kiln reads from `generation_config.json`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GenerationConfig {
    /// BOS id.
    pub bos_token_id: Option<OneOrMany>,
    /// EOS id or ids; generation stops at any of them.
    pub eos_token_id: Option<OneOrMany>,
    /// Default maximum of new tokens.
    pub max_new_tokens: Option<usize>,
    /// Whether to sample by default.
    pub do_sample: Option<bool>,
    /// Default temperature.
    pub temperature: Option<f64>,
    /// Default top-k.
    pub top_k: Option<usize>,
    /// Default top-p.
    pub top_p: Option<f64>,
    /// Default repetition penalty.
    pub repetition_penalty: Option<f64>,
}

impl GenerationConfig {
    /// Reads the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        crate::config::read_json(path)
    }

    /// The EOS ids it lists.
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(OneOrMany::to_vec)
            .unwrap_or_default()
    }
}
