//! StableLM 2 (`stablelm`): LayerNorm with bias, partial rotary, optional
//! q/k/v biases (`use_qkv_bias`), SwiGLU MLP, optional parallel residual.

use serde::Deserialize;

use super::{llama, Architecture, TensorRole};
use crate::config::{LlamaLikeConfig, RawConfig};
use crate::spec::{BlockLayout, NormKind};
use crate::{ModelSpec, Result};

/// The stablelm family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "stablelm",
    spec,
    tensor_name,
};

#[derive(Debug, Deserialize)]
struct StableLmExtra {
    layer_norm_eps: Option<f64>,
    use_qkv_bias: Option<bool>,
    use_parallel_residual: Option<bool>,
    qk_layernorm: Option<bool>,
}

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let mut cfg: LlamaLikeConfig = raw.parse()?;
    let extra: StableLmExtra = raw.parse()?;
    if extra.qk_layernorm == Some(true) {
        return Err(raw.invalid("stablelm with qk_layernorm is not supported"));
    }
    cfg.partial_rotary_factor = cfg.partial_rotary_factor.or(Some(0.25));
    let mut spec = llama::llama_like_spec(raw, &cfg)?;
    spec.norm.kind = NormKind::Layer { bias: true };
    spec.norm.eps = extra.layer_norm_eps.unwrap_or(1e-5);
    spec.attention.qkv_bias = extra.use_qkv_bias.unwrap_or(false);
    spec.attention.o_bias = false;
    if extra.use_parallel_residual.unwrap_or(false) {
        spec.block = BlockLayout::Parallel { shared_norm: true };
    }
    Ok(spec)
}

fn tensor_name(spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    llama::tensor_name(spec, role, layer)
}
