//! [`Linear`]: every projection in every model. An enum so quantized weights
//! and adapters (LoRA, IA3) become variants, not copies of the model.

use candle_core::Tensor;

use crate::Result;

/// A linear layer `y = x Wᵀ + b`.
#[derive(Debug, Clone)]
pub enum Linear {
    /// Dense f32 weight `[out, in]` with an optional bias `[out]`.
    Dense {
        /// `[out_features, in_features]`.
        weight: Tensor,
        /// `[out_features]`.
        bias: Option<Tensor>,
    },
}

impl Linear {
    /// `x`: `[tokens, in]` → `[tokens, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Dense { weight, bias } => {
                let y = x.matmul(&weight.t()?)?;
                Ok(match bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            }
        }
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        match self {
            Linear::Dense { weight, .. } => weight.dims().first().copied().unwrap_or(0),
        }
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        match self {
            Linear::Dense { weight, bias } => {
                weight.elem_count() + bias.as_ref().map_or(0, Tensor::elem_count)
            }
        }
    }
}
