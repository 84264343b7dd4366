//! Attention of one new query over a token-major f32 KV cache (decoding).
//!
//! The cached positions are split into chunks that run in parallel. Each
//! chunk reads every key once for all the query heads of its KV group
//! (grouped-query attention shares the load), keeps its own softmax maximum
//! and sum, and the chunks are merged as flash-decoding does: with the
//! global maximum `M` and sum `S = Σ_c S_c·e^{m_c−M}`, a position's
//! probability is `e^{s−m_c}·e^{m_c−M}/S`. With `f16_rounding` the query and
//! the probabilities are rounded to f16 first, as llama.cpp's f16 cache
//! multiplies them. Dot products and updates use AVX2/FMA when the CPU has
//! them (checked at run time), else portable loops.

use rayon::prelude::*;

use super::vector::{round_f16, Kernels};

/// One decoding query and the attention's shape.
#[derive(Debug, Clone, Copy)]
pub struct DecodeQuery<'a> {
    /// `[heads · head_dim]`, after rope.
    pub q: &'a [f32],
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (each serves `heads / kv_heads` query heads).
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Score scale (usually `1/√head_dim`).
    pub scale: f32,
    /// Gemma 2's soft cap of the scores, if any.
    pub softcap: Option<f32>,
    /// Round the query and the probabilities to f16 (an f16 cache's numerics).
    pub f16_rounding: bool,
}

/// A layer's cached keys or values, token-major `[len, kv_heads, head_dim]`.
#[derive(Debug, Clone, Copy)]
pub enum KvView<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f16 values (an f16 cache), widened to f32 in the kernels' registers.
    F16(&'a [half::f16]),
}

impl<'a> KvView<'a> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F16(v) => v.len(),
        }
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `kernels.dot` of positions' values `range` with `x` (f16 values
    /// widened in registers, in the same order of sums).
    fn dot(&self, kernels: Kernels, range: std::ops::Range<usize>, x: &[f32]) -> f32 {
        match *self {
            Self::F32(v) => (kernels.dot)(&v[range], x),
            Self::F16(v) => (kernels.dot_f16)(&v[range], x),
        }
    }

    /// `out += p · values[range]` through `kernels.axpy` (or its f16 twin).
    fn axpy(&self, kernels: Kernels, out: &mut [f32], p: f32, range: std::ops::Range<usize>) {
        match *self {
            Self::F32(v) => (kernels.axpy)(out, p, &v[range]),
            Self::F16(v) => (kernels.axpy_f16)(out, p, &v[range]),
        }
    }
}

/// Below this much work (positions × heads × head_dim) one thread does it all.
const PARALLEL_WORK: usize = 1 << 16;
/// The fewest positions a parallel chunk gets.
const MIN_CHUNK: usize = 32;

/// A chunk's softmax statistics per head: maximum score and `Σ e^{s−max}`.
struct ChunkStats {
    max: Vec<f32>,
    sum: Vec<f32>,
}

/// Attention output `[heads · head_dim]` of `query` over cached positions
/// `first..total` of the token-major `[len, kv_heads, head_dim]` keys `k`
/// and values `v`.
pub fn attend_one(
    query: &DecodeQuery,
    k: KvView,
    v: KvView,
    first: usize,
    total: usize,
) -> Vec<f32> {
    let (nh, hd) = (query.heads, query.head_dim);
    let n = total.saturating_sub(first);
    if n == 0 || nh == 0 || hd == 0 {
        return vec![0.0; nh * hd];
    }
    let kernels = Kernels::select();
    let mut q = query.q.to_vec();
    if query.f16_rounding {
        (kernels.round_f16)(&mut q);
    }
    // Small caches are one chunk, which rayon runs on this thread.
    let chunk = if n * nh * hd >= PARALLEL_WORK {
        n.div_ceil(2 * rayon::current_num_threads()).max(MIN_CHUNK)
    } else {
        n
    };
    // Pass 1: scores → e^{s − chunk max}, stored [position][head].
    let mut weights = vec![0f32; n * nh];
    let score_chunk = |(c, w): (usize, &mut [f32])| -> ChunkStats {
        let start = first + c * chunk;
        score_positions(query, &q, k, start, w, kernels)
    };
    let stats: Vec<ChunkStats> = weights
        .par_chunks_mut(chunk * nh)
        .enumerate()
        .map(score_chunk)
        .collect();
    // Merge the chunks' statistics: per chunk and head, the factor that
    // turns its local weights into probabilities.
    let factors = merge_stats(&stats, nh);
    // Pass 2: Σ p·v per chunk, then the chunks summed.
    let weigh_chunk = |(c, w): (usize, &[f32])| -> Vec<f32> {
        let start = first + c * chunk;
        weighted_values(query, v, start, w, &factors[c * nh..(c + 1) * nh], kernels)
    };
    let partials: Vec<Vec<f32>> = weights
        .par_chunks(chunk * nh)
        .enumerate()
        .map(weigh_chunk)
        .collect();
    let mut out = vec![0f32; nh * hd];
    for part in &partials {
        (kernels.axpy)(&mut out, 1.0, part);
    }
    out
}

/// Scores of positions `start..start + w.len()/heads`, turned into
/// `e^{s − max}` in place with the chunk's maximum and sum per head.
fn score_positions(
    query: &DecodeQuery,
    q: &[f32],
    k: KvView,
    start: usize,
    w: &mut [f32],
    kernels: Kernels,
) -> ChunkStats {
    let (nh, nkv, hd) = (query.heads, query.kv_heads.max(1), query.head_dim);
    let groups = (nh / nkv).max(1);
    let width = nkv * hd;
    let mut max = vec![f32::NEG_INFINITY; nh];
    for (i, row) in w.chunks_mut(nh).enumerate() {
        let at = (start + i) * width;
        for (h, slot) in row.iter_mut().enumerate() {
            let g = h / groups;
            let keys = at + g * hd..at + (g + 1) * hd;
            let s = k.dot(kernels, keys, &q[h * hd..(h + 1) * hd]) * query.scale;
            let s = match query.softcap {
                Some(c) => (s / c).tanh() * c,
                None => s,
            };
            *slot = s;
            max[h] = max[h].max(s);
        }
    }
    for row in w.chunks_mut(nh) {
        for (slot, m) in row.iter_mut().zip(&max) {
            *slot -= m;
        }
    }
    (kernels.exp)(w);
    let mut sum = vec![0f32; nh];
    for row in w.chunks(nh) {
        for (s, e) in sum.iter_mut().zip(row) {
            *s += e;
        }
    }
    ChunkStats { max, sum }
}

/// Per chunk and head, `e^{m_c − M} / S`.
fn merge_stats(stats: &[ChunkStats], heads: usize) -> Vec<f32> {
    let mut factors = vec![0f32; stats.len() * heads];
    for h in 0..heads {
        let global = stats.iter().fold(f32::NEG_INFINITY, |m, s| m.max(s.max[h]));
        let total: f32 = stats
            .iter()
            .map(|s| s.sum[h] * (s.max[h] - global).exp())
            .sum();
        for (c, s) in stats.iter().enumerate() {
            factors[c * heads + h] = (s.max[h] - global).exp() / total;
        }
    }
    factors
}

/// `Σ p·v` over one chunk's positions, `[heads · head_dim]`.
fn weighted_values(
    query: &DecodeQuery,
    v: KvView,
    start: usize,
    w: &[f32],
    factors: &[f32],
    kernels: Kernels,
) -> Vec<f32> {
    let (nh, nkv, hd) = (query.heads, query.kv_heads.max(1), query.head_dim);
    let groups = (nh / nkv).max(1);
    let width = nkv * hd;
    let mut out = vec![0f32; nh * hd];
    for (i, row) in w.chunks(nh).enumerate() {
        let at = (start + i) * width;
        for (h, &e) in row.iter().enumerate() {
            let mut p = e * factors[h];
            if query.f16_rounding {
                p = round_f16(p);
            }
            let g = h / groups;
            let values = at + g * hd..at + (g + 1) * hd;
            v.axpy(kernels, &mut out[h * hd..(h + 1) * hd], p, values);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::vector::{pseudo_random, reference_attention_row};

    /// The textbook computation: per head, softmax over all positions, then
    /// the weighted sum of values (f64).
    fn reference(
        query: &DecodeQuery,
        k: &[f32],
        v: &[f32],
        first: usize,
        total: usize,
    ) -> Vec<f32> {
        let (nh, nkv, hd) = (query.heads, query.kv_heads, query.head_dim);
        let width = nkv * hd;
        (0..nh)
            .flat_map(|h| {
                reference_attention_row(
                    &query.q[h * hd..(h + 1) * hd],
                    k,
                    v,
                    width,
                    h / (nh / nkv),
                    first..total,
                    query.scale,
                    query.softcap,
                )
            })
            .collect()
    }

    #[test]
    fn chunked_attention_matches_the_reference() {
        // Short (one chunk) and long (parallel chunks) caches, a window,
        // grouped heads, soft-capping, odd head widths (SIMD tails).
        for (heads, kv_heads, hd, total, first, softcap) in [
            (4, 4, 8, 5, 0, None),
            (9, 3, 64, 700, 0, None),
            (8, 2, 36, 1500, 300, Some(30.0)),
            (2, 1, 13, 3000, 0, None),
        ] {
            let q = pseudo_random(heads * hd, 1);
            let k = pseudo_random(total * kv_heads * hd, 2);
            let v = pseudo_random(total * kv_heads * hd, 3);
            let query = DecodeQuery {
                q: &q,
                heads,
                kv_heads,
                head_dim: hd,
                scale: 1.0 / (hd as f32).sqrt() * 4.0,
                softcap,
                f16_rounding: false,
            };
            let want = reference(&query, &k, &v, first, total);
            let got = attend_one(&query, KvView::F32(&k), KvView::F32(&v), first, total);
            let diff = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "{heads}/{kv_heads}/{hd}/{total}: {diff}");
            let rounded = attend_one(
                &DecodeQuery {
                    f16_rounding: true,
                    ..query
                },
                KvView::F32(&k),
                KvView::F32(&v),
                first,
                total,
            );
            // An f16 cache of the same (f16-rounded) values gives the same result.
            let half = |x: &[f32]| -> (Vec<f32>, Vec<half::f16>) {
                let h: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
                (h.iter().map(|v| v.to_f32()).collect(), h)
            };
            let ((k32, k16), (v32, v16)) = (half(&k), half(&v));
            let rounded_query = DecodeQuery {
                f16_rounding: true,
                ..query
            };
            let from_f32 = attend_one(
                &rounded_query,
                KvView::F32(&k32),
                KvView::F32(&v32),
                first,
                total,
            );
            let from_f16 = attend_one(
                &rounded_query,
                KvView::F16(&k16),
                KvView::F16(&v16),
                first,
                total,
            );
            assert_eq!(
                from_f32, from_f16,
                "{heads}/{kv_heads}/{hd}/{total}: f16 storage"
            );
            let diff = want
                .iter()
                .zip(&rounded)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 2e-3, "f16 rounding: {diff}");
        }
    }
}
