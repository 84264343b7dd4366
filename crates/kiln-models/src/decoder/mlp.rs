//! The feed-forward block: gated (SwiGLU/GeGLU) or plain.

use candle_core::Tensor;

use crate::linear::Linear;
use crate::spec::Activation;
use crate::Result;

/// The projections of an MLP.
#[derive(Debug, Clone)]
pub(crate) enum Mlp {
    /// `down(act(gate(x)) * up(x))`.
    Gated {
        gate: Linear,
        up: Linear,
        down: Linear,
    },
    /// Like `Gated` with `[gate | up]` in one projection.
    FusedGated { gate_up: Linear, down: Linear },
    /// `down(act(up(x)))`.
    Plain { up: Linear, down: Linear },
}

impl Mlp {
    /// `x`: `[t, hidden]` → `[t, hidden]`.
    /// With `llama_cpp`, GELU is computed as ggml computes it (see [`gelu_f16_table`]).
    pub(crate) fn forward(&self, x: &Tensor, act: Activation, llama_cpp: bool) -> Result<Tensor> {
        let ggml_gelu = llama_cpp && act == Activation::GeluTanh;
        let activate = |t: &Tensor| -> Result<Tensor> {
            if ggml_gelu {
                gelu_f16_table(t, None)
            } else {
                activate(t, act)
            }
        };
        match self {
            Mlp::Gated { gate, up, down } if act == Activation::Silu => {
                let [g, u] = crate::linear::forward_many([gate, up], x)?;
                let h = swiglu(&g, &u)?;
                drop((g, u));
                down.forward(&h)
            }
            Mlp::Gated { gate, up, down } if ggml_gelu => {
                let [g, u] = crate::linear::forward_many([gate, up], x)?;
                let h = gelu_f16_table(&g, Some(&u))?;
                drop((g, u));
                down.forward(&h)
            }
            Mlp::Gated { gate, up, down } => {
                let [g, u] = crate::linear::forward_many([gate, up], x)?;
                let h = (activate(&g)? * u)?;
                drop(g);
                down.forward(&h)
            }
            Mlp::FusedGated { gate_up, down } => {
                let gu = gate_up.forward(x)?;
                let half = gate_up.out_features() / 2;
                let (g, u) = (gu.narrow(1, 0, half)?, gu.narrow(1, half, half)?);
                let h = if act == Activation::Silu {
                    swiglu(&g, &u)?
                } else {
                    (activate(&g)? * u)?
                };
                down.forward(&h)
            }
            Mlp::Plain { up, down } => down.forward(&activate(&up.forward(x)?)?),
        }
    }

    /// Number of parameters.
    pub(crate) fn parameter_count(&self) -> usize {
        match self {
            Mlp::Gated { gate, up, down } => {
                gate.parameter_count() + up.parameter_count() + down.parameter_count()
            }
            Mlp::FusedGated { gate_up, down } => gate_up.parameter_count() + down.parameter_count(),
            Mlp::Plain { up, down } => up.parameter_count() + down.parameter_count(),
        }
    }
}

/// Elements per parallel task of [`elementwise`]; smaller inputs (decode
/// steps) stay on one thread.
const SWIGLU_CHUNK: usize = 1 << 13;

/// Runs `f` over the values of `x` in chunks, each with the matching chunk
/// of `up` (empty when there is none), in parallel for large inputs, and
/// returns the values `f` left in `x`'s shape: one pass over plain vectors
/// for the gated activations (candle's activation then `mul` made two, each
/// on its own thread pool).
fn elementwise(
    x: &Tensor,
    up: Option<&Tensor>,
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let mut v: Vec<f32> = x.flatten_all()?.to_vec1()?;
    // `up` is read in place when it is a plain contiguous tensor: a copy
    // would be one more prompt-sized buffer at the peak of a prefill.
    match up {
        Some(u) => crate::linear::with_values(u, |u| apply_chunked(&mut v, Some(u), &f))?,
        None => apply_chunked(&mut v, None, &f)?,
    }
    Ok(Tensor::from_vec(v, dims, x.device())?)
}

/// `f` over `v` and the matching chunks of `up` (which must be as long as
/// `v`; `f` sees empty chunks without it), in parallel for large inputs.
fn apply_chunked(
    v: &mut [f32],
    up: Option<&[f32]>,
    f: &(impl Fn(&mut [f32], &[f32]) + Sync),
) -> Result<()> {
    use rayon::prelude::*;
    let u = up.unwrap_or(&[]);
    if up.is_some() && u.len() != v.len() {
        return Err(crate::ModelError::InvalidInput(
            "gate and up projections differ in size".into(),
        ));
    }
    if v.len() > SWIGLU_CHUNK {
        let up_chunk = |i: usize| {
            u.get(i * SWIGLU_CHUNK..((i + 1) * SWIGLU_CHUNK).min(u.len()))
                .unwrap_or(&[])
        };
        v.par_chunks_mut(SWIGLU_CHUNK)
            .enumerate()
            .for_each(|(i, c)| f(c, up_chunk(i)));
    } else {
        f(v, u);
    }
    Ok(())
}

/// `silu(gate) · up` with candle's formula `g / (1 + e^{−g})` and the SIMD
/// `e^x` of [`crate::kernels::vector`] (within 2 ulp of libm's).
fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let exp = crate::kernels::vector::Kernels::select().exp;
    elementwise(gate, Some(up), |g, u| {
        let mut e = [0f32; 64];
        for (g, u) in g.chunks_mut(64).zip(u.chunks(64)) {
            let e = &mut e[..g.len()];
            for (e, g) in e.iter_mut().zip(g.iter()) {
                *e = -*g;
            }
            exp(e);
            for ((g, u), e) in g.iter_mut().zip(u).zip(e.iter()) {
                *g = *g / (1.0 + e) * u;
            }
        }
    })
}

pub(super) fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Silu => x.silu()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Gelu => x.gelu_erf()?,
        Activation::Relu => x.relu()?,
    })
}

/// GELU (tanh form) in f32: `0.5·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²)))`.
fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (0.797_884_6 * x * (1.0 + 0.044_715 * x * x)).tanh())
}

/// ggml's GELU table: for each of the 65,536 f16 bit patterns, [`gelu_tanh`]
/// of that value rounded to f16 (128 KiB, built on first use). A lookup
/// replaces libm's `tanhf`, which took 16% of a gemma-3 prompt.
fn gelu_f16_results() -> &'static [half::f16] {
    use half::f16;
    static TABLE: std::sync::OnceLock<Vec<f16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu_tanh(f16::from_bits(bits).to_f32())))
            .collect()
    })
}

/// GELU (tanh form) of one value as ggml's CPU backend computes it: the
/// table entry of the input rounded to f16; ±10 clamp (0 below, `x` above).
fn gelu_llama_cpp(x: f32, table: &[half::f16]) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        table[usize::from(half::f16::from_f32(x).to_bits())].to_f32()
    }
}

/// GELU (tanh form) as ggml computes it ([`gelu_llama_cpp`]) of every
/// element, times `up` when given (GeGLU).
fn gelu_f16_table(x: &Tensor, up: Option<&Tensor>) -> Result<Tensor> {
    let table = gelu_f16_results();
    elementwise(x, up, |g, u| {
        if u.is_empty() {
            g.iter_mut().for_each(|y| *y = gelu_llama_cpp(*y, table));
        } else {
            for (y, u) in g.iter_mut().zip(u) {
                *y = gelu_llama_cpp(*y, table) * u;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn ggml_gelu_table_equals_the_formula_rounded_through_f16() {
        use half::f16;
        let n = 2 * SWIGLU_CHUNK + 3;
        let g: Vec<f32> = (0..n)
            .map(|i| (i as f32 - n as f32 / 2.0) / 700.0)
            .collect();
        let u: Vec<f32> = (0..n)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 7.0)
            .collect();
        let direct = |v: f32| {
            if v <= -10.0 {
                0.0
            } else if v >= 10.0 {
                v
            } else {
                f16::from_f32(gelu_tanh(f16::from_f32(v).to_f32())).to_f32()
            }
        };
        let gt = Tensor::from_vec(g.clone(), (1, n), &Device::Cpu).unwrap();
        let ut = Tensor::from_vec(u.clone(), (1, n), &Device::Cpu).unwrap();
        let alone: Vec<f32> = gelu_f16_table(&gt, None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let gated: Vec<f32> = gelu_f16_table(&gt, Some(&ut))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for i in 0..n {
            assert_eq!(alone[i].to_bits(), direct(g[i]).to_bits(), "gelu({})", g[i]);
            assert_eq!(
                gated[i].to_bits(),
                (direct(g[i]) * u[i]).to_bits(),
                "geglu at {i}"
            );
        }
        let short = Tensor::from_vec(vec![-11.0f32, 12.5, f32::NAN], (1, 3), &Device::Cpu).unwrap();
        let v: Vec<f32> = gelu_f16_table(&short, None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!((v[0], v[1]), (0.0, 12.5));
        assert!(v[2].is_nan());
    }

    #[test]
    fn swiglu_matches_candles_silu_times_up() {
        let n = 3 * SWIGLU_CHUNK + 5; // parallel path and a short tail
        let g: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0)
            .collect();
        let u: Vec<f32> = (0..n)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 7.0)
            .collect();
        for len in [7, n] {
            let gt = Tensor::from_vec(g[..len].to_vec(), (1, len), &Device::Cpu).unwrap();
            let ut = Tensor::from_vec(u[..len].to_vec(), (1, len), &Device::Cpu).unwrap();
            let want: Vec<f32> = (gt.silu().unwrap() * &ut)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got: Vec<f32> = swiglu(&gt, &ut)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }
}
