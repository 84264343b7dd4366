//! GPT-NeoX (Pythia, Dolly v2, StableLM-alpha, Polyglot): parallel residual
//! with two LayerNorms, partial rotary (`rotary_pct`), per-head fused q/k/v.

use serde::Deserialize;

use super::gpt2::{gpt_like_spec, GptDims, SpecialIds};
use super::{Architecture, TensorRole};
use crate::config::{RawConfig, RawRopeParameters};
use crate::spec::{BlockLayout, PositionEncoding, QkvLayout, RopeScaling, RopeSpec};
use crate::{ModelSpec, Result};

/// The gpt_neox family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "gpt_neox",
    spec,
    tensor_name,
};

#[derive(Debug, Deserialize)]
struct NeoxConfig {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    vocab_size: usize,
    rotary_pct: Option<f64>,
    rope_theta: Option<f64>,
    rotary_emb_base: Option<f64>,
    rope_parameters: Option<RawRopeParameters>,
    partial_rotary_factor: Option<f64>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    use_parallel_residual: Option<bool>,
    attention_bias: Option<bool>,
    tie_word_embeddings: Option<bool>,
    #[serde(flatten)]
    ids: SpecialIds,
}

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let c: NeoxConfig = raw.parse()?;
    let mut spec = gpt_like_spec(
        raw,
        GptDims {
            hidden: c.hidden_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            intermediate: c.intermediate_size,
            vocab: c.vocab_size,
            positions: c.max_position_embeddings,
            eps: c.layer_norm_eps.unwrap_or(1e-5),
            activation: c.hidden_act.unwrap_or_else(|| "gelu".into()),
            ids: c.ids,
        },
    )?;
    let params = c.rope_parameters.unwrap_or_default();
    let pct = params
        .partial_rotary_factor
        .or(c.partial_rotary_factor)
        .or(c.rotary_pct)
        .unwrap_or(1.0);
    let theta = params
        .rope_theta
        .or(c.rope_theta)
        .or(c.rotary_emb_base)
        .unwrap_or(10_000.0);
    spec.position = PositionEncoding::Rope(RopeSpec {
        theta,
        rotary_dim: (spec.head_dim as f64 * pct) as usize,
        interleaved: false,
        scaling: RopeScaling::None,
    });
    spec.attention.qkv_layout = QkvLayout::FusedPerHead;
    let bias = c.attention_bias.unwrap_or(true);
    spec.attention.qkv_bias = bias;
    spec.attention.o_bias = bias;
    spec.block = if c.use_parallel_residual.unwrap_or(true) {
        BlockLayout::Parallel { shared_norm: false }
    } else {
        BlockLayout::Sequential
    };
    spec.tie_word_embeddings = c.tie_word_embeddings.unwrap_or(false);
    Ok(spec)
}

fn tensor_name(_spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    let l = |s: &str| Some(format!("gpt_neox.layers.{layer}.{s}"));
    match role {
        TensorRole::TokenEmbedding => Some("gpt_neox.embed_in".into()),
        TensorRole::OutputNorm => Some("gpt_neox.final_layer_norm".into()),
        TensorRole::Output => Some("embed_out".into()),
        TensorRole::AttnNorm => l("input_layernorm"),
        TensorRole::AttnQkv => l("attention.query_key_value"),
        TensorRole::AttnOut => l("attention.dense"),
        TensorRole::FfnNorm => l("post_attention_layernorm"),
        TensorRole::FfnUp => l("mlp.dense_h_to_4h"),
        TensorRole::FfnDown => l("mlp.dense_4h_to_h"),
        _ => None,
    }
}
