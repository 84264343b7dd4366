//! AVX2 kernels on [`PackedRows`](super::packed::PackedRows) groups: eight
//! weight rows against one to four activation rows. Each row's sum lives in
//! its own 32-bit lane, so there is no horizontal reduction, the eight
//! scales are converted with one `vcvtph2ps`, and each activation block is
//! read once for eight rows.
//!
//! Per token the arithmetic does not depend on how many tokens share the
//! call, so a sequence gets bit-identical results alone or in a batch.
//!
//! Software prefetch only on Intel. On Zen 4, with the packed rows on huge
//! pages, the hardware prefetcher alone streams faster (TinyLlama Q4_K_M
//! decode on one thread 34.4 → 40.4 tok/s, Q4_0 41.5 → 46.2 without the
//! in-kernel prefetches; Zen 4 VM, 2026-12-05). On the Intel Xeon VM each
//! group's lines prefetched 4 KiB ahead paid off on every file tried (two
//! threads, alternated, 2026-12-05): SmolLM2-shaped Q4_0 110–118 → 130–170
//! tok/s, Q8_0 71–90 → 95–100; TinyLlama-shaped Q4_0 16.7–19.3 → 22.8–23.7,
//! Q4_K_M 17.7–19.5 → 20.8–21.3 (8 KiB: 22.6–24.0 there but worse on the
//! small model).
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::packed::{GROUP_ROWS, Q4K_PACKED_BLOCK, Q6K_PACKED_BLOCK, Q6K_QS, Q6K_SCALES};
use super::q8::Q8Block;
use super::GgmlType;

/// Most tokens per call.
pub const MAX_TOKENS: usize = 4;

/// `out[8t + r] = Σ row_r · x_t` for one packed group (its bytes `group`),
/// `xs.len()` ≤ [`MAX_TOKENS`] activation rows, `out.len() ≥ 8·xs.len()`.
/// Returns `None` for a type without a packed kernel, too many tokens or a
/// short `out`. Callers must have checked [`super::avx2::available`].
pub fn dot_group(ty: GgmlType, group: &[u8], xs: &[&[Q8Block]], out: &mut [f32]) -> Option<()> {
    dot_group_with(Isa::detect(), ty, group, xs, out)
}

/// [`dot_group`] with the instruction variant `isa`; `None` also when this
/// CPU lacks `isa` ([`Isa::available`]).
pub fn dot_group_with(
    isa: Isa,
    ty: GgmlType,
    group: &[u8],
    xs: &[&[Q8Block]],
    out: &mut [f32],
) -> Option<()> {
    if !isa.available()
        || xs.is_empty()
        || xs.len() > MAX_TOKENS
        || out.len() < GROUP_ROWS * xs.len()
    {
        return None;
    }
    // Packed block bytes, activation blocks per weight block.
    let (packed_block, x_per_block) = match ty {
        GgmlType::Q4_0 => (144, 1),
        GgmlType::Q4_1 => (160, 1),
        GgmlType::Q5_0 => (176, 1),
        GgmlType::Q8_0 => (272, 1),
        GgmlType::Q4_K => (Q4K_PACKED_BLOCK, 8),
        GgmlType::Q6_K => (Q6K_PACKED_BLOCK, 8),
        _ => return None,
    };
    // Blocks present in the group and in every activation row.
    let n = xs
        .iter()
        .map(|x| x.len() / x_per_block)
        .fold(group.len() / packed_block, usize::min);
    let mut ptrs = [std::ptr::null::<Q8Block>(); MAX_TOKENS];
    for (p, x) in ptrs.iter_mut().zip(xs) {
        *p = x.as_ptr();
    }
    let g = group.as_ptr();
    let ahead = packed_prefetch_distance();
    if ahead > 0 {
        for off in (0..group.len()).step_by(64) {
            // SAFETY: SSE is part of x86_64; prefetches never fault.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(g.wrapping_add(ahead + off).cast()) };
        }
    }
    macro_rules! run {
        ($kernel:ident) => {
            // SAFETY: AVX2/FMA/F16C were checked by the caller and `isa`'s
            // instructions above; the kernel
            // reads blocks `0..n` of the group and of the first T activation
            // rows, all within their slices by the choice of `n`, and writes
            // `out[..8T]`, whose length was checked above.
            unsafe {
                match xs.len() {
                    1 => $kernel::<1>(g, n, &ptrs, out),
                    2 => $kernel::<2>(g, n, &ptrs, out),
                    3 => $kernel::<3>(g, n, &ptrs, out),
                    _ => $kernel::<4>(g, n, &ptrs, out),
                }
            }
        };
    }
    macro_rules! pick {
        ($avx2:ident, $vnni:ident, $vnni512:ident) => {
            match isa {
                Isa::Avx2 => run!($avx2),
                Isa::AvxVnni => run!($vnni),
                Isa::Avx512Vnni => run!($vnni512),
            }
        };
    }
    match ty {
        GgmlType::Q4_0 => pick!(q4_0, q4_0_vnni, q4_0_vnni512),
        GgmlType::Q4_1 => pick!(q4_1, q4_1_vnni, q4_1_vnni512),
        GgmlType::Q5_0 => pick!(q5_0, q5_0_vnni, q5_0_vnni512),
        GgmlType::Q4_K => pick!(q4_k, q4_k_vnni, q4_k_vnni512),
        GgmlType::Q6_K => pick!(q6_k, q6_k_vnni, q6_k_vnni512),
        _ => pick!(q8_0, q8_0_vnni, q8_0_vnni512),
    }
    Some(())
}

/// Bytes ahead of a group that are prefetched: 4 KiB on Intel, none
/// elsewhere (see the module notes). One prefetch per cache line of the
/// group, shifted by this distance, so a run over consecutive groups asks
/// for every line once.
fn packed_prefetch_distance() -> usize {
    if super::avx2::intel() {
        4096
    } else {
        0
    }
}

/// Which 256-bit integer dot-product instructions the packed kernels use.
/// Every variant computes the same integer block sums (no intermediate
/// saturates), so all three give bit-identical results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// `vpmaddubsw` + `vpmaddwd` (plain AVX2).
    Avx2,
    /// AVX-VNNI's VEX-encoded `vpdpbusd` (Intel Alder Lake, Sapphire Rapids…).
    AvxVnni,
    /// AVX-512 VNNI's EVEX-encoded `vpdpbusd` on 256-bit registers (needs
    /// AVX-512 VL; AMD Zen 4, Intel Ice Lake server…).
    Avx512Vnni,
}

impl Isa {
    /// The best variant this CPU runs, from the instruction sets themselves
    /// (cached by `is_x86_feature_detected!`); nothing here ever selects AMX.
    pub fn detect() -> Self {
        if is_x86_feature_detected!("avxvnni") {
            Isa::AvxVnni
        } else if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
            Isa::Avx512Vnni
        } else {
            Isa::Avx2
        }
    }

    /// Whether this CPU can run the variant (AVX2/FMA/F16C assumed checked).
    pub fn available(self) -> bool {
        match self {
            Isa::Avx2 => true,
            Isa::AvxVnni => is_x86_feature_detected!("avxvnni"),
            Isa::Avx512Vnni => {
                is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
            }
        }
    }
}

/// Four activation bytes `qs[i..i + 4]` broadcast to all eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bcast4(x: *const Q8Block, i: usize) -> __m256i {
    let p = std::ptr::addr_of!((*x).qs).cast::<u8>().add(i);
    _mm256_set1_epi32(std::ptr::read_unaligned(p.cast::<i32>()))
}

/// The eight rows' f16 header field at `p` as f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scales8(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store<const T: usize>(acc: &[__m256; T], out: &mut [f32]) {
    for (t, a) in acc.iter().enumerate() {
        _mm256_storeu_ps(out.as_mut_ptr().add(GROUP_ROWS * t), *a);
    }
}

/// Σ over the 32 values of one block of `nibble · x`, per row lane, for
/// unsigned nibbles unpacked into `lo` (values `4k..4k+4` of each row) and
/// `hi` (values `16+4k..`). Each `maddubs` pair sum is within ±3840, so the
/// eight of them add up in 16 bits without overflow.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibble_dot(lo: &[__m256i; 4], hi: &[__m256i; 4], x: *const Q8Block) -> __m256i {
    let mut s = _mm256_setzero_si256();
    for k in 0..4 {
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(lo[k], bcast4(x, 4 * k)));
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(hi[k], bcast4(x, 16 + 4 * k)));
    }
    _mm256_madd_epi16(s, _mm256_set1_epi16(1))
}

/// Defines `$name`, [`nibble_dot`] with a VNNI `vpdpbusd` (`$dp`) that adds
/// each four-byte product sum straight into the 32-bit lanes. The integer
/// sums are the same as `maddubs` + `madd` (which never saturate here), so
/// results are bit-identical to the AVX2 kernel's.
macro_rules! vnni_nibble_dot {
    ($name:ident, $features:literal, $dp:ident) => {
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn $name(lo: &[__m256i; 4], hi: &[__m256i; 4], x: *const Q8Block) -> __m256i {
            let mut s = _mm256_setzero_si256();
            for k in 0..4 {
                s = $dp(s, lo[k], bcast4(x, 4 * k));
                s = $dp(s, hi[k], bcast4(x, 16 + 4 * k));
            }
            s
        }
    };
}
vnni_nibble_dot!(
    nibble_dot_vnni,
    "avx2,fma,f16c,avxvnni",
    _mm256_dpbusd_avx_epi32
);
vnni_nibble_dot!(
    nibble_dot_vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    _mm256_dpbusd_epi32
);

/// The nibbles of one packed Q4 block (128 bytes at `q`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(q: *const u8) -> ([__m256i; 4], [__m256i; 4]) {
    let mask = _mm256_set1_epi8(0xF);
    let mut lo = [_mm256_setzero_si256(); 4];
    let mut hi = [_mm256_setzero_si256(); 4];
    for k in 0..4 {
        let raw = _mm256_loadu_si256(q.add(32 * k).cast());
        lo[k] = _mm256_and_si256(raw, mask);
        hi[k] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
    }
    (lo, hi)
}

/// Defines a packed Q4 kernel `$name`, compiled for `$features`, whose
/// integer block sums come from `$dot` ([`nibble_dot`] or
/// [`nibble_dot_vnni`]); everything else is shared, so both variants give
/// the same results.
macro_rules! q4_0_kernel {
    ($name:ident, $features:literal, $dot:ident) => {
        /// Q4_0: `Σ (q − 8)·x = Σ q·x − 8·Σx`, the nibbles unsigned into `maddubs`.
        #[target_feature(enable = $features)]
        unsafe fn $name<const T: usize>(
            g: *const u8,
            n: usize,
            x: &[*const Q8Block; MAX_TOKENS],
            out: &mut [f32],
        ) {
            let mut acc = [_mm256_setzero_ps(); T];
            for b in 0..n {
                let blk = g.add(b * 144);
                let d = scales8(blk);
                let (lo, hi) = nibbles(blk.add(16));
                for t in 0..T {
                    let xb = x[t].add(b);
                    let sum =
                        _mm256_sub_epi32($dot(&lo, &hi, xb), _mm256_set1_epi32(8 * (*xb).sum));
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps((*xb).d));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[t]);
                }
            }
            store(&acc, out);
        }
    };
}
q4_0_kernel!(q4_0, "avx2,fma,f16c", nibble_dot);
q4_0_kernel!(q4_0_vnni, "avx2,fma,f16c,avxvnni", nibble_dot_vnni);
q4_0_kernel!(
    q4_0_vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    nibble_dot_vnni512
);

/// As `q4_0_kernel`, for Q4_1.
macro_rules! q4_1_kernel {
    ($name:ident, $features:literal, $dot:ident) => {
        /// Q4_1: `Σ (d·q + m)·x = d·Σ q·x + m·s` with `s = d_x·Σ q_x` (Q8_1).
        #[target_feature(enable = $features)]
        unsafe fn $name<const T: usize>(
            g: *const u8,
            n: usize,
            x: &[*const Q8Block; MAX_TOKENS],
            out: &mut [f32],
        ) {
            // The minimum terms sum apart and join at the end, as in llama.cpp's
            // `hsum(acc) + summs`.
            let mut acc = [_mm256_setzero_ps(); T];
            let mut mins = [_mm256_setzero_ps(); T];
            for b in 0..n {
                let blk = g.add(b * 160);
                let (d, m) = (scales8(blk), scales8(blk.add(16)));
                let (lo, hi) = nibbles(blk.add(32));
                for t in 0..T {
                    let xb = x[t].add(b);
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps((*xb).d));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps($dot(&lo, &hi, xb)), scale, acc[t]);
                    mins[t] = _mm256_add_ps(mins[t], _mm256_mul_ps(m, _mm256_set1_ps((*xb).s)));
                }
            }
            for t in 0..T {
                acc[t] = _mm256_add_ps(acc[t], mins[t]);
            }
            store(&acc, out);
        }
    };
}
q4_1_kernel!(q4_1, "avx2,fma,f16c", nibble_dot);
q4_1_kernel!(q4_1_vnni, "avx2,fma,f16c,avxvnni", nibble_dot_vnni);
q4_1_kernel!(
    q4_1_vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    nibble_dot_vnni512
);

/// Σ over one Q5_0 block of `q·x` per row lane, for unsigned 5-bit values
/// unpacked into `lo`/`hi` as in [`nibble_dot`]. Pair sums reach ±7936, so
/// low and high halves widen apart.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn five_bit_dot(lo: &[__m256i; 4], hi: &[__m256i; 4], x: *const Q8Block) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    let (mut s_lo, mut s_hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for k in 0..4 {
        s_lo = _mm256_add_epi16(s_lo, _mm256_maddubs_epi16(lo[k], bcast4(x, 4 * k)));
        s_hi = _mm256_add_epi16(s_hi, _mm256_maddubs_epi16(hi[k], bcast4(x, 16 + 4 * k)));
    }
    _mm256_add_epi32(_mm256_madd_epi16(s_lo, ones), _mm256_madd_epi16(s_hi, ones))
}

/// Defines a packed Q5_0 kernel `$name`, compiled for `$features`, with
/// block sums from `$dot` ([`five_bit_dot`], or a VNNI nibble dot, whose
/// 32-bit lanes never overflow).
macro_rules! q5_0_kernel {
    ($name:ident, $features:literal, $dot:ident) => {
        /// Q5_0: the nibbles with their fifth bits (`qh`, the first chunk: one
        /// 32-bit word per row) as unsigned 5-bit values, `Σ (q − 16)·x = Σ q·x −
        /// 16·Σx`.
        #[target_feature(enable = $features)]
        unsafe fn $name<const T: usize>(
            g: *const u8,
            n: usize,
            x: &[*const Q8Block; MAX_TOKENS],
            out: &mut [f32],
        ) {
            let mut acc = [_mm256_setzero_ps(); T];
            for b in 0..n {
                let blk = g.add(b * 176);
                let d = scales8(blk);
                let qh = _mm256_loadu_si256(blk.add(16).cast());
                let (mut lo, mut hi) = nibbles(blk.add(48));
                for k in 0..4 {
                    lo[k] = _mm256_or_si256(lo[k], fifth_bits(qh, 4 * k as i32));
                    hi[k] = _mm256_or_si256(hi[k], fifth_bits(qh, 16 + 4 * k as i32));
                }
                for t in 0..T {
                    let xb = x[t].add(b);
                    let sum =
                        _mm256_sub_epi32($dot(&lo, &hi, xb), _mm256_set1_epi32(16 * (*xb).sum));
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps((*xb).d));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[t]);
                }
            }
            store(&acc, out);
        }
    };
}
q5_0_kernel!(q5_0, "avx2,fma,f16c", five_bit_dot);
q5_0_kernel!(q5_0_vnni, "avx2,fma,f16c,avxvnni", nibble_dot_vnni);
q5_0_kernel!(
    q5_0_vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    nibble_dot_vnni512
);

/// For each row's 32-bit `qh` lane: bits `shift..shift + 4` as four bytes,
/// `0x10` where the bit is set (the fifth bit of values `shift..shift + 4`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth_bits(qh: __m256i, shift: i32) -> __m256i {
    let v = _mm256_srl_epi32(qh, _mm_cvtsi32_si128(shift));
    // Byte 0 of each lane copied to its four bytes, then one bit tested per byte.
    let spread = _mm256_shuffle_epi8(
        v,
        _mm256_set_epi8(
            12, 12, 12, 12, 8, 8, 8, 8, 4, 4, 4, 4, 0, 0, 0, 0, 12, 12, 12, 12, 8, 8, 8, 8, 4, 4,
            4, 4, 0, 0, 0, 0,
        ),
    );
    let probe = _mm256_set1_epi32(0x0804_0201);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, probe), probe);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// `acc + Σ` of each lane's four `u·s` byte products, with AVX2 (`maddubs`
/// pair sums within ±32512 here, then widened).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dp_avx2(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    _mm256_add_epi32(
        acc,
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)),
    )
}

/// Defines a packed Q8_0 kernel `$name`, compiled for `$features`, whose
/// four-byte product sums come from `$dp` ([`dp_avx2`] or a VNNI `vpdpbusd`).
macro_rules! q8_0_kernel {
    ($name:ident, $features:literal, $dp:ident) => {
        /// Q8_0: signed weights, so each chunk goes through the sign trick
        /// (`|w|` unsigned, the sign moved onto `x`).
        #[target_feature(enable = $features)]
        unsafe fn $name<const T: usize>(
            g: *const u8,
            n: usize,
            x: &[*const Q8Block; MAX_TOKENS],
            out: &mut [f32],
        ) {
            let mut acc = [_mm256_setzero_ps(); T];
            for b in 0..n {
                let blk = g.add(b * 272);
                let d = scales8(blk);
                let mut sums = [_mm256_setzero_si256(); T];
                for k in 0..8 {
                    let w = _mm256_loadu_si256(blk.add(16 + 32 * k).cast());
                    let aw = _mm256_sign_epi8(w, w);
                    for t in 0..T {
                        let sx = _mm256_sign_epi8(bcast4(x[t].add(b), 4 * k), w);
                        sums[t] = $dp(sums[t], aw, sx);
                    }
                }
                for t in 0..T {
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps((*x[t].add(b)).d));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t]), scale, acc[t]);
                }
            }
            store(&acc, out);
        }
    };
}
q8_0_kernel!(q8_0, "avx2,fma,f16c", dp_avx2);
q8_0_kernel!(q8_0_vnni, "avx2,fma,f16c,avxvnni", _mm256_dpbusd_avx_epi32);
q8_0_kernel!(
    q8_0_vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    _mm256_dpbusd_epi32
);

/// `acc + maddubs(u, s)` in 16-bit lanes (AVX2 Q4_K sub-block sums: eight
/// pair sums of at most 3,810 stay below 32,767).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn add_maddubs16(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    _mm256_add_epi16(acc, _mm256_maddubs_epi16(u, s))
}

/// Each row's 16-bit pair sums times its byte scale at `p`, as 32-bit lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale16(sums: __m256i, p: *const u8) -> __m256i {
    _mm256_madd_epi16(sums, scale_pairs(p))
}

/// Each row's 32-bit sum times its byte scale at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale32(sums: __m256i, p: *const u8) -> __m256i {
    _mm256_mullo_epi32(sums, _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())))
}

/// Defines `$name`: one 64-value chunk `c` of packed Q4_K block `blk`
/// (block `b` of the row group) against T tokens. The low and high
/// nibbles are two sub-blocks whose byte products `$acc` sums — in 16-bit
/// pairs with `maddubs` ([`add_maddubs16`], then [`scale16`]) or in 32-bit
/// lanes with a VNNI `vpdpbusd` (then [`scale32`]) — before `$scale`
/// multiplies each by its row's 6-bit scale; the scaled sums are added to
/// `sums`. The integers are the same either way (nothing saturates), so
/// the variants agree bit for bit.
macro_rules! q4_k_chunk_fn {
    ($name:ident, $features:literal, $acc:ident, $scale:ident) => {
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn $name<const T: usize>(
            blk: *const u8,
            b: usize,
            c: usize,
            x: &[*const Q8Block; MAX_TOKENS],
            sums: &mut [__m256i; T],
        ) {
            let mask = _mm256_set1_epi8(0xF);
            let q = blk.add(160 + 256 * c);
            let mut lo_sums = [_mm256_setzero_si256(); T];
            let mut hi_sums = [_mm256_setzero_si256(); T];
            for k in 0..8 {
                let raw = _mm256_loadu_si256(q.add(32 * k).cast());
                let lo = _mm256_and_si256(raw, mask);
                let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
                for t in 0..T {
                    let xs = x[t].add(8 * b + 2 * c);
                    lo_sums[t] = $acc(lo_sums[t], lo, bcast4(xs, 4 * k));
                    hi_sums[t] = $acc(hi_sums[t], hi, bcast4(xs.add(1), 4 * k));
                }
            }
            for t in 0..T {
                let p = _mm256_add_epi32(
                    $scale(lo_sums[t], blk.add(32 + 16 * c)),
                    $scale(hi_sums[t], blk.add(40 + 16 * c)),
                );
                sums[t] = _mm256_add_epi32(sums[t], p);
            }
        }
    };
}
q4_k_chunk_fn!(q4_k_chunk, "avx2,fma,f16c", add_maddubs16, scale16);
q4_k_chunk_fn!(
    q4_k_chunk_vnni,
    "avx2,fma,f16c,avxvnni",
    _mm256_dpbusd_avx_epi32,
    scale32
);
q4_k_chunk_fn!(
    q4_k_chunk_vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    _mm256_dpbusd_epi32,
    scale32
);

/// Defines a packed Q4_K kernel `$name` for `$features` whose chunk sums
/// come from `$chunk` (`q4_k_chunk` or a VNNI twin).
macro_rules! q4_k_kernel {
    ($name:ident, $features:literal, $chunk:ident) => {
        /// Q4_K against Q8_K activations (eight [`Q8Block`]s per 256 values,
        /// one scale): four 64-value chunks of scaled integer sums, the mins
        /// meeting the activations' sub-block sums as 16-bit pairs. Integers
        /// all the way to one float step per block, as in `avx2::q4_k`.
        #[target_feature(enable = $features)]
        unsafe fn $name<const T: usize>(
            g: *const u8,
            n: usize,
            x: &[*const Q8Block; MAX_TOKENS],
            out: &mut [f32],
        ) {
            let mut acc = [_mm256_setzero_ps(); T];
            let mut acc_min = [_mm256_setzero_ps(); T];
            for b in 0..n {
                let blk = g.add(b * Q4K_PACKED_BLOCK);
                let (d, dmin) = (scales8(blk), scales8(blk.add(16)));
                let mut sums = [_mm256_setzero_si256(); T];
                for c in 0..4 {
                    $chunk::<T>(blk, b, c, x, &mut sums);
                }
                for t in 0..T {
                    let xs = x[t].add(8 * b);
                    let mut mins = _mm256_setzero_si256();
                    for p in 0..4 {
                        let m = _mm256_cvtepu8_epi16(_mm_loadu_si128(blk.add(96 + 16 * p).cast()));
                        let (s0, s1) = ((*xs.add(2 * p)).sum, (*xs.add(2 * p + 1)).sum);
                        let pair = _mm256_set1_epi32((s1 << 16) | (s0 & 0xFFFF));
                        mins = _mm256_add_epi32(mins, _mm256_madd_epi16(m, pair));
                    }
                    let dx = _mm256_set1_ps((*xs).d);
                    acc[t] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t]), _mm256_mul_ps(d, dx), acc[t]);
                    acc_min[t] = _mm256_fmadd_ps(
                        _mm256_cvtepi32_ps(mins),
                        _mm256_mul_ps(dmin, dx),
                        acc_min[t],
                    );
                }
            }
            for t in 0..T {
                acc[t] = _mm256_sub_ps(acc[t], acc_min[t]);
            }
            store(&acc, out);
        }
    };
}
q4_k_kernel!(q4_k, "avx2,fma,f16c", q4_k_chunk);
q4_k_kernel!(q4_k_vnni, "avx2,fma,f16c,avxvnni", q4_k_chunk_vnni);
q4_k_kernel!(
    q4_k_vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    q4_k_chunk_vnni512
);

/// Defines a packed Q6_K kernel `$name`, compiled for `$features`, whose
/// four-byte product sums come from `$dp` ([`dp_avx2`] or a VNNI
/// `vpdpbusd`; the integers are the same, so the variants agree bit for bit).
macro_rules! q6_k_kernel {
    ($name:ident, $features:literal, $dp:ident) => {
        /// Q6_K against Q8_K activations (eight [`Q8Block`]s per 256 values,
        /// one scale). The six-bit values `q` stay unsigned for the byte
        /// products; each 16-value sub-block's `Σ q·x − 32·Σx` (the
        /// activations' half sums) is multiplied by its row's signed scale,
        /// all in integers to one float step per block, as llama.cpp does.
        /// Sums stay far inside 32 bits: |Σ (q − 32)·x| ≤ 16·32·127 per
        /// sub-block, times |scale| ≤ 128, sixteen sub-blocks.
        #[target_feature(enable = $features)]
        unsafe fn $name<const T: usize>(
            g: *const u8,
            n: usize,
            x: &[*const Q8Block; MAX_TOKENS],
            out: &mut [f32],
        ) {
            let low = _mm256_set1_epi8(0xF);
            let high = _mm256_set1_epi8(0x30);
            let mut acc = [_mm256_setzero_ps(); T];
            for b in 0..n {
                let blk = g.add(b * Q6K_PACKED_BLOCK);
                let d = scales8(blk);
                let mut sums = [_mm256_setzero_si256(); T];
                // Half `h` holds values 128h..128h + 128: `ql` bytes l and
                // l + 32 and `qh` byte l give the values l, l + 32, l + 64,
                // l + 96 of the half (quarter j, activation block 4h + j).
                for h in 0..2 {
                    // `s`: the first or second 16 values of each quarter.
                    for s in 0..2 {
                        let mut part = [[_mm256_setzero_si256(); T]; 4];
                        for k in 4 * s..4 * s + 4 {
                            let step = blk.add(Q6K_QS + 96 * (8 * h + k));
                            let load = |at: usize| _mm256_loadu_si256(step.add(at).cast());
                            let (qa, qb, qh) = (load(0), load(32), load(64));
                            let bits = |v: __m256i| _mm256_and_si256(v, high);
                            let q = [
                                _mm256_or_si256(
                                    _mm256_and_si256(qa, low),
                                    bits(_mm256_slli_epi16(qh, 4)),
                                ),
                                _mm256_or_si256(
                                    _mm256_and_si256(qb, low),
                                    bits(_mm256_slli_epi16(qh, 2)),
                                ),
                                _mm256_or_si256(
                                    _mm256_and_si256(_mm256_srli_epi16(qa, 4), low),
                                    bits(qh),
                                ),
                                _mm256_or_si256(
                                    _mm256_and_si256(_mm256_srli_epi16(qb, 4), low),
                                    bits(_mm256_srli_epi16(qh, 2)),
                                ),
                            ];
                            for t in 0..T {
                                let xs = x[t].add(8 * b + 4 * h);
                                for j in 0..4 {
                                    part[j][t] = $dp(part[j][t], q[j], bcast4(xs.add(j), 4 * k));
                                }
                            }
                        }
                        for t in 0..T {
                            let xs = x[t].add(8 * b + 4 * h);
                            for j in 0..4 {
                                let xb = &*xs.add(j);
                                let x16 = if s == 0 {
                                    xb.sum_lo
                                } else {
                                    xb.sum - xb.sum_lo
                                };
                                let centred =
                                    _mm256_sub_epi32(part[j][t], _mm256_set1_epi32(32 * x16));
                                let sub = 8 * h + 2 * j + s;
                                let scale = _mm256_cvtepi8_epi32(_mm_loadl_epi64(
                                    blk.add(Q6K_SCALES + GROUP_ROWS * sub).cast(),
                                ));
                                sums[t] =
                                    _mm256_add_epi32(sums[t], _mm256_mullo_epi32(centred, scale));
                            }
                        }
                    }
                }
                for t in 0..T {
                    let dx = _mm256_set1_ps((*x[t].add(8 * b)).d);
                    acc[t] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t]), _mm256_mul_ps(d, dx), acc[t]);
                }
            }
            store(&acc, out);
        }
    };
}
q6_k_kernel!(q6_k, "avx2,fma,f16c", dp_avx2);
q6_k_kernel!(q6_k_vnni, "avx2,fma,f16c,avxvnni", _mm256_dpbusd_avx_epi32);
q6_k_kernel!(
    q6_k_vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    _mm256_dpbusd_epi32
);

/// Eight rows' byte scales at `p` as `(s, s)` 16-bit pairs, one per lane:
/// `madd` with 16-bit sums then yields `(lo + hi) · s` per row.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_pairs(p: *const u8) -> __m256i {
    let s = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast()));
    _mm256_or_si256(s, _mm256_slli_epi32(s, 16))
}
