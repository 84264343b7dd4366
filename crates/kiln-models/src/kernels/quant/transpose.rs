//! Weight tiles dequantized *transposed* (`[cols, rows]`, input-dimension
//! major) for the prompt GEMM: handed to the `gemm` crate in that layout
//! its operand needs no packing (its scalar strided packing of a row-major
//! tile was 19% of a TinyLlama F16 prompt).
#![allow(unsafe_code)]

use rayon::prelude::*;

/// Output rows (input columns) per parallel task: a multiple of 8.
const COLS_PER_TASK: usize = 64;

/// Rows `first..first + n` of the row-major `[_, cols]` F16 matrix in
/// `data` (little-endian halves) written to `out` as f32 `[cols, n]`:
/// `out[c·n + r] = W[first + r][c]`. `None` when `data` or `out` is too
/// short.
pub(crate) fn f16_rows_transposed(
    data: &[u8],
    cols: usize,
    first: usize,
    n: usize,
    out: &mut [f32],
) -> Option<()> {
    let row_bytes = 2 * cols;
    let needed = (first + n).checked_mul(row_bytes)?;
    if data.len() < needed || out.len() < cols * n {
        return None;
    }
    if n == 0 || cols == 0 {
        return Some(());
    }
    let src = &data[first * row_bytes..needed];
    out[..cols * n]
        .par_chunks_mut(COLS_PER_TASK * n)
        .enumerate()
        .for_each(|(task, block)| {
            let c0 = task * COLS_PER_TASK;
            let width = block.len() / n;
            #[cfg(target_arch = "x86_64")]
            if super::avx2::available() {
                // SAFETY: F16C/AVX2 checked just above; `src` holds `n`
                // rows of `cols` halves, and the block covers columns
                // `c0..c0 + width ≤ cols` of all `n` rows (checked at entry).
                unsafe { f16_block_avx2(src, cols, c0, width, n, block) };
                return;
            }
            f16_block_scalar(src, cols, c0, width, n, 0, 0, block);
        });
    Some(())
}

/// Columns `c0..c0 + width` of the `n` rows in `src` into `block`
/// (`[width, n]`), scalar, from row `r_from` and column offset `cc_from`
/// on (so the SIMD kernel can hand it its edges).
#[allow(clippy::too_many_arguments)]
fn f16_block_scalar(
    src: &[u8],
    cols: usize,
    c0: usize,
    width: usize,
    n: usize,
    r_from: usize,
    cc_from: usize,
    block: &mut [f32],
) {
    for cc in cc_from..width {
        for r in r_from..n {
            let at = 2 * (r * cols + c0 + cc);
            block[cc * n + r] = half::f16::from_le_bytes([src[at], src[at + 1]]).to_f32();
        }
    }
}

/// [`f16_block_scalar`] eight rows × eight columns at a time: F16C
/// conversion and an in-register 8×8 transpose.
///
/// # Safety
/// The CPU has AVX2 and F16C; `src` holds `n` rows of `cols` halves,
/// `c0 + width ≤ cols` and `block.len() ≥ width · n`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_block_avx2(
    src: &[u8],
    cols: usize,
    c0: usize,
    width: usize,
    n: usize,
    block: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (full_rows, full_cols) = (n - n % 8, width - width % 8);
    let (s, d) = (src.as_ptr(), block.as_mut_ptr());
    let row_bytes = 2 * cols;
    for cc in (0..full_cols).step_by(8) {
        let base = s.add(2 * (c0 + cc));
        for r in (0..full_rows).step_by(8) {
            let load =
                |i: usize| _mm256_cvtph_ps(_mm_loadu_si128(base.add((r + i) * row_bytes).cast()));
            let (r0, r1, r2, r3) = (load(0), load(1), load(2), load(3));
            let (r4, r5, r6, r7) = (load(4), load(5), load(6), load(7));
            let t0 = _mm256_unpacklo_ps(r0, r1);
            let t1 = _mm256_unpackhi_ps(r0, r1);
            let t2 = _mm256_unpacklo_ps(r2, r3);
            let t3 = _mm256_unpackhi_ps(r2, r3);
            let t4 = _mm256_unpacklo_ps(r4, r5);
            let t5 = _mm256_unpackhi_ps(r4, r5);
            let t6 = _mm256_unpacklo_ps(r6, r7);
            let t7 = _mm256_unpackhi_ps(r6, r7);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let out = d.add(cc * n + r);
            _mm256_storeu_ps(out, _mm256_permute2f128_ps::<0x20>(u0, u4));
            _mm256_storeu_ps(out.add(n), _mm256_permute2f128_ps::<0x20>(u1, u5));
            _mm256_storeu_ps(out.add(2 * n), _mm256_permute2f128_ps::<0x20>(u2, u6));
            _mm256_storeu_ps(out.add(3 * n), _mm256_permute2f128_ps::<0x20>(u3, u7));
            _mm256_storeu_ps(out.add(4 * n), _mm256_permute2f128_ps::<0x31>(u0, u4));
            _mm256_storeu_ps(out.add(5 * n), _mm256_permute2f128_ps::<0x31>(u1, u5));
            _mm256_storeu_ps(out.add(6 * n), _mm256_permute2f128_ps::<0x31>(u2, u6));
            _mm256_storeu_ps(out.add(7 * n), _mm256_permute2f128_ps::<0x31>(u3, u7));
        }
        // The last n % 8 rows of these eight columns.
        for c in cc..cc + 8 {
            for r in full_rows..n {
                let at = 2 * (r * cols + c0 + c);
                block[c * n + r] = half::f16::from_le_bytes([src[at], src[at + 1]]).to_f32();
            }
        }
    }
    f16_block_scalar(src, cols, c0, width, n, 0, full_cols, block);
}

/// `out` (`[cols, rows]`) = the transpose of the row-major `src`
/// (`[rows, cols]`), in cache-sized blocks.
pub(crate) fn transpose_into(src: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    const B: usize = 32;
    if rows == 0 {
        return;
    }
    out[..rows * cols]
        .par_chunks_mut(B * rows)
        .enumerate()
        .for_each(|(task, block)| {
            let c0 = task * B;
            let width = block.len() / rows;
            for r0 in (0..rows).step_by(B) {
                for c in 0..width {
                    for r in r0..(r0 + B).min(rows) {
                        block[c * rows + r] = src[r * cols + c0 + c];
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use crate::kernels::quant::{quantize_row, GgmlType, QMatrix};
    use crate::kernels::vector::pseudo_random;

    /// Every shape edge: rows and columns below, at and past multiples of 8
    /// and of the task width, for the F16 kernel and the generic path.
    #[test]
    fn transposed_tiles_equal_the_transposed_rows() {
        for (ty, cols) in [
            (GgmlType::F16, 173),
            (GgmlType::F16, 64),
            (GgmlType::Q8_0, 160),
            (GgmlType::Q4_K, 256),
        ] {
            let rows = 37;
            let w = pseudo_random(rows * cols, 7);
            let data: Vec<u8> = w
                .chunks(cols)
                .flat_map(|r| quantize_row(ty, r).unwrap())
                .collect();
            let m = QMatrix::from_vec(ty, rows, cols, data).unwrap();
            for (first, n) in [(0, 37), (3, 17), (5, 8), (9, 1), (0, 0)] {
                let want = m.dequantize_rows(first..first + n).unwrap();
                let got = m.dequantize_rows_transposed(first..first + n).unwrap();
                assert_eq!(got.len(), want.len());
                for r in 0..n {
                    for c in 0..cols {
                        assert_eq!(
                            got[c * n + r],
                            want[r * cols + c],
                            "{ty:?} {first}+{n} ({r},{c})"
                        );
                    }
                }
            }
            assert!(m.dequantize_rows_transposed(30..38).is_none());
        }
    }

    /// The reused scratch hands out exactly the transposed tile, whether it
    /// grows, shrinks, or is busy (a nested call gets a heap copy).
    #[test]
    fn scratch_tiles_equal_fresh_ones_and_nest() {
        let (rows, cols) = (40, 96);
        let w = pseudo_random(rows * cols, 11);
        let data: Vec<u8> = w
            .chunks(cols)
            .flat_map(|r| quantize_row(GgmlType::F16, r).unwrap())
            .collect();
        let m = QMatrix::from_vec(GgmlType::F16, rows, cols, data).unwrap();
        for range in [0..8, 0..40, 3..20, 39..40] {
            let want = m.dequantize_rows_transposed(range.clone()).unwrap();
            let got = m
                .with_rows_transposed(range.clone(), |t| t.to_vec())
                .unwrap();
            assert_eq!(got, want, "{range:?}");
        }
        let nested = m
            .with_rows_transposed(0..16, |outer| {
                let inner = m.with_rows_transposed(16..32, |t| t.to_vec()).unwrap();
                (outer.to_vec(), inner)
            })
            .unwrap();
        assert_eq!(nested.0, m.dequantize_rows_transposed(0..16).unwrap());
        assert_eq!(nested.1, m.dequantize_rows_transposed(16..32).unwrap());
        assert!(m.with_rows_transposed(30..41, |t| t.len()).is_none());
    }

    #[test]
    fn the_f16_kernel_rejects_short_slices() {
        let data = vec![0u8; 2 * 16 * 4];
        let mut out = vec![0f32; 16 * 4];
        assert!(super::f16_rows_transposed(&data, 16, 0, 4, &mut out).is_some());
        assert!(super::f16_rows_transposed(&data, 16, 1, 4, &mut out).is_none());
        assert!(super::f16_rows_transposed(&data, 16, 0, 4, &mut out[..63]).is_none());
    }
}
