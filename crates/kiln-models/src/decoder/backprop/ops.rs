//! Row-wise pieces of the hand-written backward: RMSNorm, SwiGLU and the
//! causal softmax, each with the forward that keeps what its backward needs.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::decoder::norm::{rms_row, Norm};
use crate::kernels::vector::Kernels;
use crate::Result;

/// Rows processed per rayon task by the element-wise loops.
const ROWS_PER_TASK: usize = 16;

/// The values of `t` as one flat vector (row-major).
pub(super) fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1()?)
}

/// A `[rows, cols]` tensor from row-major values.
pub(super) fn matrix(v: Vec<f32>, rows: usize, cols: usize) -> Result<Tensor> {
    Ok(Tensor::from_vec(v, (rows, cols), &Device::Cpu)?)
}

/// RMSNorm of every row of `x` (width `norm.weight`'s length), exactly as
/// the inference path computes it, with each row's scale `1/rms` kept.
pub(super) fn rms_forward(norm: &Norm, x: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
    let w: Vec<f32> = norm.weight.to_vec1()?;
    let n = w.len().max(1);
    let mut y = x.to_vec();
    let mut scales = vec![0f32; x.len() / n];
    y.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(scales.par_chunks_mut(ROWS_PER_TASK))
        .for_each(|(rows, s)| {
            for (row, s) in rows.chunks_mut(n).zip(s.iter_mut()) {
                *s = rms_row(row, &w, norm.eps);
            }
        });
    Ok((y, scales))
}

/// Gradient of RMSNorm's input: for each row with scale `r`,
/// `dx = r·(w⊙dy) − x·r³·⟨w⊙dy, x⟩/n`.
pub(super) fn rms_backward(norm: &Norm, x: &[f32], scales: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    let w: Vec<f32> = norm.weight.to_vec1()?;
    let n = w.len().max(1);
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(n * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, out)| {
            let first = task * ROWS_PER_TASK;
            for (i, out) in out.chunks_mut(n).enumerate() {
                let row = first + i;
                let (xr, dyr) = (&x[row * n..(row + 1) * n], &dy[row * n..(row + 1) * n]);
                let r = scales[row];
                let dot: f64 = xr
                    .iter()
                    .zip(dyr)
                    .zip(&w)
                    .map(|((&xv, &d), &wv)| f64::from(d * wv) * f64::from(xv))
                    .sum();
                let k = (f64::from(r).powi(3) * dot / n as f64) as f32;
                for (((o, &xv), &d), &wv) in out.iter_mut().zip(xr).zip(dyr).zip(&w) {
                    *o = r * (d * wv) - xv * k;
                }
            }
        });
    Ok(dx)
}

/// Values per rayon task in the element-wise SwiGLU loops.
const SWIGLU_TASK: usize = 4096;

/// `σ(g)` for a chunk of `g`, into `out` (vectorised `exp`).
fn sigmoid_into(g: &[f32], out: &mut [f32], exp: fn(&mut [f32])) {
    for (o, &v) in out.iter_mut().zip(g) {
        *o = -v;
    }
    exp(out);
    for o in out.iter_mut() {
        *o = 1.0 / (1.0 + *o);
    }
}

/// `silu(g) ⊙ u`, element-wise.
pub(super) fn swiglu(g: &[f32], u: &[f32]) -> Vec<f32> {
    let exp = Kernels::select().exp;
    let mut out = vec![0f32; g.len()];
    out.par_chunks_mut(SWIGLU_TASK)
        .zip(g.par_chunks(SWIGLU_TASK).zip(u.par_chunks(SWIGLU_TASK)))
        .for_each(|(o, (g, u))| {
            sigmoid_into(g, o, exp);
            for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                *o *= g * u;
            }
        });
    out
}

/// Gradients of `silu(g) ⊙ u` in `g` and `u` given the output's `da`:
/// `du = da·silu(g)`, `dg = da·u·σ(g)·(1 + g·(1 − σ(g)))`.
pub(super) fn swiglu_backward(g: &[f32], u: &[f32], da: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let exp = Kernels::select().exp;
    let mut dg = vec![0f32; g.len()];
    let mut du = vec![0f32; g.len()];
    dg.par_chunks_mut(SWIGLU_TASK)
        .zip(du.par_chunks_mut(SWIGLU_TASK))
        .enumerate()
        .for_each(|(c, (dg, du))| {
            let at = c * SWIGLU_TASK..c * SWIGLU_TASK + dg.len();
            let (g, u, da) = (&g[at.clone()], &u[at.clone()], &da[at]);
            sigmoid_into(g, du, exp);
            for ((((dg, du), &gv), &uv), &d) in
                dg.iter_mut().zip(du.iter_mut()).zip(g).zip(u).zip(da)
            {
                let s = *du;
                *du = d * gv * s;
                *dg = d * uv * s * (1.0 + gv * (1.0 - s));
            }
        });
    (dg, du)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::NormKind;

    fn norm(n: usize) -> Norm {
        let w: Vec<f32> = (0..n).map(|i| 0.5 + i as f32 * 0.1).collect();
        Norm {
            kind: NormKind::Rms,
            weight: Tensor::from_vec(w, n, &Device::Cpu).unwrap(),
            bias: None,
            eps: 1e-5,
        }
    }

    /// A scalar function's derivative by central differences (f64).
    fn numeric(f: impl Fn(&[f32]) -> f64, x: &[f32], i: usize) -> f64 {
        let h = 1e-3f32;
        let mut p = x.to_vec();
        p[i] += h;
        let up = f(&p);
        p[i] -= 2.0 * h;
        let down = f(&p);
        (up - down) / (2.0 * f64::from(h))
    }

    #[test]
    fn rms_backward_matches_finite_differences() {
        let n = 6;
        let nm = norm(n);
        let x: Vec<f32> = (0..2 * n)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let dy: Vec<f32> = (0..2 * n)
            .map(|i| ((i * 5 % 7) as f32 - 3.0) / 2.0)
            .collect();
        let (_, scales) = rms_forward(&nm, &x).unwrap();
        let dx = rms_backward(&nm, &x, &scales, &dy).unwrap();
        let loss = |x: &[f32]| -> f64 {
            let (y, _) = rms_forward(&nm, x).unwrap();
            y.iter().zip(&dy).map(|(a, b)| f64::from(a * b)).sum()
        };
        for (i, &got) in dx.iter().enumerate() {
            let want = numeric(loss, &x, i);
            assert!((f64::from(got) - want).abs() < 2e-3, "{i}: {got} vs {want}");
        }
    }

    #[test]
    fn swiglu_backward_matches_finite_differences() {
        let g: Vec<f32> = vec![-3.0, -0.5, 0.0, 0.7, 2.5];
        let u: Vec<f32> = vec![1.5, -2.0, 0.3, 0.9, -0.4];
        let da: Vec<f32> = vec![0.2, -1.0, 0.5, 1.3, 0.8];
        let (dg, du) = swiglu_backward(&g, &u, &da);
        for i in 0..g.len() {
            let lg = |g: &[f32]| -> f64 {
                swiglu(g, &u)
                    .iter()
                    .zip(&da)
                    .map(|(a, b)| f64::from(a * b))
                    .sum()
            };
            let lu = |u: &[f32]| -> f64 {
                swiglu(&g, u)
                    .iter()
                    .zip(&da)
                    .map(|(a, b)| f64::from(a * b))
                    .sum()
            };
            assert!((f64::from(dg[i]) - numeric(lg, &g, i)).abs() < 1e-3);
            assert!((f64::from(du[i]) - numeric(lu, &u, i)).abs() < 1e-3);
        }
    }
}
