//! Rotary position embeddings: frequency tables (with scaling) and their
//! application to the rotated part of each head.

use candle_core::{Device, Tensor};

use crate::spec::{RopeScaling, RopeSpec};
use crate::Result;

/// Inverse frequencies of one model, computed once.
#[derive(Debug, Clone)]
pub struct Rope {
    spec: RopeSpec,
    /// `rotary_dim / 2` inverse frequencies, in f32 as transformers computes them.
    inv_freq: Vec<f32>,
}

impl Rope {
    /// Precomputes the inverse frequencies.
    pub fn new(spec: RopeSpec) -> Self {
        let dim = spec.rotary_dim;
        let theta = spec.theta as f32;
        let mut inv_freq: Vec<f32> = (0..dim / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / dim as f32))
            .collect();
        match spec.scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => {
                for f in &mut inv_freq {
                    *f /= factor as f32;
                }
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let old = original_max_position_embeddings as f64;
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
        }
        Self { spec, inv_freq }
    }

    /// cos and sin tables `[len, rotary_dim / 2]` for positions `start..start + len`.
    pub fn tables(&self, start: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in start..start + len {
            for &f in &self.inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
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
