//! GPT-J: one LayerNorm feeding attention and MLP in parallel, partial
//! interleaved rotary (`rotary_dim`), unbiased q/k/v/out, biased MLP and head.

use serde::Deserialize;

use super::gpt2::{gpt_like_spec, GptNamedConfig};
use super::{Architecture, TensorRole};
use crate::config::RawConfig;
use crate::spec::{BlockLayout, PositionEncoding, QkvLayout, RopeScaling, RopeSpec};
use crate::{ModelSpec, Result};

/// The gptj family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "gptj",
    spec,
    tensor_name,
};

#[derive(Debug, Deserialize)]
struct GptjExtra {
    rotary_dim: Option<usize>,
    tie_word_embeddings: Option<bool>,
}

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let c: GptNamedConfig = raw.parse()?;
    let extra: GptjExtra = raw.parse()?;
    let mut spec = gpt_like_spec(raw, c.dims())?;
    spec.position = PositionEncoding::Rope(RopeSpec {
        theta: 10_000.0,
        rotary_dim: extra.rotary_dim.unwrap_or(spec.head_dim),
        interleaved: true,
        scaling: RopeScaling::None,
    });
    spec.attention.qkv_layout = QkvLayout::Separate;
    spec.attention.qkv_bias = false;
    spec.attention.o_bias = false;
    spec.block = BlockLayout::Parallel { shared_norm: true };
    spec.tie_word_embeddings = extra.tie_word_embeddings.unwrap_or(false);
    spec.lm_head_bias = !spec.tie_word_embeddings;
    Ok(spec)
}

fn tensor_name(_spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    let l = |s: &str| Some(format!("transformer.h.{layer}.{s}"));
    match role {
        TensorRole::TokenEmbedding => Some("transformer.wte".into()),
        TensorRole::OutputNorm => Some("transformer.ln_f".into()),
        TensorRole::Output => Some("lm_head".into()),
        TensorRole::AttnNorm => l("ln_1"),
        TensorRole::AttnQ => l("attn.q_proj"),
        TensorRole::AttnK => l("attn.k_proj"),
        TensorRole::AttnV => l("attn.v_proj"),
        TensorRole::AttnOut => l("attn.out_proj"),
        TensorRole::FfnUp => l("mlp.fc_in"),
        TensorRole::FfnDown => l("mlp.fc_out"),
        _ => None,
    }
}
