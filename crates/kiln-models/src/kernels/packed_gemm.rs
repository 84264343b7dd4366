//! `y = x Wᵀ + b` for f32 weights packed once, at load, into panels of
//! [`PANEL`] output columns (`[k, PANEL]` each, zero-padded), so the
//! AVX-512 micro-kernel streams one contiguous panel while it keeps a
//! `6 × 64` tile of the output in 24 registers. Each call runs on the
//! calling thread only: the encoder splits its batch between threads
//! instead (no hand-offs inside a product).
//!
//! Measured on the Intel Xeon VM (2026-12-05, `examples/packed_gemm_bench`):
//! see BENCHMARKS.md. CPUs without AVX-512 keep the weights row-major and
//! take the `gemm` crate's single-threaded product.

use super::gemm::{matmul_add_into, MatRef};

/// Output columns per packed panel: four 16-lane vectors.
pub(crate) const PANEL: usize = 64;

/// A dense layer's weight `[n, k]` and bias `[n]`, laid out for
/// [`linear_into`].
#[derive(Debug, Clone)]
pub(crate) struct PackedLinear {
    n: usize,
    k: usize,
    /// Whether `data` holds panels (only ever on x86-64 with AVX-512).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    panels: bool,
    /// Panels `[n/PANEL][k][PANEL]` (AVX-512), else the row-major weight;
    /// 64-byte aligned so no vector load splits a cache line.
    data: AlignedFloats,
    /// `n` values, zero-padded to whole panels.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `weight` (`[n, k]`, row-major, as PyTorch's `Linear` stores
    /// it) and `bias` (`[n]`, zeros when `None`). `None` when the lengths
    /// do not match the shape.
    pub(crate) fn new(weight: &[f32], bias: Option<&[f32]>, n: usize, k: usize) -> Option<Self> {
        if weight.len() != n * k || bias.is_some_and(|b| b.len() != n) || n == 0 || k == 0 {
            return None;
        }
        let panels = avx512();
        let padded = n.div_ceil(PANEL) * PANEL;
        let mut full_bias = vec![0f32; if panels { padded } else { n }];
        if let Some(b) = bias {
            full_bias[..n].copy_from_slice(b);
        }
        let data = if panels {
            let mut data = AlignedFloats::zeros(padded * k);
            for (p, panel) in data.as_mut_slice().chunks_exact_mut(k * PANEL).enumerate() {
                for (col, row) in weight
                    .chunks_exact(k)
                    .enumerate()
                    .skip(p * PANEL)
                    .take(PANEL)
                {
                    let c = col - p * PANEL;
                    for (kk, &w) in row.iter().enumerate() {
                        panel[kk * PANEL + c] = w;
                    }
                }
            }
            data
        } else {
            let mut data = AlignedFloats::zeros(n * k);
            data.as_mut_slice().copy_from_slice(weight);
            data
        };
        Some(Self {
            n,
            k,
            panels,
            data,
            bias: full_bias,
        })
    }

    /// Output width.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Input width.
    pub(crate) fn k(&self) -> usize {
        self.k
    }
}

/// One cache line of floats.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// `len` floats starting on a cache-line boundary.
#[derive(Debug, Clone)]
struct AlignedFloats {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedFloats {
    fn zeros(len: usize) -> Self {
        Self {
            lines: vec![Line([0.0; 16]); len.div_ceil(16)],
            len,
        }
    }

    fn as_slice(&self) -> &[f32] {
        let all: &[[f32; 16]] = bytemuck_lines(&self.lines);
        &all.as_flattened()[..self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        let len = self.len;
        let all: &mut [[f32; 16]] = bytemuck_lines_mut(&mut self.lines);
        &mut all.as_flattened_mut()[..len]
    }
}

fn bytemuck_lines(lines: &[Line]) -> &[[f32; 16]] {
    // SAFETY: `Line` is `repr(C)` around `[f32; 16]` (64 bytes, no padding).
    #[allow(unsafe_code)]
    unsafe {
        std::slice::from_raw_parts(lines.as_ptr().cast(), lines.len())
    }
}

fn bytemuck_lines_mut(lines: &mut [Line]) -> &mut [[f32; 16]] {
    // SAFETY: as in `bytemuck_lines`; the borrow is unique.
    #[allow(unsafe_code)]
    unsafe {
        std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast(), lines.len())
    }
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y[r, ..n] = x[r, ..k] · Wᵀ + b` for `rows` rows; `x`'s rows are
/// `x_stride` apart, `y`'s `y_stride`. `None` (and `y` untouched) when a
/// row would reach past either slice.
pub(crate) fn linear_into(
    x: &[f32],
    x_stride: usize,
    rows: usize,
    w: &PackedLinear,
    y: &mut [f32],
    y_stride: usize,
) -> Option<()> {
    let (n, k) = (w.n, w.k);
    if rows == 0 {
        return Some(());
    }
    if x_stride < k || y_stride < n || (rows - 1) * x_stride + k > x.len() {
        return None;
    }
    if (rows - 1) * y_stride + n > y.len() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if w.panels {
        #[allow(unsafe_code)]
        // SAFETY: `panels` is only set when AVX-512F was detected; the
        // bounds of `x` and `y` were checked above, the panels hold
        // `padded n · k` values by construction.
        unsafe {
            avx512::linear(x, x_stride, rows, w, y, y_stride);
        }
        return Some(());
    }
    for r in 0..rows {
        y[r * y_stride..r * y_stride + n].copy_from_slice(&w.bias[..n]);
    }
    let a = MatRef {
        data: x,
        rows,
        cols: k,
        row_stride: x_stride,
        col_stride: 1,
    };
    matmul_add_into(
        y,
        y_stride,
        a,
        MatRef::row_major(w.data.as_slice(), n, k).t(),
        false,
    )
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use super::{PackedLinear, PANEL};
    use std::arch::x86_64::*;

    /// Output rows per micro-tile.
    const TILE_ROWS: usize = 6;
    /// Depth of one pass over a panel: a `[KC, 64]` slice (32 KiB) stays in
    /// L1 while every row tile of a block reads it.
    const KC: usize = 128;
    /// Rows per block: the block's `[ROW_BLOCK, KC]` slice of `x` stays in L2.
    const ROW_BLOCK: usize = 96;

    /// See [`super::linear_into`]; the caller checked the bounds and the CPU.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn linear(
        x: &[f32],
        x_stride: usize,
        rows: usize,
        w: &PackedLinear,
        y: &mut [f32],
        y_stride: usize,
    ) {
        let (n, k) = (w.n, w.k);
        let xp = x.as_ptr();
        let yp = y.as_mut_ptr();
        let mut scratch = [0f32; TILE_ROWS * PANEL];
        let panels = n.div_ceil(PANEL);
        let data = w.data.as_slice().as_ptr();
        for r0 in (0..rows).step_by(ROW_BLOCK) {
            let block = ROW_BLOCK.min(rows - r0);
            let tiles = block.div_ceil(TILE_ROWS);
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                for p in 0..panels {
                    let panel = data.add(p * k * PANEL + k0 * PANEL);
                    let cols = PANEL.min(n - p * PANEL);
                    let bias = (k0 == 0).then(|| w.bias.as_ptr().add(p * PANEL));
                    // The next slice of weights (next panel, else the next
                    // depth of the first), fetched into L2 a piece per tile
                    // while this one is multiplied: weights come from L3.
                    let next = if p + 1 < panels {
                        Some((p + 1, k0))
                    } else {
                        (k0 + KC < k).then_some((0, k0 + KC))
                    };
                    let next_lines = next.map_or(0, |(_, k1)| KC.min(k - k1) * PANEL / 16);
                    for (ti, t0) in (0..block).step_by(TILE_ROWS).enumerate() {
                        let fetch = match next {
                            Some((p1, k1)) => {
                                let lines = ti * next_lines / tiles..(ti + 1) * next_lines / tiles;
                                let first =
                                    data.add(p1 * k * PANEL + k1 * PANEL + lines.start * 16);
                                Prefetch {
                                    first,
                                    lines: lines.len(),
                                }
                            }
                            None => Prefetch {
                                first: panel,
                                lines: 0,
                            },
                        };
                        let r = r0 + t0;
                        let tile_rows = TILE_ROWS.min(block - t0);
                        let a = xp.add(r * x_stride + k0);
                        let c = yp.add(r * y_stride + p * PANEL);
                        if cols == PANEL {
                            tile(tile_rows, kc, a, x_stride, panel, c, y_stride, bias, fetch);
                        } else {
                            // A partial panel: through a full-width scratch tile.
                            let s = scratch.as_mut_ptr();
                            if bias.is_none() {
                                for i in 0..tile_rows {
                                    std::ptr::copy_nonoverlapping(
                                        c.add(i * y_stride),
                                        s.add(i * PANEL),
                                        cols,
                                    );
                                }
                            }
                            tile(tile_rows, kc, a, x_stride, panel, s, PANEL, bias, fetch);
                            for i in 0..tile_rows {
                                std::ptr::copy_nonoverlapping(
                                    s.add(i * PANEL),
                                    c.add(i * y_stride),
                                    cols,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Cache lines of weights to fetch into L2 during one tile.
    #[derive(Clone, Copy)]
    struct Prefetch {
        first: *const f32,
        lines: usize,
    }

    /// Dispatches a tile of `rows ≤ TILE_ROWS` rows to its monomorphic kernel.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile(
        rows: usize,
        kc: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        bias: Option<*const f32>,
        fetch: Prefetch,
    ) {
        match rows {
            6 => kernel::<6>(kc, a, lda, b, c, ldc, bias, fetch),
            5 => kernel::<5>(kc, a, lda, b, c, ldc, bias, fetch),
            4 => kernel::<4>(kc, a, lda, b, c, ldc, bias, fetch),
            3 => kernel::<3>(kc, a, lda, b, c, ldc, bias, fetch),
            2 => kernel::<2>(kc, a, lda, b, c, ldc, bias, fetch),
            _ => kernel::<1>(kc, a, lda, b, c, ldc, bias, fetch),
        }
    }

    /// `c[R, 64] (+)= a[R, kc] · b[kc, 64]`: starts from `bias` (each row)
    /// when given, else from `c`. Every second step also prefetches one of
    /// `fetch`'s lines (spread out: a burst of prefetches stalls the core).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn kernel<const R: usize>(
        kc: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        bias: Option<*const f32>,
        fetch: Prefetch,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        for (i, row) in acc.iter_mut().enumerate() {
            let src = match bias {
                Some(b) => b,
                None => c.add(i * ldc),
            };
            for (j, v) in row.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(src.add(16 * j));
            }
        }
        let mut rowp = [a; R];
        for (i, p) in rowp.iter_mut().enumerate() {
            *p = a.add(i * lda);
        }
        let mut bp = b;
        for kk in 0..kc {
            if kk % 2 == 0 && kk / 2 < fetch.lines {
                _mm_prefetch::<_MM_HINT_T1>(fetch.first.add(kk / 2 * 16).cast());
            }
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            let b2 = _mm512_loadu_ps(bp.add(32));
            let b3 = _mm512_loadu_ps(bp.add(48));
            for i in 0..R {
                let av = _mm512_set1_ps(*rowp[i].add(kk));
                acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
                acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);
                acc[i][3] = _mm512_fmadd_ps(av, b3, acc[i][3]);
            }
            bp = bp.add(PANEL);
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                _mm512_storeu_ps(c.add(i * ldc + 16 * j), *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::vector::pseudo_random;

    fn reference(x: &[f32], w: &[f32], b: &[f32], rows: usize, n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; rows * n];
        for r in 0..rows {
            for c in 0..n {
                let dot: f64 = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                    .sum();
                y[r * n + c] = (dot + b[c] as f64) as f32;
            }
        }
        y
    }

    #[test]
    fn packed_products_equal_the_reference_for_ragged_shapes() {
        // Rows not a multiple of 6 or of the row block, depth not a multiple
        // of KC, a partial last panel.
        for &(rows, n, k) in &[(1, 1, 1), (7, 64, 128), (103, 100, 300), (13, 384, 129)] {
            let x = pseudo_random(rows * k, 1);
            let w = pseudo_random(n * k, 2);
            let b = pseudo_random(n, 3);
            let packed = PackedLinear::new(&w, Some(&b), n, k).unwrap();
            let mut y = vec![f32::NAN; rows * n];
            linear_into(&x, k, rows, &packed, &mut y, n).unwrap();
            let want = reference(&x, &w, &b, rows, n, k);
            for (i, (p, q)) in y.iter().zip(&want).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                    "{rows}x{n}x{k} [{i}]: {p} vs {q}"
                );
            }
        }
    }

    #[test]
    fn strided_rows_leave_the_gaps_alone() {
        let (rows, n, k) = (9, 70, 40);
        let x_stride = k + 5;
        let y_stride = n + 3;
        let x = pseudo_random(rows * x_stride, 4);
        let w = pseudo_random(n * k, 5);
        let packed = PackedLinear::new(&w, None, n, k).unwrap();
        let mut y = vec![7f32; rows * y_stride];
        linear_into(&x, x_stride, rows, &packed, &mut y, y_stride).unwrap();
        let dense: Vec<f32> = x
            .chunks_exact(x_stride)
            .flat_map(|r| r[..k].to_vec())
            .collect();
        let want = reference(&dense, &w, &vec![0.0; n], rows, n, k);
        for r in 0..rows {
            for c in 0..n {
                let (p, q) = (y[r * y_stride + c], want[r * n + c]);
                assert!(
                    (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                    "[{r},{c}] {p} vs {q}"
                );
            }
            assert!(y[r * y_stride + n..(r + 1) * y_stride]
                .iter()
                .all(|&v| v == 7.0));
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_refused() {
        assert!(PackedLinear::new(&[0.0; 6], None, 2, 4).is_none());
        assert!(PackedLinear::new(&[0.0; 8], Some(&[0.0; 3]), 2, 4).is_none());
        let packed = PackedLinear::new(&[0.0; 8], None, 2, 4).unwrap();
        let mut y = vec![0f32; 4];
        assert!(linear_into(&[0.0; 7], 4, 2, &packed, &mut y, 2).is_none());
        assert!(linear_into(&[0.0; 8], 4, 2, &packed, &mut y[..3], 2).is_none());
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use crate::kernels::vector::pseudo_random;
    use std::time::Instant;

    /// One product's shape and weights (`layers` copies, cycled so they come
    /// from L3 when large, as in a real pass).
    struct Case {
        rows: usize,
        n: usize,
        k: usize,
        x: Vec<f32>,
        y: Vec<f32>,
        layers: Vec<PackedLinear>,
    }

    impl Case {
        fn new(rows: usize, n: usize, k: usize, layers: u32) -> Self {
            Self {
                rows,
                n,
                k,
                x: pseudo_random(rows * k, 1),
                y: vec![0f32; rows * n],
                layers: (0..layers)
                    .map(|i| PackedLinear::new(&pseudo_random(n * k, 2 + i), None, n, k).unwrap())
                    .collect(),
            }
        }

        /// GFLOP/s of one pass over the layers.
        fn run(&mut self) -> f64 {
            let t = Instant::now();
            for l in &self.layers {
                linear_into(&self.x, self.k, self.rows, l, &mut self.y, self.n).unwrap();
            }
            let flops = 2.0 * (self.rows * self.n * self.k * self.layers.len()) as f64;
            flops / t.elapsed().as_secs_f64() / 1e9
        }
    }

    /// Each encoder shape against an L1-resident product measured right
    /// before it (this VM's clock wanders between runs, the ratio less):
    /// `cargo test --release -p kiln-models --lib packed_gemm_speed -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, run by hand"]
    fn packed_gemm_speed() {
        let mut reference = Case::new(96, 64, 128, 1);
        let cases = [
            (1424, 1152, 384, 1),
            (1424, 1536, 384, 1),
            (1424, 384, 1536, 1),
            (96, 1536, 384, 6),
            (96, 384, 1536, 6),
            (192, 1536, 384, 6),
            (192, 384, 1536, 6),
        ];
        for (rows, n, k, layers) in cases {
            let mut case = Case::new(rows, n, k, layers);
            let mut ratios = Vec::new();
            let mut peak: f64 = 0.0;
            for _ in 0..15 {
                let r = (0..20).map(|_| reference.run()).fold(0.0, f64::max);
                peak = peak.max(r);
                ratios.push(case.run() / r);
            }
            ratios.sort_by(f64::total_cmp);
            println!(
                "{rows}x{n}x{k} ({layers} weights): {:.2} of the L1 product (median of 15; L1 best {peak:.0} GFLOP/s)",
                ratios[7]
            );
        }
    }
}
