//! Autograd through frozen 16-bit and quantized weights: the forward runs
//! kiln's block kernels; the backward multiplies the incoming gradient by
//! the weight dequantized a tile of rows at a time, so no f32 copy of the
//! whole weight is ever held (what QLoRA needs: gradients reach the
//! adapters below a quantized layer).

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};

use super::Linear;
use crate::Result;

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
/// input of the frozen layer `base` (adapters not applied). A dense f32
/// weight is multiplied directly; 16-bit and quantized weights are
/// dequantized [`BACKWARD_ROW_TILE`] rows at a time.
pub(crate) fn input_grad(base: &Linear, grad: &Tensor) -> Result<Tensor> {
    if let Linear::Dense { weight, .. } = base {
        return Ok(grad.matmul(weight)?);
    }
    let (out, inp) = (base.out_features(), base.in_features());
    let mut total: Option<Tensor> = None;
    for start in (0..out).step_by(BACKWARD_ROW_TILE) {
        let end = (start + BACKWARD_ROW_TILE).min(out);
        let tile = base.base_weight_rows(start..end)?;
        let tile = Tensor::from_vec(tile, (end - start, inp), &Device::Cpu)?;
        let part = grad.narrow(1, start, end - start)?.matmul(&tile)?;
        total = Some(match total {
            Some(t) => (t + part)?,
            None => part,
        });
    }
    total.ok_or_else(|| crate::ModelError::InvalidInput("a layer with no output rows".into()))
}
