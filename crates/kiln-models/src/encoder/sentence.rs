//! sentence-transformers directories: the encoder (or a decoder, see
//! `backbone.rs`), then pooling
//! (`1_Pooling/config.json`), optional L2 normalisation (`Normalize` in
//! `modules.json`) and truncation to `max_seq_length`.

use std::path::Path;

use candle_core::Tensor;
use kiln_core::Tokenizer;
use serde_json::Value;

use super::backbone::Backbone;
use crate::{ModelError, Result};

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over tokens.
    Mean,
    /// The first token (`[CLS]` / `<s>`).
    Cls,
    /// The last token.
    LastToken,
    /// Element-wise maximum over tokens.
    Max,
}

/// An encoder with the tokenizer and sentence-transformers' post-processing.
#[derive(Debug, Clone)]
pub struct SentenceEmbedder {
    name: String,
    backbone: Backbone,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    max_seq_length: usize,
}

/// Most tokens encoded in one packed batch by [`SentenceEmbedder::embed`]
/// through the generic (tensor) path: large enough for efficient matrix
/// products, small enough to keep the activations in cache-friendly sizes.
/// Packed BERT-style encoders, whose working set does not grow with the
/// batch, take up to [`PACKED_BATCH_TOKENS`].
pub const BATCH_TOKENS: usize = 2048;

/// Most tokens in one batch of a packed encoder: one parallel pass per
/// call of a few dozen texts.
pub const PACKED_BATCH_TOKENS: usize = 16384;

/// Pooling from a `1_Pooling/config.json` (both the flag style and the
/// newer `pooling_mode` string).
fn pooling_of(path: &Path) -> Result<Pooling> {
    let v = crate::config::read_json::<Value>(path)?;
    if let Some(mode) = v.get("pooling_mode").and_then(Value::as_str) {
        return match mode {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            "lasttoken" | "last_token" => Ok(Pooling::LastToken),
            "max" => Ok(Pooling::Max),
            other => Err(ModelError::InvalidConfig {
                path: path.to_path_buf(),
                message: format!("unsupported pooling_mode {other:?}"),
            }),
        };
    }
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    Ok(if flag("pooling_mode_cls_token") {
        Pooling::Cls
    } else if flag("pooling_mode_lasttoken") {
        Pooling::LastToken
    } else if flag("pooling_mode_max_tokens") {
        Pooling::Max
    } else {
        Pooling::Mean
    })
}

/// `tokenizer.json` (required) with `tokenizer_config.json` (optional)
/// from a model directory.
pub(crate) fn load_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let tokenizer_json = dir.join("tokenizer.json");
    if !tokenizer_json.is_file() {
        return Err(ModelError::MissingFile {
            dir: dir.to_path_buf(),
            what: "tokenizer.json".into(),
        });
    }
    let config = dir.join("tokenizer_config.json");
    Ok(Tokenizer::from_files(
        &tokenizer_json,
        config.is_file().then_some(config.as_path()),
    )?)
}

impl SentenceEmbedder {
    /// Loads a sentence-transformers directory (or a bare model directory:
    /// mean pooling for an encoder, the last token for a decoder, normalised,
    /// the model's own length limit).
    pub fn load(dir: &Path) -> Result<Self> {
        let (backbone, tokenizer) = Backbone::load(dir)?;
        let config = dir.join("tokenizer_config.json");
        let mut pooling = backbone.default_pooling();
        let mut normalize = true;
        let modules = dir.join("modules.json");
        if modules.is_file() {
            normalize = false;
            let list = crate::config::read_json::<Value>(&modules)?;
            for m in list.as_array().into_iter().flatten() {
                let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
                let sub = m.get("path").and_then(Value::as_str).unwrap_or("");
                if ty.ends_with("Pooling") {
                    pooling = pooling_of(&dir.join(sub).join("config.json"))?;
                } else if ty.ends_with("Normalize") {
                    normalize = true;
                }
            }
        }
        // sentence_bert_config.json's max_seq_length, else the tokenizer's
        // model_max_length (sentence-transformers 6), capped by positions.
        let limit = |path: &Path, key: &str| -> Result<Option<usize>> {
            if !path.is_file() {
                return Ok(None);
            }
            Ok(crate::config::read_json::<Value>(path)?
                .get(key)
                .and_then(Value::as_u64)
                .map(|n| n.min(usize::MAX as u64) as usize))
        };
        let configured = match limit(&dir.join("sentence_bert_config.json"), "max_seq_length")? {
            Some(n) => Some(n),
            None => limit(&config, "model_max_length")?,
        };
        let max_seq_length =
            configured.map_or(backbone.max_tokens(), |n| n.min(backbone.max_tokens()));
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        );
        Ok(Self {
            name,
            backbone,
            tokenizer,
            pooling,
            normalize,
            max_seq_length,
        })
    }

    /// Width of the embeddings.
    pub fn dimension(&self) -> usize {
        self.backbone.hidden_size()
    }

    /// Most tokens of one input (longer inputs are truncated).
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// The pooling.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids of `text` as sentence-transformers feeds them: special
    /// tokens added, the content truncated so the whole fits
    /// `max_seq_length` (the closing special token kept).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.tokenizer.encode(text, true)?.ids;
        if ids.len() > self.max_seq_length {
            let last = ids.last().copied();
            ids.truncate(self.max_seq_length.saturating_sub(1));
            ids.extend(last);
        }
        Ok(ids)
    }

    /// Embeds each text (one vector of [`Self::dimension`] per text).
    /// Texts are encoded together in packed batches of up to
    /// [`BATCH_TOKENS`] (or [`PACKED_BATCH_TOKENS`]) tokens (sorted by length, so batches hold inputs of
    /// similar size); the results equal embedding each text alone.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        use rayon::prelude::*;
        let ids = texts
            .par_iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); ids.len()];
        let batch_tokens = self.backbone.batch_tokens();
        let mut batch: Vec<usize> = Vec::new();
        let mut tokens = 0;
        for &i in &order {
            if !batch.is_empty() && tokens + ids[i].len() > batch_tokens {
                self.embed_batch(&ids, &batch, &mut out)?;
                batch.clear();
                tokens = 0;
            }
            batch.push(i);
            tokens += ids[i].len();
        }
        if !batch.is_empty() {
            self.embed_batch(&ids, &batch, &mut out)?;
        }
        Ok(out)
    }

    fn embed_batch(&self, ids: &[Vec<u32>], batch: &[usize], out: &mut [Vec<f32>]) -> Result<()> {
        let inputs: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
        let states = self.backbone.forward_batch(&inputs)?;
        for (&i, s) in batch.iter().zip(states) {
            out[i] = self.pool(s)?;
        }
        Ok(())
    }

    /// Embeds token ids already prepared by [`Self::token_ids`].
    pub fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let states = self.backbone.forward_batch(&[ids])?;
        let first = states
            .into_iter()
            .next()
            .ok_or_else(|| ModelError::InvalidInput("no input to embed".into()))?;
        self.pool(first)
    }

    /// Pooling and normalisation of one input's hidden states.
    fn pool(&self, states: Tensor) -> Result<Vec<f32>> {
        let (t, hidden) = states.dims2()?;
        if t == 0 {
            return Err(ModelError::InvalidInput("no token states to pool".into()));
        }
        let rows: Vec<f32> = states.flatten_all()?.to_vec1()?;
        let row = |i: usize| &rows[i * hidden..(i + 1) * hidden];
        let mut v: Vec<f32> = match self.pooling {
            Pooling::Mean => {
                // Summed in f64 then divided, as close to the exact mean as
                // f32 allows whatever the order.
                let mut sum = vec![0f64; hidden];
                for i in 0..t {
                    for (s, &x) in sum.iter_mut().zip(row(i)) {
                        *s += f64::from(x);
                    }
                }
                sum.iter().map(|&s| (s / t as f64) as f32).collect()
            }
            Pooling::Cls => row(0).to_vec(),
            Pooling::LastToken => row(t - 1).to_vec(),
            Pooling::Max => (0..hidden)
                .map(|c| (0..t).map(|i| row(i)[c]).fold(f32::NEG_INFINITY, f32::max))
                .collect(),
        };
        if self.normalize {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(v)
    }
}

impl kiln_core::Embedder for SentenceEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        SentenceEmbedder::dimension(self)
    }

    fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, kiln_core::CoreError> {
        SentenceEmbedder::embed(self, texts).map_err(|e| kiln_core::CoreError::Model(e.to_string()))
    }
}
