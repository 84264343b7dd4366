//! Gradients through frozen layers: [`input_grad`] (`grad · W` for any
//! base format, quantized weights dequantized a tile of rows at a time, so
//! no f32 copy of the whole weight is ever held — what QLoRA needs), used
//! by the hand-written training backward and by the autograd op here,
//! whose forward runs kiln's block kernels for 16-bit and quantized
//! weights.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};

use super::{with_values, Linear};
use crate::kernels::gemm::{matmul_split_rows, MatRef};
use crate::{ModelError, Result};

/// Weight rows dequantized at a time in the backward pass.
const BACKWARD_ROW_TILE: usize = 256;

/// `base(x)` recorded for autograd, with `∂/∂x = grad · W`.
pub(super) fn forward_tracked(base: &Linear, x: &Tensor) -> Result<Tensor> {
    Ok(x.apply_op1(FrozenLinear(base.clone()))?)
}

struct FrozenLinear(Linear);

fn candle_err(e: crate::ModelError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "kiln-frozen-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let values = storage.as_slice::<f32>()?;
        let x = match layout.contiguous_offsets() {
            Some((start, end)) => values[start..end].to_vec(),
            None => {
                return Err(candle_core::Error::Msg(
                    "frozen linear needs a contiguous input".into(),
                ))
            }
        };
        let dims = layout.shape().dims().to_vec();
        let x = Tensor::from_vec(x, dims, &Device::Cpu)?;
        // The input here is an untracked copy: the plain kernels run.
        let y = self.0.forward(&x).map_err(candle_err)?;
        let shape = y.shape().clone();
        let y: Vec<f32> = y.flatten_all()?.to_vec1()?;
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let dims = arg.dims().to_vec();
        let grad = grad_res.reshape(((), self.0.out_features()))?;
        let total = input_grad(&self.0, &grad).map_err(candle_err)?;
        Ok(Some(total.reshape(dims)?))
    }
}

/// `grad · W` (`[tokens, out]` → `[tokens, in]`): the gradient reaching the
/// input of the frozen layer `base` (adapters not applied).
fn input_grad(base: &Linear, grad: &Tensor) -> Result<Tensor> {
    let tokens = grad.dim(0)?;
    let mut dx = vec![0f32; tokens * base.in_features()];
    with_values(grad, |g| input_grad_into(base, g, tokens, &mut dx, false))?;
    Ok(Tensor::from_vec(
        dx,
        (tokens, base.in_features()),
        &Device::Cpu,
    )?)
}

/// [`input_grad`] of the row-major `grad` (`[tokens, out]`) written into
/// (or, with `accumulate`, added to) the row-major `dx` (`[tokens, in]`).
/// A dense f32 weight is multiplied in place; 16-bit and quantized weights
/// are dequantized [`BACKWARD_ROW_TILE`] rows at a time, each tile's product
/// added into `dx`, so no f32 copy of the whole weight is ever held.
pub(crate) fn input_grad_into(
    base: &Linear,
    grad: &[f32],
    tokens: usize,
    dx: &mut [f32],
    accumulate: bool,
) -> Result<()> {
    let (out, inp) = (base.out_features(), base.in_features());
    let mismatch = || ModelError::InvalidInput("gradient does not match the layer".into());
    if grad.len() != tokens * out || dx.len() != tokens * inp {
        return Err(mismatch());
    }
    let grad_cols = |start: usize, end: usize| MatRef {
        data: &grad[start..],
        rows: tokens,
        cols: end - start,
        row_stride: out,
        col_stride: 1,
    };
    if let Linear::Dense { weight, .. } = base {
        return with_values(weight, |w| {
            matmul_split_rows(
                dx,
                grad_cols(0, out),
                MatRef::row_major(w, out, inp),
                accumulate,
            )
            .ok_or_else(mismatch)
        });
    }
    for start in (0..out).step_by(BACKWARD_ROW_TILE) {
        let end = (start + BACKWARD_ROW_TILE).min(out);
        let tile = base.base_weight_rows(start..end)?;
        matmul_split_rows(
            dx,
            grad_cols(start, end),
            MatRef::row_major(&tile, end - start, inp),
            accumulate || start > 0,
        )
        .ok_or_else(mismatch)?;
    }
    Ok(())
}
