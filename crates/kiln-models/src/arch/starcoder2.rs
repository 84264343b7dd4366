//! StarCoder2: LayerNorm with bias, biased q/k/v/o and plain GELU MLP
//! (`use_bias`), GQA, rotary, sliding window on every layer.

use serde::Deserialize;

use super::{llama, Architecture, TensorRole};
use crate::config::{LlamaLikeConfig, RawConfig};
use crate::spec::{MlpKind, NormKind};
use crate::{ModelSpec, Result};

/// The starcoder2 family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "starcoder2",
    spec,
    tensor_name,
};

#[derive(Debug, Deserialize)]
struct Starcoder2Extra {
    norm_epsilon: Option<f64>,
    use_bias: Option<bool>,
}

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let mut cfg: LlamaLikeConfig = raw.parse()?;
    let extra: Starcoder2Extra = raw.parse()?;
    cfg.hidden_act = cfg.hidden_act.or(Some("gelu_pytorch_tanh".into()));
    let mut spec = llama::llama_like_spec(raw, &cfg)?;
    let bias = extra.use_bias.unwrap_or(true);
    spec.norm.kind = NormKind::Layer { bias: true };
    spec.norm.eps = extra.norm_epsilon.unwrap_or(1e-5);
    spec.mlp = MlpKind::Plain;
    spec.mlp_bias = bias;
    spec.attention.qkv_bias = bias;
    spec.attention.o_bias = bias;
    spec.layer_windows = llama::layer_windows(raw, &cfg, |_| true)?;
    Ok(spec)
}

fn tensor_name(spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    let l = |s: &str| Some(format!("model.layers.{layer}.{s}"));
    match role {
        TensorRole::FfnUp => l("mlp.c_fc"),
        TensorRole::FfnDown => l("mlp.c_proj"),
        TensorRole::FfnGate => None,
        other => llama::tensor_name(spec, other, layer),
    }
}
