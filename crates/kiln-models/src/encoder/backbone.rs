//! What a [`super::SentenceEmbedder`] runs: a bidirectional encoder (BERT,
//! MPNet, XLM-R, DeBERTa), or a decoder — any causal LM kiln runs — whose
//! final hidden states are pooled, as decoder embedding models (Qwen3-Embedding,
//! gte-Qwen2, e5-mistral) are used: last-token pooling by default.

use std::path::Path;

use candle_core::Tensor;
use kiln_core::Tokenizer;
use serde_json::Value;

use super::config::EncoderKind;
use super::sentence::Pooling;
use super::Encoder;
use crate::{KvCache, Logits, Model, ModelError, Result};

/// The network under the pooling.
#[derive(Debug, Clone)]
pub(super) enum Backbone {
    /// A bidirectional encoder (boxed, as both are large).
    Encoder(Box<Encoder>),
    /// A causal decoder.
    Decoder(Box<Model>),
}

impl Backbone {
    /// The backbone in `dir` (by `config.json`'s `model_type`) and its tokenizer.
    pub fn load(dir: &Path) -> Result<(Self, Tokenizer)> {
        let config = dir.join("config.json");
        if !config.is_file() {
            return Err(ModelError::MissingFile {
                dir: dir.to_path_buf(),
                what: "config.json".into(),
            });
        }
        let model_type = crate::config::read_json::<Value>(&config)?
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if EncoderKind::of(&model_type).is_some() {
            return Ok((
                Self::Encoder(Box::new(Encoder::load(dir)?)),
                super::sentence::load_tokenizer(dir)?,
            ));
        }
        let model = Model::load_dir(dir)?;
        let tokenizer = model.tokenizer()?.clone();
        Ok((Self::Decoder(Box::new(model)), tokenizer))
    }

    /// Pooling when the directory does not say: mean for encoders (as
    /// sentence-transformers defaults), the last token for decoders.
    pub fn default_pooling(&self) -> Pooling {
        match self {
            Self::Encoder(_) => Pooling::Mean,
            Self::Decoder(_) => Pooling::LastToken,
        }
    }

    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Encoder(e) => e.config().hidden_size,
            Self::Decoder(m) => m.spec().hidden_size,
        }
    }

    /// Most tokens one input may have.
    pub fn max_tokens(&self) -> usize {
        match self {
            Self::Encoder(e) => e.max_tokens(),
            Self::Decoder(m) => m.spec().max_position_embeddings,
        }
    }

    /// Most tokens [`super::SentenceEmbedder::embed`] passes in one batch.
    pub fn batch_tokens(&self) -> usize {
        match self {
            Self::Encoder(e) if e.is_packed() => super::sentence::PACKED_BATCH_TOKENS,
            _ => super::sentence::BATCH_TOKENS,
        }
    }

    /// Final hidden states `[t_i, hidden]` of each input.
    pub fn forward_batch(&self, inputs: &[&[u32]]) -> Result<Vec<Tensor>> {
        match self {
            Self::Encoder(e) => e.forward_batch(inputs),
            Self::Decoder(m) => inputs
                .iter()
                .map(|ids| {
                    let mut cache = KvCache::new(m.spec().num_hidden_layers);
                    m.decoder.forward(ids, &mut cache, Logits::Hidden)
                })
                .collect(),
        }
    }
}
