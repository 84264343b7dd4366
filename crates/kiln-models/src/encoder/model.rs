//! The encoder forward pass: embeddings, then post-norm transformer layers
//! with bidirectional attention (and MPNet's relative-position bias, or
//! DeBERTa's disentangled relative attention from `deberta.rs`).

use std::path::Path;

use candle_core::{Device, Tensor};

use super::config::{EncoderConfig, EncoderKind};
use super::deberta::{Disentangled, PositionProjections, RelativeIndex};
use super::fused;
use super::packed::{Activation, EmbeddingWeights, LayerWeights, PackedLayers};
use crate::linear::Linear;
use crate::weights::{SafetensorsWeights, WeightSource};
use crate::{ModelError, Result};

/// LayerNorm weights.
#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(
            &x.contiguous()?,
            &self.weight,
            &self.bias,
            self.eps,
        )?)
    }

    /// LayerNorm of `x + residual`, in one fused pass where it can.
    fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        fused::add_layer_norm(x, residual, &self.weight, &self.bias, self.eps)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// The transformer layers: packed for the one-pass-per-thread path
/// (`packed.rs`) when the model is plain BERT-style, else as tensors.
#[derive(Debug, Clone)]
enum Layers {
    Tensors(Vec<Layer>),
    Packed(PackedLayers),
}

/// One input's relative-position terms of attention (the same in every layer).
enum Relative {
    /// Absolute positions only.
    None,
    /// MPNet's bias `[heads, t, t]`.
    Bias(Tensor),
    /// DeBERTa's gather indices for the disentangled terms.
    Disentangled(RelativeIndex),
}

/// A loaded encoder.
#[derive(Debug, Clone)]
pub struct Encoder {
    config: EncoderConfig,
    kind: EncoderKind,
    word: Tensor,
    /// Absolute positions (all but DeBERTa v3).
    position: Option<Tensor>,
    token_type: Option<Tensor>,
    /// DeBERTa: word embeddings narrower than the hidden size, projected up.
    embed_proj: Option<Linear>,
    embed_norm: LayerNorm,
    layers: Layers,
    /// MPNet: `[buckets, heads]`.
    relative_bias: Option<Tensor>,
    /// DeBERTa: the relative-position terms of attention.
    disentangled: Option<Disentangled>,
}

/// Tensor names differ by family and by whether the checkpoint keeps the
/// `bert.`/`roberta.` prefix; find the one that exists.
fn find(weights: &SafetensorsWeights, name: &str) -> Result<Tensor> {
    for prefix in ["", "bert.", "roberta.", "mpnet.", "deberta.", "model."] {
        let full = format!("{prefix}{name}");
        if weights.shape(&full).is_some() {
            return weights.tensor(&full);
        }
    }
    Err(ModelError::InvalidInput(format!(
        "{}: no tensor {name}",
        weights.describe()
    )))
}

pub(super) fn linear(weights: &SafetensorsWeights, name: &str) -> Result<Linear> {
    Ok(Linear::Dense {
        weight: find(weights, &format!("{name}.weight"))?,
        bias: Some(find(weights, &format!("{name}.bias"))?),
    })
}

fn norm(weights: &SafetensorsWeights, name: &str, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm {
        weight: find(weights, &format!("{name}.weight"))?,
        bias: find(weights, &format!("{name}.bias"))?,
        eps: eps as f32,
    })
}

impl Encoder {
    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = EncoderConfig::from_file(&config_path)?;
        let kind = config.kind(&config_path)?;
        let file = dir.join("model.safetensors");
        if !file.is_file() {
            return Err(ModelError::MissingFile {
                dir: dir.to_path_buf(),
                what: "model.safetensors".into(),
            });
        }
        let w = SafetensorsWeights::open(&[file])?;
        let eps = config.layer_norm_eps;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            // Module names per family: (q, k, v, attention output, its norm).
            let [q, k, v, o, attn_norm] = match kind {
                EncoderKind::MpNet => [
                    "attention.attn.q",
                    "attention.attn.k",
                    "attention.attn.v",
                    "attention.attn.o",
                    "attention.LayerNorm",
                ],
                EncoderKind::DebertaV2 => [
                    "attention.self.query_proj",
                    "attention.self.key_proj",
                    "attention.self.value_proj",
                    "attention.output.dense",
                    "attention.output.LayerNorm",
                ],
                EncoderKind::Bert | EncoderKind::Roberta => [
                    "attention.self.query",
                    "attention.self.key",
                    "attention.self.value",
                    "attention.output.dense",
                    "attention.output.LayerNorm",
                ],
            };
            let layer = Layer {
                q: linear(&w, &format!("{p}.{q}"))?,
                k: linear(&w, &format!("{p}.{k}"))?,
                v: linear(&w, &format!("{p}.{v}"))?,
                o: linear(&w, &format!("{p}.{o}"))?,
                attn_norm: norm(&w, &format!("{p}.{attn_norm}"), eps)?,
                up: linear(&w, &format!("{p}.intermediate.dense"))?,
                down: linear(&w, &format!("{p}.output.dense"))?,
                out_norm: norm(&w, &format!("{p}.output.LayerNorm"), eps)?,
            };
            layers.push(layer);
        }
        let deberta = kind == EncoderKind::DebertaV2;
        let token_type = match kind {
            EncoderKind::MpNet => None,
            EncoderKind::DebertaV2 if config.type_vocab_size.unwrap_or(0) == 0 => None,
            _ => Some(find(&w, "embeddings.token_type_embeddings.weight")?),
        };
        let position = if deberta && !config.position_biased_input {
            None
        } else {
            Some(find(&w, "embeddings.position_embeddings.weight")?)
        };
        let embed_proj = if deberta
            && config
                .embedding_size
                .is_some_and(|e| e != config.hidden_size)
        {
            Some(Linear::Dense {
                weight: find(&w, "embeddings.embed_proj.weight")?,
                bias: None,
            })
        } else {
            None
        };
        let disentangled = if deberta && config.relative_attention {
            Some(load_disentangled(&w, &config)?)
        } else {
            None
        };
        let relative_bias = match kind {
            EncoderKind::MpNet => Some(find(&w, "encoder.relative_attention_bias.weight")?),
            _ => None,
        };
        let word = find(&w, "embeddings.word_embeddings.weight")?;
        let embed_norm = norm(&w, "embeddings.LayerNorm", eps)?;
        let embeddings = EmbeddingWeights {
            word: &word,
            position: position.as_ref(),
            token_type: token_type.as_ref(),
            norm: (&embed_norm.weight, &embed_norm.bias),
        };
        let layers = match pack(&layers, embeddings, &config, kind)? {
            Some(packed) => Layers::Packed(packed),
            None => Layers::Tensors(layers),
        };
        Ok(Self {
            word,
            position,
            token_type,
            embed_proj,
            embed_norm,
            layers,
            relative_bias,
            disentangled,
            kind,
            config,
        })
    }

    /// Whether the layers run packed, one pass per thread (`packed.rs`):
    /// plain BERT-style models with dense f32 weights.
    pub fn is_packed(&self) -> bool {
        matches!(self.layers, Layers::Packed(_))
    }

    /// The config.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Most tokens one input may have (learned positions).
    pub fn max_tokens(&self) -> usize {
        match self.kind {
            EncoderKind::Bert | EncoderKind::DebertaV2 => self.config.max_position_embeddings,
            _ => self
                .config
                .max_position_embeddings
                .saturating_sub(self.pad() as usize + 1),
        }
    }

    fn pad(&self) -> u32 {
        self.config.pad_token_id.unwrap_or(1)
    }

    /// Position ids: BERT counts from 0; RoBERTa-style models count
    /// non-padding tokens from `pad + 1` (padding tokens get `pad`).
    fn positions(&self, ids: &[u32]) -> Vec<u32> {
        match self.kind {
            EncoderKind::Bert | EncoderKind::DebertaV2 => (0..ids.len() as u32).collect(),
            _ => {
                let pad = self.pad();
                let mut n = 0;
                ids.iter()
                    .map(|&id| {
                        if id == pad {
                            pad
                        } else {
                            n += 1;
                            pad + n
                        }
                    })
                    .collect()
            }
        }
    }

    /// Hidden states `[t, hidden]` of one input (special tokens included).
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        let mut out = self.forward_batch(&[ids])?;
        out.pop()
            .ok_or_else(|| ModelError::InvalidInput("no input to encode".into()))
    }

    fn check_input(&self, ids: &[u32]) -> Result<()> {
        let t = ids.len();
        if t == 0 {
            return Err(ModelError::InvalidInput("no tokens to encode".into()));
        }
        if t > self.max_tokens() {
            return Err(ModelError::InvalidInput(format!(
                "{t} tokens exceed the encoder's {} positions",
                self.max_tokens()
            )));
        }
        let vocab = self.word.dim(0)?;
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {vocab} tokens"
            )));
        }
        Ok(())
    }

    /// Hidden states of several inputs at once, one `[t_i, hidden]` tensor
    /// each. The inputs are packed — their rows stacked, no padding — so
    /// every projection and MLP runs as one matrix product over all tokens,
    /// while attention stays within each input (what a padded batch with an
    /// attention mask computes, without the padding's wasted work).
    pub fn forward_batch(&self, inputs: &[&[u32]]) -> Result<Vec<Tensor>> {
        self.forward_typed(inputs, None)
    }

    /// [`Self::forward_batch`] with token-type ids per input (sentence
    /// pairs: 0 for the first text, 1 for the second; all 0 when `None`).
    pub fn forward_typed(
        &self,
        inputs: &[&[u32]],
        types: Option<&[&[u32]]>,
    ) -> Result<Vec<Tensor>> {
        for ids in inputs {
            self.check_input(ids)?;
        }
        if let Some(types) = types {
            let fits = types.len() == inputs.len()
                && types.iter().zip(inputs).all(|(t, i)| t.len() == i.len());
            if !fits {
                return Err(ModelError::InvalidInput(
                    "token types must match the inputs one to one".into(),
                ));
            }
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let dev = Device::Cpu;
        let lens: Vec<usize> = inputs.iter().map(|ids| ids.len()).collect();
        let all_ids: Vec<u32> = inputs.iter().flat_map(|ids| ids.iter().copied()).collect();
        let positions: Vec<u32> = inputs.iter().flat_map(|ids| self.positions(ids)).collect();
        let total = all_ids.len();
        let layers = match &self.layers {
            Layers::Tensors(layers) => layers,
            Layers::Packed(packed) => {
                let all_types: Option<Vec<u32>> =
                    types.map(|t| t.iter().flat_map(|t| t.iter().copied()).collect());
                let mut x = fused::with_f32(&self.word, |word| {
                    packed.embed(word, &all_ids, &positions, all_types.as_deref())
                })
                .ok_or_else(|| ModelError::InvalidInput("word embeddings are not f32".into()))??;
                packed.forward(&mut x, &lens)?;
                let x = Tensor::from_vec(x, (total, self.config.hidden_size), &dev)?;
                return split_rows(&x, &lens);
            }
        };
        let id_t = Tensor::from_vec(all_ids, total, &dev)?;
        let pos_t = Tensor::from_vec(positions, total, &dev)?;
        let mut x = self.word.index_select(&id_t, 0)?;
        if let Some(position) = &self.position {
            x = (x + position.index_select(&pos_t, 0)?)?;
        }
        match (&self.token_type, types) {
            (Some(tt), Some(types)) => {
                let all: Vec<u32> = types.iter().flat_map(|t| t.iter().copied()).collect();
                if let Some(&bad) = all.iter().find(|&&t| t as usize >= tt.dim(0).unwrap_or(0)) {
                    return Err(ModelError::InvalidInput(format!(
                        "token type {bad} out of range"
                    )));
                }
                let type_t = Tensor::from_vec(all, total, &dev)?;
                x = (x + tt.index_select(&type_t, 0)?)?;
            }
            (Some(tt), None) => x = x.broadcast_add(&tt.narrow(0, 0, 1)?)?,
            (None, _) => {}
        }
        if let Some(proj) = &self.embed_proj {
            x = proj.forward(&x)?;
        }
        let mut x = self.embed_norm.forward(&x)?;
        // Each input's relative-position terms, computed once for all layers.
        let heads = self.config.num_attention_heads;
        let relative = lens
            .iter()
            .map(|&t| -> Result<Relative> {
                Ok(match (&self.relative_bias, &self.disentangled) {
                    (Some(table), _) => Relative::Bias(self.relative_position_bias(table, t)?),
                    (None, Some(d)) => Relative::Disentangled(d.indices(t, heads)?),
                    (None, None) => Relative::None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for (index, layer) in layers.iter().enumerate() {
            x = self.layer_forward(index, layer, &x, &lens, &relative)?;
        }
        split_rows(&x, &lens)
    }

    fn layer_forward(
        &self,
        index: usize,
        l: &Layer,
        x: &Tensor,
        lens: &[usize],
        relative: &[Relative],
    ) -> Result<Tensor> {
        let heads = self.config.num_attention_heads;
        let hd = self.config.hidden_size / heads;
        let positional = match &self.disentangled {
            Some(d) => Some(d.position_states(index, &l.k, &l.q, heads)?),
            None => None,
        };
        let scale = match &self.disentangled {
            Some(d) => 1.0 / ((hd * d.scale_factor()) as f64).sqrt(),
            None => 1.0 / (hd as f64).sqrt(),
        };
        let q_all = fused::dense(x, &l.q, false)?;
        let k_all = fused::dense(x, &l.k, false)?;
        let v_all = fused::dense(x, &l.v, false)?;
        let mut starts = Vec::with_capacity(lens.len());
        let mut start = 0;
        for &t in lens {
            starts.push(start);
            start += t;
        }
        // Attention is per input: the inputs run in parallel.
        let attend = |i: usize| -> Result<Tensor> {
            let (start, t) = (starts[i], lens[i]);
            let split = |y: &Tensor| -> Result<Tensor> {
                Ok(y.narrow(0, start, t)?
                    .reshape((t, heads, hd))?
                    .transpose(0, 1)?
                    .contiguous()?)
            };
            if matches!(relative[i], Relative::None) {
                // Plain bidirectional attention: the prompt kernel, keys and
                // values read token-major straight from the projections.
                let rows = |y: &Tensor| -> Result<Vec<f32>> {
                    Ok(y.narrow(0, start, t)?.flatten_all()?.to_vec1()?)
                };
                let q = split(&q_all)?.flatten_all()?.to_vec1::<f32>()?;
                let queries = crate::kernels::prompt_attention::PromptQueries {
                    q: &q,
                    tokens: t,
                    start: 0,
                    heads,
                    kv_heads: heads,
                    head_dim: hd,
                    scale: scale as f32,
                    softcap: None,
                    window: None,
                    f16_rounding: false,
                    causal: false,
                };
                let out = crate::kernels::prompt_attention::attend_prompt(
                    &queries,
                    &rows(&k_all)?,
                    &rows(&v_all)?,
                );
                return Ok(Tensor::from_vec(out, (t, heads * hd), &Device::Cpu)?);
            }
            let (q, k, v) = (split(&q_all)?, split(&k_all)?, split(&v_all)?);
            let mut scores = (q.matmul(&k.t()?)? * scale)?;
            match (&relative[i], &self.disentangled, &positional) {
                (Relative::Bias(b), _, _) => scores = scores.broadcast_add(b)?,
                (Relative::Disentangled(index), Some(d), Some(states)) => {
                    scores = (scores + d.bias(&q, &k, states, index)?)?;
                }
                _ => {}
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            Ok(probs
                .matmul(&v)?
                .transpose(0, 1)?
                .reshape((t, heads * hd))?)
        };
        let mut contexts = if lens.len() > 1 {
            use rayon::prelude::*;
            (0..lens.len())
                .into_par_iter()
                .map(attend)
                .collect::<Result<Vec<_>>>()?
        } else {
            vec![attend(0)?]
        };
        let ctx = if contexts.len() == 1 {
            contexts
                .pop()
                .ok_or_else(|| ModelError::InvalidInput("empty batch".into()))?
        } else {
            Tensor::cat(&contexts, 0)?
        };
        let h = l
            .attn_norm
            .forward_add(&fused::dense(&ctx, &l.o, false)?, x)?;
        let act = match self.config.hidden_act.as_str() {
            "gelu" => fused::dense(&h, &l.up, true)?,
            "relu" => fused::dense(&h, &l.up, false)?.relu()?,
            _ => fused::dense(&h, &l.up, false)?.gelu()?,
        };
        l.out_norm
            .forward_add(&fused::dense(&act, &l.down, false)?, &h)
    }

    /// MPNet's bias `[heads, t, t]`: T5-style bidirectional buckets of
    /// `key − query` (max distance 128), one learned value per bucket and head.
    fn relative_position_bias(&self, table: &Tensor, t: usize) -> Result<Tensor> {
        let buckets = self.config.relative_attention_num_buckets;
        let mut idx = Vec::with_capacity(t * t);
        for q in 0..t as i64 {
            for k in 0..t as i64 {
                idx.push(relative_bucket(k - q, buckets, 128) as u32);
            }
        }
        let idx = Tensor::from_vec(idx, t * t, &Device::Cpu)?;
        let heads = self.config.num_attention_heads;
        Ok(table
            .index_select(&idx, 0)?
            .reshape((t, t, heads))?
            .permute((2, 0, 1))?
            .contiguous()?)
    }
}

/// Each input's rows of the stacked states `x`.
fn split_rows(x: &Tensor, lens: &[usize]) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(lens.len());
    let mut start = 0;
    for &t in lens {
        out.push(x.narrow(0, start, t)?);
        start += t;
    }
    Ok(out)
}

/// The layers packed for `packed.rs` when the model is plain BERT-style
/// (absolute positions, no relative terms, erf-GELU or ReLU) and every
/// projection is dense with a bias; `None` otherwise.
fn pack(
    layers: &[Layer],
    embeddings: EmbeddingWeights,
    config: &EncoderConfig,
    kind: EncoderKind,
) -> Result<Option<PackedLayers>> {
    if !matches!(kind, EncoderKind::Bert | EncoderKind::Roberta)
        || embeddings.word.dtype() != candle_core::DType::F32
        || !embeddings.word.is_contiguous()
    {
        return Ok(None);
    }
    let activation = match config.hidden_act.as_str() {
        "gelu" => Activation::GeluErf,
        "relu" => Activation::Relu,
        _ => return Ok(None),
    };
    let weights: Vec<LayerWeights> = layers
        .iter()
        .map(|l| LayerWeights {
            q: &l.q,
            k: &l.k,
            v: &l.v,
            o: &l.o,
            attn_norm: (&l.attn_norm.weight, &l.attn_norm.bias),
            up: &l.up,
            down: &l.down,
            out_norm: (&l.out_norm.weight, &l.out_norm.bias),
        })
        .collect();
    PackedLayers::new(
        embeddings,
        &weights,
        config.hidden_size,
        config.num_attention_heads,
        config.layer_norm_eps as f32,
        activation,
    )
}

/// DeBERTa's relative embeddings (layer-normed when the config says so,
/// cut to the rows the span uses) and the layers' separate position projections.
fn load_disentangled(w: &SafetensorsWeights, config: &EncoderConfig) -> Result<Disentangled> {
    let mut relative = find(w, "encoder.rel_embeddings.weight")?;
    if config.norm_rel_ebd.contains("layer_norm") {
        relative = norm(w, "encoder.LayerNorm", config.layer_norm_eps)?.forward(&relative)?;
    }
    let mut projections = Vec::new();
    if !config.share_att_key {
        let has = |t: &str| config.pos_att_type.iter().any(|x| x == t);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}.attention.self");
            projections.push(PositionProjections {
                key: has("c2p")
                    .then(|| linear(w, &format!("{p}.pos_key_proj")))
                    .transpose()?,
                query: has("p2c")
                    .then(|| linear(w, &format!("{p}.pos_query_proj")))
                    .transpose()?,
            });
        }
    }
    Disentangled::new(config, relative, projections)
        .map_err(|message| ModelError::InvalidInput(format!("{}: {message}", w.describe())))
}

/// MPNet's (T5's bidirectional) relative-position bucket.
fn relative_bucket(relative: i64, num_buckets: usize, max_distance: i64) -> usize {
    let half = (num_buckets / 2) as i64;
    let mut bucket = if relative > 0 { half } else { 0 };
    let n = relative.abs();
    let max_exact = half / 2;
    if n < max_exact {
        bucket += n;
    } else {
        let large = max_exact as f32
            + ((n as f32 / max_exact as f32).ln() / (max_distance as f32 / max_exact as f32).ln()
                * (half - max_exact) as f32);
        bucket += (large as i64).min(half - 1);
    }
    bucket as usize
}
