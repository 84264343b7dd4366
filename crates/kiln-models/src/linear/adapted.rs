//! Forward passes of adapted layers (LoRA, IA³) and folding adapters into
//! the base weight (`merge`).

use candle_core::{Device, Tensor};

use super::Linear;
use crate::Result;

/// `base(x) + scale · (x Aᵀ) Bᵀ`.
pub(super) fn lora(
    base: &Linear,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
    out_rows: Option<&Tensor>,
    x: &Tensor,
) -> Result<Tensor> {
    let y = base.forward(x)?;
    let b = reordered(b, out_rows)?;
    let update = x.matmul(&a.t()?)?.matmul(&b.t()?)?;
    Ok((y + (update * scale)?)?)
}

/// `base(x) ⊙ l`, or `base(x ⊙ l)` when `on_input`.
pub(super) fn ia3(
    base: &Linear,
    l: &Tensor,
    on_input: bool,
    out_rows: Option<&Tensor>,
    x: &Tensor,
) -> Result<Tensor> {
    let l = reordered(l, out_rows)?;
    let l = &l;
    if on_input {
        base.forward(&x.broadcast_mul(l)?)
    } else {
        Ok(base.forward(x)?.broadcast_mul(l)?)
    }
}

/// `t` with its rows taken in `rows` order (unchanged without an order).
pub(crate) fn reordered(t: &Tensor, rows: Option<&Tensor>) -> Result<Tensor> {
    Ok(match rows {
        Some(rows) => t.index_select(rows, 0)?,
        None => t.clone(),
    })
}

impl Linear {
    /// Whether any adapter wraps this layer.
    pub fn is_adapted(&self) -> bool {
        matches!(self, Linear::Lora { .. } | Linear::Ia3 { .. })
    }

    /// The layer underneath every adapter.
    pub fn innermost(&self) -> &Linear {
        match self {
            Linear::Lora { base, .. } | Linear::Ia3 { base, .. } => base.innermost(),
            other => other,
        }
    }

    /// The effective weight `[out, in]` in f32 with every adapter folded in
    /// (PEFT's `merge_and_unload`), and the effective bias.
    pub fn merged_weight(&self) -> Result<(Tensor, Option<Tensor>)> {
        match self {
            Linear::Lora {
                base,
                a,
                b,
                scale,
                out_rows,
            } => {
                let (w, bias) = base.merged_weight()?;
                let delta = (reordered(b, out_rows.as_ref())?.matmul(a)? * *scale)?;
                Ok(((w + delta)?, bias))
            }
            Linear::Ia3 {
                base,
                scale,
                on_input,
                out_rows,
            } => {
                let (w, bias) = base.merged_weight()?;
                let scale = &reordered(scale, out_rows.as_ref())?;
                if *on_input {
                    // Scales columns; the bias is added after, unscaled.
                    Ok((w.broadcast_mul(&scale.unsqueeze(0)?)?, bias))
                } else {
                    let rows = scale.unsqueeze(1)?;
                    let bias = match bias {
                        Some(b) => Some((b * scale)?),
                        None => None,
                    };
                    Ok((w.broadcast_mul(&rows)?, bias))
                }
            }
            plain => {
                let (out, inp) = (plain.out_features(), plain.in_features());
                let values = plain.base_weight_rows(0..out)?;
                Ok((
                    Tensor::from_vec(values, (out, inp), &Device::Cpu)?,
                    plain.bias().cloned(),
                ))
            }
        }
    }

    /// This layer with its adapters folded into a dense f32 weight; an
    /// unadapted layer is returned unchanged.
    pub fn merged(&self) -> Result<Linear> {
        if !self.is_adapted() {
            return Ok(self.clone());
        }
        let (weight, bias) = self.merged_weight()?;
        Ok(Linear::Dense { weight, bias })
    }
}
