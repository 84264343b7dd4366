//! RMSNorm and LayerNorm over the last dimension.

use candle_core::Tensor;

use crate::spec::NormKind;
use crate::Result;

/// A normalisation layer with its (offset-applied) weight.
#[derive(Debug, Clone)]
pub struct Norm {
    pub(crate) kind: NormKind,
    pub(crate) weight: Tensor,
    pub(crate) bias: Option<Tensor>,
    pub(crate) eps: f32,
}

impl Norm {
    /// Normalises `x` over its last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        Ok(match (self.kind, &self.bias) {
            (NormKind::Rms, _) => rms_norm(&x, &self.weight, self.eps)?,
            (NormKind::Layer { .. }, Some(b)) => {
                candle_nn::ops::layer_norm(&x, &self.weight, b, self.eps)?
            }
            (NormKind::Layer { .. }, None) => {
                let zeros = self.weight.zeros_like()?;
                candle_nn::ops::layer_norm(&x, &self.weight, &zeros, self.eps)?
            }
        })
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.weight.elem_count() + self.bias.as_ref().map_or(0, Tensor::elem_count)
    }
}

/// RMSNorm with the sum of squares accumulated in f64 and the scale applied
/// before the weight, as ggml computes it (so rounding matches llama.cpp
/// and transformers' f32 path alike to within an ulp).
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let n = dims.last().copied().unwrap_or(1);
    let w: Vec<f32> = weight.to_vec1()?;
    let mut values: Vec<f32> = x.flatten_all()?.to_vec1()?;
    for row in values.chunks_mut(n) {
        rms_row(row, &w, eps);
    }
    Ok(Tensor::from_vec(values, dims, x.device())?)
}

/// Normalises one row in place (`row · s · w`) and returns its scale
/// `s = 1/√(mean(row²) + eps)`, which the training backward reuses.
pub(super) fn rms_row(row: &mut [f32], w: &[f32], eps: f32) -> f32 {
    let sum: f64 = row.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / row.len().max(1) as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, wi) in row.iter_mut().zip(w) {
        *v = (*v * scale) * wi;
    }
    scale
}
