//! The training forward pass: the same decoder, composed only of operations
//! candle can differentiate (candle's fused softmax, norms and rope have no
//! backward and silently stop gradients; see `DEPENDENCIES.md`). Used to
//! train adapters whose weights are candle `Var`s; the base stays frozen.

use candle_core::{Device, Tensor, D};

use super::attention::{causal_mask, Attention};
use super::mlp::{activate, Mlp};
use super::norm::Norm;
use super::rope::Rope;
use super::{Block, Decoder};
use crate::spec::{BlockLayout, NormKind};
use crate::{ModelError, Result};

impl Decoder {
    /// Logits `[t, vocab]` for every position of `ids` (a whole sequence
    /// from position 0, no cache), recorded for autograd.
    pub fn forward_train(&self, ids: &[u32]) -> Result<Tensor> {
        self.check_training_ids(ids)?;
        let t = ids.len();
        if t > self.spec.max_position_embeddings && self.embed_positions.is_some() {
            return Err(ModelError::InvalidInput(format!(
                "{t} tokens exceed the model's {} learned positions",
                self.spec.max_position_embeddings
            )));
        }
        let mut x = self.embed_tokens.lookup(ids)?;
        if let Some(scale) = self.spec.embedding_scale {
            x = (x * f64::from(scale as f32))?;
        }
        if let Some(table) = &self.embed_positions {
            x = (x + table.narrow(0, 0, t)?)?;
        }
        let tables = match &self.rope {
            Some(r) => Some(r.tables(0, t)?),
            None => None,
        };
        let local = match &self.rope_local {
            Some(r) => Some(r.tables(0, t)?),
            None => None,
        };
        for block in &self.blocks {
            let rope = match (block.attn.window, &self.rope_local, &local) {
                (Some(_), Some(r), Some((c, s))) => Some((r, c, s)),
                _ => match (&self.rope, &tables) {
                    (Some(r), Some((c, s))) => Some((r, c, s)),
                    _ => None,
                },
            };
            x = self.block_train(block, &x, rope)?;
        }
        let x = norm(&self.final_norm, &x)?;
        let mut logits = self.lm_head.forward(&x)?;
        if let Some(cap) = self.spec.final_logit_softcap {
            logits = ((logits / cap)?.tanh()? * cap)?;
        }
        Ok(logits)
    }

    /// Refuses an empty sequence or a token outside the vocabulary.
    pub(super) fn check_training_ids(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Err(ModelError::InvalidInput("no tokens to run".into()));
        }
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.spec.vocab_size) {
            return Err(ModelError::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {} tokens",
                self.spec.vocab_size
            )));
        }
        Ok(())
    }

    fn block_train(
        &self,
        b: &Block,
        x: &Tensor,
        rope: Option<(&Rope, &Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let act = self.spec.activation;
        let normed = norm(&b.attn_norm, x)?;
        let mut attn = attention(&b.attn, &normed, rope)?;
        if let Some(n) = &b.attn_post_norm {
            attn = norm(n, &attn)?;
        }
        let mlp = |input: &Tensor| -> Result<Tensor> {
            let out = match &b.mlp {
                Mlp::Gated { gate, up, down } => {
                    down.forward(&(activate(&gate.forward(input)?, act)? * up.forward(input)?)?)?
                }
                Mlp::FusedGated { gate_up, down } => {
                    let gu = gate_up.forward(input)?;
                    let half = gate_up.out_features() / 2;
                    let h =
                        (activate(&gu.narrow(1, 0, half)?, act)? * gu.narrow(1, half, half)?)?;
                    down.forward(&h)?
                }
                Mlp::Plain { up, down } => down.forward(&activate(&up.forward(input)?, act)?)?,
            };
            match &b.ffn_post_norm {
                Some(n) => norm(n, &out),
                None => Ok(out),
            }
        };
        match self.spec.block {
            BlockLayout::Sequential | BlockLayout::Sandwich => {
                let h = (x + attn)?;
                let ffn_in = match &b.ffn_norm {
                    Some(n) => norm(n, &h)?,
                    None => h.clone(),
                };
                Ok((&h + mlp(&ffn_in)?)?)
            }
            BlockLayout::Parallel { .. } => {
                let ffn_in = match &b.ffn_norm {
                    Some(n) => norm(n, x)?,
                    None => normed,
                };
                Ok(((x + attn)? + mlp(&ffn_in)?)?)
            }
        }
    }
}

/// RMSNorm / LayerNorm over the last dimension from differentiable parts.
fn norm(n: &Norm, x: &Tensor) -> Result<Tensor> {
    let eps = f64::from(n.eps);
    let y = match n.kind {
        NormKind::Rms => {
            let rms = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
            x.broadcast_div(&rms)?
        }
        NormKind::Layer { .. } => {
            let centered = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
            let std = (centered.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
            centered.broadcast_div(&std)?
        }
    };
    let y = y.broadcast_mul(&n.weight)?;
    Ok(match &n.bias {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// Softmax over the last dimension (the max is a constant shift).
fn softmax(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let e = shifted.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// Rotary embedding of `x` (`[heads, t, head_dim]`) with candle's
/// differentiable (composed) rope.
fn rotate(rope: &Rope, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let head_dim = x.dim(2)?;
    let rot = rope.spec.rotary_dim;
    let apply = |part: &Tensor| -> Result<Tensor> {
        let part = part.contiguous()?.unsqueeze(0)?;
        let out = if rope.spec.interleaved {
            candle_nn::rotary_emb::rope_i_slow(&part, cos, sin)?
        } else {
            candle_nn::rotary_emb::rope_slow(&part, cos, sin)?
        };
        Ok(out.squeeze(0)?)
    };
    if rot == head_dim {
        return apply(x);
    }
    let rotated = apply(&x.narrow(2, 0, rot)?)?;
    Ok(Tensor::cat(
        &[&rotated, &x.narrow(2, rot, head_dim - rot)?],
        2,
    )?)
}

/// Causal self-attention of a whole sequence: `[t, hidden]` → `[t, hidden]`.
fn attention(a: &Attention, x: &Tensor, rope: Option<(&Rope, &Tensor, &Tensor)>) -> Result<Tensor> {
    let t = x.dim(0)?;
    let (hd, nh, nkv) = (a.head_dim, a.num_heads, a.num_kv_heads);
    let (q, k, v) = a.project_qkv(x)?;
    let mut q = q.reshape((t, nh, hd))?;
    let mut k = k.reshape((t, nkv, hd))?;
    let v = v.reshape((t, nkv, hd))?;
    if let Some(n) = &a.q_norm {
        q = norm(n, &q)?;
    }
    if let Some(n) = &a.k_norm {
        k = norm(n, &k)?;
    }
    let mut q = q.transpose(0, 1)?.contiguous()?;
    let mut k = k.transpose(0, 1)?.contiguous()?;
    let v = v.transpose(0, 1)?.contiguous()?;
    if let Some((r, cos, sin)) = rope {
        q = rotate(r, &q, cos, sin)?;
        k = rotate(r, &k, cos, sin)?;
    }
    let groups = nh / nkv.max(1);
    let q = q.reshape((nkv, groups * t, hd))?;
    let mut scores = (q.matmul(&k.t()?.contiguous()?)? * a.spec.scale)?;
    if let Some(cap) = a.spec.logit_softcap {
        scores = ((scores / cap)?.tanh()? * cap)?;
    }
    let mut scores = scores.reshape((nkv, groups, t, t))?;
    if let Some(slopes) = &a.alibi_slopes {
        let bias = super::alibi::bias(slopes, t)?.reshape((nkv, groups, 1, t))?;
        scores = scores.broadcast_add(&bias)?;
    }
    scores = scores.broadcast_add(&causal_mask(0, t, t, a.window)?)?;
    let probs = softmax(&scores.reshape((nkv, groups * t, t))?)?;
    let out = probs
        .matmul(&v)?
        .reshape((nh, t, hd))?
        .transpose(0, 1)?
        .reshape((t, nh * hd))?;
    a.o_proj.forward(&out)
}

/// Mean token cross-entropy of `logits` (`[t, vocab]`) against `labels`
/// (`-100` = ignored), each position predicting the *next* label
/// (transformers' causal-LM loss). Returns the summed loss and the number of
/// counted positions, so batches can be averaged over all their tokens.
pub fn causal_lm_loss_sum(logits: &Tensor, labels: &[i64]) -> Result<(Tensor, usize)> {
    let (t, _) = logits.dims2()?;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for i in 0..t.saturating_sub(1) {
        let label = labels.get(i + 1).copied().unwrap_or(-100);
        if label >= 0 {
            rows.push(i as u32);
            targets.push(label as u32);
        }
    }
    if rows.is_empty() {
        return Ok((Tensor::zeros((), candle_core::DType::F32, &Device::Cpu)?, 0));
    }
    let n = rows.len();
    let rows = Tensor::from_vec(rows, n, &Device::Cpu)?;
    let picked = logits.index_select(&rows, 0)?;
    let max = picked.max_keepdim(D::Minus1)?.detach();
    let shifted = picked.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let targets = Tensor::from_vec(targets, (n, 1), &Device::Cpu)?;
    let target_logit = shifted.gather(&targets, 1)?;
    let loss = (lse - target_logit)?.sum_all()?;
    Ok((loss, n))
}
