//! Activations quantized to 8 bits in blocks of 32, so products with
//! quantized weights run in integer arithmetic (as llama.cpp does).

/// 32 activations as `d · qs[i]`, with `s = d · Σ qs` kept for the weight
/// types that carry a minimum (Q4_1, Q4_K).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(4))]
pub struct Q8Block {
    /// Scale.
    pub d: f32,
    /// `d · Σ qs`.
    pub s: f32,
    /// `Σ qs`.
    pub sum: i32,
    /// `Σ qs[..16]`, the first half's sum (Q6_K's 16-value sub-blocks).
    pub sum_lo: i32,
    /// Quantized values.
    pub qs: [i8; 32],
}

/// How activations are rounded before meeting a weight type, following
/// llama.cpp so results match its files bit for bit as far as possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationFormat {
    /// 8-bit per 32 with an f16 scale (`block_q8_0`: Q4_0, Q5_0, Q8_0).
    Q8_0,
    /// 8-bit per 32 with f16 scale and f16 sum (`block_q8_1`: Q4_1, Q5_1).
    Q8_1,
    /// 8-bit per 256 with one f32 scale (`block_q8_K`: the k-quants).
    Q8K,
    /// Rounded to f16 (f16 weights).
    F16,
    /// Rounded to bf16 (bf16 weights).
    BF16,
    /// Kept as is (f32 weights).
    F32,
}

impl ActivationFormat {
    /// The format llama.cpp pairs with weights of type `ty`.
    pub fn for_weights(ty: super::GgmlType) -> Self {
        use super::GgmlType as T;
        match ty {
            T::Q4_0 | T::Q5_0 | T::Q8_0 => Self::Q8_0,
            T::Q4_1 | T::Q5_1 => Self::Q8_1,
            T::Q2_K | T::Q3_K | T::Q4_K | T::Q5_K | T::Q6_K => Self::Q8K,
            T::F16 => Self::F16,
            T::BF16 => Self::BF16,
            T::F32 => Self::F32,
        }
    }

    /// `x` quantized to 8-bit blocks in this format (`x.len()` a multiple
    /// of 32, of 256 for [`ActivationFormat::Q8K`]); float formats use Q8_0.
    pub fn quantize(self, x: &[f32]) -> Vec<Q8Block> {
        match self {
            Self::Q8K => quantize_q8k(x),
            Self::Q8_1 => quantize_q8_with(x, true),
            _ => quantize_q8_with(x, false),
        }
    }

    /// `x` as the weights' kernel sees it, back in f32.
    pub fn round_trip(self, x: &[f32]) -> Vec<f32> {
        let mut out = x.to_vec();
        self.round_trip_in_place(&mut out);
        out
    }

    /// [`ActivationFormat::round_trip`] in place: every value replaced by
    /// what the weights' kernel sees.
    pub fn round_trip_in_place(self, x: &mut [f32]) {
        match self {
            Self::F32 => {}
            Self::F16 => round_trip_f16(x),
            Self::BF16 => x
                .iter_mut()
                .for_each(|v| *v = half::bf16::from_f32(*v).to_f32()),
            // Q8_0 and Q8_1 blocks hold the same values (`q · f16(d)`).
            Self::Q8_0 | Self::Q8_1 => x.chunks_exact_mut(32).for_each(round_trip_q8_0),
            Self::Q8K => {
                let blocks = self.quantize(x);
                for (chunk, b) in x.chunks_exact_mut(32).zip(&blocks) {
                    for (v, &q) in chunk.iter_mut().zip(&b.qs) {
                        *v = f32::from(q) * b.d;
                    }
                }
            }
        }
    }
}

/// `x` rounded to f16: F16C where the CPU has it (the same rounding, round
/// to nearest even), else `half`.
pub(crate) fn to_f16(x: &[f32]) -> Vec<half::f16> {
    #[cfg(target_arch = "x86_64")]
    if super::avx2::available() {
        return super::avx2::to_f16(x);
    }
    x.iter().map(|&v| half::f16::from_f32(v)).collect()
}

/// Every value of `x` rounded to f16 and back: F16C where the CPU has it
/// (the same rounding, round to nearest even), else `half`.
fn round_trip_f16(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::avx2::available() {
        return super::avx2::round_trip_f16(x);
    }
    x.iter_mut()
        .for_each(|v| *v = half::f16::from_f32(*v).to_f32());
}

/// Round half to even for |x| < 2²² by the magic-number trick (as ggml's
/// `nearest_int`): plain float arithmetic, so the loops vectorise instead of
/// calling `rintf` per value.
#[inline]
fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2²³
    (x + MAGIC) - MAGIC
}

/// One 32-value block replaced by its `block_q8_0` values, computed as
/// [`quantize_q8_with`] does (straight-line float code that vectorises).
fn round_trip_q8_0(chunk: &mut [f32]) {
    let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let d16 = half::f16::from_f32(amax / 127.0).to_f32();
    for v in chunk.iter_mut() {
        *v = round_even(*v * inv) * d16;
    }
}

/// llama.cpp's `block_q8_0` / `block_q8_1`: scale `amax / 127` stored as
/// f16 (quantized with the unrounded one); for Q8_1 the sum is `f16(d · Σq)`.
fn quantize_q8_with(x: &[f32], q8_1: bool) -> Vec<Q8Block> {
    let simd = simd_available();
    x.chunks_exact(32)
        .map(|chunk| {
            let amax = simd_abs_max(simd, chunk)
                .unwrap_or_else(|| chunk.iter().fold(0f32, |m, v| m.max(v.abs())));
            let d = amax / 127.0;
            // As ggml's AVX2 path: multiply by 127/amax, round half to even.
            let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            let mut qs = [0i8; 32];
            let sum = simd_scale_round(simd, chunk, inv, &mut qs).unwrap_or_else(|| {
                let mut sum = 0i32;
                for (q, v) in qs.iter_mut().zip(chunk) {
                    *q = round_even(v * inv) as i8;
                    sum += i32::from(*q);
                }
                sum
            });
            let d16 = half::f16::from_f32(d).to_f32();
            let s = if q8_1 {
                half::f16::from_f32(d * sum as f32).to_f32()
            } else {
                d16 * sum as f32
            };
            Q8Block {
                d: d16,
                s,
                sum,
                sum_lo: half_sum(&qs),
                qs,
            }
        })
        .collect()
}

/// `Σ qs[..16]` of a block's values.
fn half_sum(qs: &[i8; 32]) -> i32 {
    qs[..16].iter().map(|&q| i32::from(q)).sum()
}

/// Whether the AVX2 block pieces (`avx2_q8`) run on this CPU.
fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::avx2::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `max |v|` of a 32-value block with AVX2 when `simd` (else `None`).
fn simd_abs_max(simd: bool, chunk: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if simd {
        return super::avx2_q8::abs_max32(chunk);
    }
    let _ = (simd, chunk);
    None
}

/// A block's bytes and their sum with AVX2 when `simd` (else `None`).
fn simd_scale_round(simd: bool, chunk: &[f32], inv: f32, qs: &mut [i8; 32]) -> Option<i32> {
    #[cfg(target_arch = "x86_64")]
    if simd {
        return super::avx2_q8::scale_round32(chunk, inv, qs);
    }
    let _ = (simd, chunk, inv, qs);
    None
}

/// llama.cpp's `block_q8_K`: one f32 scale per 256 values (spread over
/// the eight 32-value blocks kiln's kernels read).
fn quantize_q8k(x: &[f32]) -> Vec<Q8Block> {
    let mut out = Vec::with_capacity(x.len() / 32);
    for chunk in x.chunks_exact(256) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in chunk {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        let (iscale, d) = if amax > 0.0 {
            let iscale = -127.0 / max;
            (iscale, 1.0 / iscale)
        } else {
            (0.0, 0.0)
        };
        for part in chunk.chunks_exact(32) {
            let mut qs = [0i8; 32];
            let mut sum = 0i32;
            for (q, v) in qs.iter_mut().zip(part) {
                *q = round_even(iscale * v).min(127.0) as i8;
                sum += i32::from(*q);
            }
            out.push(Q8Block {
                d,
                s: d * sum as f32,
                sum,
                sum_lo: half_sum(&qs),
                qs,
            });
        }
    }
    out
}

/// Quantizes `x` (a multiple of 32 long) to 8-bit blocks with f32 scales.
pub fn quantize_q8(x: &[f32]) -> Vec<Q8Block> {
    x.chunks_exact(32)
        .map(|chunk| {
            let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut qs = [0i8; 32];
            let mut sum = 0i32;
            for (q, v) in qs.iter_mut().zip(chunk) {
                *q = (v * inv).round() as i8;
                sum += i32::from(*q);
            }
            Q8Block {
                d,
                s: d * sum as f32,
                sum,
                sum_lo: half_sum(&qs),
                qs,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trip_equals_half_bit_for_bit() {
        // Ties, subnormals, overflow, infinities, NaN, signed zero, plus a
        // tail shorter than eight for the scalar remainder.
        let mut x: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0 + f32::EPSILON,
            1.000_488_3, // halfway between two f16 values: rounds to even
            1.001_464_8,
            6.0e-8,
            -3.0e-5,
            65_504.0,
            65_520.0,
            1.0e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        x.extend((0..1000).map(|i| ((i as f32) * 0.377).sin() * 10f32.powi(i % 9 - 4)));
        let mut fast = x.clone();
        ActivationFormat::F16.round_trip_in_place(&mut fast);
        for (v, got) in x.iter().zip(&fast) {
            let want = half::f16::from_f32(*v).to_f32();
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{v}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let q = quantize_q8(&x);
        for (b, chunk) in q.iter().zip(x.chunks(32)) {
            for (qv, v) in b.qs.iter().zip(chunk) {
                assert!((f32::from(*qv) * b.d - v).abs() <= b.d / 2.0 + 1e-6);
            }
            let s: f32 = b.qs.iter().map(|&v| f32::from(v)).sum::<f32>() * b.d;
            assert!((s - b.s).abs() < 1e-4);
        }
        assert!(quantize_q8(&[0.0; 32])[0].qs.iter().all(|&v| v == 0));
    }

    /// The AVX2 block pieces give exactly the scalar code's blocks,
    /// including ties (`x.5` products), zeros and the ±127 extremes.
    #[test]
    fn simd_blocks_equal_scalar_blocks() {
        if !simd_available() {
            return;
        }
        let mut x: Vec<f32> = (0..32 * 64)
            .map(|i| ((i * 7919 % 4001) as f32 - 2000.0) / 97.0)
            .collect();
        x[..32].iter_mut().for_each(|v| *v = 0.0);
        for (i, v) in x[32..64].iter_mut().enumerate() {
            *v = i as f32 - 15.5; // amax 15.5: many exact halves after scaling
        }
        for chunk in x.chunks_exact(32) {
            let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert_eq!(simd_abs_max(true, chunk), Some(amax));
            let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            let (mut fast, mut slow) = ([0i8; 32], [0i8; 32]);
            let sum = simd_scale_round(true, chunk, inv, &mut fast).unwrap();
            let mut want = 0;
            for (q, v) in slow.iter_mut().zip(chunk) {
                *q = round_even(v * inv) as i8;
                want += i32::from(*q);
            }
            assert_eq!((fast, sum), (slow, want));
        }
        assert_eq!(simd_abs_max(true, &x[..31]), None);
    }

    #[test]
    fn in_place_round_trip_equals_the_blocks_values() {
        let x: Vec<f32> = (0..256)
            .map(|i| ((i * 53 % 211) as f32 - 105.0) / 3.0)
            .collect();
        for format in [
            ActivationFormat::Q8_0,
            ActivationFormat::Q8_1,
            ActivationFormat::Q8K,
        ] {
            let blocks = format.quantize(&x);
            let want: Vec<f32> = blocks
                .iter()
                .flat_map(|b| b.qs.iter().map(move |&q| f32::from(q) * b.d))
                .collect();
            assert_eq!(format.round_trip(&x), want, "{format:?}");
        }
    }
}
