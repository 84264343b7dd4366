//! The one generic decoder. Every family runs this forward pass; what differs
//! between families is data in the [`ModelSpec`].

mod alibi;
mod attention;
mod load;
pub(crate) use load::TensorNamer;
mod mlp;
mod norm;
mod rope;

use candle_core::Tensor;

use crate::kv_cache::KvCache;
use crate::linear::{Embedding, Linear};
use crate::spec::{BlockLayout, PositionEncoding, RopeScaling, RopeSpec};
use crate::{ModelError, ModelSpec, Result};
use attention::{Attention, Positions};
use mlp::Mlp;
use norm::Norm;
use rope::Rope;

/// One decoder block.
#[derive(Debug, Clone)]
struct Block {
    attn_norm: Norm,
    attn: Attention,
    attn_post_norm: Option<Norm>,
    /// `None` when the MLP shares `attn_norm` (parallel blocks with one norm).
    ffn_norm: Option<Norm>,
    mlp: Mlp,
    ffn_post_norm: Option<Norm>,
}

/// Which positions' logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Every new position: `[t, vocab]`.
    All,
    /// Only the last position: `[1, vocab]` (saves the LM head on prefill).
    Last,
}

/// A loaded decoder-only model.
#[derive(Debug, Clone)]
pub struct Decoder {
    spec: ModelSpec,
    embed_tokens: Embedding,
    embed_positions: Option<Tensor>,
    blocks: Vec<Block>,
    final_norm: Norm,
    lm_head: Linear,
    rope: Option<Rope>,
    /// Rotary tables of the sliding-window layers, when their base differs.
    rope_local: Option<Rope>,
}

impl Decoder {
    /// The spec it was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// An empty KV cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.blocks.len())
    }

    /// Total number of parameters (a tied LM head counted once).
    pub fn parameter_count(&self) -> usize {
        let blocks: usize = self
            .blocks
            .iter()
            .map(|b| {
                let norms = [&b.attn_post_norm, &b.ffn_norm, &b.ffn_post_norm]
                    .iter()
                    .filter_map(|n| n.as_ref())
                    .map(Norm::parameter_count)
                    .sum::<usize>();
                b.attn_norm.parameter_count()
                    + b.attn.parameter_count()
                    + b.mlp.parameter_count()
                    + norms
            })
            .sum();
        let head = if self.spec.tie_word_embeddings {
            0
        } else {
            self.lm_head.parameter_count()
        };
        self.embed_tokens.parameter_count()
            + self.embed_positions.as_ref().map_or(0, Tensor::elem_count)
            + blocks
            + self.final_norm.parameter_count()
            + head
    }

    /// Runs `ids` after what `cache` holds, appends them to the cache and
    /// returns logits `[t, vocab]` (or `[1, vocab]` with [`Logits::Last`]).
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache, which: Logits) -> Result<Tensor> {
        // Run the whole pass on a rayon worker: the kernels' parallel loops
        // then share work with the other workers directly instead of the
        // calling thread handing each of ~200 small jobs per token to the
        // pool and sleeping until it is done.
        rayon::scope(|_| self.forward_in_pool(ids, cache, which))
    }

    fn forward_in_pool(&self, ids: &[u32], cache: &mut KvCache, which: Logits) -> Result<Tensor> {
        if self.crosses_longrope_threshold(cache.len(), ids.len()) {
            // LongRoPE switches to its long factors once the sequence outgrows
            // the original context; keys cached with the short ones are stale,
            // so recompute everything (as transformers' Phi-3 does).
            let mut all = cache.token_ids().to_vec();
            all.extend_from_slice(ids);
            cache.clear();
            let logits = self.forward_uncached(&all, cache, which)?;
            return match which {
                Logits::All => Ok(logits.narrow(0, all.len() - ids.len(), ids.len())?),
                Logits::Last => Ok(logits),
            };
        }
        self.forward_uncached(ids, cache, which)
    }

    fn crosses_longrope_threshold(&self, cached: usize, new: usize) -> bool {
        match &self.spec.position {
            PositionEncoding::Rope(RopeSpec {
                scaling:
                    RopeScaling::LongRope {
                        original_max_position_embeddings: original,
                        ..
                    },
                ..
            }) => cached > 0 && cached <= *original && cached + new > *original,
            _ => false,
        }
    }

    fn forward_uncached(&self, ids: &[u32], cache: &mut KvCache, which: Logits) -> Result<Tensor> {
        let t = ids.len();
        if t == 0 {
            return Err(ModelError::InvalidInput("no tokens to run".into()));
        }
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.spec.vocab_size) {
            return Err(ModelError::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {} tokens",
                self.spec.vocab_size
            )));
        }
        let start = cache.len();
        let mut x = self.embed_tokens.lookup(ids)?;
        if let Some(scale) = self.spec.embedding_scale {
            // transformers rounds the normalizer to the model dtype first.
            x = (x * f64::from(scale as f32))?;
        }
        if let Some(table) = &self.embed_positions {
            if start + t > table.dim(0)? {
                return Err(ModelError::InvalidInput(format!(
                    "{} positions exceed the model's {} learned positions",
                    start + t,
                    table.dim(0)?
                )));
            }
            x = (x + table.narrow(0, start, t)?)?;
        }
        let tables = match &self.rope {
            Some(r) => Some(r.tables(start, t)?),
            None => None,
        };
        let local_tables = match &self.rope_local {
            Some(r) => Some(r.tables(start, t)?),
            None => None,
        };
        let pos = Positions {
            start,
            rope: match (&self.rope, &tables) {
                (Some(r), Some((cos, sin))) => Some((r, cos, sin)),
                _ => None,
            },
            rope_local: match (&self.rope_local, &local_tables) {
                (Some(r), Some((cos, sin))) => Some((r, cos, sin)),
                _ => None,
            },
        };
        for (layer, block) in self.blocks.iter().enumerate() {
            x = self.block_forward(block, &x, layer, &pos, cache)?;
        }
        cache.advance(ids);
        if which == Logits::Last {
            x = x.narrow(0, t - 1, 1)?;
        }
        let x = self.final_norm.forward(&x)?;
        let mut logits = self.lm_head.forward(&x)?;
        if let Some(cap) = self.spec.final_logit_softcap {
            logits = ((logits / cap)?.tanh()? * cap)?;
        }
        Ok(logits)
    }

    fn block_forward(
        &self,
        b: &Block,
        x: &Tensor,
        layer: usize,
        pos: &Positions<'_>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let act = self.spec.activation;
        let normed = b.attn_norm.forward(x)?;
        let mut attn = b.attn.forward(&normed, layer, pos, cache)?;
        if let Some(n) = &b.attn_post_norm {
            attn = n.forward(&attn)?;
        }
        match self.spec.block {
            BlockLayout::Sequential | BlockLayout::Sandwich => {
                let h = (x + attn)?;
                let ffn_in = match &b.ffn_norm {
                    Some(n) => n.forward(&h)?,
                    None => h.clone(),
                };
                let mut ffn = b.mlp.forward(&ffn_in, act, self.spec.kv_cache_f16)?;
                if let Some(n) = &b.ffn_post_norm {
                    ffn = n.forward(&ffn)?;
                }
                Ok((h + ffn)?)
            }
            BlockLayout::Parallel { .. } => {
                let ffn_in = match &b.ffn_norm {
                    Some(n) => n.forward(x)?,
                    None => normed,
                };
                let ffn = b.mlp.forward(&ffn_in, act, self.spec.kv_cache_f16)?;
                Ok(((x + attn)? + ffn)?)
            }
        }
    }
}
