//! [`Linear`]: every projection in every model. An enum so quantized weights
//! and adapters (LoRA, IA3) become variants, not copies of the model.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use half::bf16;

use crate::kernels::{bf16_to_f32, gemv_bf16};
use crate::{ModelError, Result};

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
    /// bf16 weight kept 16-bit, row-major `[rows = out, cols = in]`: one
    /// token goes through kiln's bf16 GEMV (half the bytes of f32); a
    /// prompt converts the weight to f32 for candle's GEMM.
    Bf16 {
        /// The values.
        weight: Arc<Vec<bf16>>,
        /// `out_features`.
        rows: usize,
        /// `in_features`.
        cols: usize,
        /// `[out_features]`.
        bias: Option<Tensor>,
    },
}

impl Linear {
    /// `x`: `[tokens, in]` → `[tokens, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (y, bias) = match self {
            Linear::Dense { weight, bias } => (x.matmul(&weight.t()?)?, bias),
            Linear::Bf16 {
                weight,
                rows,
                cols,
                bias,
            } if x.dim(0)? == 1 => {
                let input: Vec<f32> = x.flatten_all()?.to_vec1()?;
                let mut out = vec![0f32; *rows];
                gemv_bf16(weight, *rows, *cols, &input, &mut out).ok_or_else(|| {
                    ModelError::InvalidInput(format!(
                        "input width {} does not match the layer's {cols}",
                        input.len()
                    ))
                })?;
                (Tensor::from_vec(out, (1, *rows), &Device::Cpu)?, bias)
            }
            Linear::Bf16 {
                weight,
                rows,
                cols,
                bias,
            } => {
                let w = Tensor::from_vec(bf16_to_f32(weight), (*rows, *cols), &Device::Cpu)?;
                (x.matmul(&w.t()?)?, bias)
            }
        };
        Ok(match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        match self {
            Linear::Dense { weight, .. } => weight.dims().first().copied().unwrap_or(0),
            Linear::Bf16 { rows, .. } => *rows,
        }
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        match self {
            Linear::Dense { weight, bias } => {
                weight.elem_count() + bias.as_ref().map_or(0, Tensor::elem_count)
            }
            Linear::Bf16 { weight, bias, .. } => {
                weight.len() + bias.as_ref().map_or(0, Tensor::elem_count)
            }
        }
    }
}
