//! AVX-512 prompt kernels on two adjacent packed groups at once: sixteen
//! weight rows (group `a` in lanes 0–7, group `b` in lanes 8–15 of each
//! 512-bit register) against up to [`WIDE_TOKENS`] activation rows.
//!
//! Why: on the Intel Xeon VM a 512-bit `vpdpbusd` retires as many
//! instructions per cycle as the 256-bit one (two, measured with a
//! dependency-free loop: 0.25 vs 0.22 ns each), so it does twice the
//! multiply-adds, and the nibble unpacking and the activations' broadcasts
//! are shared by twice the rows and tokens. On Zen 4 a 512-bit instruction
//! is two 256-bit halves, so these kernels are chosen on Intel only
//! ([`chosen`]), the way the prefetching kernels are.
//!
//! Every lane does exactly the integer sums and float steps of the 256-bit
//! kernels in `avx2_packed`, in the same order, so the products are bit for
//! bit those of two `dot_group` calls.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::packed::{GROUP_ROWS, Q4K_PACKED_BLOCK, Q6K_PACKED_BLOCK, Q6K_QS, Q6K_SCALES};
use super::q8::Q8Block;
use super::GgmlType;

/// Most tokens per call.
pub const WIDE_TOKENS: usize = 8;

/// Rows per call: two groups.
pub const PAIR_ROWS: usize = 2 * GROUP_ROWS;

/// Whether this CPU has the instructions (AVX-512 F/BW/VL/VNNI with
/// AVX2/FMA/F16C).
pub fn available() -> bool {
    super::avx2::available()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// Whether prompts use these kernels for `ty`: a type they cover, on an
/// Intel CPU that has the instructions (see the module notes; never
/// chosen by timing, and nothing here touches AMX).
pub fn chosen(ty: GgmlType) -> bool {
    static CHOSEN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    covers(ty) && *CHOSEN.get_or_init(|| super::avx2::intel() && available())
}

/// Whether there is a wide kernel for `ty`.
pub fn covers(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4_K | GgmlType::Q6_K
    )
}

/// `out[16t + r] = Σ row_r · x_t` for rows `r < 8` of group `a` and `r ≥ 8`
/// of group `b` (row `r − 8`), `xs.len()` ≤ [`WIDE_TOKENS`] activation rows,
/// `out.len() ≥ 16·xs.len()`. `None` when this CPU lacks the instructions,
/// for a type without a wide kernel, groups of different lengths, too many
/// tokens or a short `out`.
pub fn dot_group_pair(
    ty: GgmlType,
    a: &[u8],
    b: &[u8],
    xs: &[&[Q8Block]],
    out: &mut [f32],
) -> Option<()> {
    if !available()
        || !covers(ty)
        || a.len() != b.len()
        || xs.is_empty()
        || xs.len() > WIDE_TOKENS
        || out.len() < PAIR_ROWS * xs.len()
    {
        return None;
    }
    // Packed block bytes, activation blocks per weight block.
    let (packed_block, x_per_block) = match ty {
        GgmlType::Q4_0 => (144, 1),
        GgmlType::Q4_1 => (160, 1),
        GgmlType::Q4_K => (Q4K_PACKED_BLOCK, 8),
        _ => (Q6K_PACKED_BLOCK, 8),
    };
    // Blocks present in both groups and in every activation row.
    let n = xs
        .iter()
        .map(|x| x.len() / x_per_block)
        .fold(a.len() / packed_block, usize::min);
    let (ga, gb) = (a.as_ptr(), b.as_ptr());
    // Q6_K keeps four partial sums per token, so it takes four tokens at
    // a time (sixteen accumulators); Q4_K takes all eight.
    let per_call = if ty == GgmlType::Q6_K { 4 } else { WIDE_TOKENS };
    for (call, part) in xs.chunks(per_call).enumerate() {
        let mut ptrs = [std::ptr::null::<Q8Block>(); WIDE_TOKENS];
        for (p, x) in ptrs.iter_mut().zip(part) {
            *p = x.as_ptr();
        }
        let out = &mut out[call * per_call * PAIR_ROWS..];
        macro_rules! run {
            ($kernel:ident) => {
                match part.len() {
                    1 => $kernel::<1>(ga, gb, n, &ptrs, out),
                    2 => $kernel::<2>(ga, gb, n, &ptrs, out),
                    3 => $kernel::<3>(ga, gb, n, &ptrs, out),
                    4 => $kernel::<4>(ga, gb, n, &ptrs, out),
                    5 => $kernel::<5>(ga, gb, n, &ptrs, out),
                    6 => $kernel::<6>(ga, gb, n, &ptrs, out),
                    7 => $kernel::<7>(ga, gb, n, &ptrs, out),
                    _ => $kernel::<8>(ga, gb, n, &ptrs, out),
                }
            };
        }
        // SAFETY: `available()` checked the instructions; the kernel reads
        // blocks `0..n` of both groups and of the first T activation rows,
        // all within their slices by the choice of `n`, and writes
        // `out[..16T]`, within `out` by the length checked above.
        unsafe {
            match ty {
                GgmlType::Q4_0 => run!(q4_0),
                GgmlType::Q4_1 => run!(q4_1),
                GgmlType::Q4_K => run!(q4_k),
                _ => run!(q6_k),
            }
        }
    }
    Some(())
}

/// 32 bytes at `a` in the low half, 32 bytes at `b` in the high half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pair32(a: *const u8, b: *const u8) -> __m512i {
    let low = _mm512_castsi256_si512(_mm256_loadu_si256(a.cast()));
    _mm512_inserti64x4::<1>(low, _mm256_loadu_si256(b.cast()))
}

/// 16 bytes at `a`, then 16 bytes at `b`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pair16(a: *const u8, b: *const u8) -> __m256i {
    let low = _mm256_castsi128_si256(_mm_loadu_si128(a.cast()));
    _mm256_inserti128_si256::<1>(low, _mm_loadu_si128(b.cast()))
}

/// 8 bytes at `a`, then 8 bytes at `b`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pair8(a: *const u8, b: *const u8) -> __m128i {
    _mm_unpacklo_epi64(_mm_loadl_epi64(a.cast()), _mm_loadl_epi64(b.cast()))
}

/// Both groups' eight f16 header values at `a` and `b` as sixteen f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn scales16(a: *const u8, b: *const u8) -> __m512 {
    _mm512_cvtph_ps(pair16(a, b))
}

/// Activation bytes `qs[i..i + 4]` of block `x` broadcast to all sixteen lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn bcast4(x: *const Q8Block, i: usize) -> __m512i {
    let p = std::ptr::addr_of!((*x).qs).cast::<u8>().add(i);
    _mm512_set1_epi32(std::ptr::read_unaligned(p.cast::<i32>()))
}

/// The nibbles of one packed Q4 block of both groups (128 bytes at `qa`
/// and at `qb`): `lo[k]` holds values `4k..4k + 4` of each row, `hi[k]`
/// values `16 + 4k..`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn nibbles(qa: *const u8, qb: *const u8) -> ([__m512i; 4], [__m512i; 4]) {
    let mask = _mm512_set1_epi8(0xF);
    let mut lo = [_mm512_setzero_si512(); 4];
    let mut hi = [_mm512_setzero_si512(); 4];
    for k in 0..4 {
        let raw = pair32(qa.add(32 * k), qb.add(32 * k));
        lo[k] = _mm512_and_si512(raw, mask);
        hi[k] = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), mask);
    }
    (lo, hi)
}

/// Σ over one 32-value block of `nibble · x` per row lane (the VNNI nibble
/// dot of `avx2_packed`, sixteen rows wide).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn nibble_dot(lo: &[__m512i; 4], hi: &[__m512i; 4], x: *const Q8Block) -> __m512i {
    let mut s = _mm512_setzero_si512();
    for k in 0..4 {
        s = _mm512_dpbusd_epi32(s, lo[k], bcast4(x, 4 * k));
        s = _mm512_dpbusd_epi32(s, hi[k], bcast4(x, 16 + 4 * k));
    }
    s
}

/// Q4_0 for two groups, step for step `avx2_packed`'s:
/// `Σ (q − 8)·x = Σ q·x − 8·Σx`, one float step per block.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_0<const T: usize>(
    ga: *const u8,
    gb: *const u8,
    n: usize,
    x: &[*const Q8Block; WIDE_TOKENS],
    out: &mut [f32],
) {
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..n {
        let (pa, pb) = (ga.add(b * 144), gb.add(b * 144));
        let d = scales16(pa, pb);
        let (lo, hi) = nibbles(pa.add(16), pb.add(16));
        for t in 0..T {
            let xb = x[t].add(b);
            let sum = _mm512_sub_epi32(nibble_dot(&lo, &hi, xb), _mm512_set1_epi32(8 * (*xb).sum));
            let scale = _mm512_mul_ps(d, _mm512_set1_ps((*xb).d));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[t]);
        }
    }
    store(&acc, out);
}

/// Q4_1 for two groups, step for step `avx2_packed`'s:
/// `d·Σ q·x + m·s`, the minimum terms summed apart and added at the end.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_1<const T: usize>(
    ga: *const u8,
    gb: *const u8,
    n: usize,
    x: &[*const Q8Block; WIDE_TOKENS],
    out: &mut [f32],
) {
    let mut acc = [_mm512_setzero_ps(); T];
    let mut mins = [_mm512_setzero_ps(); T];
    for b in 0..n {
        let (pa, pb) = (ga.add(b * 160), gb.add(b * 160));
        let (d, m) = (scales16(pa, pb), scales16(pa.add(16), pb.add(16)));
        let (lo, hi) = nibbles(pa.add(32), pb.add(32));
        for t in 0..T {
            let xb = x[t].add(b);
            let scale = _mm512_mul_ps(d, _mm512_set1_ps((*xb).d));
            let sum = _mm512_cvtepi32_ps(nibble_dot(&lo, &hi, xb));
            acc[t] = _mm512_fmadd_ps(sum, scale, acc[t]);
            mins[t] = _mm512_add_ps(mins[t], _mm512_mul_ps(m, _mm512_set1_ps((*xb).s)));
        }
    }
    for t in 0..T {
        acc[t] = _mm512_add_ps(acc[t], mins[t]);
    }
    store(&acc, out);
}

/// Stores each token's sixteen sums at `out[16t..]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn store<const T: usize>(acc: &[__m512; T], out: &mut [f32]) {
    for (t, a) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.as_mut_ptr().add(PAIR_ROWS * t), *a);
    }
}

/// One 64-value chunk `c` of packed Q4_K block `b` (at `pa` and `pb` in the
/// two groups) against T tokens: the low and high nibbles are two
/// sub-blocks whose byte products are summed with `vpdpbusd`, then
/// multiplied by each row's 6-bit scale and added to `sums` (as
/// `avx2_packed::q4_k_chunk_vnni` does for eight rows).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k_chunk<const T: usize>(
    pa: *const u8,
    pb: *const u8,
    b: usize,
    c: usize,
    x: &[*const Q8Block; WIDE_TOKENS],
    sums: &mut [__m512i; T],
) {
    let mask = _mm512_set1_epi8(0xF);
    let (qa, qb) = (pa.add(160 + 256 * c), pb.add(160 + 256 * c));
    let mut lo_sums = [_mm512_setzero_si512(); T];
    let mut hi_sums = [_mm512_setzero_si512(); T];
    for k in 0..8 {
        let raw = pair32(qa.add(32 * k), qb.add(32 * k));
        let lo = _mm512_and_si512(raw, mask);
        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), mask);
        for t in 0..T {
            let xs = x[t].add(8 * b + 2 * c);
            lo_sums[t] = _mm512_dpbusd_epi32(lo_sums[t], lo, bcast4(xs, 4 * k));
            hi_sums[t] = _mm512_dpbusd_epi32(hi_sums[t], hi, bcast4(xs.add(1), 4 * k));
        }
    }
    let scale_lo = _mm512_cvtepu8_epi32(pair8(pa.add(32 + 16 * c), pb.add(32 + 16 * c)));
    let scale_hi = _mm512_cvtepu8_epi32(pair8(pa.add(40 + 16 * c), pb.add(40 + 16 * c)));
    for t in 0..T {
        let p = _mm512_add_epi32(
            _mm512_mullo_epi32(lo_sums[t], scale_lo),
            _mm512_mullo_epi32(hi_sums[t], scale_hi),
        );
        sums[t] = _mm512_add_epi32(sums[t], p);
    }
}

/// Q4_K against Q8_K activations for two groups, step for step
/// `avx2_packed`'s Q4_K kernel: four chunks of scaled integer sums per
/// block, the mins meeting the activations' sub-block sums as 16-bit pairs,
/// one float step per block each for the sums and the mins.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k<const T: usize>(
    ga: *const u8,
    gb: *const u8,
    n: usize,
    x: &[*const Q8Block; WIDE_TOKENS],
    out: &mut [f32],
) {
    let mut acc = [_mm512_setzero_ps(); T];
    let mut acc_min = [_mm512_setzero_ps(); T];
    for b in 0..n {
        let (pa, pb) = (ga.add(b * Q4K_PACKED_BLOCK), gb.add(b * Q4K_PACKED_BLOCK));
        let (d, dmin) = (scales16(pa, pb), scales16(pa.add(16), pb.add(16)));
        let mut sums = [_mm512_setzero_si512(); T];
        for c in 0..4 {
            q4_k_chunk::<T>(pa, pb, b, c, x, &mut sums);
        }
        let mut mins_of_pair = [_mm512_setzero_si512(); 4];
        for (p, m) in mins_of_pair.iter_mut().enumerate() {
            *m = _mm512_cvtepu8_epi16(pair16(pa.add(96 + 16 * p), pb.add(96 + 16 * p)));
        }
        for t in 0..T {
            let xs = x[t].add(8 * b);
            let mut mins = _mm512_setzero_si512();
            for (p, m) in mins_of_pair.iter().enumerate() {
                let (s0, s1) = ((*xs.add(2 * p)).sum, (*xs.add(2 * p + 1)).sum);
                let pair = _mm512_set1_epi32((s1 << 16) | (s0 & 0xFFFF));
                mins = _mm512_add_epi32(mins, _mm512_madd_epi16(*m, pair));
            }
            let dx = _mm512_set1_ps((*xs).d);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[t]), _mm512_mul_ps(d, dx), acc[t]);
            acc_min[t] = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(mins),
                _mm512_mul_ps(dmin, dx),
                acc_min[t],
            );
        }
    }
    for t in 0..T {
        acc[t] = _mm512_sub_ps(acc[t], acc_min[t]);
    }
    store(&acc, out);
}

/// Q6_K against Q8_K activations for two groups, step for step
/// `avx2_packed`'s Q6_K kernel: each 16-value sub-block's `Σ q·x − 32·Σx`
/// times its row's signed scale, in integers to one float step per block.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q6_k<const T: usize>(
    ga: *const u8,
    gb: *const u8,
    n: usize,
    x: &[*const Q8Block; WIDE_TOKENS],
    out: &mut [f32],
) {
    let low = _mm512_set1_epi8(0xF);
    let high = _mm512_set1_epi8(0x30);
    let bits = |v: __m512i| _mm512_and_si512(v, high);
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..n {
        let (pa, pb) = (ga.add(b * Q6K_PACKED_BLOCK), gb.add(b * Q6K_PACKED_BLOCK));
        let d = scales16(pa, pb);
        let mut sums = [_mm512_setzero_si512(); T];
        for h in 0..2 {
            for s in 0..2 {
                let mut part = [[_mm512_setzero_si512(); T]; 4];
                for k in 4 * s..4 * s + 4 {
                    let at = Q6K_QS + 96 * (8 * h + k);
                    let load = |off: usize| pair32(pa.add(at + off), pb.add(at + off));
                    let (qa, qb, qh) = (load(0), load(32), load(64));
                    let q = [
                        _mm512_or_si512(
                            _mm512_and_si512(qa, low),
                            bits(_mm512_slli_epi16::<4>(qh)),
                        ),
                        _mm512_or_si512(
                            _mm512_and_si512(qb, low),
                            bits(_mm512_slli_epi16::<2>(qh)),
                        ),
                        _mm512_or_si512(
                            _mm512_and_si512(_mm512_srli_epi16::<4>(qa), low),
                            bits(qh),
                        ),
                        _mm512_or_si512(
                            _mm512_and_si512(_mm512_srli_epi16::<4>(qb), low),
                            bits(_mm512_srli_epi16::<2>(qh)),
                        ),
                    ];
                    for t in 0..T {
                        let xs = x[t].add(8 * b + 4 * h);
                        for j in 0..4 {
                            part[j][t] =
                                _mm512_dpbusd_epi32(part[j][t], q[j], bcast4(xs.add(j), 4 * k));
                        }
                    }
                }
                for (j, partial) in part.iter().enumerate() {
                    let sub = 8 * h + 2 * j + s;
                    let at = Q6K_SCALES + GROUP_ROWS * sub;
                    let scale = _mm512_cvtepi8_epi32(pair8(pa.add(at), pb.add(at)));
                    for t in 0..T {
                        let xb = &*x[t].add(8 * b + 4 * h + j);
                        let x16 = if s == 0 {
                            xb.sum_lo
                        } else {
                            xb.sum - xb.sum_lo
                        };
                        let centred = _mm512_sub_epi32(partial[t], _mm512_set1_epi32(32 * x16));
                        sums[t] = _mm512_add_epi32(sums[t], _mm512_mullo_epi32(centred, scale));
                    }
                }
            }
        }
        for t in 0..T {
            let dx = _mm512_set1_ps((*x[t].add(8 * b)).d);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[t]), _mm512_mul_ps(d, dx), acc[t]);
        }
    }
    store(&acc, out);
}
