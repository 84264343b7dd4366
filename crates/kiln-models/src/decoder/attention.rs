//! Causal self-attention with grouped KV heads, optional sliding window,
//! score soft-capping and per-head q/k norms.

use candle_core::{Device, Tensor};

use super::norm::Norm;
use super::rope::Rope;
use crate::kv_cache::KvCache;
use crate::linear::Linear;
use crate::spec::AttentionSpec;
use crate::Result;

/// How q, k and v are projected.
#[derive(Debug, Clone)]
pub(crate) enum QkvProjection {
    /// Three projections.
    Separate { q: Linear, k: Linear, v: Linear },
    /// One projection whose output is `[q | k | v]`.
    Fused(Linear),
}

/// One attention layer.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    pub(crate) qkv: QkvProjection,
    pub(crate) o_proj: Linear,
    pub(crate) q_norm: Option<Norm>,
    pub(crate) k_norm: Option<Norm>,
    pub(crate) spec: AttentionSpec,
    pub(crate) num_heads: usize,
    pub(crate) num_kv_heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) window: Option<usize>,
    /// Compute attention as llama.cpp does with its default f16 cache:
    /// keys, values, queries and probabilities rounded to f16.
    pub(crate) kv_f16: bool,
    /// ALiBi slope per query head, when the model uses ALiBi.
    pub(crate) alibi_slopes: Option<Vec<f32>>,
}

/// Where one sequence's rows sit in a (batched) forward pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    /// First row of the batch that belongs to it.
    pub(crate) row: usize,
    /// Position of its first new token (what its cache held before).
    pub(crate) start: usize,
    /// Number of new tokens.
    pub(crate) len: usize,
}

/// Per-forward inputs shared by all layers.
pub(crate) struct Positions<'a> {
    /// The sequences of the batch, in row order.
    pub(crate) segments: &'a [Segment],
    /// Rotary tables for the new tokens, when the model uses RoPE.
    pub(crate) rope: Option<(&'a Rope, &'a Tensor, &'a Tensor)>,
    /// The sliding-window layers' tables, when their base differs (Gemma 3).
    pub(crate) rope_local: Option<(&'a Rope, &'a Tensor, &'a Tensor)>,
}

impl Attention {
    /// q, k and v (`[rows, heads · head_dim]` each) of `x`.
    pub(crate) fn project_qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (hd, nh, nkv) = (self.head_dim, self.num_heads, self.num_kv_heads);
        Ok(match &self.qkv {
            QkvProjection::Separate { q, k, v } => {
                let [q, k, v] = crate::linear::forward_many([q, k, v], x)?;
                (q, k, v)
            }
            QkvProjection::Fused(w) => {
                let qkv = w.forward(x)?;
                (
                    qkv.narrow(1, 0, nh * hd)?,
                    qkv.narrow(1, nh * hd, nkv * hd)?,
                    qkv.narrow(1, (nh + nkv) * hd, nkv * hd)?,
                )
            }
        })
    }

    /// `x`: `[rows, hidden]` → `[rows, hidden]`: the rows of every segment
    /// of `pos`, each appending its k/v to its own cache in `caches`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        layer: usize,
        pos: &Positions<'_>,
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let t = x.dim(0)?;
        let (hd, nh, nkv) = (self.head_dim, self.num_heads, self.num_kv_heads);
        let (q, k, v) = self.project_qkv(x)?;
        // [t, heads*hd] -> [t, heads, hd]
        let mut q = q.reshape((t, nh, hd))?;
        let mut k = k.reshape((t, nkv, hd))?;
        let v = v.reshape((t, nkv, hd))?;
        if let Some(n) = &self.q_norm {
            q = n.forward(&q)?;
        }
        if let Some(n) = &self.k_norm {
            k = n.forward(&k)?;
        }
        // [t, heads, hd] -> [heads, t, hd]
        let mut q = q.transpose(0, 1)?.contiguous()?;
        let mut k = k.transpose(0, 1)?.contiguous()?;
        let v = v.transpose(0, 1)?.contiguous()?;
        let rope = match (self.window, pos.rope_local) {
            (Some(_), Some(local)) => Some(local),
            _ => pos.rope,
        };
        if let Some((rope, cos, sin)) = rope {
            q = rope.apply(&q, cos, sin)?;
            k = rope.apply(&k, cos, sin)?;
        }
        let out = match pos.segments {
            [seg] => {
                let cache = caches
                    .first_mut()
                    .ok_or_else(|| crate::ModelError::InvalidInput("no cache".into()))?;
                self.attend_segment(&q, &k, &v, seg.start, layer, cache)?
            }
            segments => {
                // Each sequence attends over its own cache: in parallel.
                use rayon::prelude::*;
                let outs = segments
                    .par_iter()
                    .zip(caches.par_iter_mut())
                    .map(|(seg, cache)| {
                        let rows = |x: &Tensor| x.narrow(1, seg.row, seg.len);
                        self.attend_segment(
                            &rows(&q)?,
                            &rows(&k)?,
                            &rows(&v)?,
                            seg.start,
                            layer,
                            cache,
                        )
                    })
                    .collect::<Result<Vec<Tensor>>>()?;
                Tensor::cat(&outs, 0)?
            }
        };
        self.o_proj.forward(&out)
    }

    /// Attention of one sequence's new rows (`[heads, t, hd]` after rope,
    /// first at position `start`) over its cache plus themselves; returns
    /// `[t, heads · hd]` before the output projection.
    fn attend_segment(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        start: usize,
        layer: usize,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let t = q.dim(1)?;
        let (hd, nh, nkv) = (self.head_dim, self.num_heads, self.num_kv_heads);
        // Token-major rows for the cache: [heads, t, hd] -> [t, heads, hd]
        // (with `kv_f16` the cache stores them as f16, which rounds them).
        let rows =
            |x: &Tensor| -> Result<Vec<f32>> { Ok(x.transpose(0, 1)?.flatten_all()?.to_vec1()?) };
        let layer_kv = cache.append(layer, &rows(k)?, &rows(v)?, self.kv_f16)?;
        if self.alibi_slopes.is_none() {
            let q: Vec<f32> = q.flatten_all()?.to_vec1()?;
            let out = if t == 1 {
                self.attend_one(&q, layer_kv)
            } else {
                self.attend_prompt(&q, t, start, layer_kv)
            };
            return Ok(Tensor::from_vec(out, (t, nh * hd), &Device::Cpu)?);
        }
        // ALiBi models (MPT, Falcon-style) take candle's tensor path.
        let (k, v) = layer_kv.tensors(nkv, hd)?;
        let total = k.dim(1)?;

        // Group the query heads that share a KV head: [nkv, groups*t, hd].
        let groups = nh / nkv;
        let mut q = q.reshape((nkv, groups * t, hd))?;
        if self.kv_f16 {
            // llama.cpp multiplies f16 keys with queries converted to f16.
            q = round_f16(&q)?;
        }
        let mut scores = (q.matmul(&k.t()?)? * self.spec.scale)?;
        if let Some(cap) = self.spec.logit_softcap {
            scores = ((scores / cap)?.tanh()? * cap)?;
        }
        // [nkv, groups, t, total] + [t, total]
        let mut scores = scores.reshape((nkv, groups, t, total))?;
        if let Some(slopes) = &self.alibi_slopes {
            // [nh, 1, total] -> [nkv, groups, 1, total]
            let bias = super::alibi::bias(slopes, total)?.reshape((nkv, groups, 1, total))?;
            scores = scores.broadcast_add(&bias)?;
        }
        // A single new token sees every cached key unless a window hides some.
        let all_visible = t == 1 && self.window.is_none_or(|w| total <= w);
        if !all_visible {
            scores = scores.broadcast_add(&causal_mask(start, t, total, self.window)?)?;
        }
        let scores = scores.reshape((nkv, groups * t, total))?;
        let mut probs = candle_nn::ops::softmax_last_dim(&scores)?;
        if self.kv_f16 {
            // … and f16 values with probabilities converted to f16.
            probs = round_f16(&probs)?;
        }
        // [nkv, groups*t, hd] -> [nh, t, hd] -> [t, nh*hd]
        Ok(probs
            .matmul(&v)?
            .reshape((nh, t, hd))?
            .transpose(0, 1)?
            .reshape((t, nh * hd))?)
    }

    /// Number of parameters.
    pub(crate) fn parameter_count(&self) -> usize {
        let qkv = match &self.qkv {
            QkvProjection::Separate { q, k, v } => {
                q.parameter_count() + k.parameter_count() + v.parameter_count()
            }
            QkvProjection::Fused(w) => w.parameter_count(),
        };
        let norms = [&self.q_norm, &self.k_norm]
            .iter()
            .filter_map(|n| n.as_ref())
            .map(Norm::parameter_count)
            .sum::<usize>();
        qkv + self.o_proj.parameter_count() + norms
    }
}

/// Additive mask `[t, total]`: query `start + i` sees key `j` when `j <=
/// start + i` and, with a window `w`, `start + i - j < w` (transformers'
/// sliding-window rule).
pub(super) fn causal_mask(
    start: usize,
    t: usize,
    total: usize,
    window: Option<usize>,
) -> Result<Tensor> {
    let mut mask = vec![0f32; t * total];
    for i in 0..t {
        let q = start + i;
        for (j, m) in mask[i * total..(i + 1) * total].iter_mut().enumerate() {
            let visible = j <= q && window.is_none_or(|w| q - j < w);
            if !visible {
                *m = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Tensor::from_vec(mask, (t, total), &Device::Cpu)?)
}

impl Attention {
    /// Attention of one new query (`q`: `[heads · head_dim]`, after rope)
    /// over every cached position (within the window): see
    /// [`crate::kernels::attention`]. Returns `[heads · head_dim]`.
    fn attend_one(&self, q: &[f32], kv: &crate::kv_cache::LayerKv) -> Vec<f32> {
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let total = kv.k.len() / (nkv * hd).max(1);
        let first = self.window.map_or(0, |w| total.saturating_sub(w));
        let query = crate::kernels::attention::DecodeQuery {
            q,
            heads: nh,
            kv_heads: nkv,
            head_dim: hd,
            scale: self.spec.scale as f32,
            softcap: self.spec.logit_softcap.map(|c| c as f32),
            f16_rounding: self.kv_f16,
        };
        crate::kernels::attention::attend_one(&query, kv.k.view(), kv.v.view(), first, total)
    }
}

impl Attention {
    /// Attention of a segment's `t` new queries (`q`: `[heads, t,
    /// head_dim]`, after rope, the first at position `start`) over the cache,
    /// which already holds their own rows: see
    /// [`crate::kernels::prompt_attention`]. Returns `[t, heads · head_dim]`.
    fn attend_prompt(
        &self,
        q: &[f32],
        t: usize,
        start: usize,
        kv: &crate::kv_cache::LayerKv,
    ) -> Vec<f32> {
        let queries = crate::kernels::prompt_attention::PromptQueries {
            q,
            tokens: t,
            start,
            heads: self.num_heads,
            kv_heads: self.num_kv_heads,
            head_dim: self.head_dim,
            scale: self.spec.scale as f32,
            softcap: self.spec.logit_softcap.map(|c| c as f32),
            window: self.window,
            f16_rounding: self.kv_f16,
            causal: true,
        };
        // The prompt kernel's GEMMs read f32: an f16 cache is widened for
        // the call (a transient copy of this layer's keys and values).
        crate::kernels::prompt_attention::attend_prompt(&queries, &kv.k.to_f32(), &kv.v.to_f32())
    }
}

/// `t` rounded to f16 precision (kept in f32).
fn round_f16(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(candle_core::DType::F16)?
        .to_dtype(candle_core::DType::F32)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_mask_keeps_the_last_w_keys() {
        let m = causal_mask(0, 4, 4, Some(2)).unwrap();
        let rows: Vec<Vec<f32>> = m.to_vec2().unwrap();
        let visible: Vec<Vec<bool>> = rows
            .iter()
            .map(|r| r.iter().map(|x| x.is_finite()).collect())
            .collect();
        assert_eq!(visible[0], [true, false, false, false]);
        assert_eq!(visible[3], [false, false, true, true]);
    }

    #[test]
    fn decode_step_mask_sees_all_previous_keys() {
        let m = causal_mask(5, 1, 6, None).unwrap();
        let row: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        assert!(row.iter().all(|x| x.is_finite()));
    }
}
