//! AVX2 pieces of the activation quantization in `q8`: the absolute maximum
//! of a 32-value block and its values scaled, rounded half to even and
//! narrowed to bytes. Same float operations as the scalar code, so the
//! blocks are bit-identical; callers check [`super::avx2::available`].
#![allow(unsafe_code)]

use std::arch::x86_64::*;

/// `max |v|` over a 32-value block (`None` unless `chunk.len() == 32`).
pub fn abs_max32(chunk: &[f32]) -> Option<f32> {
    (chunk.len() == 32).then(|| {
        // SAFETY: AVX2 was checked by the caller; reads the 32 values.
        unsafe { abs_max32_inner(chunk.as_ptr()) }
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn abs_max32_inner(x: *const f32) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    let mut m = _mm256_setzero_ps();
    for k in 0..4 {
        // Loaded value first: a NaN is skipped, as in the scalar `f32::max` fold.
        m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x.add(8 * k))), m);
    }
    let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps(m2, m2, 1)))
}

/// `qs[i] = round_half_even(chunk[i] · inv)` as bytes, and `Σ qs`; the
/// products must lie within ±127.5 (`inv = 127 / max |v|`). `None` unless
/// `chunk.len() == 32`.
pub fn scale_round32(chunk: &[f32], inv: f32, qs: &mut [i8; 32]) -> Option<i32> {
    (chunk.len() == 32).then(|| {
        // SAFETY: AVX2 was checked by the caller; reads 32 values, writes
        // the 32 bytes of `qs`.
        unsafe { scale_round32_inner(chunk.as_ptr(), inv, qs) }
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_round32_inner(x: *const f32, inv: f32, qs: &mut [i8; 32]) -> i32 {
    let scale = _mm256_set1_ps(inv);
    let mut ints = [_mm256_setzero_si256(); 4];
    for (k, out) in ints.iter_mut().enumerate() {
        let v = _mm256_mul_ps(_mm256_loadu_ps(x.add(8 * k)), scale);
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        *out = _mm256_cvtps_epi32(r);
    }
    let sum32 = _mm256_add_epi32(
        _mm256_add_epi32(ints[0], ints[1]),
        _mm256_add_epi32(ints[2], ints[3]),
    );
    // Narrow 32 → 16 → 8 bits (values fit, so no saturation), then undo the
    // per-128-bit-lane interleaving of the packs.
    let w01 = _mm256_packs_epi32(ints[0], ints[1]);
    let w23 = _mm256_packs_epi32(ints[2], ints[3]);
    let bytes = _mm256_packs_epi16(w01, w23);
    let ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(qs.as_mut_ptr().cast(), ordered);
    let s4 = _mm_add_epi32(
        _mm256_castsi256_si128(sum32),
        _mm256_extracti128_si256(sum32, 1),
    );
    let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32(s2, 1)))
}
