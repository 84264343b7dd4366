//! Forward and backward of one projection in the hand-written training
//! path: a frozen base layer, optionally under one LoRA or IA³ adapter
//! whose gradients are collected.

use std::collections::HashMap;

use candle_core::{Tensor, TensorId};

use crate::linear::{input_grad, reordered, Linear};
use crate::{ModelError, Result};

/// Gradients of adapter tensors, keyed by the tensor they belong to.
#[derive(Debug, Default)]
pub(super) struct Grads(pub(super) HashMap<TensorId, Tensor>);

impl Grads {
    /// Adds `g` to the gradient of `of`.
    fn add(&mut self, of: &Tensor, g: Tensor) -> Result<()> {
        let g = match self.0.remove(&of.id()) {
            Some(old) => (old + g)?,
            None => g,
        };
        self.0.insert(of.id(), g);
        Ok(())
    }
}

/// What a projection's backward needs besides its input.
pub(super) enum Tape {
    /// No adapter.
    Plain,
    /// LoRA: `x Aᵀ` (`[t, rank]`).
    Lora(Tensor),
    /// IA³ on the output: the base layer's output before scaling.
    Ia3Output(Tensor),
    /// IA³ on the input: nothing beyond the input.
    Ia3Input,
}

/// Whether `layer` is a frozen layer with at most one adapter on top (what
/// the hand-written backward handles).
pub(super) fn supported(layer: &Linear) -> bool {
    match layer {
        Linear::Lora { base, .. } | Linear::Ia3 { base, .. } => !base.is_adapted(),
        _ => true,
    }
}

fn unsupported() -> ModelError {
    ModelError::InvalidInput("stacked adapters have no hand-written backward".into())
}

/// `layer(x)` and its tape. `x` must not be tracked by autograd.
pub(super) fn forward(layer: &Linear, x: &Tensor) -> Result<(Tensor, Tape)> {
    Ok(match layer {
        Linear::Lora {
            base,
            a,
            b,
            scale,
            out_rows,
        } => {
            let y = base.forward(x)?;
            let u = x.matmul(&a.detach().t()?)?;
            let b = reordered(&b.detach(), out_rows.as_ref())?;
            let update = (u.matmul(&b.t()?)? * *scale)?;
            ((y + update)?, Tape::Lora(u))
        }
        Linear::Ia3 {
            base,
            scale,
            on_input: true,
            out_rows,
        } => {
            let l = reordered(&scale.detach(), out_rows.as_ref())?;
            (base.forward(&x.broadcast_mul(&l)?)?, Tape::Ia3Input)
        }
        Linear::Ia3 {
            base,
            scale,
            on_input: false,
            out_rows,
        } => {
            let l = reordered(&scale.detach(), out_rows.as_ref())?;
            let y = base.forward(x)?;
            (y.broadcast_mul(&l)?, Tape::Ia3Output(y))
        }
        plain => (plain.forward(x)?, Tape::Plain),
    })
}

/// Scatters a gradient taken in kiln's row order back to the adapter's own
/// order (the inverse of [`reordered`]).
fn unordered(g: Tensor, like: &Tensor, rows: Option<&Tensor>) -> Result<Tensor> {
    Ok(match rows {
        Some(rows) => like.zeros_like()?.index_add(rows, &g, 0)?,
        None => g,
    })
}

/// Backward of [`forward`]: adds the adapter's gradients to `grads` and
/// returns `∂/∂x` when `need_input` (the first layer's input needs none).
pub(super) fn backward(
    layer: &Linear,
    x: &Tensor,
    tape: &Tape,
    dy: &Tensor,
    need_input: bool,
    grads: &mut Grads,
) -> Result<Option<Tensor>> {
    match (layer, tape) {
        (
            Linear::Lora {
                base,
                a,
                b,
                scale,
                out_rows,
            },
            Tape::Lora(u),
        ) => {
            let b_run = reordered(&b.detach(), out_rows.as_ref())?;
            let g_b = (dy.t()?.matmul(u)? * *scale)?;
            grads.add(b, unordered(g_b, b, out_rows.as_ref())?)?;
            let du = (dy.matmul(&b_run)? * *scale)?;
            grads.add(a, du.t()?.matmul(x)?)?;
            if !need_input {
                return Ok(None);
            }
            let through_a = du.matmul(&a.detach())?;
            Ok(Some((input_grad(base, dy)? + through_a)?))
        }
        (
            Linear::Ia3 {
                base,
                scale,
                out_rows,
                ..
            },
            Tape::Ia3Output(y),
        ) => {
            let g_l = (dy * y)?.sum(0)?;
            grads.add(scale, unordered(g_l, scale, out_rows.as_ref())?)?;
            if !need_input {
                return Ok(None);
            }
            let l = reordered(&scale.detach(), out_rows.as_ref())?;
            Ok(Some(input_grad(base, &dy.broadcast_mul(&l)?)?))
        }
        (
            Linear::Ia3 {
                base,
                scale,
                out_rows,
                ..
            },
            Tape::Ia3Input,
        ) => {
            let through = input_grad(base, dy)?;
            let g_l = (x * &through)?.sum(0)?;
            grads.add(scale, unordered(g_l, scale, out_rows.as_ref())?)?;
            if !need_input {
                return Ok(None);
            }
            let l = reordered(&scale.detach(), out_rows.as_ref())?;
            Ok(Some(through.broadcast_mul(&l)?))
        }
        (Linear::Lora { .. } | Linear::Ia3 { .. }, _) => Err(unsupported()),
        (plain, _) => Ok(if need_input {
            Some(input_grad(plain, dy)?)
        } else {
            None
        }),
    }
}
