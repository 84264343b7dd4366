//! GELU with the exact (erf) form, in parallel: candle's `gelu_erf` maps
//! libm's `erff` over the tensor on one thread, which took a large share of
//! an encoder's time. erf here is Abramowitz & Stegun 7.1.26 (|error| ≤
//! 1.5e-7, 1e-6 in f32), well inside the encoders' 1e-5 goldens.

use candle_core::Tensor;
use rayon::prelude::*;

/// erf(x): |error| ≤ 1.5e-7 by the formula, ≤ 1e-6 in f32 arithmetic.
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    erf_with_exp(x, (-a * a).exp())
}

/// erf(x) given `e = e^{−x²}` computed by the caller (a SIMD exponential
/// over a whole slice, say): the rest of the formula of [`erf`].
#[inline(always)]
pub(crate) fn erf_with_exp(x: f32, e: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * e).copysign(x)
}

/// `x · Φ(x)` = `0.5 · x · (1 + erf(x/√2))`.
pub fn gelu_erf_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU (erf form) of every element, on all cores.
pub fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    let mut v: Vec<f32> = x.flatten_all()?.to_vec1()?;
    v.par_chunks_mut(8192)
        .for_each(|c| c.iter_mut().for_each(|y| *y = gelu_erf_scalar(*y)));
    Tensor::from_vec(v, x.shape(), x.device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libm_erf_and_candle_gelu() {
        for i in -4000..=4000 {
            let x = i as f32 / 500.0;
            let exact = libm_erf(x as f64);
            assert!(
                (erf(x) as f64 - exact).abs() < 1e-6,
                "erf({x}) = {} vs {exact}",
                erf(x)
            );
        }
        let xs: Vec<f32> = (-300..300).map(|i| i as f32 / 37.0).collect();
        let t = Tensor::new(xs.as_slice(), &candle_core::Device::Cpu).unwrap();
        let ours: Vec<f32> = gelu_erf(&t).unwrap().to_vec1().unwrap();
        let theirs: Vec<f32> = t.gelu_erf().unwrap().to_vec1().unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    /// erf by its Taylor series / continued fraction (f64 reference).
    fn libm_erf(x: f64) -> f64 {
        // erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)), fine for |x| ≤ 3;
        // beyond, 1 − erfc with erfc ≈ e^{-x²}/(x√π)·(1 − 1/(2x²) + 3/(4x⁴)).
        if x.abs() > 3.0 {
            let a = x.abs();
            let erfc = (-a * a).exp() / (a * std::f64::consts::PI.sqrt())
                * (1.0 - 1.0 / (2.0 * a * a) + 3.0 / (4.0 * a.powi(4)) - 15.0 / (8.0 * a.powi(6)));
            return (1.0 - erfc).copysign(x);
        }
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
            if n > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}
