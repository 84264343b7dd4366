//! Attention of a prompt's new rows over a token-major f32 KV cache
//! (decoder prefill, causal) or of an input over itself (encoders,
//! bidirectional).
//!
//! Each query scores only the keys it may see (the causal triangle, and a
//! sliding window when the layer has one), so nothing is computed for
//! masked positions; softmax, the optional f16 rounding (llama.cpp's f16
//! cache numerics: queries and probabilities rounded) and the weighted sum
//! of values run per query in one pass over its scores. Work is split by
//! head and by blocks of queries, which rayon balances (later queries see
//! more keys).

use rayon::prelude::*;

use super::gemm::{matmul_into, MatRef};
use super::vector::{lane_max, lane_sum, Kernels};

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
    /// Whether a query sees only keys up to its own position (decoders);
    /// `false` lets every query see every position (encoders).
    pub causal: bool,
}

/// Queries per parallel task (one pair of GEMMs; causal rows of a block
/// compute up to this many masked scores each).
const QUERIES_PER_TASK: usize = 32;

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
    let stored = k.len().min(v.len()) / width;
    let positions = if queries.causal {
        stored.min(queries.start + t)
    } else {
        stored
    };
    let kernels = Kernels::select();
    let mut q = queries.q[..nh * t * hd].to_vec();
    if queries.f16_rounding {
        (kernels.round_f16)(&mut q);
    }
    let groups = (nh / nkv).max(1);
    let cache = Cache {
        k,
        v,
        width,
        positions,
    };
    // Per head `[tokens, head_dim]`, transposed to token-major at the end.
    let mut by_head = vec![0f32; nh * t * hd];
    by_head
        .par_chunks_mut(t * hd)
        .enumerate()
        .for_each(|(h, head_out)| {
            let g = (h / groups).min(nkv - 1);
            let q_head = &q[h * t * hd..(h + 1) * t * hd];
            head_out
                .par_chunks_mut(QUERIES_PER_TASK * hd)
                .enumerate()
                .for_each(|(block, out)| {
                    let first = block * QUERIES_PER_TASK;
                    let rows = first..first + out.len() / hd;
                    let block_q = &q_head[rows.start * hd..rows.end * hd];
                    attend_block(queries, kernels, &cache, g, block_q, rows, out);
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

/// The token-major cache of one layer.
struct Cache<'a> {
    k: &'a [f32],
    v: &'a [f32],
    /// `kv_heads · head_dim`.
    width: usize,
    /// Positions the queries may see at most.
    positions: usize,
}

/// Queries `rows` of one head (`q`: `[rows, head_dim]`) attending through
/// KV head `g`, into `out` (`[rows, head_dim]`): scores of the block against
/// every key any of its rows sees (one GEMM), the invisible ones dropped
/// per row, softmax, then probabilities × values (a second GEMM).
fn attend_block(
    queries: &PromptQueries,
    kernels: Kernels,
    cache: &Cache,
    g: usize,
    q: &[f32],
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let hd = queries.head_dim;
    let bq = rows.len();
    let visible = |i: usize| {
        if !queries.causal {
            return 0..cache.positions;
        }
        let p = queries.start + i;
        let first = queries.window.map_or(0, |w| (p + 1).saturating_sub(w));
        first..(p + 1).min(cache.positions)
    };
    let first = visible(rows.start).start;
    let end = visible(rows.end - 1).end;
    let n = end.saturating_sub(first);
    if n == 0 {
        out.fill(0.0);
        return;
    }
    let keys = MatRef {
        data: &cache.k[first * cache.width + g * hd..],
        rows: n,
        cols: hd,
        row_stride: cache.width,
        col_stride: 1,
    };
    let values = MatRef {
        data: &cache.v[first * cache.width + g * hd..],
        ..keys
    };
    let mut scores = vec![0f32; bq * n];
    let qm = MatRef::row_major(q, bq, hd);
    if matmul_into(&mut scores, n, qm, keys.t(), false).is_none() {
        out.fill(0.0);
        return;
    }
    for (r, row) in scores.chunks_exact_mut(n).enumerate() {
        let seen = visible(rows.start + r);
        let (lo, hi) = (seen.start - first, seen.end - first);
        softmax_visible(queries, kernels, row, lo..hi);
    }
    if matmul_into(out, hd, MatRef::row_major(&scores, bq, n), values, false).is_none() {
        out.fill(0.0);
    }
}

/// One row of raw scores turned into probabilities over `seen` (scale,
/// soft cap, softmax, optional f16 rounding); zero elsewhere.
fn softmax_visible(
    queries: &PromptQueries,
    kernels: Kernels,
    row: &mut [f32],
    seen: std::ops::Range<usize>,
) {
    row[..seen.start].fill(0.0);
    row[seen.end..].fill(0.0);
    let visible = &mut row[seen];
    let scale = queries.scale;
    match queries.softcap {
        Some(c) => visible
            .iter_mut()
            .for_each(|s| *s = (*s * scale / c).tanh() * c),
        None => visible.iter_mut().for_each(|s| *s *= scale),
    }
    let max = lane_max(visible);
    for s in visible.iter_mut() {
        *s -= max;
    }
    (kernels.exp)(visible);
    let sum = lane_sum(visible, |v| v);
    let inv = 1.0 / sum;
    for s in visible.iter_mut() {
        *s *= inv;
    }
    if queries.f16_rounding {
        (kernels.round_f16)(visible);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::vector::{pseudo_random, reference_attention_row};

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
            for i in 0..t {
                let p = queries.start + i;
                let first = queries.window.map_or(0, |w| (p + 1).saturating_sub(w));
                let row = reference_attention_row(
                    &queries.q[(h * t + i) * hd..(h * t + i + 1) * hd],
                    k,
                    v,
                    width,
                    h / (nh / nkv),
                    first..p + 1,
                    queries.scale,
                    queries.softcap,
                );
                out[(i * nh + h) * hd..(i * nh + h + 1) * hd].copy_from_slice(&row);
            }
        }
        out
    }

    /// A fresh causal prompt (no cache, window, soft cap or rounding).
    fn causal_queries(
        q: &[f32],
        tokens: usize,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        scale: f32,
    ) -> PromptQueries<'_> {
        PromptQueries {
            q,
            tokens,
            start: 0,
            heads,
            kv_heads,
            head_dim,
            scale,
            softcap: None,
            window: None,
            f16_rounding: false,
            causal: true,
        }
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
                start,
                softcap,
                window,
                ..causal_queries(
                    &q,
                    tokens,
                    heads,
                    kv_heads,
                    hd,
                    1.0 / (hd as f32).sqrt() * 4.0,
                )
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
            f16_rounding: true,
            ..causal_queries(&q, tokens, heads, kv_heads, hd, 0.2)
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
            crate::kernels::attention::KvView::F32(&k),
            crate::kernels::attention::KvView::F32(&v),
            0,
            tokens,
        );
        let diff = max_diff(&all[(tokens - 1) * heads * hd..], &one);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn bidirectional_queries_see_every_position() {
        let (heads, hd, tokens) = (4, 24, 45);
        let q = pseudo_random(heads * tokens * hd, 7);
        let k = pseudo_random(tokens * heads * hd, 8);
        let v = pseudo_random(tokens * heads * hd, 9);
        let queries = PromptQueries {
            causal: false,
            ..causal_queries(&q, tokens, heads, heads, hd, 0.3)
        };
        let got = attend_prompt(&queries, &k, &v);
        for h in 0..heads {
            for i in 0..tokens {
                let want = reference_attention_row(
                    &q[(h * tokens + i) * hd..(h * tokens + i + 1) * hd],
                    &k,
                    &v,
                    heads * hd,
                    h,
                    0..tokens,
                    0.3,
                    None,
                );
                let row = &got[(i * heads + h) * hd..(i * heads + h + 1) * hd];
                assert!(max_diff(row, &want) < 1e-5, "head {h} query {i}");
            }
        }
    }
}
