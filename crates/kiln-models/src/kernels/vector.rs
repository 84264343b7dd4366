//! Small f32 vector primitives shared by the attention kernels: a dot
//! product, `y += a·x` and f16 rounding, with AVX2/FMA/F16C versions picked
//! at run time and portable loops otherwise.

/// `x` rounded to f16 precision (kept in f32).
pub(crate) fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// The dot product and `y += a·x` this CPU runs fastest.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    /// `a · b`.
    pub(crate) dot: fn(&[f32], &[f32]) -> f32,
    /// `y += a·x`.
    pub(crate) axpy: fn(&mut [f32], f32, &[f32]),
    /// `a · b` with `a` in f16 (an f16 KV cache): the same sums, in the same
    /// order, as `dot` over `a` widened to f32.
    pub(crate) dot_f16: fn(&[half::f16], &[f32]) -> f32,
    /// `y += a·x` with `x` in f16, equal to `axpy` over `x` widened.
    pub(crate) axpy_f16: fn(&mut [f32], f32, &[half::f16]),
    /// Every value of a slice rounded to f16 precision.
    pub(crate) round_f16: fn(&mut [f32]),
    /// Every value `x` of a slice replaced by `e^x` (within 2 ulp of libm
    /// in the SIMD version; inputs are clamped to ±88.376).
    pub(crate) exp: fn(&mut [f32]),
}

impl Kernels {
    /// The fastest set this CPU runs (checked at run time).
    pub(crate) fn select() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                // The same exponential sixteen lanes at a time where the
                // CPU has AVX-512 (same operations per lane: same values).
                let exp = if std::arch::is_x86_feature_detected!("avx512f") {
                    avx512::exp_slice
                } else {
                    avx2::exp_slice
                };
                return Self {
                    dot: avx2::dot,
                    axpy: avx2::axpy,
                    dot_f16: avx2::dot_f16,
                    axpy_f16: avx2::axpy_f16,
                    round_f16: avx2::round_f16_slice,
                    exp,
                };
            }
        }
        Self {
            dot: dot_portable::<f32>,
            axpy: axpy_portable::<f32>,
            dot_f16: dot_portable::<half::f16>,
            axpy_f16: axpy_portable::<half::f16>,
            round_f16: round_f16_portable,
            exp: exp_portable,
        }
    }
}

/// A dot product with eight independent sums (vectorisable anywhere), for
/// `a` in f32 or f16 (widened value by value, same order of sums).
fn dot_portable<T: Copy + Into<f32>>(a: &[T], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, y)| x.into() * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i].into() * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn exp_portable(x: &mut [f32]) {
    for v in x {
        *v = v.exp();
    }
}

fn round_f16_portable(x: &mut [f32]) {
    for v in x {
        *v = round_f16(*v);
    }
}

/// `y += a·x` for `x` in f32 or f16.
fn axpy_portable<T: Copy + Into<f32>>(y: &mut [f32], a: f32, x: &[T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x.into();
    }
}

/// `e^x`'s clamp (beyond it f32 over- or underflows).
#[cfg(target_arch = "x86_64")]
const EXP_CLAMP: f32 = 88.376;
/// ln 2 split in two for an exact range reduction.
#[cfg(target_arch = "x86_64")]
const LN2_HI: f32 = 0.693_359_4;
#[cfg(target_arch = "x86_64")]
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' degree-5 polynomial for `e^r` on the reduced range (Horner
/// order, highest first; the last two terms are added as `r + 1`).
#[cfg(target_arch = "x86_64")]
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// The exponential of `avx2`, sixteen lanes at a time.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use super::{EXP_CLAMP, EXP_POLY, LN2_HI, LN2_LO};
    use std::arch::x86_64::*;

    /// `e^x` for every value, sixteen at a time.
    pub fn exp_slice(x: &mut [f32]) {
        // SAFETY: selected only after AVX-512F (and AVX2/FMA) were
        // detected; reads and writes stay within `x`.
        unsafe { exp_inner(x) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn exp_inner(x: &mut [f32]) {
        let n = x.len();
        let p = x.as_mut_ptr();
        let mut i = 0;
        while i + 16 <= n {
            _mm512_storeu_ps(p.add(i), exp16(_mm512_loadu_ps(p.add(i))));
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            let v = _mm512_maskz_loadu_ps(mask, p.add(i));
            _mm512_mask_storeu_ps(p.add(i), mask, exp16(v));
        }
    }

    /// `avx2::exp8`'s steps on sixteen lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn exp16(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-EXP_CLAMP)),
            _mm512_set1_ps(EXP_CLAMP),
        );
        let k =
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(_mm512_fmadd_ps(
                x,
                _mm512_set1_ps(std::f32::consts::LOG2_E),
                _mm512_set1_ps(0.5),
            ));
        let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_LO), r);
        let mut y = _mm512_set1_ps(EXP_POLY[0]);
        for c in EXP_POLY[1..].iter().copied() {
            y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(c));
        }
        let y = _mm512_fmadd_ps(
            y,
            _mm512_mul_ps(r, r),
            _mm512_add_ps(r, _mm512_set1_ps(1.0)),
        );
        let pow2 = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(k),
            _mm512_set1_epi32(127),
        ));
        _mm512_mul_ps(y, _mm512_castsi512_ps(pow2))
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use super::{EXP_CLAMP, EXP_POLY, LN2_HI, LN2_LO};
    use std::arch::x86_64::*;

    /// `a · b` (equal lengths).
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: selected only after AVX2 and FMA were detected; reads stay
        // within the shorter slice.
        unsafe { dot_inner(a, b) }
    }

    /// `y += a·x` (equal lengths).
    pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        // SAFETY: as for `dot`; writes stay within `y`.
        unsafe { axpy_inner(y, a, x) }
    }

    /// `a · b` with `a` in f16 (equal lengths).
    pub fn dot_f16(a: &[half::f16], b: &[f32]) -> f32 {
        // SAFETY: selected only after AVX2, FMA and F16C were detected;
        // reads stay within the shorter slice.
        unsafe { dot_f16_inner(a, b) }
    }

    /// `y += a·x` with `x` in f16 (equal lengths).
    pub fn axpy_f16(y: &mut [f32], a: f32, x: &[half::f16]) {
        // SAFETY: as for `dot_f16`; writes stay within `y`.
        unsafe { axpy_f16_inner(y, a, x) }
    }

    /// Eight f16 values at `p` widened to f32.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn load_f16(p: *const half::f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    }

    /// Rounds every value to f16 precision with F16C.
    pub fn round_f16_slice(x: &mut [f32]) {
        // SAFETY: selected only after F16C (and AVX2) were detected; reads
        // and writes stay within `x`.
        unsafe { round_f16_inner(x) }
    }

    /// `e^x` for every value, eight at a time.
    pub fn exp_slice(x: &mut [f32]) {
        // SAFETY: selected only after AVX2 and FMA were detected; reads and
        // writes stay within `x`.
        unsafe { exp_inner(x) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp_inner(x: &mut [f32]) {
        let n = x.len();
        let p = x.as_mut_ptr();
        let mut i = 0;
        while i + 8 <= n {
            _mm256_storeu_ps(p.add(i), exp8(_mm256_loadu_ps(p.add(i))));
            i += 8;
        }
        if i < n {
            let mut tail = [0f32; 8];
            tail[..n - i].copy_from_slice(&x[i..]);
            let e = exp8(_mm256_loadu_ps(tail.as_ptr()));
            _mm256_storeu_ps(tail.as_mut_ptr(), e);
            x[i..].copy_from_slice(&tail[..n - i]);
        }
    }

    /// `e^x` by range reduction `x = k·ln2 + r` (ln2 split in two for
    /// precision), a degree-5 polynomial for `e^r` (the Cephes
    /// coefficients) and `2^k` built in the exponent bits.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp8(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-EXP_CLAMP)),
            _mm256_set1_ps(EXP_CLAMP),
        );
        let k = _mm256_floor_ps(_mm256_fmadd_ps(
            x,
            _mm256_set1_ps(std::f32::consts::LOG2_E),
            _mm256_set1_ps(0.5),
        ));
        let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_LO), r);
        let mut y = _mm256_set1_ps(EXP_POLY[0]);
        for c in EXP_POLY[1..].iter().copied() {
            y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
        }
        let y = _mm256_fmadd_ps(
            y,
            _mm256_mul_ps(r, r),
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        let pow2 = _mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)),
            23,
        );
        _mm256_mul_ps(y, _mm256_castsi256_ps(pow2))
    }

    #[target_feature(enable = "avx2,f16c")]
    unsafe fn round_f16_inner(x: &mut [f32]) {
        let n = x.len();
        let p = x.as_mut_ptr();
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm256_cvtps_ph(_mm256_loadu_ps(p.add(i)), _MM_FROUND_TO_NEAREST_INT);
            _mm256_storeu_ps(p.add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
        while i < n {
            *p.add(i) = super::round_f16(*p.add(i));
            i += 1;
        }
    }

    /// Defines `$name(a, b) = a · b` for `a` of `$elem` loaded eight at a
    /// time by `$load` and widened one at a time by `$widen`: two FMA
    /// accumulators, then a fixed horizontal sum and the tail — so the f16
    /// variant sums exactly as the f32 one does over the widened values.
    macro_rules! dot_kernel {
        ($name:ident, $features:literal, $elem:ty, $load:ident, $widen:expr) => {
            #[target_feature(enable = $features)]
            unsafe fn $name(a: &[$elem], b: &[f32]) -> f32 {
                let n = a.len().min(b.len());
                let (pa, pb) = (a.as_ptr(), b.as_ptr());
                let mut acc0 = _mm256_setzero_ps();
                let mut acc1 = _mm256_setzero_ps();
                let mut i = 0;
                while i + 16 <= n {
                    acc0 = _mm256_fmadd_ps($load(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                    acc1 =
                        _mm256_fmadd_ps($load(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), acc1);
                    i += 16;
                }
                if i + 8 <= n {
                    acc0 = _mm256_fmadd_ps($load(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                    i += 8;
                }
                let acc = _mm256_add_ps(acc0, acc1);
                let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
                let quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
                let one = _mm_add_ss(quad, _mm_shuffle_ps(quad, quad, 1));
                let mut sum = _mm_cvtss_f32(one);
                while i < n {
                    sum += $widen(*pa.add(i)) * *pb.add(i);
                    i += 1;
                }
                sum
            }
        };
    }

    /// Defines `$name(y, a, x)`: `y += a·x` for `x` of `$elem` (as
    /// [`dot_kernel`]).
    macro_rules! axpy_kernel {
        ($name:ident, $features:literal, $elem:ty, $load:ident, $widen:expr) => {
            #[target_feature(enable = $features)]
            unsafe fn $name(y: &mut [f32], a: f32, x: &[$elem]) {
                let n = y.len().min(x.len());
                let (py, px) = (y.as_mut_ptr(), x.as_ptr());
                let va = _mm256_set1_ps(a);
                let mut i = 0;
                while i + 8 <= n {
                    let r = _mm256_fmadd_ps(va, $load(px.add(i)), _mm256_loadu_ps(py.add(i)));
                    _mm256_storeu_ps(py.add(i), r);
                    i += 8;
                }
                while i < n {
                    *py.add(i) += a * $widen(*px.add(i));
                    i += 1;
                }
            }
        };
    }

    /// Eight f32 values at `p`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load_f32(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }

    dot_kernel!(dot_inner, "avx2,fma", f32, load_f32, |x: f32| x);
    dot_kernel!(
        dot_f16_inner,
        "avx2,fma,f16c",
        half::f16,
        load_f16,
        half::f16::to_f32
    );
    axpy_kernel!(axpy_inner, "avx2,fma", f32, load_f32, |x: f32| x);
    axpy_kernel!(
        axpy_f16_inner,
        "avx2,fma,f16c",
        half::f16,
        load_f16,
        half::f16::to_f32
    );
}

/// `Σ f(v)` over `values`, kept in eight independent lanes so the adds
/// vectorise (a single chain of float adds cannot be reordered).
#[inline(always)]
pub(crate) fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += f(v);
    }
    lanes.iter().sum()
}

/// The largest of `values` (−∞ when empty), in eight lanes as [`lane_sum`].
#[inline(always)]
pub(crate) fn lane_max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = if v > *lane { v } else { *lane };
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane = lane.max(v);
    }
    lanes.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// Deterministic values in [-1, 1) for kernel tests.
#[cfg(test)]
pub(crate) fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The textbook attention of one query row in f64, for kernel tests:
/// scores against keys `positions` of KV head `g` in a token-major cache
/// (`width` floats a position), scaled and optionally soft-capped, softmax,
/// then the weighted sum of values.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn reference_attention_row(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    width: usize,
    g: usize,
    positions: std::ops::Range<usize>,
    scale: f32,
    softcap: Option<f32>,
) -> Vec<f32> {
    let hd = q.len();
    let scores: Vec<f64> = positions
        .clone()
        .map(|j| {
            let s: f64 = (0..hd)
                .map(|d| f64::from(q[d]) * f64::from(k[j * width + g * hd + d]))
                .sum::<f64>()
                * f64::from(scale);
            match softcap {
                Some(c) => (s / f64::from(c)).tanh() * f64::from(c),
                None => s,
            }
        })
        .collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
    (0..hd)
        .map(|d| {
            positions
                .clone()
                .zip(&scores)
                .map(|(j, s)| (s - max).exp() / sum * f64::from(v[j * width + g * hd + d]))
                .sum::<f64>() as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_twins_equal_the_f32_kernels_on_widened_values() {
        let kernels = Kernels::select();
        for n in [1, 7, 8, 15, 16, 17, 64, 100] {
            let h: Vec<half::f16> = pseudo_random(n, 8)
                .iter()
                .map(|&x| half::f16::from_f32(x))
                .collect();
            let a: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
            let b = pseudo_random(n, 9);
            assert_eq!((kernels.dot_f16)(&h, &b), (kernels.dot)(&a, &b), "{n}");
            assert_eq!(dot_portable(&h, &b), dot_portable(&a, &b), "{n}");
            let (mut y1, mut y2) = (b.clone(), b.clone());
            (kernels.axpy_f16)(&mut y1, 0.37, &h);
            (kernels.axpy)(&mut y2, 0.37, &a);
            assert_eq!(y1, y2, "{n}");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn sixteen_lane_exp_equals_the_eight_lane_one_bit_for_bit() {
        if !(std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            eprintln!("no AVX-512 here: skipped");
            return;
        }
        for n in [0, 1, 15, 16, 17, 100] {
            let mut a: Vec<f32> = (0..n).map(|i| (i as f32 - 50.0) * 1.9 + 0.37).collect();
            a.extend([-100.0, 100.0, 0.0, -0.0]);
            let mut b = a.clone();
            avx512::exp_slice(&mut a);
            avx2::exp_slice(&mut b);
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn simd_kernels_equal_the_portable_ones() {
        let kernels = Kernels::select();
        for n in [1, 7, 8, 15, 16, 17, 64, 100] {
            let a = pseudo_random(n, 5);
            let b = pseudo_random(n, 6);
            assert!(
                ((kernels.dot)(&a, &b) - dot_portable(&a, &b)).abs() < 1e-5,
                "{n}"
            );
            let mut y1 = pseudo_random(n, 7);
            let mut y2 = y1.clone();
            (kernels.axpy)(&mut y1, 0.37, &a);
            axpy_portable(&mut y2, 0.37, &a);
            assert!(y1.iter().zip(&y2).all(|(x, y)| (x - y).abs() < 1e-6), "{n}");
            let mut r1: Vec<f32> = a.iter().map(|x| x * 1000.0).collect();
            let mut r2 = r1.clone();
            (kernels.round_f16)(&mut r1);
            round_f16_portable(&mut r2);
            assert_eq!(r1, r2, "{n}");
            // e^x within 2 ulp (relative 2.5e-7) of libm, tails included.
            let mut e1: Vec<f32> = a.iter().map(|x| x * 80.0).collect();
            let mut e2 = e1.clone();
            (kernels.exp)(&mut e1);
            exp_portable(&mut e2);
            for (x, y) in e1.iter().zip(&e2) {
                assert!((x - y).abs() <= 2.5e-7 * y.abs(), "{n}: {x} vs {y}");
            }
        }
    }
}
