//! Full (non-causal) attention of one input on the calling thread, read
//! straight from a fused `[q | k | v]` projection buffer: per head, the
//! keys are transposed once so eight queries at a time score 32 keys per
//! pair of vector operations, then softmax, then the probabilities weight the
//! values sixteen output lanes at a time (AVX-512 intrinsics where the CPU
//! has them, plain loops elsewhere).

use super::vector::{lane_max, lane_sum, Kernels};

/// Floats per vector.
const LANES: usize = 16;
/// Keys (and head lanes) per step: two vectors, padded to a multiple.
const WIDTH: usize = 2 * LANES;
/// Queries scored together (each key vector is loaded once for all; with
/// two vectors per step, sixteen independent accumulators).
const QUERIES: usize = 8;

/// Where one input's projections lie and how attention is shaped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Tokens of the input.
    pub(crate) tokens: usize,
    /// Attention heads.
    pub(crate) heads: usize,
    /// Width of a head.
    pub(crate) head_dim: usize,
    /// Multiplier of the raw scores (`1/√head_dim` for BERT; positive).
    pub(crate) scale: f32,
}

/// Per-head buffers, reused across heads and inputs.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// `[head_dim, keys padded to WIDTH]`.
    keys_t: Vec<f32>,
    /// `[tokens, head_dim padded to WIDTH]`.
    values: Vec<f32>,
    /// `[tokens, head_dim padded]`.
    queries: Vec<f32>,
    /// `[QUERIES, keys padded]`.
    scores: Vec<f32>,
    /// `[QUERIES, head_dim padded]`.
    context: Vec<f32>,
}

/// `out[i, h·d..(h+1)·d] = softmax(q_i,h · K_hᵀ · scale) · V_h` for every
/// token `i` and head `h`. `qkv` holds the input's rows `qkv_stride`
/// apart, each `[q | k | v]` of `heads · head_dim` values; `out`'s rows
/// are `out_stride` apart. `None` (and `out` untouched) when a slice is
/// too short for the shape.
pub(crate) fn attend(
    qkv: &[f32],
    qkv_stride: usize,
    shape: Shape,
    out: &mut [f32],
    out_stride: usize,
    scratch: &mut Scratch,
) -> Option<()> {
    let width = shape.heads * shape.head_dim;
    let t = shape.tokens;
    if t == 0 || width == 0 {
        return Some(());
    }
    if qkv_stride < 3 * width
        || (t - 1) * qkv_stride + 3 * width > qkv.len()
        || out_stride < width
        || (t - 1) * out_stride + width > out.len()
    {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        #[allow(unsafe_code)]
        // SAFETY: AVX-512F (which implies FMA) was just detected.
        unsafe {
            avx512_attend(qkv, qkv_stride, shape, out, out_stride, scratch);
        }
        return Some(());
    }
    attend_body::<Portable>(qkv, qkv_stride, shape, out, out_stride, scratch);
    Some(())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(unsafe_code)]
unsafe fn avx512_attend(
    qkv: &[f32],
    qkv_stride: usize,
    shape: Shape,
    out: &mut [f32],
    out_stride: usize,
    scratch: &mut Scratch,
) {
    attend_body::<Avx512>(qkv, qkv_stride, shape, out, out_stride, scratch);
}

/// A strided `[rows, ≥ width]` block of floats: row `r` starts at
/// `data[r · stride]`.
#[derive(Clone, Copy)]
struct Rows<'a> {
    data: &'a [f32],
    stride: usize,
}

impl Rows<'_> {
    /// Whether `rows` rows of `width` floats lie inside `data`.
    fn holds(&self, rows: usize, width: usize) -> bool {
        rows == 0 || (self.stride >= width && (rows - 1) * self.stride + width <= self.data.len())
    }
}

/// The two inner loops, per instruction set. Both check that their reads
/// and writes stay inside the slices and do nothing otherwise.
trait Inner {
    /// Raw scores of `n ≤ QUERIES` queries (`q`: `n` rows of `hd`) against
    /// all keys (`keys_t`: `[hd, keys]`) into `scores` (`[QUERIES, keys]`).
    fn score_block(q: Rows, n: usize, hd: usize, keys_t: &[f32], keys: usize, scores: &mut [f32]);
    /// `out[i] = Σ_{j<t} p[i, j] · v[j]` for `n` queries (`p`:
    /// `[QUERIES, keys]`), `dims` lanes each (`v`: `t` rows, `out`: `n`
    /// rows `out_stride` apart).
    #[allow(clippy::too_many_arguments)]
    fn weigh_values(
        p: &[f32],
        keys: usize,
        n: usize,
        t: usize,
        v: Rows,
        dims: usize,
        out: &mut [f32],
        out_stride: usize,
    );
}

/// Plain loops (any CPU).
struct Portable;

impl Inner for Portable {
    #[inline(always)]
    fn score_block(q: Rows, n: usize, hd: usize, keys_t: &[f32], keys: usize, scores: &mut [f32]) {
        if !q.holds(n, hd) || keys_t.len() < hd * keys || scores.len() < n * keys {
            return;
        }
        for i in 0..n {
            let row = &mut scores[i * keys..(i + 1) * keys];
            row.fill(0.0);
            for d in 0..hd {
                let qd = q.data[i * q.stride + d];
                for (s, &k) in row.iter_mut().zip(&keys_t[d * keys..(d + 1) * keys]) {
                    *s += qd * k;
                }
            }
        }
    }

    #[inline(always)]
    fn weigh_values(
        p: &[f32],
        keys: usize,
        n: usize,
        t: usize,
        v: Rows,
        dims: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        let out_rows = Rows {
            data: out,
            stride: out_stride,
        };
        if p.len() < n * keys || t > keys || !v.holds(t, dims) || !out_rows.holds(n, dims) {
            return;
        }
        for i in 0..n {
            let acc = &mut out[i * out_stride..i * out_stride + dims];
            acc.fill(0.0);
            for j in 0..t {
                let pj = p[i * keys + j];
                let vj = &v.data[j * v.stride..j * v.stride + dims];
                for (a, &x) in acc.iter_mut().zip(vj) {
                    *a += pj * x;
                }
            }
        }
    }
}

/// AVX-512 (sixteen-lane fused multiply-adds, eight queries per pair of
/// key loads: sixteen accumulators, enough to hide the FMA latency).
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
impl Inner for Avx512 {
    #[inline(always)]
    fn score_block(q: Rows, n: usize, hd: usize, keys_t: &[f32], keys: usize, scores: &mut [f32]) {
        use std::arch::x86_64::*;
        if n == 0
            || !q.holds(n, hd)
            || !keys.is_multiple_of(WIDTH)
            || keys_t.len() < hd * keys
            || scores.len() < QUERIES * keys
        {
            return;
        }
        // Rows past `n` repeat the last query (computed, never used).
        let rows: [*const f32; QUERIES] =
            std::array::from_fn(|i| q.data[i.min(n - 1) * q.stride..].as_ptr());
        // SAFETY: reads stay within `hd` floats of the `n` checked query
        // rows and the `hd · keys` floats of `keys_t`; writes within the
        // `QUERIES · keys` of `scores`; this body only runs inside
        // `avx512_attend` (AVX-512F detected).
        unsafe {
            for j0 in (0..keys).step_by(WIDTH) {
                let (lo, hi) = weighted_sums(rows, keys_t.as_ptr().add(j0), keys, hd);
                for i in 0..QUERIES {
                    let s = scores.as_mut_ptr().add(i * keys + j0);
                    _mm512_storeu_ps(s, lo[i]);
                    _mm512_storeu_ps(s.add(LANES), hi[i]);
                }
            }
        }
    }

    #[inline(always)]
    fn weigh_values(
        p: &[f32],
        keys: usize,
        n: usize,
        t: usize,
        v: Rows,
        dims: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        use std::arch::x86_64::*;
        let out_rows = Rows {
            data: out,
            stride: out_stride,
        };
        if n == 0
            || !dims.is_multiple_of(WIDTH)
            || p.len() < QUERIES * keys
            || t > keys
            || !v.holds(t, dims)
            || !out_rows.holds(n, dims)
        {
            return;
        }
        let rows: [*const f32; QUERIES] = std::array::from_fn(|i| p[i * keys..].as_ptr());
        // SAFETY: reads within `t ≤ keys` floats of each `QUERIES` row of
        // `p` and `dims` floats of the `t` checked rows of `v`; writes
        // within `dims` floats of the `n` checked rows of `out`; AVX-512F
        // detected as above.
        unsafe {
            for c0 in (0..dims).step_by(WIDTH) {
                let (lo, hi) = weighted_sums(rows, v.data.as_ptr().add(c0), v.stride, t);
                for i in 0..n {
                    let o = out.as_mut_ptr().add(i * out_stride + c0);
                    _mm512_storeu_ps(o, lo[i]);
                    _mm512_storeu_ps(o.add(LANES), hi[i]);
                }
            }
        }
    }
}

/// The shared register block of both AVX-512 loops: for each of the
/// `QUERIES` rows `i`, `Σ_{s<steps} rows[i][s] · vectors[s·stride ..][..32]`,
/// as the low and high sixteen lanes. Eight broadcasts per pair of vector
/// loads, sixteen independent accumulators.
///
/// # Safety
/// AVX-512F must be enabled; `rows[i]` must be readable for `steps` floats
/// and `vectors` for `(steps − 1) · stride + 32`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
unsafe fn weighted_sums(
    rows: [*const f32; QUERIES],
    vectors: *const f32,
    stride: usize,
    steps: usize,
) -> (
    [std::arch::x86_64::__m512; QUERIES],
    [std::arch::x86_64::__m512; QUERIES],
) {
    use std::arch::x86_64::*;
    let mut lo = [_mm512_setzero_ps(); QUERIES];
    let mut hi = [_mm512_setzero_ps(); QUERIES];
    let mut vp = vectors;
    for s in 0..steps {
        let v0 = _mm512_loadu_ps(vp);
        let v1 = _mm512_loadu_ps(vp.add(LANES));
        for i in 0..QUERIES {
            let w = _mm512_set1_ps(*rows[i].add(s));
            lo[i] = _mm512_fmadd_ps(w, v0, lo[i]);
            hi[i] = _mm512_fmadd_ps(w, v1, hi[i]);
        }
        vp = vp.add(stride);
    }
    (lo, hi)
}

#[inline(always)]
fn attend_body<K: Inner>(
    qkv: &[f32],
    qkv_stride: usize,
    shape: Shape,
    out: &mut [f32],
    out_stride: usize,
    s: &mut Scratch,
) {
    let Shape {
        tokens: t,
        heads,
        head_dim: hd,
        scale,
    } = shape;
    let width = heads * hd;
    let keys = t.next_multiple_of(WIDTH);
    // Heads of a whole number of steps are read and written in place;
    // others go through zero-padded copies.
    let in_place = hd.is_multiple_of(WIDTH);
    let dims = hd.next_multiple_of(WIDTH);
    s.keys_t.clear();
    s.keys_t.resize(hd * keys, 0.0);
    if !in_place {
        for buffer in [&mut s.queries, &mut s.values] {
            buffer.clear();
            buffer.resize(t * dims, 0.0);
        }
        s.context.clear();
        s.context.resize(QUERIES * dims, 0.0);
    }
    s.scores.clear();
    s.scores.resize(QUERIES * keys, 0.0);
    let kernels = Kernels::select();
    for h in 0..heads {
        let col = h * hd;
        for j in 0..t {
            let row = &qkv[j * qkv_stride..];
            for (d, &k) in row[width + col..width + col + hd].iter().enumerate() {
                s.keys_t[d * keys + j] = k;
            }
            if !in_place {
                s.queries[j * dims..j * dims + hd].copy_from_slice(&row[col..col + hd]);
                s.values[j * dims..j * dims + hd]
                    .copy_from_slice(&row[2 * width + col..2 * width + col + hd]);
            }
        }
        let (queries, values) = if in_place {
            let at = |offset: usize| Rows {
                data: &qkv[offset..],
                stride: qkv_stride,
            };
            (at(col), at(2 * width + col))
        } else {
            let queries = Rows {
                data: &s.queries,
                stride: dims,
            };
            let values = Rows {
                data: &s.values,
                stride: dims,
            };
            (queries, values)
        };
        for i0 in (0..t).step_by(QUERIES) {
            let n = QUERIES.min(t - i0);
            let block = Rows {
                data: &queries.data[i0 * queries.stride..],
                ..queries
            };
            K::score_block(block, n, hd, &s.keys_t, keys, &mut s.scores);
            for row in s.scores.chunks_exact_mut(keys).take(n) {
                softmax(&mut row[..t], scale, kernels);
            }
            if in_place {
                let at = i0 * out_stride + col;
                K::weigh_values(
                    &s.scores,
                    keys,
                    n,
                    t,
                    values,
                    dims,
                    &mut out[at..],
                    out_stride,
                );
            } else {
                K::weigh_values(&s.scores, keys, n, t, values, dims, &mut s.context, dims);
                for q in 0..n {
                    let at = (i0 + q) * out_stride + col;
                    out[at..at + hd].copy_from_slice(&s.context[q * dims..q * dims + hd]);
                }
            }
        }
    }
}

/// Raw scores to probabilities, in place: `e^{scale·(s − max)}`, normalised.
#[inline(always)]
fn softmax(row: &mut [f32], scale: f32, kernels: Kernels) {
    let max = lane_max(row);
    for v in row.iter_mut() {
        *v = (*v - max) * scale;
    }
    (kernels.exp)(row);
    let sum: f32 = lane_sum(row, |v| v);
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::vector::{pseudo_random, reference_attention_row};

    #[test]
    fn attention_from_the_fused_buffer_equals_the_textbook_rows() {
        // Head widths below, at and above one vector; token counts not a
        // multiple of the query block or of the lanes.
        for &(t, heads, hd) in &[(1, 1, 4), (5, 4, 12), (37, 3, 16), (18, 2, 40), (70, 2, 32)] {
            let width = heads * hd;
            let stride = 3 * width + 2;
            let qkv = pseudo_random(t * stride, 9);
            let scale = 1.0 / (hd as f32).sqrt();
            let mut out = vec![f32::NAN; t * (width + 1)];
            let mut scratch = Scratch::default();
            let shape = Shape {
                tokens: t,
                heads,
                head_dim: hd,
                scale,
            };
            attend(&qkv, stride, shape, &mut out, width + 1, &mut scratch).unwrap();
            // The portable loops (what CPUs without AVX-512 run) agree.
            let mut portable = out.clone();
            attend_body::<Portable>(&qkv, stride, shape, &mut portable, width + 1, &mut scratch);
            for (a, b) in out.iter().zip(&portable) {
                assert!(
                    (a - b).abs() < 1e-6 || (a.is_nan() && b.is_nan()),
                    "{a} vs {b}"
                );
            }
            // Keys and values token-major, as the reference reads them.
            let pick = |part: usize| -> Vec<f32> {
                (0..t)
                    .flat_map(|j| {
                        qkv[j * stride + part * width..j * stride + (part + 1) * width].to_vec()
                    })
                    .collect()
            };
            let (k, v) = (pick(1), pick(2));
            for i in 0..t {
                for h in 0..heads {
                    let q = &qkv[i * stride + h * hd..i * stride + (h + 1) * hd];
                    let want = reference_attention_row(q, &k, &v, width, h, 0..t, scale, None);
                    let got = &out[i * (width + 1) + h * hd..i * (width + 1) + (h + 1) * hd];
                    for (a, b) in got.iter().zip(&want) {
                        assert!((a - b).abs() < 1e-5, "t={t} h={h} i={i}: {a} vs {b}");
                    }
                }
                assert!(
                    out[i * (width + 1) + width].is_nan(),
                    "the gap is left alone"
                );
            }
        }
    }

    #[test]
    fn short_buffers_are_refused() {
        let shape = Shape {
            tokens: 2,
            heads: 1,
            head_dim: 4,
            scale: 0.5,
        };
        let mut out = vec![0f32; 8];
        let mut s = Scratch::default();
        assert!(attend(&[0.0; 23], 12, shape, &mut out, 4, &mut s).is_none());
        assert!(attend(&[0.0; 24], 12, shape, &mut out[..7], 4, &mut s).is_none());
        assert!(attend(&[0.0; 24], 12, shape, &mut out, 4, &mut s).is_some());
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use crate::kernels::vector::pseudo_random;
    use std::time::Instant;

    /// Nanoseconds per (query, head) for MiniLM's shape (12 heads of 32)
    /// at typical abstract lengths:
    /// `cargo test --release -p kiln-models --lib attention_speed -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, run by hand"]
    fn attention_speed() {
        let (heads, hd) = (12, 32);
        let width = heads * hd;
        for t in [40, 76, 128, 256] {
            let qkv = pseudo_random(t * 3 * width, 3);
            let mut out = vec![0f32; t * width];
            let mut scratch = Scratch::default();
            let shape = Shape {
                tokens: t,
                heads,
                head_dim: hd,
                scale: 1.0 / (hd as f32).sqrt(),
            };
            let reps = 2_000_000 / (t * t);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let start = Instant::now();
                for _ in 0..reps {
                    attend(&qkv, 3 * width, shape, &mut out, width, &mut scratch).unwrap();
                }
                best = best.min(start.elapsed().as_secs_f64() / (reps * t * heads) as f64);
            }
            let flops = 4.0 * (t * hd) as f64;
            println!(
                "t={t}: {:.0} ns per query-head, {:.1} GFLOP/s",
                best * 1e9,
                flops / best / 1e9
            );
        }
    }
}
