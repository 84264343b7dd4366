//! Gemma 2: scaled embeddings, `(1 + w)` RMSNorm, sandwich norms around
//! attention and MLP, GELU-tanh, soft-capped attention scores and logits,
//! `query_pre_attn_scalar`, and sliding windows on alternate layers.

use super::{llama, Architecture, TensorRole};
use crate::config::{LlamaLikeConfig, RawConfig};
use crate::spec::BlockLayout;
use crate::{ModelSpec, Result};

/// The gemma2 family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "gemma2",
    spec,
    tensor_name,
};

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    gemma_spec(raw)
}

/// Gemma 2's spec; Gemma 3 starts from it.
pub(super) fn gemma_spec(raw: &RawConfig) -> Result<ModelSpec> {
    let mut cfg: LlamaLikeConfig = raw.parse()?;
    cfg.hidden_activation = cfg
        .hidden_activation
        .or(cfg.hidden_act.take())
        .or(Some("gelu_pytorch_tanh".into()));
    let mut spec = llama::llama_like_spec(raw, &cfg)?;
    spec.norm.weight_offset = 1.0;
    spec.block = BlockLayout::Sandwich;
    spec.embedding_scale = Some((cfg.hidden_size as f64).sqrt());
    spec.attention.logit_softcap = cfg.attn_logit_softcapping;
    spec.final_logit_softcap = cfg.final_logit_softcapping;
    let scalar = cfg.query_pre_attn_scalar.unwrap_or(spec.head_dim as f64);
    if scalar <= 0.0 {
        return Err(raw.invalid("query_pre_attn_scalar must be positive"));
    }
    spec.attention.scale = scalar.powf(-0.5);
    spec.tie_word_embeddings = cfg.tie_word_embeddings.unwrap_or(true);
    // Gemma 2 alternates: even layers slide, odd layers see everything.
    spec.layer_windows = llama::layer_windows(raw, &cfg, |layer| layer % 2 == 0)?;
    Ok(spec)
}

pub(super) fn tensor_name(_spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    let l = |s: &str| Some(format!("model.layers.{layer}.{s}"));
    match role {
        TensorRole::AttnPostNorm => l("post_attention_layernorm"),
        TensorRole::FfnNorm => l("pre_feedforward_layernorm"),
        TensorRole::FfnPostNorm => l("post_feedforward_layernorm"),
        other => llama::tensor_name(_spec, other, layer),
    }
}
