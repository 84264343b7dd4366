//! Phi-3: Llama with fused `qkv_proj` and `gate_up_proj`, and a sliding
//! window on every layer when the config sets one.

use super::{llama, Architecture, TensorRole};
use crate::config::{LlamaLikeConfig, RawConfig};
use crate::spec::{MlpKind, QkvLayout};
use crate::{ModelSpec, Result};

/// The phi3 family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "phi3",
    spec,
    tensor_name,
};

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let cfg: LlamaLikeConfig = raw.parse()?;
    let mut spec = llama::llama_like_spec(raw, &cfg)?;
    spec.attention.qkv_layout = QkvLayout::Fused;
    spec.mlp = MlpKind::Gated { fused: true };
    spec.layer_windows = llama::layer_windows(raw, &cfg, |_| true)?;
    Ok(spec)
}

fn tensor_name(_spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    match role {
        TensorRole::AttnQkv => Some(format!("model.layers.{layer}.self_attn.qkv_proj")),
        TensorRole::FfnGateUp => Some(format!("model.layers.{layer}.mlp.gate_up_proj")),
        TensorRole::AttnQ | TensorRole::AttnK | TensorRole::AttnV => None,
        TensorRole::FfnGate | TensorRole::FfnUp => None,
        other => llama::tensor_name(_spec, other, layer),
    }
}
