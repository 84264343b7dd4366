//! NEON versions of the integer dot products in `dot_scalar` for Q8_0,
//! Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K (aarch64, where NEON is part of the base
//! instruction set). Each block's integer sum is exact, and the float steps
//! are the portable kernels' in the same order, so results equal
//! `dot_scalar`'s bit for bit (tested in `tests.rs` against the portable
//! kernels, under `qemu-aarch64` on x86 machines).
#![allow(unsafe_code)]

use std::arch::aarch64::*;

use super::dequant::{f16_at, scale_min_k4};
use super::q8::Q8Block;

/// Σ w·x over 16 signed bytes each, widened to 32 bits (exact: each
/// product fits 16 bits, pairs are added in 32).
#[inline]
fn dot16(w: int8x16_t, x: int8x16_t) -> int32x4_t {
    // SAFETY: NEON is always present on aarch64 (a base feature of the
    // target); these intrinsics only compute on registers.
    unsafe {
        let lo = vmull_s8(vget_low_s8(w), vget_low_s8(x));
        let hi = vmull_high_s8(w, x);
        vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
    }
}

/// The 32 activations of `xb` as two registers.
#[inline]
fn load_x(xb: &Q8Block) -> (int8x16_t, int8x16_t) {
    // SAFETY: `qs` is 32 bytes; each load reads 16 of them.
    unsafe { (vld1q_s8(xb.qs.as_ptr()), vld1q_s8(xb.qs.as_ptr().add(16))) }
}

/// 16 bytes of `b` from `at` (within the block: the slice is bounds-checked).
#[inline]
fn load_u8(b: &[u8], at: usize) -> uint8x16_t {
    // SAFETY: the slice holds exactly 16 readable bytes.
    unsafe { vld1q_u8(b[at..at + 16].as_ptr()) }
}

/// Σ over 32 values: weights `(w0, w1)` against `xb`.
#[inline]
fn dot32(w0: int8x16_t, w1: int8x16_t, xb: &Q8Block) -> i32 {
    let (x0, x1) = load_x(xb);
    // SAFETY: register-only NEON arithmetic (see `dot16`).
    unsafe { vaddvq_s32(vaddq_s32(dot16(w0, x0), dot16(w1, x1))) }
}

/// The low and high nibbles of 16 bytes at `at`, as two signed registers
/// (elements 0–15 and 16–31 of a Q4_0/Q4_1 block), minus `offset`.
#[inline]
fn nibbles(b: &[u8], at: usize, offset: i8) -> (int8x16_t, int8x16_t) {
    let q = load_u8(b, at);
    // SAFETY: register-only NEON arithmetic.
    unsafe {
        let lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F)));
        let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
        let off = vdupq_n_s8(offset);
        (vsubq_s8(lo, off), vsubq_s8(hi, off))
    }
}

/// Q8_0 weights.
pub fn dot_q8_0(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(34)
        .zip(x)
        .map(|(b, xb)| {
            // SAFETY: reinterpreting bytes as signed bytes.
            let (w0, w1) = unsafe {
                (
                    vreinterpretq_s8_u8(load_u8(b, 2)),
                    vreinterpretq_s8_u8(load_u8(b, 18)),
                )
            };
            f16_at(b, 0) * xb.d * dot32(w0, w1, xb) as f32
        })
        .sum()
}

/// Q4_0 weights.
pub fn dot_q4_0(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(18)
        .zip(x)
        .map(|(b, xb)| {
            let (w0, w1) = nibbles(b, 2, 8);
            f16_at(b, 0) * xb.d * dot32(w0, w1, xb) as f32
        })
        .sum()
}

/// Q4_1 weights.
pub fn dot_q4_1(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(20)
        .zip(x)
        .map(|(b, xb)| {
            let (w0, w1) = nibbles(b, 4, 0);
            f16_at(b, 0) * xb.d * dot32(w0, w1, xb) as f32 + f16_at(b, 2) * xb.s
        })
        .sum()
}

/// The 32 five-bit values of a Q5_0/Q5_1 block (`qh` at `at`, then 16
/// bytes of nibbles), minus `offset`: bit `j` of the little-endian `qh`
/// is the fifth bit of element `j`.
#[inline]
fn fives(b: &[u8], at: usize, offset: i8) -> (int8x16_t, int8x16_t) {
    let q = load_u8(b, at + 4);
    let qh = &b[at..at + 4];
    // SAFETY: register-only NEON arithmetic, and a load of the 16-byte
    // `BITS` array.
    unsafe {
        const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
        let bits = vld1q_u8(BITS.as_ptr());
        let fifth = |lo: u8, hi: u8| {
            let set = vtstq_u8(vcombine_u8(vdup_n_u8(lo), vdup_n_u8(hi)), bits);
            vandq_u8(set, vdupq_n_u8(0x10))
        };
        let lo = vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), fifth(qh[0], qh[1]));
        let hi = vorrq_u8(vshrq_n_u8::<4>(q), fifth(qh[2], qh[3]));
        let off = vdupq_n_s8(offset);
        (
            vsubq_s8(vreinterpretq_s8_u8(lo), off),
            vsubq_s8(vreinterpretq_s8_u8(hi), off),
        )
    }
}

/// Q5_0 weights.
pub fn dot_q5_0(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(22)
        .zip(x)
        .map(|(b, xb)| {
            let (w0, w1) = fives(b, 2, 16);
            f16_at(b, 0) * xb.d * dot32(w0, w1, xb) as f32
        })
        .sum()
}

/// Q5_1 weights.
pub fn dot_q5_1(row: &[u8], x: &[Q8Block]) -> f32 {
    row.chunks_exact(24)
        .zip(x)
        .map(|(b, xb)| {
            let (w0, w1) = fives(b, 4, 0);
            f16_at(b, 0) * xb.d * dot32(w0, w1, xb) as f32 + f16_at(b, 2) * xb.s
        })
        .sum()
}

/// Q4_K weights: eight 32-value groups per 256-value block, group `2c`
/// the low and `2c + 1` the high nibbles of the block's 32-byte chunk `c`.
pub fn dot_q4_k(row: &[u8], x: &[Q8Block]) -> f32 {
    let mut total = 0f32;
    for (b, xs) in row.chunks_exact(144).zip(x.chunks_exact(8)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        for (sub, xb) in xs.iter().enumerate() {
            let at = 16 + 32 * (sub / 2);
            let (lo0, hi0) = nibbles(b, at, 0);
            let (lo1, hi1) = nibbles(b, at + 16, 0);
            let s = if sub % 2 == 0 {
                dot32(lo0, lo1, xb)
            } else {
                dot32(hi0, hi1, xb)
            };
            let (sc, m) = scale_min_k4(sub, &b[4..16]);
            total += d * f32::from(sc) * xb.d * s as f32 - dmin * f32::from(m) * xb.s;
        }
    }
    total
}

/// Q6_K weights: group `g` of a block takes four low bits from `ql`
/// (half `g / 4`; bytes 0–31 or 32–63; low or high nibbles) and two high
/// bits from `qh`, minus 32; each 16-value half has its own scale.
pub fn dot_q6_k(row: &[u8], x: &[Q8Block]) -> f32 {
    let mut total = 0f32;
    for (b, xs) in row.chunks_exact(210).zip(x.chunks_exact(8)) {
        let d = f16_at(b, 208);
        for (g, xb) in xs.iter().enumerate() {
            let (half, k) = (g / 4, g % 4);
            let ql_at = 64 * half + 32 * (k % 2);
            let qh_at = 128 + 32 * half;
            let (x0, x1) = load_x(xb);
            let part = |i: usize, x: int8x16_t| -> i32 {
                let ql = load_u8(b, ql_at + 16 * i);
                let qh = load_u8(b, qh_at + 16 * i);
                // SAFETY: register-only NEON arithmetic.
                unsafe {
                    let low = if k < 2 {
                        vandq_u8(ql, vdupq_n_u8(0x0F))
                    } else {
                        vshrq_n_u8::<4>(ql)
                    };
                    let shift = vdupq_n_s8(-(2 * k as i8));
                    let high = vandq_u8(vshlq_u8(qh, shift), vdupq_n_u8(3));
                    let q = vorrq_u8(low, vshlq_n_u8::<4>(high));
                    let w = vsubq_s8(vreinterpretq_s8_u8(q), vdupq_n_s8(32));
                    vaddvq_s32(dot16(w, x))
                }
            };
            let (lo, hi) = (part(0, x0), part(1, x1));
            let sc = &b[192 + 8 * half..];
            let s = i32::from(sc[2 * k] as i8) * lo + i32::from(sc[2 * k + 1] as i8) * hi;
            total += d * xb.d * s as f32;
        }
    }
    total
}
