//! Causal attention of a prompt's new rows over a token-major f32 KV cache
//! (prefill).
//!
//! Each query scores only the keys it may see (the causal triangle, and a
//! sliding window when the layer has one), so nothing is computed for
//! masked positions; softmax, the optional f16 rounding (llama.cpp's f16
//! cache numerics: queries and probabilities rounded) and the weighted sum
//! of values run per query in one pass over its scores. Work is split by
//! head and by blocks of queries, which rayon balances (later queries see
//! more keys).

use rayon::prelude::*;

use super::vector::Kernels;

/// A prompt segment's queries and the attention's shape.
#[derive(Debug, Clone, Copy)]
pub struct PromptQueries<'a> {
    /// `[heads, tokens, head_dim]`, after rope.
    pub q: &'a [f32],
    /// New rows in the segment.
    pub tokens: usize,
    /// Position of the first new row (what the cache held before it).
    pub start: usize,
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
    /// Sliding window `w`: the query at position `p` sees key `j` only when
    /// `p − j < w` (transformers' rule).
    pub window: Option<usize>,
    /// Round the queries and the probabilities to f16 (an f16 cache).
    pub f16_rounding: bool,
}

/// Queries per parallel task.
const QUERIES_PER_TASK: usize = 8;

/// Attention output `[tokens, heads · head_dim]` of `queries` over the
/// token-major `[positions, kv_heads, head_dim]` keys `k` and values `v`,
/// which already hold the segment's own rows (`start + tokens` positions).
pub fn attend_prompt(queries: &PromptQueries, k: &[f32], v: &[f32]) -> Vec<f32> {
    let (nh, hd, t) = (queries.heads, queries.head_dim, queries.tokens);
    let nkv = queries.kv_heads.max(1);
    let width = nkv * hd;
    if nh == 0 || hd == 0 || t == 0 || queries.q.len() < nh * t * hd {
        return vec![0.0; t * nh * hd];
    }
    let positions = (k.len().min(v.len()) / width).min(queries.start + t);
    let kernels = Kernels::select();
    let mut q = queries.q[..nh * t * hd].to_vec();
    if queries.f16_rounding {
        (kernels.round_f16)(&mut q);
    }
    let groups = (nh / nkv).max(1);
    // Per head `[tokens, head_dim]`, transposed to token-major at the end.
    let mut by_head = vec![0f32; nh * t * hd];
    by_head
        .par_chunks_mut(t * hd)
        .enumerate()
        .for_each(|(h, head_out)| {
            let g = (h / groups).min(nkv - 1);
            let keys = Rows {
                data: k,
                offset: g * hd,
                stride: width,
                width: hd,
            };
            let values = Rows { data: v, ..keys };
            head_out
                .par_chunks_mut(QUERIES_PER_TASK * hd)
                .enumerate()
                .for_each(|(block, out)| {
                    let mut scores = Vec::with_capacity(positions);
                    for (r, out_row) in out.chunks_mut(hd).enumerate() {
                        let i = block * QUERIES_PER_TASK + r;
                        let query = &q[(h * t + i) * hd..(h * t + i + 1) * hd];
                        let p = queries.start + i;
                        let first = queries.window.map_or(0, |w| (p + 1).saturating_sub(w));
                        let end = (p + 1).min(positions);
                        attend_row(
                            queries,
                            kernels,
                            query,
                            keys,
                            values,
                            first..end,
                            &mut scores,
                            out_row,
                        );
                    }
                });
        });
    let mut out = vec![0f32; t * nh * hd];
    for (h, head) in by_head.chunks_exact(t * hd).enumerate() {
        for (i, row) in head.chunks_exact(hd).enumerate() {
            out[(i * nh + h) * hd..(i * nh + h + 1) * hd].copy_from_slice(row);
        }
    }
    out
}

/// Rows of one KV head inside a token-major cache.
#[derive(Clone, Copy)]
struct Rows<'a> {
    data: &'a [f32],
    offset: usize,
    stride: usize,
    width: usize,
}

impl<'a> Rows<'a> {
    fn row(&self, j: usize) -> &'a [f32] {
        let at = j * self.stride + self.offset;
        &self.data[at..at + self.width]
    }
}

/// One query's softmax-weighted sum of the values at `visible` into `out`.
#[allow(clippy::too_many_arguments)]
fn attend_row(
    queries: &PromptQueries,
    kernels: Kernels,
    query: &[f32],
    keys: Rows,
    values: Rows,
    visible: std::ops::Range<usize>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    scores.clear();
    let mut j = visible.start;
    while j + 4 <= visible.end {
        let rows = [
            keys.row(j),
            keys.row(j + 1),
            keys.row(j + 2),
            keys.row(j + 3),
        ];
        scores.extend((kernels.dot4)(query, rows));
        j += 4;
    }
    scores.extend((j..visible.end).map(|j| (kernels.dot)(query, keys.row(j))));
    let mut max = f32::NEG_INFINITY;
    for s in scores.iter_mut() {
        *s *= queries.scale;
        if let Some(c) = queries.softcap {
            *s = (*s / c).tanh() * c;
        }
        max = max.max(*s);
    }
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    for s in scores.iter_mut() {
        *s *= inv;
    }
    if queries.f16_rounding {
        (kernels.round_f16)(scores);
    }
    out.fill(0.0);
    for (j, &p) in visible.zip(scores.iter()) {
        (kernels.axpy)(out, p, values.row(j));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::vector::pseudo_random;

    /// The textbook computation in f64: per head and query, softmax over
    /// the visible positions, then the weighted sum of values.
    fn reference(queries: &PromptQueries, k: &[f32], v: &[f32]) -> Vec<f32> {
        let (nh, nkv, hd, t) = (
            queries.heads,
            queries.kv_heads,
            queries.head_dim,
            queries.tokens,
        );
        let width = nkv * hd;
        let mut out = vec![0f32; t * nh * hd];
        for h in 0..nh {
            let g = h / (nh / nkv);
            for i in 0..t {
                let p = queries.start + i;
                let first = queries.window.map_or(0, |w| (p + 1).saturating_sub(w));
                let scores: Vec<f64> = (first..=p)
                    .map(|j| {
                        let s: f64 = (0..hd)
                            .map(|d| {
                                f64::from(queries.q[(h * t + i) * hd + d])
                                    * f64::from(k[j * width + g * hd + d])
                            })
                            .sum::<f64>()
                            * f64::from(queries.scale);
                        match queries.softcap {
                            Some(c) => (s / f64::from(c)).tanh() * f64::from(c),
                            None => s,
                        }
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for d in 0..hd {
                    out[(i * nh + h) * hd + d] = (first..=p)
                        .zip(&scores)
                        .map(|(j, s)| (s - max).exp() / sum * f64::from(v[j * width + g * hd + d]))
                        .sum::<f64>() as f32;
                }
            }
        }
        out
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    }

    #[test]
    fn prompt_attention_matches_the_reference() {
        // A fresh prompt, a prompt after cached rows, a window, grouped
        // heads, soft-capping, odd head widths (SIMD tails), a single row.
        for (heads, kv_heads, hd, tokens, start, window, softcap) in [
            (4, 4, 8, 5, 0, None, None),
            (9, 3, 64, 70, 0, None, None),
            (8, 2, 36, 33, 40, Some(16), Some(30.0)),
            (2, 1, 13, 17, 3, None, None),
            (3, 1, 16, 1, 9, None, None),
        ] {
            let total = start + tokens;
            let q = pseudo_random(heads * tokens * hd, 1);
            let k = pseudo_random(total * kv_heads * hd, 2);
            let v = pseudo_random(total * kv_heads * hd, 3);
            let queries = PromptQueries {
                q: &q,
                tokens,
                start,
                heads,
                kv_heads,
                head_dim: hd,
                scale: 1.0 / (hd as f32).sqrt() * 4.0,
                softcap,
                window,
                f16_rounding: false,
            };
            let want = reference(&queries, &k, &v);
            let got = attend_prompt(&queries, &k, &v);
            assert_eq!(got.len(), want.len());
            let diff = max_diff(&want, &got);
            assert!(
                diff < 1e-5,
                "{heads}/{kv_heads}/{hd}/{tokens}/{start}: {diff}"
            );
            let rounded = attend_prompt(
                &PromptQueries {
                    f16_rounding: true,
                    ..queries
                },
                &k,
                &v,
            );
            let diff = max_diff(&want, &rounded);
            assert!(diff < 2e-3, "f16 rounding: {diff}");
        }
    }

    #[test]
    fn the_last_query_equals_the_decode_kernel() {
        // The prompt's last row sees what a decode step at that position sees.
        let (heads, kv_heads, hd, tokens) = (6, 2, 32, 40);
        let q = pseudo_random(heads * tokens * hd, 4);
        let k = pseudo_random(tokens * kv_heads * hd, 5);
        let v = pseudo_random(tokens * kv_heads * hd, 6);
        let queries = PromptQueries {
            q: &q,
            tokens,
            start: 0,
            heads,
            kv_heads,
            head_dim: hd,
            scale: 0.2,
            softcap: None,
            window: None,
            f16_rounding: true,
        };
        let all = attend_prompt(&queries, &k, &v);
        let last: Vec<f32> = (0..heads)
            .flat_map(|h| q[(h * tokens + tokens - 1) * hd..(h * tokens + tokens) * hd].to_vec())
            .collect();
        let one = crate::kernels::attention::attend_one(
            &crate::kernels::attention::DecodeQuery {
                q: &last,
                heads,
                kv_heads,
                head_dim: hd,
                scale: 0.2,
                softcap: None,
                f16_rounding: true,
            },
            &k,
            &v,
            0,
            tokens,
        );
        let diff = max_diff(&all[(tokens - 1) * heads * hd..], &one);
        assert!(diff < 1e-5, "{diff}");
    }
}
