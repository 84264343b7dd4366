//! bf16 weights: `y = W x` for one token, and conversion to f32 for
//! prompt-sized products (which go to candle's GEMM).
//!
//! bf16 → f32 is exact (the upper 16 bits of an f32), so these kernels
//! compute what an f32 copy of the weights would, up to summation order.

use half::bf16;
use rayon::prelude::*;

/// Rows per parallel task: large enough to amortise scheduling.
const ROWS_PER_TASK: usize = 64;

/// `out[r] = Σ_c w[r·cols + c] · x[c]` for a row-major `[rows, cols]` bf16 matrix.
/// Returns `None` when the slices do not have those sizes.
pub fn gemv_bf16(w: &[bf16], rows: usize, cols: usize, x: &[f32], out: &mut [f32]) -> Option<()> {
    if w.len() != rows * cols || x.len() != cols || out.len() != rows {
        return None;
    }
    let dot = select_dot();
    out.par_chunks_mut(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(chunk, dst)| {
            let first = chunk * ROWS_PER_TASK;
            for (i, y) in dst.iter_mut().enumerate() {
                let row = &w[(first + i) * cols..(first + i + 1) * cols];
                *y = dot(row, x);
            }
        });
    Some(())
}

/// Converts bf16 values to f32 (exactly), in parallel.
pub fn bf16_to_f32(w: &[bf16]) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    out.par_chunks_mut(1 << 16)
        .zip(w.par_chunks(1 << 16))
        .for_each(|(dst, src)| {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = f32::from_bits(u32::from(s.to_bits()) << 16);
            }
        });
    out
}

type DotFn = fn(&[bf16], &[f32]) -> f32;

/// The fastest dot product this CPU supports.
fn select_dot() -> DotFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return avx2::dot;
        }
    }
    dot_scalar
}

/// Reference dot product.
fn dot_scalar(w: &[bf16], x: &[f32]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(a, b)| f32::from_bits(u32::from(a.to_bits()) << 16) * b)
        .sum()
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::*;

    use half::bf16;

    /// Safe entry: only called after AVX2 and FMA were detected.
    pub(super) fn dot(w: &[bf16], x: &[f32]) -> f32 {
        // SAFETY: `select_dot` returns this function only when the CPU
        // reports AVX2 and FMA; both slices are read within their lengths.
        unsafe { dot_avx2(w, x) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2(w: &[bf16], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let wp = w.as_ptr().cast::<u16>();
        let xp = x.as_ptr();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let off = i + 8 * k;
                // 8 bf16 → 8 u32 → shift into the high half → f32.
                let raw = _mm_loadu_si128(wp.add(off).cast());
                let wide = _mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16);
                let wf = _mm256_castsi256_ps(wide);
                *a = _mm256_fmadd_ps(wf, _mm256_loadu_ps(xp.add(off)), *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            let raw = _mm_loadu_si128(wp.add(i).cast());
            let wf = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
            acc[0] = _mm256_fmadd_ps(wf, _mm256_loadu_ps(xp.add(i)), acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let lo = _mm256_castps256_ps128(sum);
        let hi = _mm256_extractf128_ps(sum, 1);
        let s4 = _mm_add_ps(lo, hi);
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        let s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
        let mut total = _mm_cvtss_f32(s1);
        while i < n {
            total += f32::from_bits(u32::from(*wp.add(i)) << 16) * *xp.add(i);
            i += 1;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn gemv_matches_the_scalar_reference() {
        for (rows, cols) in [(1, 1), (3, 7), (37, 1000), (130, 576), (65, 33)] {
            let w: Vec<bf16> = data(rows * cols, 1)
                .into_iter()
                .map(bf16::from_f32)
                .collect();
            let x = data(cols, 2);
            let mut out = vec![0f32; rows];
            gemv_bf16(&w, rows, cols, &x, &mut out).unwrap();
            for (r, y) in out.iter().enumerate() {
                let want: f64 = (0..cols)
                    .map(|c| f64::from(w[r * cols + c].to_f32()) * f64::from(x[c]))
                    .sum();
                assert!(
                    (f64::from(*y) - want).abs() < 1e-4,
                    "{rows}x{cols} row {r}: {y} vs {want}"
                );
                assert!((dot_scalar(&w[r * cols..(r + 1) * cols], &x) - y).abs() < 1e-4);
            }
        }
        assert!(gemv_bf16(&[bf16::ZERO; 6], 2, 2, &[0.0; 2], &mut [0.0; 2]).is_none());
    }

    #[test]
    fn conversion_is_exact() {
        let v: Vec<bf16> = data(1000, 3).into_iter().map(bf16::from_f32).collect();
        let f = bf16_to_f32(&v);
        assert!(v.iter().zip(&f).all(|(a, b)| a.to_f32() == *b));
    }
}
