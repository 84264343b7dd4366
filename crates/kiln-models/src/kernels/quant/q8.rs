//! Activations quantized to 8 bits in blocks of 32, so products with
//! quantized weights run in integer arithmetic (as llama.cpp does).

/// 32 activations as `d · qs[i]`, with `s = d · Σ qs` kept for the weight
/// types that carry a minimum (Q4_1, Q4_K).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub struct Q8Block {
    /// Scale.
    pub d: f32,
    /// `d · Σ qs`.
    pub s: f32,
    /// Quantized values.
    pub qs: [i8; 32],
}

/// Quantizes `x` (a multiple of 32 long) to 8-bit blocks.
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
                qs,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
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
}
