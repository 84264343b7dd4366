//! Falcon: rotary, LayerNorm with bias, no linear biases (`bias: false`),
//! and three q/k/v layouts: multi-query (Falcon-7B), per-head (older
//! checkpoints), and grouped KV heads with two LayerNorms in parallel
//! (`new_decoder_architecture`, Falcon-40B/180B).

use serde::Deserialize;

use super::gpt2::{gpt_like_spec, GptDims, SpecialIds};
use super::{Architecture, TensorRole};
use crate::config::RawConfig;
use crate::spec::{BlockLayout, PositionEncoding, QkvLayout, RopeScaling, RopeSpec};
use crate::{ModelSpec, Result};

/// The falcon family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "falcon",
    spec,
    tensor_name,
};

#[derive(Debug, Deserialize)]
struct FalconConfig {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_kv_heads: Option<usize>,
    ffn_hidden_size: Option<usize>,
    max_position_embeddings: Option<usize>,
    vocab_size: usize,
    layer_norm_epsilon: Option<f64>,
    activation: Option<String>,
    multi_query: Option<bool>,
    new_decoder_architecture: Option<bool>,
    parallel_attn: Option<bool>,
    num_ln_in_parallel_attn: Option<usize>,
    bias: Option<bool>,
    alibi: Option<bool>,
    rope_theta: Option<f64>,
    tie_word_embeddings: Option<bool>,
    #[serde(flatten)]
    ids: SpecialIds,
}

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let c: FalconConfig = raw.parse()?;
    if c.alibi == Some(true) {
        return Err(raw.invalid("Falcon with alibi (falcon-rw) is not supported"));
    }
    let mut spec = gpt_like_spec(
        raw,
        GptDims {
            hidden: c.hidden_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            intermediate: c.ffn_hidden_size.unwrap_or(4 * c.hidden_size),
            vocab: c.vocab_size,
            positions: c.max_position_embeddings.unwrap_or(2048),
            eps: c.layer_norm_epsilon.unwrap_or(1e-5),
            activation: c.activation.unwrap_or_else(|| "gelu".into()),
            ids: c.ids,
        },
    )?;
    spec.position = PositionEncoding::Rope(RopeSpec {
        theta: c.rope_theta.unwrap_or(10_000.0),
        rotary_dim: spec.head_dim,
        interleaved: false,
        scaling: RopeScaling::None,
    });
    let new_arch = c.new_decoder_architecture.unwrap_or(false);
    let heads = c.num_attention_heads;
    (spec.num_key_value_heads, spec.attention.qkv_layout) = if new_arch {
        (c.num_kv_heads.unwrap_or(heads), QkvLayout::FusedGrouped)
    } else if c.multi_query.unwrap_or(true) {
        (1, QkvLayout::Fused)
    } else {
        (heads, QkvLayout::FusedPerHead)
    };
    let bias = c.bias.unwrap_or(false);
    spec.attention.qkv_bias = bias;
    spec.attention.o_bias = bias;
    spec.mlp_bias = bias;
    spec.block = if new_arch {
        BlockLayout::Parallel {
            shared_norm: c.num_ln_in_parallel_attn.unwrap_or(2) == 1,
        }
    } else if c.parallel_attn.unwrap_or(true) {
        BlockLayout::Parallel { shared_norm: true }
    } else {
        BlockLayout::Sequential
    };
    spec.tie_word_embeddings = c.tie_word_embeddings.unwrap_or(true);
    Ok(spec)
}

fn tensor_name(spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    let l = |s: &str| Some(format!("transformer.h.{layer}.{s}"));
    let two_norms = spec.block == BlockLayout::Parallel { shared_norm: false };
    match role {
        TensorRole::TokenEmbedding => Some("transformer.word_embeddings".into()),
        TensorRole::OutputNorm => Some("transformer.ln_f".into()),
        TensorRole::Output => Some("lm_head".into()),
        TensorRole::AttnNorm if two_norms => l("ln_attn"),
        TensorRole::FfnNorm if two_norms => l("ln_mlp"),
        TensorRole::AttnNorm => l("input_layernorm"),
        TensorRole::FfnNorm => l("post_attention_layernorm"),
        TensorRole::AttnQkv => l("self_attention.query_key_value"),
        TensorRole::AttnOut => l("self_attention.dense"),
        TensorRole::FfnUp => l("mlp.dense_h_to_4h"),
        TensorRole::FfnDown => l("mlp.dense_4h_to_h"),
        _ => None,
    }
}
