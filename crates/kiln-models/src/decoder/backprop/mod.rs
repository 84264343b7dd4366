//! Hand-written backward for adapter training on the Llama-shaped families
//! (pre-norm RMSNorm blocks, rotary attention with grouped KV heads and
//! optional q/k norms, SwiGLU MLP: Llama, Mistral, Qwen2/3, Phi-3, SmolLM).
//!
//! Autograd (`forward_train` + candle's `backward`) keeps every
//! intermediate of the sequence alive, including `[heads, t, t]`
//! probabilities and `[t, vocab]` logits, and also multiplies out the
//! gradients of the frozen weights. This path keeps a small tape per block
//! (`block.rs`), recomputes attention probabilities from their log-sum-exp,
//! runs the LM head and loss a chunk of rows at a time (`loss.rs`), and
//! computes only what the adapter's gradients need. Models it does not
//! cover fall back to autograd (`loss_and_grads` answers `None`).

mod attention;
mod block;
mod linear;
mod loss;
mod ops;

use candle_core::{Tensor, TensorId};

use super::Decoder;
use crate::decoder::mlp::Mlp;
use crate::decoder::norm::Norm;
use crate::spec::{Activation, BlockLayout, NormKind};
use crate::Result;
use block::RopeTables;
use linear::Grads;

/// Loss and adapter gradients of one sequence.
#[derive(Debug)]
pub struct SequenceGrads {
    /// Summed token cross-entropy (transformers' causal-LM loss, unscaled).
    pub loss_sum: f64,
    /// Positions that counted.
    pub count: usize,
    /// Gradient of `grad_scale · loss_sum` for every adapter tensor of the
    /// decoder, keyed by the tensor's id (the trainable `Var`'s).
    pub grads: Vec<(TensorId, Tensor)>,
}

fn is_rms(n: &Norm) -> bool {
    n.kind == NormKind::Rms && n.bias.is_none()
}

impl Decoder {
    /// Whether [`Decoder::loss_and_grads`] covers this model (otherwise
    /// training uses autograd over [`Decoder::forward_train`]).
    pub fn has_hand_backward(&self) -> bool {
        let s = &self.spec;
        let plain_model = s.block == BlockLayout::Sequential
            && s.activation == Activation::Silu
            && s.final_logit_softcap.is_none()
            && self.embed_positions.is_none()
            && self.rope.is_some()
            && is_rms(&self.final_norm)
            && linear::supported(&self.lm_head);
        plain_model
            && self.blocks.iter().all(|b| {
                let a = &b.attn;
                let projections_ok = match &a.qkv {
                    super::attention::QkvProjection::Separate { q, k, v } => {
                        linear::supported(q) && linear::supported(k) && linear::supported(v)
                    }
                    super::attention::QkvProjection::Fused(w) => linear::supported(w),
                } && linear::supported(&a.o_proj)
                    && match &b.mlp {
                        Mlp::Gated { gate, up, down } => {
                            linear::supported(gate)
                                && linear::supported(up)
                                && linear::supported(down)
                        }
                        Mlp::FusedGated { gate_up, down } => {
                            linear::supported(gate_up) && linear::supported(down)
                        }
                        Mlp::Plain { .. } => false,
                    };
                projections_ok
                    && is_rms(&b.attn_norm)
                    && b.ffn_norm.as_ref().is_some_and(is_rms)
                    && b.attn_post_norm.is_none()
                    && b.ffn_post_norm.is_none()
                    && a.spec.logit_softcap.is_none()
                    && a.alibi_slopes.is_none()
                    && a.q_norm.as_ref().is_none_or(is_rms)
                    && a.k_norm.as_ref().is_none_or(is_rms)
                    && a.num_kv_heads > 0
                    && a.num_heads % a.num_kv_heads == 0
            })
    }

    /// Causal-LM loss of `ids` against `labels` (`-100` = ignored; position
    /// `i` predicts `labels[i + 1]`) and the gradient of
    /// `grad_scale · loss_sum` for every adapter tensor, by the
    /// hand-written backward. `None` when the model is not covered
    /// ([`Decoder::has_hand_backward`]). Equals autograd over
    /// [`Decoder::forward_train`] to float rounding.
    pub fn loss_and_grads(
        &self,
        ids: &[u32],
        labels: &[i64],
        grad_scale: f64,
    ) -> Result<Option<SequenceGrads>> {
        if !self.has_hand_backward() {
            return Ok(None);
        }
        self.check_training_ids(ids)?;
        let t = ids.len();
        let positions = loss::trained_positions(t, labels);
        if positions.is_empty() {
            return Ok(Some(SequenceGrads {
                loss_sum: 0.0,
                count: 0,
                grads: Vec::new(),
            }));
        }
        let mut x = self.embed_tokens.lookup(ids)?;
        if let Some(scale) = self.spec.embedding_scale {
            x = (x * f64::from(scale as f32))?;
        }
        let width = x.dim(1)?;
        let mut x = ops::values(&x)?;
        let global = self.rope_tables(self.rope.as_ref(), t)?;
        let local = self.rope_tables(self.rope_local.as_ref(), t)?;
        let tables_of = |window: Option<usize>| match (window, &local) {
            (Some(_), Some(l)) => Some(l),
            _ => global.as_ref(),
        };

        let mut tapes = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let (out, tape) = block::forward(b, x, t, tables_of(b.attn.window))?;
            x = out;
            tapes.push(tape);
        }
        let (final_hidden, final_scales) = ops::rms_forward(&self.final_norm, &x)?;
        let mut grads = Grads::default();
        let lm = loss::lm_loss(
            &self.lm_head,
            &final_hidden,
            width,
            &positions,
            grad_scale as f32,
            &mut grads,
        )?;
        drop(final_hidden);
        let mut d = ops::rms_backward(&self.final_norm, &x, &final_scales, &lm.d_hidden)?;
        drop(x);
        while let Some(tape) = tapes.pop() {
            let layer = tapes.len();
            let b = &self.blocks[layer];
            match block::backward(b, tape, d, tables_of(b.attn.window), layer > 0, &mut grads)? {
                Some(dx) => d = dx,
                None => break,
            }
        }
        Ok(Some(SequenceGrads {
            loss_sum: lm.loss_sum,
            count: positions.len(),
            grads: grads.0.into_iter().collect(),
        }))
    }

    fn rope_tables<'a>(
        &self,
        rope: Option<&'a super::rope::Rope>,
        t: usize,
    ) -> Result<Option<RopeTables<'a>>> {
        let Some(rope) = rope else {
            return Ok(None);
        };
        let (cos, sin) = rope.tables(0, t)?;
        let neg_sin = sin.neg()?;
        Ok(Some(RopeTables {
            rope,
            cos,
            sin,
            neg_sin,
        }))
    }
}
