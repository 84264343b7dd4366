//! Rotary position embeddings: frequency tables (with scaling) and their
//! application to the rotated part of each head.

use candle_core::{Device, Tensor};

use crate::spec::{RopeScaling, RopeSpec};
use crate::Result;

/// Inverse frequencies of one model (recomputed per forward only for the
/// sequence-length-dependent dynamic and LongRoPE scalings).
#[derive(Debug, Clone)]
pub struct Rope {
    pub(crate) spec: RopeSpec,
    /// `rotary_dim / 2` inverse frequencies, in f32 as transformers computes them.
    inv_freq: Vec<f32>,
    /// Multiplier of cos and sin (yarn, longrope).
    attention_factor: f32,
}

/// `1 / base^(2i/dim)` in f32, as `torch.arange(0, dim, 2).float() / dim`.
fn plain_inv_freq(base: f32, dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
        .collect()
}

impl Rope {
    /// Precomputes the inverse frequencies.
    pub fn new(spec: RopeSpec) -> Self {
        let dim = spec.rotary_dim;
        let mut attention_factor = 1.0f32;
        let mut inv_freq = plain_inv_freq(spec.theta as f32, dim);
        match &spec.scaling {
            RopeScaling::None | RopeScaling::Dynamic { .. } => {}
            RopeScaling::Linear { factor } => {
                for f in &mut inv_freq {
                    *f /= *factor as f32;
                }
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let old = *original_max_position_embeddings as f64;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                for f in &mut inv_freq {
                    let freq = *f as f64;
                    let wavelen = 2.0 * std::f64::consts::PI / freq;
                    let scaled = if wavelen < high_wavelen {
                        freq
                    } else if wavelen > low_wavelen {
                        freq / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * freq / factor + smooth * freq
                    };
                    *f = scaled as f32;
                }
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                attention_factor: af,
                truncate,
            } => {
                attention_factor = *af as f32;
                inv_freq = yarn_inv_freq(
                    spec.theta,
                    dim,
                    *factor,
                    *original_max_position_embeddings,
                    (*beta_fast, *beta_slow),
                    *truncate,
                );
            }
            RopeScaling::LongRope {
                short_factor,
                attention_factor: af,
                ..
            } => {
                attention_factor = *af as f32;
                inv_freq = longrope_inv_freq(spec.theta as f32, dim, short_factor);
            }
        }
        Self {
            spec,
            inv_freq,
            attention_factor,
        }
    }

    /// The inverse frequencies for a sequence of `seq_len` positions.
    fn inv_freq_for(&self, seq_len: usize) -> std::borrow::Cow<'_, [f32]> {
        let dim = self.spec.rotary_dim;
        match &self.spec.scaling {
            RopeScaling::Dynamic {
                factor,
                max_position_embeddings,
            } if seq_len > *max_position_embeddings => {
                let ratio =
                    factor * seq_len as f64 / *max_position_embeddings as f64 - (factor - 1.0);
                let base = self.spec.theta * ratio.powf(dim as f64 / (dim as f64 - 2.0));
                plain_inv_freq(base as f32, dim).into()
            }
            RopeScaling::LongRope {
                long_factor,
                original_max_position_embeddings,
                ..
            } if seq_len > *original_max_position_embeddings => {
                longrope_inv_freq(self.spec.theta as f32, dim, long_factor).into()
            }
            _ => self.inv_freq.as_slice().into(),
        }
    }

    /// cos and sin tables `[len, rotary_dim / 2]` for positions `start..start + len`.
    pub fn tables(&self, start: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let inv_freq = self.inv_freq_for(start + len);
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in start..start + len {
            for &f in inv_freq.iter() {
                let angle = pos as f32 * f;
                cos.push(angle.cos() * self.attention_factor);
                sin.push(angle.sin() * self.attention_factor);
            }
        }
        Ok((
            Tensor::from_vec(cos, (len, half), &Device::Cpu)?,
            Tensor::from_vec(sin, (len, half), &Device::Cpu)?,
        ))
    }

    /// Rotates `x`: `[heads, len, head_dim]`, leaving dimensions past
    /// `rotary_dim` untouched.
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let head_dim = x.dim(2)?;
        let rot = self.spec.rotary_dim;
        let rotate = |part: &Tensor| -> Result<Tensor> {
            // candle's fused kernels take [batch, heads, len, dim].
            let part = part.contiguous()?.unsqueeze(0)?;
            let out = if self.spec.interleaved {
                candle_nn::rotary_emb::rope_i(&part, cos, sin)?
            } else {
                candle_nn::rotary_emb::rope(&part, cos, sin)?
            };
            Ok(out.squeeze(0)?)
        };
        if rot == head_dim {
            return rotate(x);
        }
        let rotated = rotate(&x.narrow(2, 0, rot)?)?;
        let pass = x.narrow(2, rot, head_dim - rot)?;
        Ok(Tensor::cat(&[&rotated, &pass], 2)?)
    }
}

/// LongRoPE: `1 / (factor_i · base^(2i/dim))`.
fn longrope_inv_freq(base: f32, dim: usize, factors: &[f64]) -> Vec<f32> {
    plain_inv_freq(base, dim)
        .into_iter()
        .zip(factors)
        .map(|(f, &e)| f / e as f32)
        .collect()
}

/// YaRN's blend of extrapolated and interpolated frequencies.
fn yarn_inv_freq(
    base: f64,
    dim: usize,
    factor: f64,
    original: usize,
    (beta_fast, beta_slow): (f64, f64),
    truncate: bool,
) -> Vec<f32> {
    let correction_dim = |rotations: f64| {
        (dim as f64 * (original as f64 / (rotations * 2.0 * std::f64::consts::PI)).ln())
            / (2.0 * base.ln())
    };
    let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
    if truncate {
        low = low.floor();
        high = high.ceil();
    }
    let low = low.max(0.0) as f32;
    let mut high = high.min(dim as f64 - 1.0) as f32;
    if low == high {
        high += 0.001;
    }
    let pos_freqs: Vec<f32> = (0..dim / 2)
        .map(|i| (base as f32).powf((2 * i) as f32 / dim as f32))
        .collect();
    pos_freqs
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let ramp = ((i as f32 - low) / (high - low)).clamp(0.0, 1.0);
            let extrapolation_factor = 1.0 - ramp;
            let interpolation = 1.0 / (factor as f32 * p);
            let extrapolation = 1.0 / p;
            interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
        })
        .collect()
}
