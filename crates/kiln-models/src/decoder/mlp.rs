//! The feed-forward block: gated (SwiGLU/GeGLU) or plain.

use candle_core::Tensor;

use crate::linear::Linear;
use crate::spec::Activation;
use crate::Result;

/// The projections of an MLP.
#[derive(Debug, Clone)]
pub(crate) enum Mlp {
    /// `down(act(gate(x)) * up(x))`.
    Gated {
        gate: Linear,
        up: Linear,
        down: Linear,
    },
    /// Like `Gated` with `[gate | up]` in one projection.
    FusedGated { gate_up: Linear, down: Linear },
    /// `down(act(up(x)))`.
    Plain { up: Linear, down: Linear },
}

impl Mlp {
    /// `x`: `[t, hidden]` → `[t, hidden]`.
    pub(crate) fn forward(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        match self {
            Mlp::Gated { gate, up, down } => {
                let h = (activate(&gate.forward(x)?, act)? * up.forward(x)?)?;
                down.forward(&h)
            }
            Mlp::FusedGated { gate_up, down } => {
                let gu = gate_up.forward(x)?;
                let half = gate_up.out_features() / 2;
                let h = (activate(&gu.narrow(1, 0, half)?, act)? * gu.narrow(1, half, half)?)?;
                down.forward(&h)
            }
            Mlp::Plain { up, down } => down.forward(&activate(&up.forward(x)?, act)?),
        }
    }

    /// Number of parameters.
    pub(crate) fn parameter_count(&self) -> usize {
        match self {
            Mlp::Gated { gate, up, down } => {
                gate.parameter_count() + up.parameter_count() + down.parameter_count()
            }
            Mlp::FusedGated { gate_up, down } => gate_up.parameter_count() + down.parameter_count(),
            Mlp::Plain { up, down } => up.parameter_count() + down.parameter_count(),
        }
    }
}

fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Silu => x.silu()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Gelu => x.gelu_erf()?,
        Activation::Relu => x.relu()?,
    })
}
