//! The encoder's work outside attention in fewer passes over memory: a
//! dense layer's bias written into the output before the GEMM accumulates
//! onto it (no separate broadcast add), the erf-GELU applied with a SIMD
//! `e^x` on all cores, and the residual add fused into the LayerNorm, one
//! row per pass with eight-lane sums. Every function falls back to the
//! plain tensor operations for layouts it does not handle (a non-f32 or
//! adapted layer, a strided view), so callers need not check.
//!
//! Measured on the Intel Xeon VM (2026-12-05, `embed_bench`, see
//! BENCHMARKS.md): these passes were a third of an all-MiniLM-L6-v2 batch
//! — candle's scalar LayerNorm, libm's `expf` inside GELU, the bias adds.

use candle_core::{Device, Storage, Tensor};
use rayon::prelude::*;

use crate::kernels::gelu::erf_with_exp;
use crate::kernels::gemm::{matmul_add_into, MatRef};
use crate::kernels::vector::{lane_sum, Kernels};
use crate::linear::Linear;
use crate::Result;

/// Values per parallel piece of the element-wise passes.
const PIECE: usize = 16 * 1024;

/// Runs `f` on `t`'s values when `t` is a contiguous f32 CPU tensor.
pub(super) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(cpu) => Some(f(cpu.as_slice::<f32>().ok()?.get(start..end)?)),
        _ => None,
    }
}

/// `x Wᵀ + b` of a dense f32 layer, the bias written first and the GEMM
/// accumulating onto it; then GELU (erf form) when `gelu`. Any other layer
/// or layout takes [`Linear::forward`] (and the tensor GELU).
pub(super) fn dense(x: &Tensor, layer: &Linear, gelu: bool) -> Result<Tensor> {
    if let Some(y) = dense_fused(x, layer, gelu)? {
        return Ok(y);
    }
    let y = layer.forward(x)?;
    Ok(if gelu {
        crate::kernels::gelu_erf(&y)?
    } else {
        y
    })
}

fn dense_fused(x: &Tensor, layer: &Linear, gelu: bool) -> Result<Option<Tensor>> {
    let Linear::Dense {
        weight,
        bias: Some(bias),
    } = layer
    else {
        return Ok(None);
    };
    let (Ok((tokens, cols)), Ok((rows, w_cols))) = (x.dims2(), weight.dims2()) else {
        return Ok(None);
    };
    if cols != w_cols || bias.elem_count() != rows {
        return Ok(None);
    }
    let out = with_f32(x, |xs| {
        with_f32(weight, |w| {
            with_f32(bias, |b| {
                let mut out = Vec::with_capacity(tokens * rows);
                for _ in 0..tokens {
                    out.extend_from_slice(b);
                }
                let a = MatRef::row_major(xs, tokens, cols);
                let wt = MatRef::row_major(w, rows, cols).t();
                matmul_add_into(&mut out, rows, a, wt, true).map(|_| out)
            })
        })
    });
    let Some(Some(Some(Some(mut out)))) = out else {
        return Ok(None);
    };
    if gelu {
        gelu_erf_in_place(&mut out);
    }
    Ok(Some(Tensor::from_vec(out, (tokens, rows), &Device::Cpu)?))
}

/// `x · Φ(x)` for every value, on all cores: erf by Abramowitz & Stegun
/// 7.1.26 (as `kernels::gelu`), its `e^{−x²/2}` by the SIMD exponential.
pub(super) fn gelu_erf_in_place(values: &mut [f32]) {
    values.par_chunks_mut(PIECE).for_each(gelu_erf_serial);
}

/// [`gelu_erf_in_place`] on the calling thread only.
pub(super) fn gelu_erf_serial(values: &mut [f32]) {
    const STEP: usize = 512;
    let kernels = Kernels::select();
    let mut e = [0f32; STEP];
    for piece in values.chunks_mut(STEP) {
        let e = &mut e[..piece.len()];
        for (e, &v) in e.iter_mut().zip(piece.iter()) {
            *e = -0.5 * v * v;
        }
        (kernels.exp)(e);
        gelu_from_exp(piece, e);
    }
}

/// The rest of [`gelu_erf_in_place`] once `e[i] = e^{−x²/2}`, compiled
/// for AVX2 where the CPU has it (the same element-wise arithmetic, wider).
fn gelu_from_exp(values: &mut [f32], e: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        #[allow(unsafe_code)]
        // SAFETY: AVX-512F was just detected.
        unsafe {
            return simd::gelu_from_exp_avx512(values, e);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: AVX2 was just detected.
        unsafe {
            return simd::gelu_from_exp(values, e);
        }
    }
    gelu_from_exp_body(values, e);
}

#[inline(always)]
fn gelu_from_exp_body(values: &mut [f32], e: &[f32]) {
    for (v, &e) in values.iter_mut().zip(e) {
        let erf = erf_with_exp(*v * std::f32::consts::FRAC_1_SQRT_2, e);
        *v = 0.5 * *v * (1.0 + erf);
    }
}

/// LayerNorm of `a + residual` (same shape `[tokens, hidden]`) with the
/// weights `gamma`, `beta`: one pass per row for the sum and the mean, one
/// for the variance, one to write. Falls back to the tensor operations for
/// layouts it does not handle.
pub(super) fn add_layer_norm(
    a: &Tensor,
    residual: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    let fused = with_f32(a, |a| {
        with_f32(residual, |r| {
            with_f32(gamma, |g| {
                with_f32(beta, |b| {
                    let hidden = g.len();
                    if hidden == 0
                        || a.len() != r.len()
                        || a.len() % hidden != 0
                        || b.len() != hidden
                    {
                        return None;
                    }
                    let mut out = vec![0f32; a.len()];
                    let rows_per_piece = (PIECE / hidden).max(1);
                    out.par_chunks_mut(rows_per_piece * hidden)
                        .enumerate()
                        .for_each(|(i, piece)| {
                            let first = i * rows_per_piece * hidden;
                            for (j, row) in piece.chunks_exact_mut(hidden).enumerate() {
                                let at = first + j * hidden;
                                let (x, y) = (&a[at..at + hidden], &r[at..at + hidden]);
                                norm_row(row, x, y, g, b, eps);
                            }
                        });
                    Some(out)
                })
            })
        })
    });
    if let Some(Some(Some(Some(Some(out))))) = fused {
        return Ok(Tensor::from_vec(out, a.shape(), &Device::Cpu)?);
    }
    Ok(candle_nn::ops::layer_norm(
        &(a + residual)?.contiguous()?,
        gamma,
        beta,
        eps,
    )?)
}

/// `out = (v − mean) / √(var + eps) · g + b` with `v = x + y`, compiled
/// for AVX2 where the CPU has it (same lanes, same sums).
pub(super) fn norm_row(out: &mut [f32], x: &[f32], y: &[f32], g: &[f32], b: &[f32], eps: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: AVX2 was just detected.
        unsafe {
            return simd::norm_row(out, x, y, g, b, eps);
        }
    }
    norm_row_body(out, x, y, g, b, eps);
}

#[inline(always)]
fn norm_row_body(out: &mut [f32], x: &[f32], y: &[f32], g: &[f32], b: &[f32], eps: f32) {
    for ((o, &x), &y) in out.iter_mut().zip(x).zip(y) {
        *o = x + y;
    }
    let n = out.len() as f32;
    let mean = lane_sum(out, |v| v) / n;
    let var = lane_sum(out, |v| (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((o, &g), &b) in out.iter_mut().zip(g).zip(b) {
        *o = (*o - mean) * inv * g + b;
    }
}

/// The element-wise bodies compiled with AVX2 enabled.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod simd {
    /// [`super::gelu_from_exp_body`] for AVX-512; callers check the CPU.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gelu_from_exp_avx512(values: &mut [f32], e: &[f32]) {
        super::gelu_from_exp_body(values, e);
    }

    /// [`super::gelu_from_exp_body`] for AVX2; callers check the CPU.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gelu_from_exp(values: &mut [f32], e: &[f32]) {
        super::gelu_from_exp_body(values, e);
    }

    /// [`super::norm_row_body`] for AVX2; callers check the CPU.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn norm_row(
        out: &mut [f32],
        x: &[f32],
        y: &[f32],
        g: &[f32],
        b: &[f32],
        eps: f32,
    ) {
        super::norm_row_body(out, x, y, g, b, eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::vector::pseudo_random;

    #[test]
    fn fused_dense_gelu_and_norm_match_the_tensor_operations() {
        let (tokens, cols, rows) = (37, 48, 40);
        let dev = Device::Cpu;
        let x = Tensor::from_vec(pseudo_random(tokens * cols, 1), (tokens, cols), &dev).unwrap();
        let layer = Linear::Dense {
            weight: Tensor::from_vec(pseudo_random(rows * cols, 2), (rows, cols), &dev).unwrap(),
            bias: Some(Tensor::from_vec(pseudo_random(rows, 3), rows, &dev).unwrap()),
        };
        let close = |a: &Tensor, b: &Tensor, tol: f32| {
            let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(a.len(), b.len());
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() <= tol * (1.0 + q.abs()), "{p} vs {q}");
            }
        };
        let plain = layer.forward(&x).unwrap();
        close(&dense(&x, &layer, false).unwrap(), &plain, 1e-5);
        let gelu = plain.gelu_erf().unwrap();
        close(&dense(&x, &layer, true).unwrap(), &gelu, 1e-5);
        // Not contiguous: the fallback gives the same values.
        let xt = x.t().unwrap().contiguous().unwrap().t().unwrap();
        close(&dense(&xt, &layer, true).unwrap(), &gelu, 1e-5);

        let residual =
            Tensor::from_vec(pseudo_random(tokens * rows, 4), (tokens, rows), &dev).unwrap();
        let gamma = Tensor::from_vec(pseudo_random(rows, 5), rows, &dev).unwrap();
        let beta = Tensor::from_vec(pseudo_random(rows, 6), rows, &dev).unwrap();
        let reference =
            candle_nn::ops::layer_norm(&(&plain + &residual).unwrap(), &gamma, &beta, 1e-12)
                .unwrap();
        close(
            &add_layer_norm(&plain, &residual, &gamma, &beta, 1e-12).unwrap(),
            &reference,
            1e-5,
        );
    }
}
