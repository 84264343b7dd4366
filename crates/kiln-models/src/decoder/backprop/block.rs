//! One decoder block (pre-norm RMSNorm, rotary causal attention with
//! grouped KV heads and optional q/k norms, SwiGLU MLP): the forward that
//! records a tape, and the backward that consumes it.
//!
//! Attention probabilities are not kept: the backward recomputes them from
//! q, k and each row's log-sum-exp (as FlashAttention's backward does), so
//! a block's tape is a few `[t, width]` matrices, not `[heads, t, t]`.

use candle_core::{Device, Tensor};

use super::attention::{self as causal, Shape};
use super::linear::{self, Grads, Tape};
use super::ops::{matrix, rms_backward, rms_forward, swiglu, swiglu_backward, values};
use crate::decoder::attention::{Attention, QkvProjection};
use crate::decoder::mlp::Mlp;
use crate::decoder::norm::Norm;
use crate::decoder::rope::Rope;
use crate::decoder::Block;
use crate::{ModelError, Result};

/// Rotary tables of a whole sequence, and `-sin` for the backward (the
/// inverse rotation).
pub(super) struct RopeTables<'a> {
    pub(super) rope: &'a Rope,
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
    pub(super) neg_sin: Tensor,
}

/// A q or k before its per-head norm, with the norm's row scales.
struct PreNorm {
    values: Vec<f32>,
    scales: Vec<f32>,
}

/// What [`backward`] needs of a block's forward.
pub(super) struct BlockTape {
    /// Block input `[t, hidden]` and its attention-norm scales.
    x: Vec<f32>,
    attn_scales: Vec<f32>,
    /// Normalised input: what q, k and v project.
    n1: Tensor,
    qkv_tapes: Vec<Tape>,
    q_pre: Option<PreNorm>,
    k_pre: Option<PreNorm>,
    /// After rope, head-major: `[heads, t, head_dim]`, `[kv_heads, t,
    /// head_dim]` ×2.
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Log-sum-exp of every `(head, query)` attention row.
    lse: Vec<f32>,
    /// Attention output before `o_proj`, head-major and as `o_proj`'s
    /// input `[t, heads · head_dim]`.
    o_heads: Vec<f32>,
    o: Tensor,
    o_tape: Tape,
    /// Residual stream after attention and its MLP-norm scales.
    h: Vec<f32>,
    ffn_scales: Vec<f32>,
    n2: Tensor,
    /// Gate and up projections `[t, intermediate]`.
    gate: Vec<f32>,
    up: Vec<f32>,
    mlp_tapes: Vec<Tape>,
    down_tape: Tape,
}

fn missing(what: &str) -> ModelError {
    ModelError::InvalidInput(format!("hand-written backward: {what}"))
}

/// The MLP norm of a sequential block.
fn ffn_norm(b: &Block) -> Result<&Norm> {
    b.ffn_norm
        .as_ref()
        .ok_or_else(|| missing("block without an MLP norm"))
}

/// `a + b`, element-wise, into `a`.
fn add_into(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// `[t, heads · d]` → `[heads, t, d]`.
fn heads_first(x: Tensor, t: usize, heads: usize, d: usize) -> Result<Tensor> {
    Ok(x.reshape((t, heads, d))?.transpose(0, 1)?.contiguous()?)
}

/// `[heads, t, d]` → `[t, heads · d]`.
fn tokens_first(x: &Tensor, t: usize, heads: usize, d: usize) -> Result<Tensor> {
    Ok(x.transpose(0, 1)?.contiguous()?.reshape((t, heads * d))?)
}

/// Applies a per-head norm to `x` (`[t, heads · head_dim]`), keeping what
/// its backward needs.
fn head_norm(norm: Option<&Norm>, x: Tensor, t: usize) -> Result<(Tensor, Option<PreNorm>)> {
    let Some(n) = norm else {
        return Ok((x, None));
    };
    let pre = values(&x)?;
    let (y, scales) = rms_forward(n, &pre)?;
    let width = x.dim(1)?;
    Ok((
        matrix(y, t, width)?,
        Some(PreNorm {
            values: pre,
            scales,
        }),
    ))
}

/// Forward of block `b` on `x` (`[t, hidden]`, row-major): the output and
/// the tape.
pub(super) fn forward(
    b: &Block,
    x: Vec<f32>,
    t: usize,
    rope: Option<&RopeTables<'_>>,
) -> Result<(Vec<f32>, BlockTape)> {
    let hidden = x.len() / t.max(1);
    let a = &b.attn;
    let (hd, nh, nkv) = (a.head_dim, a.num_heads, a.num_kv_heads);
    let (n1, attn_scales) = rms_forward(&b.attn_norm, &x)?;
    let n1 = matrix(n1, t, hidden)?;
    let (q, k, v, qkv_tapes) = match &a.qkv {
        QkvProjection::Separate { q, k, v } => {
            let (q, tq) = linear::forward(q, &n1)?;
            let (k, tk) = linear::forward(k, &n1)?;
            let (v, tv) = linear::forward(v, &n1)?;
            (q, k, v, vec![tq, tk, tv])
        }
        QkvProjection::Fused(w) => {
            let (y, tape) = linear::forward(w, &n1)?;
            (
                y.narrow(1, 0, nh * hd)?.contiguous()?,
                y.narrow(1, nh * hd, nkv * hd)?.contiguous()?,
                y.narrow(1, (nh + nkv) * hd, nkv * hd)?.contiguous()?,
                vec![tape],
            )
        }
    };
    let (q, q_pre) = head_norm(a.q_norm.as_ref(), q, t)?;
    let (k, k_pre) = head_norm(a.k_norm.as_ref(), k, t)?;
    let mut q = heads_first(q, t, nh, hd)?;
    let mut k = heads_first(k, t, nkv, hd)?;
    let v = heads_first(v, t, nkv, hd)?;
    if let Some(r) = rope {
        q = r.rope.apply(&q, &r.cos, &r.sin)?;
        k = r.rope.apply(&k, &r.cos, &r.sin)?;
    }
    let shape = attention_shape(a, t);
    let (q, k, v) = (values(&q)?, values(&k)?, values(&v)?);
    let (o_heads, lse) = causal::forward(&shape, &q, &k, &v)?;
    let o = tokens_first(
        &Tensor::from_slice(&o_heads, (nh, t, hd), &Device::Cpu)?,
        t,
        nh,
        hd,
    )?;
    let (attn_out, o_tape) = linear::forward(&a.o_proj, &o)?;
    let mut h = x.clone();
    add_into(&mut h, &values(&attn_out)?);

    let (n2, ffn_scales) = rms_forward(ffn_norm(b)?, &h)?;
    let n2 = matrix(n2, t, hidden)?;
    let (gate, up, mlp_tapes, down) = match &b.mlp {
        Mlp::Gated { gate, up, down } => {
            let (g, tg) = linear::forward(gate, &n2)?;
            let (u, tu) = linear::forward(up, &n2)?;
            (values(&g)?, values(&u)?, vec![tg, tu], down)
        }
        Mlp::FusedGated { gate_up, down } => {
            let (gu, tape) = linear::forward(gate_up, &n2)?;
            let half = gate_up.out_features() / 2;
            (
                values(&gu.narrow(1, 0, half)?)?,
                values(&gu.narrow(1, half, half)?)?,
                vec![tape],
                down,
            )
        }
        Mlp::Plain { .. } => return Err(missing("ungated MLP")),
    };
    let width = gate.len() / t.max(1);
    let act = matrix(swiglu(&gate, &up), t, width)?;
    let (mlp_out, down_tape) = linear::forward(down, &act)?;
    let mut out = h.clone();
    add_into(&mut out, &values(&mlp_out)?);
    Ok((
        out,
        BlockTape {
            x,
            attn_scales,
            n1,
            qkv_tapes,
            q_pre,
            k_pre,
            q,
            k,
            v,
            lse,
            o_heads,
            o,
            o_tape,
            h,
            ffn_scales,
            n2,
            gate,
            up,
            mlp_tapes,
            down_tape,
        },
    ))
}

/// The shape of `a`'s attention over `t` tokens.
fn attention_shape(a: &Attention, t: usize) -> Shape {
    Shape {
        t,
        heads: a.num_heads,
        kv_heads: a.num_kv_heads,
        head_dim: a.head_dim,
        scale: a.spec.scale as f32,
        window: a.window,
    }
}

/// Backward of block `b` given the gradient of its output: adds adapter
/// gradients to `grads`; returns the gradient of its input when
/// `need_input`.
pub(super) fn backward(
    b: &Block,
    tape: BlockTape,
    dy: Vec<f32>,
    rope: Option<&RopeTables<'_>>,
    need_input: bool,
    grads: &mut Grads,
) -> Result<Option<Vec<f32>>> {
    let t = tape.n1.dim(0)?;
    let hidden = tape.n1.dim(1)?;
    let a = &b.attn;
    let (hd, nh, nkv) = (a.head_dim, a.num_heads, a.num_kv_heads);

    // MLP.
    let width = tape.gate.len() / t.max(1);
    let act = matrix(swiglu(&tape.gate, &tape.up), t, width)?;
    let dy_t = matrix(dy.clone(), t, hidden)?;
    let down = match &b.mlp {
        Mlp::Gated { down, .. } | Mlp::FusedGated { down, .. } => down,
        Mlp::Plain { .. } => return Err(missing("ungated MLP")),
    };
    let d_act = linear::backward(down, &act, &tape.down_tape, &dy_t, true, grads)?
        .ok_or_else(|| missing("no gradient below the down projection"))?;
    let d_act = values(&d_act)?;
    let (dg, du) = swiglu_backward(&tape.gate, &tape.up, &d_act);
    let d_n2 = match (&b.mlp, tape.mlp_tapes.as_slice()) {
        (Mlp::Gated { gate, up, .. }, [tg, tu]) => {
            let g = linear::backward(gate, &tape.n2, tg, &matrix(dg, t, width)?, true, grads)?;
            let u = linear::backward(up, &tape.n2, tu, &matrix(du, t, width)?, true, grads)?;
            match (g, u) {
                (Some(g), Some(u)) => (g + u)?,
                _ => return Err(missing("no gradient below the MLP")),
            }
        }
        (Mlp::FusedGated { gate_up, .. }, [tape_gu]) => {
            let dgu = Tensor::cat(&[matrix(dg, t, width)?, matrix(du, t, width)?], 1)?;
            linear::backward(gate_up, &tape.n2, tape_gu, &dgu, true, grads)?
                .ok_or_else(|| missing("no gradient below the MLP"))?
        }
        _ => return Err(missing("MLP tapes do not match the MLP")),
    };
    let mut dh = dy;
    add_into(
        &mut dh,
        &rms_backward(ffn_norm(b)?, &tape.h, &tape.ffn_scales, &values(&d_n2)?)?,
    );

    // Attention output projection, then the attention itself.
    let dh_t = matrix(dh.clone(), t, hidden)?;
    let d_o = linear::backward(&a.o_proj, &tape.o, &tape.o_tape, &dh_t, true, grads)?
        .ok_or_else(|| missing("no gradient below o_proj"))?;
    let d_o = values(&heads_first(d_o, t, nh, hd)?)?;
    let shape = attention_shape(a, t);
    let (dq, dk, dv) = causal::backward(
        &shape,
        &tape.q,
        &tape.k,
        &tape.v,
        &tape.o_heads,
        &tape.lse,
        &d_o,
    )?;
    let mut dq = Tensor::from_vec(dq, (nh, t, hd), &Device::Cpu)?;
    let mut dk = Tensor::from_vec(dk, (nkv, t, hd), &Device::Cpu)?;
    let dv = Tensor::from_vec(dv, (nkv, t, hd), &Device::Cpu)?;
    if let Some(r) = rope {
        dq = r.rope.apply(&dq, &r.cos, &r.neg_sin)?;
        dk = r.rope.apply(&dk, &r.cos, &r.neg_sin)?;
    }
    let dq = unnorm(
        a.q_norm.as_ref(),
        tape.q_pre.as_ref(),
        tokens_first(&dq, t, nh, hd)?,
    )?;
    let dk = unnorm(
        a.k_norm.as_ref(),
        tape.k_pre.as_ref(),
        tokens_first(&dk, t, nkv, hd)?,
    )?;
    let dv = tokens_first(&dv, t, nkv, hd)?;

    let d_n1 = match (&a.qkv, tape.qkv_tapes.as_slice()) {
        (QkvProjection::Separate { q, k, v }, [tq, tk, tv]) => {
            let gq = linear::backward(q, &tape.n1, tq, &dq, need_input, grads)?;
            let gk = linear::backward(k, &tape.n1, tk, &dk, need_input, grads)?;
            let gv = linear::backward(v, &tape.n1, tv, &dv, need_input, grads)?;
            match (gq, gk, gv) {
                (Some(q), Some(k), Some(v)) => Some(((q + k)? + v)?),
                _ => None,
            }
        }
        (QkvProjection::Fused(w), [tape_w]) => {
            let dqkv = Tensor::cat(&[dq, dk, dv], 1)?;
            linear::backward(w, &tape.n1, tape_w, &dqkv, need_input, grads)?
        }
        _ => return Err(missing("attention tapes do not match the projections")),
    };
    let Some(d_n1) = d_n1.filter(|_| need_input) else {
        return Ok(None);
    };
    let mut dx = dh;
    add_into(
        &mut dx,
        &rms_backward(&b.attn_norm, &tape.x, &tape.attn_scales, &values(&d_n1)?)?,
    );
    Ok(Some(dx))
}

/// Backward of a per-head q/k norm (identity without one).
fn unnorm(norm: Option<&Norm>, pre: Option<&PreNorm>, dy: Tensor) -> Result<Tensor> {
    match (norm, pre) {
        (Some(n), Some(p)) => {
            let (rows, cols) = dy.dims2()?;
            let dx = rms_backward(n, &p.values, &p.scales, &values(&dy)?)?;
            matrix(dx, rows, cols)
        }
        _ => Ok(dy),
    }
}
