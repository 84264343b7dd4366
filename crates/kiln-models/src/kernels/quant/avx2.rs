//! AVX2/FMA versions of the integer dot products in `dot_scalar` (and an
//! f16 × f32 dot with F16C). Only reachable through `select`, which checks
//! the CPU features at run time.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::dequant::scales_mins_k4;
use super::q8::Q8Block;

/// Whether this CPU runs these kernels.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

macro_rules! safe_entry {
    ($(#[$doc:meta])* $name:ident => $inner:ident) => {
        $(#[$doc])*
        pub fn $name(row: &[u8], x: &[Q8Block]) -> f32 {
            // SAFETY: `available()` was checked before this kernel was
            // selected; the inner function reads within both slices.
            unsafe { $inner(row, x) }
        }
    };
}

safe_entry!(/// Q8_0 weights.
    dot_q8_0 => q8_0);
safe_entry!(/// Q4_0 weights.
    dot_q4_0 => q4_0);
safe_entry!(/// Q4_1 weights.
    dot_q4_1 => q4_1);
safe_entry!(/// Q5_0 weights.
    dot_q5_0 => q5_0);
safe_entry!(/// Q5_1 weights.
    dot_q5_1 => q5_1);
safe_entry!(/// Q4_K weights.
    dot_q4_k => q4_k);
safe_entry!(/// Q6_K weights.
    dot_q6_k => q6_k);

macro_rules! safe_entry_x4 {
    ($(#[$doc:meta])* $name:ident => $inner:ident, $block_bytes:expr) => {
        $(#[$doc])*
        pub fn $name(row: &[u8], x: [&[Q8Block]; 4]) -> [f32; 4] {
            // Blocks present in the row and in every activation row (the
            // caller passes equal lengths; shorter ones would just stop early).
            let n = x
                .iter()
                .map(|s| s.len())
                .fold(row.len() / $block_bytes, usize::min);
            // SAFETY: as for the single-token kernels; the inner function
            // reads blocks `0..n` of `row` and of each activation row, which
            // `n` was just bounded by.
            unsafe { $inner(row.as_ptr(), n, x.map(<[Q8Block]>::as_ptr)) }
        }
    };
}

safe_entry_x4!(/// Q8_0 weights, four tokens.
    dot4_q8_0 => q8_0_x4, 34);
safe_entry_x4!(/// Q4_0 weights, four tokens.
    dot4_q4_0 => q4_0_x4, 18);
safe_entry_x4!(/// Q4_1 weights, four tokens.
    dot4_q4_1 => q4_1_x4, 20);

/// The little-endian f16 at `p` as f32, with F16C (no bounds checks: for
/// the pointer-walking batch kernels).
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_ptr(p: *const u8) -> f32 {
    let bits = std::ptr::read_unaligned(p.cast::<u16>());
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// Little-endian f16 values (`row`, two bytes each) to f32 in `out`, as
/// many as both hold.
pub fn f16_row_to_f32(row: &[u8], out: &mut [f32]) {
    // SAFETY: `available()` (F16C) was checked by the caller; reads stay
    // within `row` and writes within `out`.
    unsafe { f16_row_inner(row, out) }
}

/// Every value of `x` rounded to f16 and back (round to nearest even, as
/// `half` and llama.cpp's f16 activations round), eight at a time.
pub fn round_trip_f16(x: &mut [f32]) {
    // SAFETY: `available()` (F16C) was checked by the caller; reads and
    // writes stay within `x`.
    unsafe { round_trip_f16_inner(x) }
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn round_trip_f16_inner(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        let p = c.as_mut_ptr();
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(p));
        _mm256_storeu_ps(p, _mm256_cvtph_ps(h));
    }
    for v in chunks.into_remainder() {
        *v = half::f16::from_f32(*v).to_f32();
    }
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_row_inner(row: &[u8], out: &mut [f32]) {
    let n = (row.len() / 2).min(out.len());
    let (src, dst) = (row.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm_loadu_si128(src.add(2 * i).cast());
        _mm256_storeu_ps(dst.add(i), _mm256_cvtph_ps(h));
        i += 8;
    }
    while i < n {
        *dst.add(i) = f16_ptr(src.add(2 * i));
        i += 1;
    }
}

/// Whole rows of Q8_0, Q4_0 or Q4_1 blocks dequantized eight values at a
/// time (the prompt GEMM's weight tiles); `None` for other types. Same
/// arithmetic as `dequantize_block` (`q·d`, `q·d + m` without FMA), so the
/// values are bit-identical.
pub fn dequantize_row(ty: super::GgmlType, row: &[u8], out: &mut [f32]) -> Option<()> {
    use super::GgmlType as T;
    let bytes = match ty {
        T::Q8_0 => 34,
        T::Q4_0 => 18,
        T::Q4_1 => 20,
        _ => return None,
    };
    let n = (row.len() / bytes).min(out.len() / 32);
    // SAFETY: `available()` was checked by the caller; block `i` reads
    // `row[i·bytes..(i+1)·bytes]` and writes `out[32i..32i+32]`, `i < n`.
    unsafe {
        for i in 0..n {
            let (b, o) = (row.as_ptr().add(i * bytes), out.as_mut_ptr().add(32 * i));
            match ty {
                T::Q8_0 => dequant_q8_0(b, o),
                T::Q4_0 => dequant_q4(b.add(2), f16_ptr(b), None, o),
                _ => dequant_q4(b.add(4), f16_ptr(b), Some(f16_ptr(b.add(2))), o),
            }
        }
    }
    Some(())
}

#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn dequant_q8_0(b: *const u8, out: *mut f32) {
    let d = _mm256_set1_ps(f16_ptr(b));
    for k in 0..4 {
        let q = _mm_loadl_epi64(b.add(2 + 8 * k).cast());
        let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
        _mm256_storeu_ps(out.add(8 * k), _mm256_mul_ps(v, d));
    }
}

/// 16 bytes of nibbles at `qs`: low nibbles are values 0..16, high ones
/// 16..32; Q4_0 (`min` None) subtracts 8, Q4_1 adds `min` after scaling.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn dequant_q4(qs: *const u8, d: f32, min: Option<f32>, out: *mut f32) {
    let raw = _mm_loadu_si128(qs.cast());
    let mask = _mm_set1_epi8(0xF);
    let halves = [
        _mm_and_si128(raw, mask),
        _mm_and_si128(_mm_srli_epi16(raw, 4), mask),
    ];
    let vd = _mm256_set1_ps(d);
    let eight = _mm256_set1_epi32(8);
    for (h, nib) in halves.iter().enumerate() {
        for k in 0..2 {
            let bytes = if k == 0 {
                *nib
            } else {
                _mm_srli_si128(*nib, 8)
            };
            let q = _mm256_cvtepu8_epi32(bytes);
            let v = match min {
                None => _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, eight)), vd),
                Some(m) => {
                    _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q), vd), _mm256_set1_ps(m))
                }
            };
            _mm256_storeu_ps(out.add(16 * h + 8 * k), v);
        }
    }
}

/// `Σ w·x` over 32 signed bytes, as 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn mul_signed(w: __m256i, x: __m256i) -> __m256i {
    let aw = _mm256_sign_epi8(w, w);
    let sx = _mm256_sign_epi8(x, w);
    _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1))
}

/// `Σ w·x` with unsigned `w` (< 128) and signed `x`, as 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn mul_unsigned(w: __m256i, x: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
}

/// The little-endian f16 at `b[i..i + 2]` as f32, with F16C.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_ptr(b[i..i + 2].as_ptr())
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(v: __m256) -> f32 {
    let s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)))
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p.cast())
}

/// The 32 nibbles of 16 bytes in element order (low nibbles first).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn nibbles16(p: *const u8) -> __m256i {
    let raw = _mm_loadu_si128(p.cast());
    let mask = _mm_set1_epi8(0xF);
    let lo = _mm_and_si128(raw, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    _mm256_set_m128i(hi, lo)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0(row: &[u8], x: &[Q8Block]) -> f32 {
    // Two accumulators in registers (swapped each block) hide the FMA latency.
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xb) in row.chunks_exact(34).zip(x) {
        let w = load(b.as_ptr().add(2));
        let p = mul_signed(w, load(xb.qs.as_ptr().cast()));
        let scale = _mm256_set1_ps(f16_at(b, 0) * xb.d);
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}

/// One Q8_0 row against four activation rows: each weight block is loaded
/// and made unsigned once for the four products. Even and odd blocks sum
/// in separate registers, as in [`q8_0`], so each result is bit-identical
/// to the single-token kernel's (a sequence gets the same logits in a batch
/// as alone).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_x4(row: *const u8, n: usize, x: [*const Q8Block; 4]) -> [f32; 4] {
    #[inline(always)]
    unsafe fn block(b: *const u8, i: usize, x: &[*const Q8Block; 4], acc: &mut [__m256; 4]) {
        let w = load(b.add(2));
        let aw = _mm256_sign_epi8(w, w);
        let d = f16_ptr(b);
        let ones = _mm256_set1_epi16(1);
        for t in 0..4 {
            let xb = &*x[t].add(i);
            let sx = _mm256_sign_epi8(load(xb.qs.as_ptr().cast()), w);
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xb.d), acc[t]);
        }
    }
    let mut even = [_mm256_setzero_ps(); 4];
    let mut odd = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 1 < n {
        block(row.add(i * 34), i, &x, &mut even);
        block(row.add((i + 1) * 34), i + 1, &x, &mut odd);
        i += 2;
    }
    if i < n {
        block(row.add(i * 34), i, &x, &mut even);
    }
    std::array::from_fn(|t| hsum(_mm256_add_ps(even[t], odd[t])))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0(row: &[u8], x: &[Q8Block]) -> f32 {
    // Σ (q − 8)·x = Σ q·x − 8·Σx: the nibbles go unsigned into maddubs and
    // the offset comes from the activation block's sum (spread over the 8
    // lanes as Σx per lane), saving the sign juggling of signed weights.
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xb) in row.chunks_exact(18).zip(x) {
        let p = mul_unsigned(nibbles16(b.as_ptr().add(2)), load(xb.qs.as_ptr().cast()));
        let p = _mm256_sub_epi32(p, _mm256_set1_epi32(xb.sum));
        let scale = _mm256_set1_ps(f16_at(b, 0) * xb.d);
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, a0);
        std::mem::swap(&mut a0, &mut a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}

/// One Q4_0 row against four activation rows (nibbles unpacked once);
/// bit-identical to [`q4_0`] per token, like [`q8_0_x4`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0_x4(row: *const u8, n: usize, x: [*const Q8Block; 4]) -> [f32; 4] {
    #[inline(always)]
    unsafe fn block(b: *const u8, i: usize, x: &[*const Q8Block; 4], acc: &mut [__m256; 4]) {
        let w = nibbles16(b.add(2));
        let d = f16_ptr(b);
        for t in 0..4 {
            let xb = &*x[t].add(i);
            let p = mul_unsigned(w, load(xb.qs.as_ptr().cast()));
            let p = _mm256_sub_epi32(p, _mm256_set1_epi32(xb.sum));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xb.d), acc[t]);
        }
    }
    let mut even = [_mm256_setzero_ps(); 4];
    let mut odd = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 1 < n {
        block(row.add(i * 18), i, &x, &mut even);
        block(row.add((i + 1) * 18), i + 1, &x, &mut odd);
        i += 2;
    }
    if i < n {
        block(row.add(i * 18), i, &x, &mut even);
    }
    std::array::from_fn(|t| hsum(_mm256_add_ps(even[t], odd[t])))
}

/// One Q4_1 row against four activation rows (Q8_1: `s = d·Σq`). Even and
/// odd blocks sum apart, as in [`q4_1`], so each result is bit-identical to
/// the single-token kernel's.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_x4(row: *const u8, n: usize, x: [*const Q8Block; 4]) -> [f32; 4] {
    let mut acc = [[_mm256_setzero_ps(); 4]; 2];
    let mut mins = [[0f32; 4]; 2];
    for i in 0..n {
        let b = row.add(i * 20);
        let w = nibbles16(b.add(4));
        let (d, m) = (f16_ptr(b), f16_ptr(b.add(2)));
        let (acc, mins) = (&mut acc[i & 1], &mut mins[i & 1]);
        for t in 0..4 {
            let xb = &*x[t].add(i);
            let p = mul_unsigned(w, load(xb.qs.as_ptr().cast()));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xb.d), acc[t]);
            mins[t] += m * xb.s;
        }
    }
    std::array::from_fn(|t| hsum(_mm256_add_ps(acc[0][t], acc[1][t])) + (mins[0][t] + mins[1][t]))
}

/// Byte `j` is 0xFF where bit `j` of the 32-bit little-endian `p[..4]` is set.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn bits_to_bytes(p: *const u8) -> __m256i {
    let word = i32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]);
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(word),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let probe = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(spread, probe), _mm256_set1_epi64x(-1))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0(row: &[u8], x: &[Q8Block]) -> f32 {
    // Σ (q − 16)·x = Σ q·x − 16·Σx, the offset spread as 2·Σx per lane.
    let mut acc = [_mm256_setzero_ps(); 2];
    let fifth = _mm256_set1_epi8(0x10);
    for (i, (b, xb)) in row.chunks_exact(22).zip(x).enumerate() {
        let bits = bits_to_bytes(b.as_ptr().add(2));
        let w = _mm256_or_si256(nibbles16(b.as_ptr().add(6)), _mm256_and_si256(bits, fifth));
        let p = mul_unsigned(w, load(xb.qs.as_ptr().cast()));
        let p = _mm256_sub_epi32(p, _mm256_set1_epi32(2 * xb.sum));
        let scale = _mm256_set1_ps(f16_at(b, 0) * xb.d);
        acc[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc[i & 1]);
    }
    hsum(_mm256_add_ps(acc[0], acc[1]))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1(row: &[u8], x: &[Q8Block]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    let fifth = _mm256_set1_epi8(0x10);
    for (b, xb) in row.chunks_exact(24).zip(x) {
        let bits = bits_to_bytes(b.as_ptr().add(4));
        let w = _mm256_or_si256(nibbles16(b.as_ptr().add(8)), _mm256_and_si256(bits, fifth));
        let p = mul_unsigned(w, load(xb.qs.as_ptr().cast()));
        let scale = _mm256_set1_ps(f16_at(b, 0) * xb.d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc);
        mins += f16_at(b, 2) * xb.s;
    }
    hsum(acc) + mins
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1(row: &[u8], x: &[Q8Block]) -> f32 {
    // Even and odd blocks in separate sums hide the FMA latency.
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut mins = [0f32; 2];
    for (i, (b, xb)) in row.chunks_exact(20).zip(x).enumerate() {
        let w = nibbles16(b.as_ptr().add(4));
        let p = mul_unsigned(w, load(xb.qs.as_ptr().cast()));
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        acc[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xb.d), acc[i & 1]);
        mins[i & 1] += m * xb.s;
    }
    hsum(_mm256_add_ps(acc[0], acc[1])) + (mins[0] + mins[1])
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k(row: &[u8], x: &[Q8Block]) -> f32 {
    // Activations in the Q8_K format share one scale per 256 values, so the
    // eight sub-blocks accumulate in integers and meet floats once.
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    let mask = _mm256_set1_epi8(0xF);
    for (b, xs) in row.chunks_exact(144).zip(x.chunks_exact(8)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let (sc, m) = scales_mins_k4(&b[4..16]);
        let mut sumi = _mm256_setzero_si256();
        let mut min_sum = 0i32;
        for chunk in 0..4 {
            let q = load(b.as_ptr().add(16 + 32 * chunk));
            let lo = _mm256_and_si256(q, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
            let (x_lo, x_hi) = (&xs[2 * chunk], &xs[2 * chunk + 1]);
            let p_lo = _mm256_madd_epi16(
                _mm256_maddubs_epi16(lo, load(x_lo.qs.as_ptr().cast())),
                _mm256_set1_epi16(i16::from(sc[2 * chunk])),
            );
            let p_hi = _mm256_madd_epi16(
                _mm256_maddubs_epi16(hi, load(x_hi.qs.as_ptr().cast())),
                _mm256_set1_epi16(i16::from(sc[2 * chunk + 1])),
            );
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
            min_sum += i32::from(m[2 * chunk]) * x_lo.sum + i32::from(m[2 * chunk + 1]) * x_hi.sum;
        }
        mins += dmin * xs[0].d * min_sum as f32;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d * xs[0].d), acc);
    }
    hsum(acc) - mins
}

/// Bits 0–1 of each byte of `h`, moved to bits 4–5.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn high_bits(h: __m256i, m2: __m256i) -> __m256i {
    _mm256_slli_epi16(_mm256_and_si256(h, m2), 4)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k(row: &[u8], x: &[Q8Block]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let m4 = _mm256_set1_epi8(0xF);
    let m2 = _mm256_set1_epi8(3);
    let off = _mm256_set1_epi8(32);
    for (b, xs) in row.chunks_exact(210).zip(x.chunks_exact(8)) {
        let d = f16_at(b, 208);
        let p = b.as_ptr();
        let mut sumi = _mm256_setzero_si256();
        for half in 0..2 {
            let ql0 = load(p.add(64 * half));
            let ql1 = load(p.add(64 * half + 32));
            let qh = load(p.add(128 + 32 * half));
            let groups = [
                _mm256_or_si256(_mm256_and_si256(ql0, m4), high_bits(qh, m2)),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    high_bits(_mm256_srli_epi16(qh, 2), m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                    high_bits(_mm256_srli_epi16(qh, 4), m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                    high_bits(_mm256_srli_epi16(qh, 6), m2),
                ),
            ];
            for (k, q) in groups.into_iter().enumerate() {
                let xb = &xs[4 * half + k];
                let w = _mm256_sub_epi8(q, off);
                let xv = load(xb.qs.as_ptr().cast());
                let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w));
                let sc = &b[192 + 8 * half + 2 * k..];
                let scales = _mm256_set_m128i(
                    _mm_set1_epi16(i16::from(sc[1] as i8)),
                    _mm_set1_epi16(i16::from(sc[0] as i8)),
                );
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pairs, scales));
            }
        }
        // One activation scale per 256 (Q8_K), so one float step per block.
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d * xs[0].d), acc);
    }
    hsum(acc)
}

/// `Σ w·x` for f16 weights and f16 activations (as llama.cpp pairs them).
/// Both sides are converted to f32 in registers. Activations as halves keep
/// the activation row small enough to stay in L1 beside the weight stream:
/// with f32 activations a 5632-wide row (22 KiB) was evicted by each row of
/// weights, and TinyLlama's FFN down projection read 14 GB/s on one thread
/// instead of 29–33 (Zen 4 VM, 2026-12-05). No software prefetch: on huge
/// pages the hardware prefetcher alone was fastest.
pub fn dot_f16(w: &[u8], x: &[half::f16]) -> f32 {
    // SAFETY: only selected after `available()`; reads `min(x.len(),
    // w.len() / 2)` halves from each side.
    unsafe { f16_dot(w, x) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_dot(w: &[u8], x: &[half::f16]) -> f32 {
    let n = x.len().min(w.len() / 2);
    let (wp, xp) = (w.as_ptr(), x.as_ptr().cast::<u8>());
    let load = |p: *const u8, i: usize| _mm256_cvtph_ps(_mm_loadu_si128(p.add(2 * i).cast()));
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            let off = i + 8 * k;
            *a = _mm256_fmadd_ps(load(wp, off), load(xp, off), *a);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(load(wp, i), load(xp, i), acc[0]);
        i += 8;
    }
    let mut total = hsum(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    while i < n {
        total += f16_at(w, 2 * i) * x[i].to_f32();
        i += 1;
    }
    total
}

/// The f16 row kernel for this CPU: [`dot_f16`], or its 512-bit twin with
/// software prefetch on Intel cores with AVX-512. On the Intel Xeon VM
/// (2026-12-05, alternated runs) the twin without prefetch gained ~6% and
/// with the weights prefetched 4 KiB ahead 50–65%: SmolLM2-shaped F16
/// decode 38–39 → 58–61 tok/s, TinyLlama-shaped 5.9–6.0 → 9.5–10.1
/// (llama.cpp 6.5–7.2) — Intel's streamer does not run on alone as Zen 4's
/// does, where both the 512-bit twin (5–15%) and prefetching measured
/// slower. Chosen by vendor, not by timing, so a machine always gets the
/// same sums.
pub fn f16_kernel() -> fn(&[u8], &[half::f16]) -> f32 {
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("f16c") && intel() {
        dot_f16_512
    } else {
        dot_f16
    }
}

/// Whether the CPU's vendor string is Intel's (asked once).
pub(crate) fn intel() -> bool {
    // CPUID traps to the hypervisor in a VM: ask once.
    static INTEL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INTEL.get_or_init(vendor_is_intel)
}

fn vendor_is_intel() -> bool {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID leaf 0 exists on every x86_64 CPU.
    let id = unsafe { __cpuid(0) };
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&id.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&id.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&id.ecx.to_le_bytes());
    &vendor == b"GenuineIntel"
}

/// [`dot_f16`] with 16-lane registers (AVX-512F), prefetching the weights
/// 4 KiB ahead of the row being read (past a row's end that is the next
/// rows', which are read next).
pub fn dot_f16_512(w: &[u8], x: &[half::f16]) -> f32 {
    // SAFETY: only selected by `f16_kernel` after checking AVX-512F and
    // F16C; reads `min(x.len(), w.len() / 2)` halves from each side.
    unsafe { f16_dot_512(w, x) }
}

#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn f16_dot_512(w: &[u8], x: &[half::f16]) -> f32 {
    /// Bytes ahead of the current position that are prefetched.
    const AHEAD: usize = 4096;
    let n = x.len().min(w.len() / 2);
    let (wp, xp) = (w.as_ptr(), x.as_ptr().cast::<u8>());
    let load = |p: *const u8, i: usize| _mm512_cvtph_ps(_mm256_loadu_si256(p.add(2 * i).cast()));
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        // Prefetches never fault, so addresses past the slice are harmless.
        _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(2 * i + AHEAD).cast());
        _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(2 * i + AHEAD + 64).cast());
        for (k, a) in acc.iter_mut().enumerate() {
            let off = i + 16 * k;
            *a = _mm512_fmadd_ps(load(wp, off), load(xp, off), *a);
        }
        i += 64;
    }
    while i + 16 <= n {
        acc[0] = _mm512_fmadd_ps(load(wp, i), load(xp, i), acc[0]);
        i += 16;
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let mut total = _mm512_reduce_add_ps(sum);
    while i < n {
        total += f16_at(w, 2 * i) * x[i].to_f32();
        i += 1;
    }
    total
}

/// `x` rounded to f16 (round to nearest even, as `half`).
pub fn to_f16(x: &[f32]) -> Vec<half::f16> {
    let mut out = vec![half::f16::ZERO; x.len()];
    // SAFETY: `available()` (F16C) was checked by the caller; reads `x`
    // and writes `out`, of the same length, eight values at a time.
    unsafe { to_f16_inner(x, &mut out) };
    out
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn to_f16_inner(x: &[f32], out: &mut [half::f16]) {
    let n = x.len().min(out.len());
    let (src, dst) = (x.as_ptr(), out.as_mut_ptr().cast::<u8>());
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.add(i)));
        _mm_storeu_si128(dst.add(2 * i).cast(), h);
        i += 8;
    }
    for j in i..n {
        out[j] = half::f16::from_f32(x[j]);
    }
}
