//! Portable integer dot products of one quantized weight row with one
//! 8-bit activation row; the reference for the SIMD versions and the
//! fallback on CPUs without them.

use super::dequant::{f16_at, scale_min_k4};
use super::q8::Q8Block;

fn dot_i8(w: impl Iterator<Item = i32>, x: &[i8; 32]) -> i32 {
    w.zip(x.iter()).map(|(a, &b)| a * i32::from(b)).sum()
}

/// Q8_0 weights.
pub fn dot_q8_0(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(34)
        .zip(x)
        .map(|(b, xb)| {
            let s = dot_i8(b[2..34].iter().map(|&v| i32::from(v as i8)), &xb.qs);
            f16_at(b, 0) * xb.d * s as f32
        })
        .sum()
}

/// The 32 nibbles of a Q4_0/Q4_1 block in element order.
fn nibbles(qs: &[u8]) -> impl Iterator<Item = i32> + '_ {
    let lo = qs.iter().map(|&v| i32::from(v & 0xF));
    let hi = qs.iter().map(|&v| i32::from(v >> 4));
    lo.chain(hi)
}

/// Q4_0 weights.
pub fn dot_q4_0(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(18)
        .zip(x)
        .map(|(b, xb)| {
            let s = dot_i8(nibbles(&b[2..18]).map(|v| v - 8), &xb.qs);
            f16_at(b, 0) * xb.d * s as f32
        })
        .sum()
}

/// Q4_1 weights.
pub fn dot_q4_1(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(20)
        .zip(x)
        .map(|(b, xb)| {
            let s = dot_i8(nibbles(&b[4..20]), &xb.qs);
            f16_at(b, 0) * xb.d * s as f32 + f16_at(b, 2) * xb.s
        })
        .sum()
}

/// The 32 five-bit values of a Q5_0/Q5_1 block (`qh` then `qs`).
fn fives<'a>(qh: &'a [u8], qs: &'a [u8]) -> impl Iterator<Item = i32> + 'a {
    let high = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    nibbles(qs)
        .enumerate()
        .map(move |(j, v)| v | ((((high >> j) & 1) as i32) << 4))
}

/// Q5_0 weights.
pub fn dot_q5_0(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(22)
        .zip(x)
        .map(|(b, xb)| {
            let s = dot_i8(fives(&b[2..6], &b[6..22]).map(|v| v - 16), &xb.qs);
            f16_at(b, 0) * xb.d * s as f32
        })
        .sum()
}

/// Q5_1 weights.
pub fn dot_q5_1(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(24)
        .zip(x)
        .map(|(b, xb)| {
            let s = dot_i8(fives(&b[4..8], &b[8..24]), &xb.qs);
            f16_at(b, 0) * xb.d * s as f32 + f16_at(b, 2) * xb.s
        })
        .sum()
}

/// Q4_K weights.
pub fn dot_q4_k(row: &[u8], x: &[Q8Block]) -> f32 {
    let mut total = 0f32;
    for (b, xs) in row.chunks_exact(144).zip(x.chunks_exact(8)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let qs = &b[16..144];
        for (sub, xb) in xs.iter().enumerate() {
            let q = &qs[32 * (sub / 2)..32 * (sub / 2) + 32];
            let shift = 4 * (sub % 2);
            let s = dot_i8(q.iter().map(|&v| i32::from((v >> shift) & 0xF)), &xb.qs);
            let (sc, m) = scale_min_k4(sub, &b[4..16]);
            total += d * f32::from(sc) * xb.d * s as f32 - dmin * f32::from(m) * xb.s;
        }
    }
    total
}

/// The 32 six-bit values (minus 32) of group `g` (0..8) of a Q6_K block,
/// and the two scales of its halves.
pub(crate) fn q6k_group(b: &[u8], g: usize) -> ([i8; 32], [i8; 2]) {
    let (half, k) = (g / 4, g % 4);
    let ql = &b[64 * half..64 * half + 64];
    let qh = &b[128 + 32 * half..128 + 32 * half + 32];
    let mut q = [0i8; 32];
    for (l, v) in q.iter_mut().enumerate() {
        let low = if k % 2 == 0 {
            ql[l] & 0xF
        } else {
            ql[l + 32] & 0xF
        };
        let low = if k < 2 {
            low
        } else if k == 2 {
            ql[l] >> 4
        } else {
            ql[l + 32] >> 4
        };
        let high = (qh[l] >> (2 * k)) & 3;
        *v = (low | (high << 4)) as i8 - 32;
    }
    let sc = &b[192 + 8 * half..];
    (q, [sc[2 * k] as i8, sc[2 * k + 1] as i8])
}

/// Q6_K weights.
pub fn dot_q6_k(row: &[u8], x: &[Q8Block]) -> f32 {
    let mut total = 0f32;
    for (b, xs) in row.chunks_exact(210).zip(x.chunks_exact(8)) {
        let d = f16_at(b, 208);
        for (g, xb) in xs.iter().enumerate() {
            let (q, sc) = q6k_group(b, g);
            let part = |r: std::ops::Range<usize>| -> i32 {
                r.map(|l| i32::from(q[l]) * i32::from(xb.qs[l])).sum()
            };
            let (lo, hi) = (part(0..16), part(16..32));
            let s = i32::from(sc[0]) * lo + i32::from(sc[1]) * hi;
            total += d * xb.d * s as f32;
        }
    }
    total
}
