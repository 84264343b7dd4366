//! Phi-1/1.5/2 (`phi`): one LayerNorm feeding attention and MLP in
//! parallel, partial rotary, biases everywhere, GELU MLP, biased LM head.

use serde::Deserialize;

use super::{llama, Architecture, TensorRole};
use crate::config::{LlamaLikeConfig, RawConfig};
use crate::spec::{BlockLayout, MlpKind, NormKind};
use crate::{ModelSpec, Result};

/// The phi family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "phi",
    spec,
    tensor_name,
};

#[derive(Debug, Deserialize)]
struct PhiExtra {
    layer_norm_eps: Option<f64>,
    qk_layernorm: Option<bool>,
}

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let mut cfg: LlamaLikeConfig = raw.parse()?;
    let extra: PhiExtra = raw.parse()?;
    if extra.qk_layernorm == Some(true) {
        return Err(raw.invalid("phi with qk_layernorm is not supported"));
    }
    cfg.hidden_act = cfg.hidden_act.or(Some("gelu_new".into()));
    cfg.partial_rotary_factor = cfg.partial_rotary_factor.or(Some(0.5));
    let mut spec = llama::llama_like_spec(raw, &cfg)?;
    spec.norm.kind = NormKind::Layer { bias: true };
    spec.norm.eps = extra.layer_norm_eps.unwrap_or(1e-5);
    spec.mlp = MlpKind::Plain;
    spec.mlp_bias = true;
    spec.attention.qkv_bias = true;
    spec.attention.o_bias = true;
    spec.block = BlockLayout::Parallel { shared_norm: true };
    spec.lm_head_bias = !spec.tie_word_embeddings;
    Ok(spec)
}

fn tensor_name(spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    let l = |s: &str| Some(format!("model.layers.{layer}.{s}"));
    match role {
        TensorRole::OutputNorm => Some("model.final_layernorm".into()),
        TensorRole::AttnOut => l("self_attn.dense"),
        TensorRole::FfnUp => l("mlp.fc1"),
        TensorRole::FfnDown => l("mlp.fc2"),
        TensorRole::FfnNorm | TensorRole::FfnGate => None,
        other => llama::tensor_name(spec, other, layer),
    }
}
