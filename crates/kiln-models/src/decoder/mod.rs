//! The one generic decoder. Every family runs this forward pass; what differs
//! between families is data in the [`ModelSpec`].

mod alibi;
mod attention;
mod load;
pub(crate) use load::{qkv_block_order, TensorNamer};
mod backprop;
mod mlp;
mod norm;
mod rope;
mod train;
pub use backprop::SequenceGrads;
pub use train::causal_lm_loss_sum;

use candle_core::Tensor;

use crate::arch::TensorRole;
use crate::kv_cache::KvCache;
use crate::linear::{Embedding, Linear};
use crate::spec::{BlockLayout, PositionEncoding, RopeScaling, RopeSpec};
use crate::{ModelError, ModelSpec, Result};
use attention::{Attention, Positions, QkvProjection, Segment};
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
    /// No LM head: every new position's final hidden state (after the final
    /// norm), `[t, hidden]` — what decoder embedding models pool.
    Hidden,
}

/// One sequence in [`Decoder::forward_batch`]: the new tokens and the
/// sequence's own cache, which they are appended to.
#[derive(Debug)]
pub struct BatchItem<'a> {
    /// Tokens to run (a prompt, part of one, or the last sampled token).
    pub ids: &'a [u32],
    /// The sequence's cache.
    pub cache: &'a mut KvCache,
}

/// Rotary tables for every row of a batch: each segment's positions,
/// stacked in row order.
fn rope_tables(rope: Option<&Rope>, segments: &[Segment]) -> Result<Option<(Tensor, Tensor)>> {
    let Some(rope) = rope else {
        return Ok(None);
    };
    if let [seg] = segments {
        return Ok(Some(rope.tables(seg.start, seg.len)?));
    }
    let (mut cos, mut sin) = (Vec::new(), Vec::new());
    for seg in segments {
        let (c, s) = rope.tables(seg.start, seg.len)?;
        cos.push(c);
        sin.push(s);
    }
    Ok(Some((Tensor::cat(&cos, 0)?, Tensor::cat(&sin, 0)?)))
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

    /// Every projection with its role and layer index (the LM head is
    /// `(Output, 0)`), in a fixed order: what adapters attach to.
    pub(crate) fn projections_mut(&mut self) -> Vec<(TensorRole, usize, &mut Linear)> {
        let mut out = Vec::new();
        for (layer, b) in self.blocks.iter_mut().enumerate() {
            match &mut b.attn.qkv {
                QkvProjection::Separate { q, k, v } => {
                    out.push((TensorRole::AttnQ, layer, q));
                    out.push((TensorRole::AttnK, layer, k));
                    out.push((TensorRole::AttnV, layer, v));
                }
                QkvProjection::Fused(w) => out.push((TensorRole::AttnQkv, layer, w)),
            }
            out.push((TensorRole::AttnOut, layer, &mut b.attn.o_proj));
            match &mut b.mlp {
                Mlp::Gated { gate, up, down } => {
                    out.push((TensorRole::FfnGate, layer, gate));
                    out.push((TensorRole::FfnUp, layer, up));
                    out.push((TensorRole::FfnDown, layer, down));
                }
                Mlp::FusedGated { gate_up, down } => {
                    out.push((TensorRole::FfnGateUp, layer, gate_up));
                    out.push((TensorRole::FfnDown, layer, down));
                }
                Mlp::Plain { up, down } => {
                    out.push((TensorRole::FfnUp, layer, up));
                    out.push((TensorRole::FfnDown, layer, down));
                }
            }
        }
        out.push((TensorRole::Output, 0, &mut self.lm_head));
        out
    }

    /// Replaces the token embedding table (an adapter's `modules_to_save`).
    pub(crate) fn set_embedding(&mut self, table: Embedding) {
        self.embed_tokens = table;
    }

    /// The token embedding table.
    pub fn embedding(&self) -> &Embedding {
        &self.embed_tokens
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
                Logits::All | Logits::Hidden => {
                    Ok(logits.narrow(0, all.len() - ids.len(), ids.len())?)
                }
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
        let mut caches = [cache];
        self.forward_segments(&[ids], &mut caches, which)
    }

    /// Runs several sequences in one pass, each `items[i].ids` after what its
    /// own cache holds (a prompt, a chunk of one, or one decode token), and
    /// returns each sequence's last-position logits. Row-wise work (norms,
    /// projections, MLP, LM head) runs on all rows together, so the weights
    /// are read once per step for the whole batch; attention runs per
    /// sequence on its own cache. This is what continuous batching drives.
    pub fn forward_batch(&self, items: &mut [BatchItem<'_>]) -> Result<Vec<Vec<f32>>> {
        rayon::scope(|_| {
            let mut out = vec![Vec::new(); items.len()];
            let mut batched = Vec::new();
            for (i, item) in items.iter_mut().enumerate() {
                if self.crosses_longrope_threshold(item.cache.len(), item.ids.len()) {
                    // Recomputes that sequence's whole cache: run it alone.
                    let logits = self.forward_in_pool(item.ids, item.cache, Logits::Last)?;
                    out[i] = logits.flatten_all()?.to_vec1()?;
                } else {
                    batched.push(i);
                }
            }
            if batched.is_empty() {
                return Ok(out);
            }
            let ids: Vec<&[u32]> = batched.iter().map(|&i| items[i].ids).collect();
            let mut caches: Vec<&mut KvCache> = Vec::with_capacity(batched.len());
            let mut wanted = batched.iter().peekable();
            for (i, item) in items.iter_mut().enumerate() {
                if wanted.peek() == Some(&&i) {
                    wanted.next();
                    caches.push(&mut *item.cache);
                }
            }
            let logits = self.forward_segments(&ids, &mut caches, Logits::Last)?;
            let rows: Vec<Vec<f32>> = logits.to_vec2()?;
            for (&i, row) in batched.iter().zip(rows) {
                out[i] = row;
            }
            Ok(out)
        })
    }

    /// The forward pass over segments: `ids[i]` continues `caches[i]`.
    /// [`Logits::All`] is only meaningful for a single segment; with
    /// [`Logits::Last`] the result has one row per segment.
    fn forward_segments(
        &self,
        ids: &[&[u32]],
        caches: &mut [&mut KvCache],
        which: Logits,
    ) -> Result<Tensor> {
        if ids.is_empty() || ids.len() != caches.len() || ids.iter().any(|s| s.is_empty()) {
            return Err(ModelError::InvalidInput("no tokens to run".into()));
        }
        let all: Vec<u32> = ids.iter().flat_map(|s| s.iter().copied()).collect();
        if let Some(&bad) = all.iter().find(|&&id| id as usize >= self.spec.vocab_size) {
            return Err(ModelError::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {} tokens",
                self.spec.vocab_size
            )));
        }
        let segments: Vec<Segment> = ids
            .iter()
            .zip(caches.iter())
            .scan(0, |row, (s, c)| {
                let seg = Segment {
                    row: *row,
                    start: c.len(),
                    len: s.len(),
                };
                *row += s.len();
                Some(seg)
            })
            .collect();
        let mut x = self.embed_tokens.lookup(&all)?;
        if let Some(scale) = self.spec.embedding_scale {
            // transformers rounds the normalizer to the model dtype first.
            x = (x * f64::from(scale as f32))?;
        }
        if let Some(table) = &self.embed_positions {
            let mut parts = Vec::with_capacity(segments.len());
            for seg in &segments {
                if seg.start + seg.len > table.dim(0)? {
                    return Err(ModelError::InvalidInput(format!(
                        "{} positions exceed the model's {} learned positions",
                        seg.start + seg.len,
                        table.dim(0)?
                    )));
                }
                parts.push(table.narrow(0, seg.start, seg.len)?);
            }
            x = (x + Tensor::cat(&parts, 0)?)?;
        }
        let tables = rope_tables(self.rope.as_ref(), &segments)?;
        let local_tables = rope_tables(self.rope_local.as_ref(), &segments)?;
        let pos = Positions {
            segments: &segments,
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
            x = self.block_forward(block, &x, layer, &pos, caches)?;
        }
        for (cache, s) in caches.iter_mut().zip(ids) {
            cache.advance(s);
        }
        if which == Logits::Last {
            let last: Vec<Tensor> = segments
                .iter()
                .map(|s| x.narrow(0, s.row + s.len - 1, 1))
                .collect::<std::result::Result<_, _>>()?;
            x = match last.as_slice() {
                [only] => only.clone(),
                _ => Tensor::cat(&last, 0)?,
            };
        }
        let x = self.final_norm.forward(&x)?;
        if which == Logits::Hidden {
            return Ok(x);
        }
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
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let act = self.spec.activation;
        let normed = b.attn_norm.forward(x)?;
        let mut attn = b.attn.forward(&normed, layer, pos, caches)?;
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
