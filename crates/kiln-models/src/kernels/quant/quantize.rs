//! Quantizing f32 rows into ggml blocks (for in-situ quantization at load
//! and, later, for writing GGUF files). Round-to-nearest quantizers with
//! llama.cpp's block layouts; the k-quants choose sub-block scales from each
//! sub-block's range (llama.cpp additionally searches for the scale with the
//! least error, so its files are somewhat more accurate).

use half::{bf16, f16};

use super::GgmlType;

/// Quantizes one row (`x.len()` a multiple of the type's block size) into
/// `ty`'s blocks; `None` for an unsupported type or a ragged row.
pub fn quantize_row(ty: GgmlType, x: &[f32]) -> Option<Vec<u8>> {
    if !x.len().is_multiple_of(ty.block_size()) {
        return None;
    }
    let mut out = Vec::with_capacity(ty.row_bytes(x.len())?);
    match ty {
        GgmlType::F32 => x.iter().for_each(|v| out.extend(v.to_le_bytes())),
        GgmlType::F16 => x
            .iter()
            .for_each(|v| out.extend(f16::from_f32(*v).to_le_bytes())),
        GgmlType::BF16 => x
            .iter()
            .for_each(|v| out.extend(bf16::from_f32(*v).to_le_bytes())),
        GgmlType::Q8_0 => x.chunks_exact(32).for_each(|b| q8_0(b, &mut out)),
        GgmlType::Q4_0 => x.chunks_exact(32).for_each(|b| q4_0(b, &mut out)),
        GgmlType::Q4_1 => x.chunks_exact(32).for_each(|b| q4_1(b, &mut out)),
        GgmlType::Q4_K => x.chunks_exact(256).for_each(|b| qk_k(b, 4, &mut out)),
        GgmlType::Q5_K => x.chunks_exact(256).for_each(|b| qk_k(b, 5, &mut out)),
        GgmlType::Q6_K => x.chunks_exact(256).for_each(|b| q6_k(b, &mut out)),
        _ => return None,
    }
    Some(out)
}

/// The types [`quantize_row`] writes.
pub const QUANTIZABLE: [GgmlType; 9] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn push_f16(out: &mut Vec<u8>, v: f32) {
    out.extend(f16::from_f32(v).to_le_bytes());
}

/// The value with the largest magnitude (sign kept).
fn signed_max(x: &[f32]) -> f32 {
    x.iter()
        .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m })
}

fn q8_0(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    push_f16(out, d);
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
}

fn q4_0(x: &[f32], out: &mut Vec<u8>) {
    let d = signed_max(x) / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    push_f16(out, d);
    let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
    out.extend((0..16).map(|j| q(x[j]) | (q(x[j + 16]) << 4)));
}

fn q4_1(x: &[f32], out: &mut Vec<u8>) {
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    push_f16(out, d);
    push_f16(out, min);
    let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
    out.extend((0..16).map(|j| q(x[j]) | (q(x[j + 16]) << 4)));
}

/// The `(scale, min)` with `x ≈ scale·q − min`, `q` in `0..=levels`, that
/// minimises the weighted squared error over a sweep of candidate scales
/// (each refined by least squares), as llama.cpp's `make_qkx2_quants`.
fn fit_scale_min(x: &[f32], w: &[f32], levels: f32) -> (f32, f32) {
    let lo = x.iter().copied().fold(f32::INFINITY, f32::min).min(0.0);
    let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if hi <= lo {
        return (0.0, -lo);
    }
    let error = |scale: f32, min: f32| -> f32 {
        x.iter()
            .zip(w)
            .map(|(&v, &wi)| {
                let q = if scale > 0.0 {
                    ((v - min) / scale).round().clamp(0.0, levels)
                } else {
                    0.0
                };
                wi * (scale * q + min - v).powi(2)
            })
            .sum()
    };
    let mut best = ((hi - lo) / levels, lo);
    let mut best_err = error(best.0, best.1);
    for step in 0..=20 {
        let iscale = (-1.0 + 0.1 * step as f32 + levels) / (hi - lo);
        let (mut sw, mut sx, mut sl, mut sl2, mut sxl) = (0f32, 0f32, 0f32, 0f32, 0f32);
        for (&v, &wi) in x.iter().zip(w) {
            let l = (iscale * (v - lo)).round().clamp(0.0, levels);
            sw += wi;
            sx += wi * v;
            sl += wi * l;
            sl2 += wi * l * l;
            sxl += wi * v * l;
        }
        let det = sw * sl2 - sl * sl;
        if det <= 0.0 {
            continue;
        }
        let mut scale = (sw * sxl - sx * sl) / det;
        let mut min = (sl2 * sx - sl * sxl) / det;
        if min > 0.0 {
            min = 0.0;
            scale = sxl / sl2;
        }
        if scale <= 0.0 {
            continue;
        }
        let err = error(scale, min);
        if err < best_err {
            best_err = err;
            best = (scale, min);
        }
    }
    (best.0, -best.1)
}

/// Packs eight 6-bit scales and mins as `scale_min_k4` reads them.
fn pack_k4_scales(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = sc[j] & 63;
        s[j + 4] = m[j] & 63;
    }
    for j in 4..8 {
        s[j + 4] = (sc[j] & 0xF) | ((m[j] & 0xF) << 4);
        s[j - 4] |= (sc[j] >> 4) << 6;
        s[j] |= (m[j] >> 4) << 6;
    }
    s
}

/// Q4_K (`bits` 4) or Q5_K (`bits` 5).
fn qk_k(x: &[f32], bits: u32, out: &mut Vec<u8>) {
    // Per 32-value sub-block: w ≈ scale·q − min with q in 0..2^bits.
    let levels = ((1u32 << bits) - 1) as f32;
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    // Importance of each value, as llama.cpp weighs the fit: mean magnitude
    // of the block plus the value's own.
    let spread = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    for (j, sub) in x.chunks_exact(32).enumerate() {
        let weights: Vec<f32> = sub.iter().map(|v| spread + v.abs()).collect();
        let (scale, min) = fit_scale_min(sub, &weights, levels);
        scales[j] = scale;
        mins[j] = min;
    }
    let d = scales.iter().fold(0f32, |a, &b| a.max(b)) / 63.0;
    let dmin = mins.iter().fold(0f32, |a, &b| a.max(b)) / 63.0;
    let (d16, dmin16) = (f16::from_f32(d).to_f32(), f16::from_f32(dmin).to_f32());
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        sc[j] = if d16 > 0.0 {
            (scales[j] / d16).round().clamp(0.0, 63.0) as u8
        } else {
            0
        };
        m[j] = if dmin16 > 0.0 {
            (mins[j] / dmin16).round().clamp(0.0, 63.0) as u8
        } else {
            0
        };
    }
    let mut q = [0u8; 256];
    for (j, sub) in x.chunks_exact(32).enumerate() {
        let step = d16 * f32::from(sc[j]);
        let offset = dmin16 * f32::from(m[j]);
        for (l, &v) in sub.iter().enumerate() {
            q[32 * j + l] = if step > 0.0 {
                ((v + offset) / step).round().clamp(0.0, levels) as u8
            } else {
                0
            };
        }
    }
    push_f16(out, d);
    push_f16(out, dmin);
    out.extend(pack_k4_scales(&sc, &m));
    if bits == 5 {
        // qh: bit 2c of byte l is the fifth bit of element 64c + l, bit 2c + 1
        // that of element 64c + 32 + l.
        out.extend((0..32).map(|l| {
            (0..4).fold(0u8, |h, c| {
                h | (((q[64 * c + l] >> 4) & 1) << (2 * c))
                    | (((q[64 * c + 32 + l] >> 4) & 1) << (2 * c + 1))
            })
        }));
    }
    for c in 0..4 {
        out.extend((0..32).map(|l| (q[64 * c + l] & 0xF) | ((q[64 * c + 32 + l] & 0xF) << 4)));
    }
}

fn q6_k(x: &[f32], out: &mut Vec<u8>) {
    // Per 16-value sub-block a signed scale with q in −32..=31.
    let mut scales = [0f32; 16];
    for (j, sub) in x.chunks_exact(16).enumerate() {
        scales[j] = signed_max(sub) / -32.0;
    }
    let d = signed_max(&scales) / -128.0;
    let d16 = f16::from_f32(d).to_f32();
    let mut sc = [0i8; 16];
    let mut q = [0u8; 256];
    for (j, sub) in x.chunks_exact(16).enumerate() {
        sc[j] = if d16 != 0.0 {
            (scales[j] / d16).round().clamp(-128.0, 127.0) as i8
        } else {
            0
        };
        let step = d16 * f32::from(sc[j]);
        for (l, &v) in sub.iter().enumerate() {
            let level = if step != 0.0 {
                (v / step).round().clamp(-32.0, 31.0)
            } else {
                0.0
            };
            q[16 * j + l] = (level as i32 + 32) as u8;
        }
    }
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for h in 0..2 {
        for l in 0..32 {
            let [q1, q2, q3, q4] = [0, 32, 64, 96].map(|o| q[128 * h + o + l]);
            ql[64 * h + l] = (q1 & 0xF) | ((q3 & 0xF) << 4);
            ql[64 * h + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
            qh[32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    out.extend(ql);
    out.extend(qh);
    out.extend(sc.iter().map(|&v| v as u8));
    push_f16(out, d);
}
