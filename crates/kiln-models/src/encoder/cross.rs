//! Cross-encoders (sequence classification over a query–passage pair) for
//! re-ranking, as sentence-transformers' `CrossEncoder` runs them: BERT
//! (`[CLS] q [SEP] p [SEP]`, pooler `tanh(W·h_cls)`, then `classifier`) and
//! RoBERTa/XLM-R (`<s> q </s></s> p </s>`, `classifier.dense` + tanh +
//! `classifier.out_proj` on `<s>`) and DeBERTa (`[CLS] q [SEP] p [SEP]`,
//! `pooler.dense` + its activation, then `classifier`). The score is the first logit, before
//! any activation (sentence-transformers applies a sigmoid to one-label
//! models by default; the order is the same).

use std::path::Path;

use candle_core::Tensor;
use kiln_core::Tokenizer;

use super::config::{EncoderConfig, EncoderKind};
use super::model::{linear, Encoder};
use super::sentence::load_tokenizer;
use crate::linear::Linear;
use crate::weights::SafetensorsWeights;
use crate::{ModelError, Result};

/// The classification head on the first token.
#[derive(Debug, Clone)]
enum Head {
    /// BERT: pooler dense + tanh, then the classifier.
    Bert { pooler: Linear, classifier: Linear },
    /// RoBERTa: dense + tanh, then the output projection.
    Roberta { dense: Linear, out: Linear },
    /// DeBERTa: the context pooler (dense + `pooler_hidden_act`), then the classifier.
    Deberta {
        pooler: Linear,
        activation: String,
        classifier: Linear,
    },
}

/// A loaded cross-encoder.
#[derive(Debug, Clone)]
pub struct CrossEncoder {
    encoder: Encoder,
    tokenizer: Tokenizer,
    head: Head,
    max_length: usize,
    /// Class names by index (`id2label`), e.g. NLI's contradiction/neutral/entailment.
    labels: Vec<String>,
}

impl CrossEncoder {
    /// Loads a `*ForSequenceClassification` directory (`config.json`,
    /// `model.safetensors`, `tokenizer.json`).
    pub fn load(dir: &Path) -> Result<Self> {
        let encoder = Encoder::load(dir)?;
        let config_path = dir.join("config.json");
        let config = EncoderConfig::from_file(&config_path)?;
        let kind = config.kind(&config_path)?;
        let weights = SafetensorsWeights::open(&[dir.join("model.safetensors")])?;
        let head = match kind {
            EncoderKind::Bert => Head::Bert {
                pooler: linear(&weights, "pooler.dense")?,
                classifier: linear(&weights, "classifier")?,
            },
            EncoderKind::DebertaV2 => Head::Deberta {
                pooler: linear(&weights, "pooler.dense")?,
                activation: config
                    .pooler_hidden_act
                    .clone()
                    .unwrap_or_else(|| "gelu".into()),
                classifier: linear(&weights, "classifier")?,
            },
            _ => Head::Roberta {
                dense: linear(&weights, "classifier.dense")?,
                out: linear(&weights, "classifier.out_proj")?,
            },
        };
        let tokenizer = load_tokenizer(dir)?;
        let max_length = encoder.max_tokens().min(512);
        let labels = read_labels(&config_path)?;
        Ok(Self {
            encoder,
            tokenizer,
            head,
            max_length,
            labels,
        })
    }

    /// Most tokens of one pair (longer pairs are truncated longest-first).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Token ids and token types of one pair, as the model reads it.
    pub fn pair_ids(&self, query: &str, passage: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        Ok(self
            .tokenizer
            .encode_pair(query, passage, self.max_length)?)
    }

    /// The relevance score of each passage for `query` (raw logits).
    pub fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        let pairs: Vec<(&str, &str)> = passages.iter().map(|p| (query, *p)).collect();
        self.logits(&pairs)?
            .into_iter()
            .map(|v| {
                v.first()
                    .copied()
                    .ok_or_else(|| ModelError::InvalidInput("the classifier has no outputs".into()))
            })
            .collect()
    }

    /// The class names by output index (`id2label` of `config.json`).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Every classifier output for each `(first, second)` text pair.
    pub fn logits(&self, pairs: &[(&str, &str)]) -> Result<Vec<Vec<f32>>> {
        let pairs = pairs
            .iter()
            .map(|(a, b)| self.pair_ids(a, b))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(pairs.len());
        for batch in pairs.chunks(32) {
            let ids: Vec<&[u32]> = batch.iter().map(|(i, _)| i.as_slice()).collect();
            let types: Vec<&[u32]> = batch.iter().map(|(_, t)| t.as_slice()).collect();
            let states = self.encoder.forward_typed(&ids, Some(&types))?;
            for s in states {
                out.push(self.head_logits(&s.narrow(0, 0, 1)?)?);
            }
        }
        Ok(out)
    }

    fn head_logits(&self, first: &Tensor) -> Result<Vec<f32>> {
        let logits = match &self.head {
            Head::Bert { pooler, classifier } => {
                classifier.forward(&pooler.forward(first)?.tanh()?)?
            }
            Head::Roberta { dense, out } => out.forward(&dense.forward(first)?.tanh()?)?,
            Head::Deberta {
                pooler,
                activation,
                classifier,
            } => {
                let pooled = pooler.forward(first)?;
                let pooled = match activation.as_str() {
                    "tanh" => pooled.tanh()?,
                    "relu" => pooled.relu()?,
                    "gelu" => crate::kernels::gelu_erf(&pooled)?,
                    _ => pooled.gelu()?,
                };
                classifier.forward(&pooled)?
            }
        };
        Ok(logits.flatten_all()?.to_vec1()?)
    }
}

/// `id2label` of a `config.json`, in index order (empty when absent).
fn read_labels(config: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(config).map_err(|e| ModelError::Io {
        path: config.to_path_buf(),
        source: e,
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::InvalidInput(format!("{}: {e}", config.display())))?;
    let Some(map) = value.get("id2label").and_then(|m| m.as_object()) else {
        return Ok(Vec::new());
    };
    let mut pairs: Vec<(usize, String)> = map
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
        .collect();
    pairs.sort();
    Ok(pairs.into_iter().map(|(_, l)| l).collect())
}

impl kiln_core::Reranker for CrossEncoder {
    fn score(
        &self,
        query: &str,
        passages: &[&str],
    ) -> std::result::Result<Vec<f32>, kiln_core::CoreError> {
        CrossEncoder::score(self, query, passages)
            .map_err(|e| kiln_core::CoreError::Model(e.to_string()))
    }
}
