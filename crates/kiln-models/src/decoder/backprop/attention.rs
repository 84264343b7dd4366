//! Causal attention of a whole training sequence, forward and backward,
//! computed per query head and block of queries so that only the keys a
//! block can see are multiplied (the causal triangle, and the sliding
//! window), with the probabilities recomputed in the backward from each
//! row's log-sum-exp instead of being kept (FlashAttention's scheme, on
//! the CPU with GEMMs per block).

use rayon::prelude::*;

use crate::kernels::gemm::{matmul_add_into, matmul_into, MatRef};
use crate::kernels::vector::Kernels;
use crate::{ModelError, Result};

/// Queries per block: one GEMM per block and product.
const QUERIES_PER_BLOCK: usize = 64;

/// The attention's shape.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    /// Sequence length.
    pub(super) t: usize,
    /// Query heads.
    pub(super) heads: usize,
    /// Key/value heads.
    pub(super) kv_heads: usize,
    /// Width of a head.
    pub(super) head_dim: usize,
    /// Score scale.
    pub(super) scale: f32,
    /// Sliding window, if any (query `i` sees key `j` when `i − j < w`).
    pub(super) window: Option<usize>,
}

impl Shape {
    /// The keys query `i` sees.
    fn visible(&self, i: usize) -> std::ops::Range<usize> {
        self.window.map_or(0, |w| (i + 1).saturating_sub(w))..i + 1
    }

    /// The keys any query of `rows` sees.
    fn keys_of(&self, rows: &std::ops::Range<usize>) -> std::ops::Range<usize> {
        self.visible(rows.start).start..rows.end
    }

    fn kv_head(&self, h: usize) -> usize {
        (h / (self.heads / self.kv_heads.max(1)).max(1)).min(self.kv_heads.saturating_sub(1))
    }

    fn blocks(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        (0..self.t)
            .step_by(QUERIES_PER_BLOCK)
            .map(|s| s..(s + QUERIES_PER_BLOCK).min(self.t))
    }
}

fn shape_error() -> ModelError {
    ModelError::InvalidInput("attention operands do not match their shape".into())
}

/// `[rows, head_dim]` rows `range` of one head of a head-major `[heads, t,
/// head_dim]` array.
fn head_rows<'a>(
    x: &'a [f32],
    s: &Shape,
    head: usize,
    range: &std::ops::Range<usize>,
) -> MatRef<'a> {
    let hd = s.head_dim;
    let start = (head * s.t + range.start) * hd;
    MatRef::row_major(&x[start..start + range.len() * hd], range.len(), hd)
}

/// Scores of query block `rows` of head `h` against `keys`, turned into
/// probabilities in `p` (`[rows, keys]`): by softmax when `lse_out` is
/// given (filled with each row's log-sum-exp), else from `lse_in`.
fn probabilities(
    s: &Shape,
    exp: fn(&mut [f32]),
    rows: &std::ops::Range<usize>,
    keys: &std::ops::Range<usize>,
    p: &mut [f32],
    lse_in: Option<&[f32]>,
    mut lse_out: Option<&mut [f32]>,
) {
    let nk = keys.len();
    for (r, row) in p.chunks_mut(nk).enumerate() {
        let i = rows.start + r;
        let seen = s.visible(i);
        let (lo, hi) = (seen.start - keys.start, seen.end - keys.start);
        let part = &mut row[lo..hi];
        match (lse_in, lse_out.as_deref_mut()) {
            (_, Some(out)) => {
                let mut max = f32::NEG_INFINITY;
                for v in part.iter_mut() {
                    *v *= s.scale;
                    max = max.max(*v);
                }
                for v in part.iter_mut() {
                    *v -= max;
                }
                exp(part);
                let sum: f32 = part.iter().sum();
                let inv = 1.0 / sum;
                for v in part.iter_mut() {
                    *v *= inv;
                }
                out[r] = max + sum.ln();
            }
            (Some(lse), None) => {
                let l = lse[r];
                for v in part.iter_mut() {
                    *v = *v * s.scale - l;
                }
                exp(part);
            }
            (None, None) => {}
        }
        row[..lo].fill(0.0);
        row[hi..].fill(0.0);
    }
}

/// Attention output, head-major `[heads, t, head_dim]`, and each
/// `(head, query)` row's log-sum-exp, of head-major `q` (`[heads, t,
/// head_dim]`), `k` and `v` (`[kv_heads, t, head_dim]`).
pub(super) fn forward(s: &Shape, q: &[f32], k: &[f32], v: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
    let (t, hd) = (s.t, s.head_dim);
    if q.len() != s.heads * t * hd || k.len() != s.kv_heads * t * hd || k.len() != v.len() {
        return Err(shape_error());
    }
    let exp = Kernels::select().exp;
    let mut out = vec![0f32; s.heads * t * hd];
    let mut lse = vec![0f32; s.heads * t];
    out.par_chunks_mut(t * hd)
        .zip(lse.par_chunks_mut(t))
        .enumerate()
        .try_for_each(|(h, (out, lse))| -> Result<()> {
            let g = s.kv_head(h);
            let mut p = Vec::new();
            for rows in s.blocks() {
                let keys = s.keys_of(&rows);
                p.resize(rows.len() * keys.len(), 0.0);
                matmul_into(
                    &mut p,
                    keys.len(),
                    head_rows(q, s, h, &rows),
                    head_rows(k, s, g, &keys).t(),
                    false,
                )
                .ok_or_else(shape_error)?;
                probabilities(
                    s,
                    exp,
                    &rows,
                    &keys,
                    &mut p,
                    None,
                    Some(&mut lse[rows.clone()]),
                );
                matmul_into(
                    &mut out[rows.start * hd..rows.end * hd],
                    hd,
                    MatRef::row_major(&p, rows.len(), keys.len()),
                    head_rows(v, s, g, &keys),
                    false,
                )
                .ok_or_else(shape_error)?;
            }
            Ok(())
        })?;
    Ok((out, lse))
}

/// Gradients of head-major q, k and v given the forward's operands, its
/// head-major output `o`, log-sum-exp `lse`, and the head-major gradient
/// of the output `d_o`.
pub(super) fn backward(
    s: &Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    lse: &[f32],
    d_o: &[f32],
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let (t, hd) = (s.t, s.head_dim);
    if o.len() != q.len() || d_o.len() != q.len() || lse.len() != s.heads * t {
        return Err(shape_error());
    }
    let exp = Kernels::select().exp;
    let mut dq = vec![0f32; s.heads * t * hd];
    // Each query head's own dK and dV, summed over its group after.
    let mut dk_heads = vec![0f32; s.heads * t * hd];
    let mut dv_heads = vec![0f32; s.heads * t * hd];
    dq.par_chunks_mut(t * hd)
        .zip(dk_heads.par_chunks_mut(t * hd))
        .zip(dv_heads.par_chunks_mut(t * hd))
        .enumerate()
        .try_for_each(|(h, ((dq, dk), dv))| -> Result<()> {
            let g = s.kv_head(h);
            let (mut p, mut dp) = (Vec::new(), Vec::new());
            for rows in s.blocks() {
                let keys = s.keys_of(&rows);
                let (nr, nk) = (rows.len(), keys.len());
                let q_blk = head_rows(q, s, h, &rows);
                let do_blk = head_rows(d_o, s, h, &rows);
                p.resize(nr * nk, 0.0);
                dp.resize(nr * nk, 0.0);
                matmul_into(&mut p, nk, q_blk, head_rows(k, s, g, &keys).t(), false)
                    .ok_or_else(shape_error)?;
                let lse_blk = &lse[h * t + rows.start..h * t + rows.end];
                probabilities(s, exp, &rows, &keys, &mut p, Some(lse_blk), None);
                // dV += Pᵀ dO.
                matmul_add_into(
                    &mut dv[keys.start * hd..keys.end * hd],
                    hd,
                    MatRef::row_major(&p, nr, nk).t(),
                    do_blk,
                    false,
                )
                .ok_or_else(shape_error)?;
                // dP = dO Vᵀ, then dS = scale · P ⊙ (dP − ⟨dO, O⟩).
                matmul_into(&mut dp, nk, do_blk, head_rows(v, s, g, &keys).t(), false)
                    .ok_or_else(shape_error)?;
                for (r, (prow, dprow)) in p.chunks_mut(nk).zip(dp.chunks(nk)).enumerate() {
                    let at = (h * t + rows.start + r) * hd;
                    let d: f32 = d_o[at..at + hd]
                        .iter()
                        .zip(&o[at..at + hd])
                        .map(|(a, b)| a * b)
                        .sum();
                    for (pv, &g) in prow.iter_mut().zip(dprow) {
                        *pv = s.scale * *pv * (g - d);
                    }
                }
                let ds = MatRef::row_major(&p, nr, nk);
                // dQ = dS K; dK += dSᵀ Q.
                matmul_into(
                    &mut dq[rows.start * hd..rows.end * hd],
                    hd,
                    ds,
                    head_rows(k, s, g, &keys),
                    false,
                )
                .ok_or_else(shape_error)?;
                matmul_add_into(
                    &mut dk[keys.start * hd..keys.end * hd],
                    hd,
                    ds.t(),
                    q_blk,
                    false,
                )
                .ok_or_else(shape_error)?;
            }
            Ok(())
        })?;
    let mut dk = vec![0f32; s.kv_heads * t * hd];
    let mut dv = vec![0f32; s.kv_heads * t * hd];
    for h in 0..s.heads {
        let g = s.kv_head(h);
        let (from, to) = (h * t * hd..(h + 1) * t * hd, g * t * hd..(g + 1) * t * hd);
        for (a, b) in dk[to.clone()].iter_mut().zip(&dk_heads[from.clone()]) {
            *a += b;
        }
        for (a, b) in dv[to].iter_mut().zip(&dv_heads[from]) {
            *a += b;
        }
    }
    Ok((dq, dk, dv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::vector::pseudo_random;

    /// Loss `Σ out ⊙ w` of the naive attention (f64), for finite differences.
    fn naive_loss(s: &Shape, q: &[f32], k: &[f32], v: &[f32], w: &[f32]) -> f64 {
        let (t, hd) = (s.t, s.head_dim);
        let mut total = 0f64;
        for h in 0..s.heads {
            let g = s.kv_head(h);
            for i in 0..t {
                let seen = s.visible(i);
                let scores: Vec<f64> = seen
                    .clone()
                    .map(|j| {
                        (0..hd)
                            .map(|d| f64::from(q[(h * t + i) * hd + d] * k[(g * t + j) * hd + d]))
                            .sum::<f64>()
                            * f64::from(s.scale)
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|x| (x - max).exp()).sum();
                for d in 0..hd {
                    let out: f64 = seen
                        .clone()
                        .zip(&scores)
                        .map(|(j, sc)| (sc - max).exp() / z * f64::from(v[(g * t + j) * hd + d]))
                        .sum();
                    total += out * f64::from(w[(h * t + i) * hd + d]);
                }
            }
        }
        total
    }

    #[test]
    fn forward_and_backward_match_the_naive_attention() {
        for window in [None, Some(5)] {
            let s = Shape {
                t: 70, // two blocks, the second partial
                heads: 4,
                kv_heads: 2,
                head_dim: 8,
                scale: 0.35,
                window,
            };
            let (nq, nkv) = (s.heads * s.t * s.head_dim, s.kv_heads * s.t * s.head_dim);
            let q = pseudo_random(nq, 1);
            let k = pseudo_random(nkv, 2);
            let v = pseudo_random(nkv, 3);
            let w = pseudo_random(nq, 4);
            let (o, lse) = forward(&s, &q, &k, &v).unwrap();
            let got: f64 = o.iter().zip(&w).map(|(a, b)| f64::from(a * b)).sum();
            let want = naive_loss(&s, &q, &k, &v, &w);
            assert!(
                (got - want).abs() < 1e-3 * want.abs().max(1.0),
                "{got} vs {want}"
            );
            let (dq, dk, dv) = backward(&s, &q, &k, &v, &o, &lse, &w).unwrap();
            let h = 1e-2f32;
            for (name, x, grad) in [("q", &q, &dq), ("k", &k, &dk), ("v", &v, &dv)] {
                for idx in [0, 37, x.len() / 2 + 3, x.len() - 1] {
                    let mut plus = x.clone();
                    plus[idx] += h;
                    let mut minus = x.clone();
                    minus[idx] -= h;
                    let eval = |arr: &Vec<f32>| match name {
                        "q" => naive_loss(&s, arr, &k, &v, &w),
                        "k" => naive_loss(&s, &q, arr, &v, &w),
                        _ => naive_loss(&s, &q, &k, arr, &w),
                    };
                    let numeric = (eval(&plus) - eval(&minus)) / (2.0 * f64::from(h));
                    assert!(
                        (f64::from(grad[idx]) - numeric).abs() < 2e-3 * numeric.abs().max(1.0),
                        "{window:?} d{name}[{idx}]: {} vs {numeric}",
                        grad[idx]
                    );
                }
            }
        }
    }
}
