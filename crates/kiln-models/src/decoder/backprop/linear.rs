//! Forward and backward of one projection in the hand-written training
//! path: a frozen base layer, optionally under one LoRA or IA³ adapter
//! whose gradients are collected.

use std::collections::HashMap;

use candle_core::{Tensor, TensorId};

use super::ops::{matrix, values};
use crate::kernels::gemm::{matmul_split_rows, MatRef};
use crate::linear::{input_grad_into, reordered, with_values, Linear};
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
            let u = x.matmul(&a.detach().t()?)?;
            let b = (reordered(&b.detach(), out_rows.as_ref())? * *scale)?;
            (base_forward(base, x, Some((&u, &b)))?, Tape::Lora(u))
        }
        Linear::Ia3 {
            base,
            scale,
            on_input: true,
            out_rows,
        } => {
            let l = reordered(&scale.detach(), out_rows.as_ref())?;
            (
                base_forward(base, &x.broadcast_mul(&l)?, None)?,
                Tape::Ia3Input,
            )
        }
        Linear::Ia3 {
            base,
            scale,
            on_input: false,
            out_rows,
        } => {
            let l = reordered(&scale.detach(), out_rows.as_ref())?;
            let y = base_forward(base, x, None)?;
            (y.broadcast_mul(&l)?, Tape::Ia3Output(y))
        }
        plain => (base_forward(plain, x, None)?, Tape::Plain),
    })
}

/// How [`product`] reads its right operand `b` (a `[rows, cols]` tensor).
#[derive(Clone, Copy)]
enum Rhs {
    /// As stored: the product is `a · b`.
    AsIs,
    /// Transposed: the product is `a · bᵀ` (a weight `[out, in]` applied to rows).
    Transposed,
}

/// `dst = a · b` (or `a · bᵀ`), or `dst +=` when `accumulate`: two
/// matrices multiplied in place through the row-split GEMM into the
/// row-major `dst`.
fn product(dst: &mut [f32], a: &Tensor, b: &Tensor, rhs: Rhs, accumulate: bool) -> Result<()> {
    let ((m, k), (rows, cols)) = (a.dims2()?, b.dims2()?);
    with_values(a, |av| {
        with_values(b, |bv| {
            let b = MatRef::row_major(bv, rows, cols);
            let b = match rhs {
                Rhs::AsIs => b,
                Rhs::Transposed => b.t(),
            };
            matmul_split_rows(dst, MatRef::row_major(av, m, k), b, accumulate)
                .ok_or_else(shape_error)
        })
    })
}

fn shape_error() -> ModelError {
    ModelError::InvalidInput("projection operands do not match".into())
}

/// The frozen layer's `base(x)`, plus `u · bᵀ` when `update` is given (a
/// LoRA update with its scale folded into `b`). Dense f32 weights run
/// straight through the row-split GEMM into one buffer; other formats use
/// their inference kernels.
fn base_forward(base: &Linear, x: &Tensor, update: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
    let t = x.dim(0)?;
    let out = base.out_features();
    let mut y = match base {
        Linear::Dense { weight, bias } => {
            let mut y = vec![0f32; t * out];
            product(&mut y, x, weight, Rhs::Transposed, false)?;
            if let Some(bias) = bias {
                let bias = values(bias)?;
                for row in y.chunks_mut(out) {
                    for (v, b) in row.iter_mut().zip(&bias) {
                        *v += b;
                    }
                }
            }
            y
        }
        other => values(&other.forward(x)?)?,
    };
    if let Some((u, b)) = update {
        product(&mut y, u, b, Rhs::Transposed, true)?;
    }
    matrix(y, t, out)
}

/// `dy · W` of the frozen layer (any format), plus `du · a` when `extra`
/// is given (the LoRA path's share of the input gradient), in one buffer.
fn base_input_grad(
    base: &Linear,
    dy: &Tensor,
    extra: Option<(&Tensor, &Tensor)>,
) -> Result<Tensor> {
    let t = dy.dim(0)?;
    let inp = base.in_features();
    let mut dx = vec![0f32; t * inp];
    with_values(dy, |g| input_grad_into(base, g, t, &mut dx, false))?;
    if let Some((du, a)) = extra {
        product(&mut dx, du, a, Rhs::AsIs, true)?;
    }
    matrix(dx, t, inp)
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
            Ok(Some(base_input_grad(base, dy, Some((&du, &a.detach())))?))
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
            Ok(Some(base_input_grad(base, &dy.broadcast_mul(&l)?, None)?))
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
            let through = base_input_grad(base, dy, None)?;
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
            Some(base_input_grad(plain, dy, None)?)
        } else {
            None
        }),
    }
}
