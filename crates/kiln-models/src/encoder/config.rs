//! `config.json` of an encoder.

use std::path::Path;

use serde::Deserialize;

use crate::{ModelError, Result};

/// Which encoder architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderKind {
    /// BERT and MiniLM: positions from 0.
    Bert,
    /// RoBERTa / XLM-RoBERTa: positions after the padding index.
    Roberta,
    /// MPNet: RoBERTa positions plus a relative-position attention bias.
    MpNet,
}

/// The fields kiln reads.
#[derive(Debug, Clone, Deserialize)]
pub struct EncoderConfig {
    /// `bert`, `roberta`, `xlm-roberta`, `mpnet`, …
    pub model_type: String,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Learned positions available.
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Padding token id (the position offset of RoBERTa-style models).
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// `gelu` (erf) or `gelu_new`/`gelu_pytorch_tanh` (tanh) or `relu`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// MPNet's relative-position buckets.
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
}

fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_buckets() -> usize {
    32
}

impl EncoderConfig {
    /// Reads and checks `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = crate::config::read_json(path)?;
        config.kind(path)?;
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(ModelError::InvalidConfig {
                path: path.to_path_buf(),
                message: "hidden_size must be a multiple of num_attention_heads".into(),
            });
        }
        if !matches!(
            config.hidden_act.as_str(),
            "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu"
        ) {
            return Err(ModelError::InvalidConfig {
                path: path.to_path_buf(),
                message: format!("unsupported hidden_act {:?}", config.hidden_act),
            });
        }
        Ok(config)
    }

    /// The architecture, or an error naming the supported ones.
    pub fn kind(&self, path: &Path) -> Result<EncoderKind> {
        match self.model_type.as_str() {
            "bert" => Ok(EncoderKind::Bert),
            "roberta" | "xlm-roberta" | "camembert" => Ok(EncoderKind::Roberta),
            "mpnet" => Ok(EncoderKind::MpNet),
            other => Err(ModelError::UnsupportedModel {
                path: path.to_path_buf(),
                model_type: other.to_string(),
                supported: "bert, roberta, xlm-roberta, camembert, mpnet".into(),
            }),
        }
    }
}
