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
    /// DeBERTa v2/v3: disentangled attention over log-bucketed relative
    /// positions (content→position and position→content terms).
    DebertaV2,
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
    /// DeBERTa: disentangled relative attention on.
    #[serde(default)]
    pub relative_attention: bool,
    /// DeBERTa: the largest relative distance (`< 1`: `max_position_embeddings`).
    #[serde(default = "minus_one")]
    pub max_relative_positions: i64,
    /// DeBERTa: log buckets of relative positions (`<= 0`: none).
    #[serde(default = "minus_one")]
    pub position_buckets: i64,
    /// DeBERTa: which relative terms — `c2p`, `p2c` (a list or `"c2p|p2c"`).
    #[serde(default, deserialize_with = "att_types")]
    pub pos_att_type: Vec<String>,
    /// DeBERTa: `layer_norm` to normalise the relative embeddings.
    #[serde(default)]
    pub norm_rel_ebd: String,
    /// DeBERTa: positions projected by the content key/query projections.
    #[serde(default)]
    pub share_att_key: bool,
    /// DeBERTa: absolute position embeddings added to the input (BERT-style).
    #[serde(default = "yes")]
    pub position_biased_input: bool,
    /// Token-type vocabulary (DeBERTa v3: 0, none).
    #[serde(default)]
    pub type_vocab_size: Option<usize>,
    /// DeBERTa: the width of the word embeddings when it differs from
    /// `hidden_size` (projected up).
    #[serde(default)]
    pub embedding_size: Option<usize>,
    /// DeBERTa: the classification pooler's activation.
    #[serde(default)]
    pub pooler_hidden_act: Option<String>,
    /// DeBERTa v2 xlarge's convolution after the first layer (not supported).
    #[serde(default)]
    pub conv_kernel_size: usize,
}

fn minus_one() -> i64 {
    -1
}
fn yes() -> bool {
    true
}

/// `pos_att_type` as a list, or a `|`-separated string in older configs.
fn att_types<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Types {
        List(Vec<String>),
        Joined(String),
        Missing,
    }
    Ok(match Types::deserialize(d)? {
        Types::List(list) => list,
        Types::Joined(s) => s
            .split('|')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        Types::Missing => Vec::new(),
    })
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
        if config.kind(path)? == EncoderKind::DebertaV2 {
            config.check_deberta(path)?;
        }
        Ok(config)
    }

    fn check_deberta(&self, path: &Path) -> Result<()> {
        let invalid = |message: String| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            message,
        };
        if self.conv_kernel_size > 0 {
            return Err(invalid(
                "DeBERTa's convolution layer (conv_kernel_size, v2 xlarge) is not supported".into(),
            ));
        }
        if let Some(bad) = self
            .pos_att_type
            .iter()
            .find(|t| !matches!(t.as_str(), "c2p" | "p2c"))
        {
            return Err(invalid(format!(
                "pos_att_type {bad:?}: c2p and p2c are supported"
            )));
        }
        let act = self.pooler_hidden_act.as_deref().unwrap_or("gelu");
        if !matches!(
            act,
            "gelu" | "tanh" | "relu" | "gelu_new" | "gelu_pytorch_tanh"
        ) {
            return Err(invalid(format!("unsupported pooler_hidden_act {act:?}")));
        }
        Ok(())
    }

    /// The architecture, or an error naming the supported ones.
    pub fn kind(&self, path: &Path) -> Result<EncoderKind> {
        EncoderKind::of(&self.model_type).ok_or_else(|| ModelError::UnsupportedModel {
            path: path.to_path_buf(),
            model_type: self.model_type.clone(),
            supported: "bert, roberta, xlm-roberta, camembert, mpnet, deberta-v2".into(),
        })
    }
}

impl EncoderKind {
    /// The encoder architecture of a `model_type`, `None` for anything else
    /// (decoders among them).
    pub fn of(model_type: &str) -> Option<Self> {
        match model_type {
            "bert" => Some(Self::Bert),
            "roberta" | "xlm-roberta" | "camembert" => Some(Self::Roberta),
            "mpnet" => Some(Self::MpNet),
            "deberta-v2" => Some(Self::DebertaV2),
            _ => None,
        }
    }
}
