//! MPT: ALiBi (`alibi_bias_max`), no biases (`no_bias`), LayerNorm without
//! bias, fused `Wqkv`, GELU MLP of 4× width (as transformers builds it), tied head.

use serde::Deserialize;

use super::gpt2::{gpt_like_spec, GptDims, SpecialIds};
use super::{Architecture, TensorRole};
use crate::config::RawConfig;
use crate::spec::{NormKind, PositionEncoding};
use crate::{ModelSpec, Result};

/// The mpt family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "mpt",
    spec,
    tensor_name,
};

#[derive(Debug, Default, Deserialize)]
struct AttnConfig {
    alibi: Option<bool>,
    alibi_bias_max: Option<f64>,
    softmax_scale: Option<f64>,
    clip_qkv: Option<f64>,
    qk_ln: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct MptConfig {
    d_model: usize,
    n_heads: usize,
    n_layers: usize,
    max_seq_len: usize,
    vocab_size: usize,
    layer_norm_epsilon: Option<f64>,
    no_bias: Option<bool>,
    #[serde(default)]
    attn_config: AttnConfig,
    #[serde(flatten)]
    ids: SpecialIds,
}

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let c: MptConfig = raw.parse()?;
    let a = &c.attn_config;
    if a.clip_qkv.is_some() || a.qk_ln == Some(true) {
        return Err(raw.invalid("MPT with clip_qkv or qk_ln is not supported"));
    }
    let mut spec = gpt_like_spec(
        raw,
        GptDims {
            hidden: c.d_model,
            layers: c.n_layers,
            heads: c.n_heads,
            intermediate: 4 * c.d_model,
            vocab: c.vocab_size,
            positions: c.max_seq_len,
            eps: c.layer_norm_epsilon.unwrap_or(1e-5),
            activation: "gelu".into(),
            ids: c.ids,
        },
    )?;
    if a.alibi.unwrap_or(true) {
        spec.position = PositionEncoding::Alibi {
            max_bias: a.alibi_bias_max.unwrap_or(8.0),
        };
    }
    if let Some(scale) = a.softmax_scale {
        spec.attention.scale = scale;
    }
    let bias = !c.no_bias.unwrap_or(true);
    spec.norm.kind = NormKind::Layer { bias };
    spec.attention.qkv_bias = bias;
    spec.attention.o_bias = bias;
    spec.mlp_bias = bias;
    Ok(spec)
}

fn tensor_name(_spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    let l = |s: &str| Some(format!("transformer.blocks.{layer}.{s}"));
    match role {
        TensorRole::TokenEmbedding => Some("transformer.wte".into()),
        TensorRole::PositionEmbedding => Some("transformer.wpe".into()),
        TensorRole::OutputNorm => Some("transformer.norm_f".into()),
        TensorRole::Output => Some("lm_head".into()),
        TensorRole::AttnNorm => l("norm_1"),
        TensorRole::AttnQkv => l("attn.Wqkv"),
        TensorRole::AttnOut => l("attn.out_proj"),
        TensorRole::FfnNorm => l("norm_2"),
        TensorRole::FfnUp => l("ffn.up_proj"),
        TensorRole::FfnDown => l("ffn.down_proj"),
        _ => None,
    }
}
