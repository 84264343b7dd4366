//! Scalar dequantization of every block type: the reference the fast kernels
//! are tested against, and the path for embedding rows and rare types.

use half::{bf16, f16};

use super::GgmlType;

/// Reads the little-endian f16 at `b[i..i + 2]` as f32.
#[inline]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block (`s`: the
/// 12 packed scale bytes).
#[inline]
pub(crate) fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// All eight 6-bit scales and mins of a Q4_K/Q5_K block at once
/// (branch-free form of [`scale_min_k4`]).
#[inline]
pub(crate) fn scales_mins_k4(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let w = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (a, b, c) = (w(0), w(1), w(2));
    let scales_lo = a & LOW6;
    let scales_hi = (c & LOW4) | (((a >> 6) & LOW2) << 4);
    let mins_lo = b & LOW6;
    let mins_hi = ((c >> 4) & LOW4) | (((b >> 6) & LOW2) << 4);
    let join = |lo: u32, hi: u32| {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&lo.to_le_bytes());
        out[4..].copy_from_slice(&hi.to_le_bytes());
        out
    };
    (join(scales_lo, scales_hi), join(mins_lo, mins_hi))
}

/// The 16 signed 6-bit scales of a Q3_K block (`s`: its 12 packed bytes),
/// already offset by −32.
pub(crate) fn q3k_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = ((low | (high << 4)) as i8) - 32;
    }
    out
}

/// Dequantizes one block (`block.len() == ty.block_bytes()`) into `out`
/// (`out.len() == ty.block_size()`).
pub fn dequantize_block(ty: GgmlType, block: &[u8], out: &mut [f32]) {
    let b = block;
    match ty {
        GgmlType::F32 => out[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => out[0] = f16_at(b, 0),
        GgmlType::BF16 => out[0] = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        GgmlType::Q4_0 => {
            let d = f16_at(b, 0);
            for j in 0..16 {
                out[j] = (i32::from(b[2 + j] & 0xF) - 8) as f32 * d;
                out[j + 16] = (i32::from(b[2 + j] >> 4) - 8) as f32 * d;
            }
        }
        GgmlType::Q4_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..16 {
                out[j] = f32::from(b[4 + j] & 0xF) * d + m;
                out[j + 16] = f32::from(b[4 + j] >> 4) * d + m;
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let (d, m, hi, qs) = if ty == GgmlType::Q5_0 {
                (f16_at(b, 0), 0.0, 2, 6)
            } else {
                (f16_at(b, 0), f16_at(b, 2), 4, 8)
            };
            let qh = u32::from_le_bytes([b[hi], b[hi + 1], b[hi + 2], b[hi + 3]]);
            let offset = if ty == GgmlType::Q5_0 { 16 } else { 0 };
            for j in 0..16 {
                let h0 = ((qh >> j) & 1) << 4;
                let h1 = ((qh >> (j + 16)) & 1) << 4;
                let x0 = (u32::from(b[qs + j] & 0xF) | h0) as i32 - offset;
                let x1 = (u32::from(b[qs + j] >> 4) | h1) as i32 - offset;
                out[j] = x0 as f32 * d + m;
                out[j + 16] = x1 as f32 * d + m;
            }
        }
        GgmlType::Q8_0 => {
            let d = f16_at(b, 0);
            for j in 0..32 {
                out[j] = f32::from(b[2 + j] as i8) * d;
            }
        }
        GgmlType::Q2_K => dequantize_q2k(b, out),
        GgmlType::Q3_K => dequantize_q3k(b, out),
        GgmlType::Q4_K | GgmlType::Q5_K => dequantize_q45k(ty, b, out),
        GgmlType::Q6_K => dequantize_q6k(b, out),
    }
}

/// Q2_K: `scales[16] qs[64] d dmin`.
fn dequantize_q2k(b: &[u8], out: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    let mut y = 0;
    let mut is = 0;
    for half in 0..2 {
        let q = &qs[32 * half..32 * half + 32];
        for shift in (0..8).step_by(2) {
            for part in 0..2 {
                let sc = scales[is];
                is += 1;
                let (dl, ml) = (d * f32::from(sc & 0xF), dmin * f32::from(sc >> 4));
                for l in 0..16 {
                    out[y] = dl * f32::from((q[16 * part + l] >> shift) & 3) - ml;
                    y += 1;
                }
            }
        }
    }
}

/// Q3_K: `hmask[32] qs[64] scales[12] d`.
fn dequantize_q3k(b: &[u8], out: &mut [f32]) {
    let (hmask, qs) = (&b[0..32], &b[32..96]);
    let scales = q3k_scales(&b[96..108]);
    let d = f16_at(b, 108);
    let mut y = 0;
    let mut is = 0;
    let mut m = 1u8;
    for half in 0..2 {
        let q = &qs[32 * half..32 * half + 32];
        for shift in (0..8).step_by(2) {
            for part in 0..2 {
                let dl = d * f32::from(scales[is]);
                is += 1;
                for l in 16 * part..16 * part + 16 {
                    let low = i32::from((q[l] >> shift) & 3);
                    let high = if hmask[l] & m != 0 { 0 } else { 4 };
                    out[y] = dl * (low - high) as f32;
                    y += 1;
                }
            }
            m <<= 1;
        }
    }
}

/// Q4_K: `d dmin scales[12] qs[128]`; Q5_K: `d dmin scales[12] qh[32] qs[128]`.
fn dequantize_q45k(ty: GgmlType, b: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let (qh, qs) = if ty == GgmlType::Q5_K {
        (Some(&b[16..48]), &b[48..176])
    } else {
        (None, &b[16..144])
    };
    for chunk in 0..4 {
        let q = &qs[32 * chunk..32 * chunk + 32];
        for nibble in 0..2 {
            let sub = 2 * chunk + nibble;
            let (sc, m) = scale_min_k4(sub, scales);
            let (dl, ml) = (d * f32::from(sc), dmin * f32::from(m));
            for l in 0..32 {
                let low = if nibble == 0 { q[l] & 0xF } else { q[l] >> 4 };
                let high = qh.map_or(0, |h| ((h[l] >> sub) & 1) << 4);
                out[32 * sub + l] = dl * f32::from(low | high) - ml;
            }
        }
    }
}

/// Q6_K: `ql[128] qh[64] scales[16] d`.
fn dequantize_q6k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 208);
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut out[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q = [
                (ql[l] & 0xF) | ((qh[l] & 3) << 4),
                (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4),
                (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
            ];
            for (k, &qk) in q.iter().enumerate() {
                let scale = f32::from(sc[is + 2 * k] as i8);
                y[l + 32 * k] = d * scale * f32::from(qk as i8 - 32);
            }
        }
    }
}

/// Dequantizes a whole row of `out.len()` weights from its blocks.
pub fn dequantize_row(ty: GgmlType, row: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F16 => return f16_row(row, out),
        GgmlType::BF16 => {
            // bf16 → f32 is exact: the 16 bits become the high half.
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
            }
            return;
        }
        _ => {}
    }
    #[cfg(target_arch = "x86_64")]
    if super::avx2::available() && super::avx2::dequantize_row(ty, row, out).is_some() {
        return;
    }
    let (n, bytes) = (ty.block_size(), ty.block_bytes());
    for (dst, src) in out.chunks_exact_mut(n).zip(row.chunks_exact(bytes)) {
        dequantize_block(ty, src, dst);
    }
}

/// Little-endian f16 values to f32: F16C eight at a time where the CPU has
/// it (the prompt GEMM converts whole weight tiles this way), else `half`.
fn f16_row(row: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::avx2::available() {
        return super::avx2::f16_row_to_f32(row, out);
    }
    for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
        *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}
