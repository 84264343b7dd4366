//! `config.json`: reading the file and the fields shared by the Llama lineage.
//! Family files (`arch/*.rs`) turn it into a validated [`crate::ModelSpec`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{ModelError, Result};

/// Reads and deserializes a JSON file, naming the file in any error.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::InvalidConfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A parsed `config.json`, kept as JSON so each family can read the keys it knows.
#[derive(Debug, Clone)]
pub struct RawConfig {
    /// Where it came from (for error messages).
    pub path: PathBuf,
    /// `model_type`.
    pub model_type: String,
    json: serde_json::Value,
}

impl RawConfig {
    /// Reads and parses `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(path, &text)
    }

    /// Parses the text of a `config.json` read from `path`.
    pub fn from_str(path: &Path, text: &str) -> Result<Self> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ModelError::InvalidConfig {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let model_type = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ModelError::InvalidConfig {
                path: path.to_path_buf(),
                message: "missing string field \"model_type\"".into(),
            })?
            .to_string();
        Ok(Self {
            path: path.to_path_buf(),
            model_type,
            json,
        })
    }

    /// Deserializes the config into a family's serde mirror.
    pub fn parse<T: for<'de> Deserialize<'de>>(&self) -> Result<T> {
        T::deserialize(&self.json).map_err(|e| self.invalid(e.to_string()))
    }

    /// An [`ModelError::InvalidConfig`] naming this file.
    pub fn invalid(&self, message: impl Into<String>) -> ModelError {
        ModelError::InvalidConfig {
            path: self.path.clone(),
            message: message.into(),
        }
    }
}

/// A token id field that may be a single id or a list (`eos_token_id`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl OneOrMany {
    /// All ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            OneOrMany::One(id) => vec![*id],
            OneOrMany::Many(ids) => ids.clone(),
        }
    }
}

/// RoPE parameters as written in either layout: `rope_scaling` (older) or
/// transformers-5 `rope_parameters` (which also carries `rope_theta`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawRopeParameters {
    /// `rope_type`.
    pub rope_type: Option<String>,
    /// The older spelling of `rope_type` (some files carry both).
    #[serde(rename = "type")]
    pub legacy_type: Option<String>,
    /// Base frequency (only in `rope_parameters`).
    pub rope_theta: Option<f64>,
    /// Scaling factor (linear, dynamic, llama3, yarn).
    pub factor: Option<f64>,
    /// llama3: low frequency factor.
    pub low_freq_factor: Option<f64>,
    /// llama3: high frequency factor.
    pub high_freq_factor: Option<f64>,
    /// llama3/yarn: the context length the model was trained with.
    pub original_max_position_embeddings: Option<usize>,
    /// Fraction of head dimensions that are rotated.
    pub partial_rotary_factor: Option<f64>,
    /// yarn / longrope: multiplier of cos and sin.
    pub attention_factor: Option<f64>,
    /// yarn: high rotation count of the correction range.
    pub beta_fast: Option<f64>,
    /// yarn: low rotation count of the correction range.
    pub beta_slow: Option<f64>,
    /// yarn (DeepSeek): mscale of the attention factor.
    pub mscale: Option<f64>,
    /// yarn (DeepSeek): mscale over all dimensions.
    pub mscale_all_dim: Option<f64>,
    /// yarn: round the correction range outwards.
    pub truncate: Option<bool>,
    /// longrope: per-frequency divisors within the original context.
    pub short_factor: Option<Vec<f64>>,
    /// longrope: per-frequency divisors beyond it.
    pub long_factor: Option<Vec<f64>>,
}

impl RawRopeParameters {
    /// `rope_type`, or the older `type`.
    pub fn kind(&self) -> Option<&str> {
        self.rope_type.as_deref().or(self.legacy_type.as_deref())
    }
}

/// The serde mirror of the `config.json` keys shared by the Llama lineage
/// (llama, mistral, qwen2, qwen3, phi3, gemma2).
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaLikeConfig {
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (GQA); defaults to the number of query heads.
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to hidden_size / num_attention_heads.
    pub head_dim: Option<usize>,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Trained context length.
    pub max_position_embeddings: Option<usize>,
    /// Phi-3: the context length before long-context scaling.
    pub original_max_position_embeddings: Option<usize>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: Option<f64>,
    /// RoPE base (older layout).
    pub rope_theta: Option<f64>,
    /// RoPE scaling (older layout).
    pub rope_scaling: Option<RawRopeParameters>,
    /// RoPE parameters (transformers-5 layout).
    pub rope_parameters: Option<RawRopeParameters>,
    /// Fraction of rotated dimensions (top-level in some families).
    pub partial_rotary_factor: Option<f64>,
    /// Activation (`silu`, `gelu_pytorch_tanh`, …).
    pub hidden_act: Option<String>,
    /// Activation (Gemma's key).
    pub hidden_activation: Option<String>,
    /// Whether the LM head shares the embedding matrix.
    pub tie_word_embeddings: Option<bool>,
    /// Biases on q/k/v/o.
    pub attention_bias: Option<bool>,
    /// Biases on the MLP projections.
    pub mlp_bias: Option<bool>,
    /// Sliding-window size.
    pub sliding_window: Option<usize>,
    /// Qwen2/3: whether the sliding window is used at all.
    pub use_sliding_window: Option<bool>,
    /// Qwen2/3: layers at and above this index use the window.
    pub max_window_layers: Option<usize>,
    /// Per-layer attention kind (`full_attention` / `sliding_attention`).
    pub layer_types: Option<Vec<String>>,
    /// Gemma2: tanh soft-cap of attention scores.
    pub attn_logit_softcapping: Option<f64>,
    /// Gemma2: tanh soft-cap of the final logits.
    pub final_logit_softcapping: Option<f64>,
    /// Gemma2: attention scale is `query_pre_attn_scalar^-0.5`.
    pub query_pre_attn_scalar: Option<f64>,
    /// BOS id.
    pub bos_token_id: Option<OneOrMany>,
    /// EOS id(s).
    pub eos_token_id: Option<OneOrMany>,
    /// Stored dtype (`torch_dtype` in older files, `dtype` in transformers 5).
    #[serde(alias = "torch_dtype")]
    pub dtype: Option<String>,
}
