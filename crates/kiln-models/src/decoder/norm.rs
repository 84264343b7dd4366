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
            (NormKind::Rms, _) => candle_nn::ops::rms_norm(&x, &self.weight, self.eps)?,
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
