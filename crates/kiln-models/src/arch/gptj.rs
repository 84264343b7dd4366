//! GPT-J: one LayerNorm feeding attention and MLP in parallel, partial
//! interleaved rotary (`rotary_dim`), unbiased q/k/v/out, biased MLP and head.

use serde::Deserialize;

use super::gpt2::{gpt_like_spec, GptDims};
use super::{Architecture, TensorRole};
use crate::config::{OneOrMany, RawConfig};
use crate::spec::{BlockLayout, PositionEncoding, QkvLayout, RopeScaling, RopeSpec};
use crate::{ModelSpec, Result};

/// The gptj family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "gptj",
    spec,
    tensor_name,
};

#[derive(Debug, Deserialize)]
struct GptjConfig {
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_inner: Option<usize>,
    n_positions: usize,
    vocab_size: usize,
    rotary_dim: Option<usize>,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    tie_word_embeddings: Option<bool>,
    bos_token_id: Option<OneOrMany>,
    eos_token_id: Option<OneOrMany>,
    #[serde(alias = "torch_dtype")]
    dtype: Option<String>,
}

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let c: GptjConfig = raw.parse()?;
    let mut spec = gpt_like_spec(
        raw,
        GptDims {
            hidden: c.n_embd,
            layers: c.n_layer,
            heads: c.n_head,
            intermediate: c.n_inner.unwrap_or(4 * c.n_embd),
            vocab: c.vocab_size,
            positions: c.n_positions,
            eps: c.layer_norm_epsilon.unwrap_or(1e-5),
            activation: c.activation_function.unwrap_or_else(|| "gelu_new".into()),
            bos: c.bos_token_id,
            eos: c.eos_token_id,
            dtype: c.dtype,
        },
    )?;
    spec.position = PositionEncoding::Rope(RopeSpec {
        theta: 10_000.0,
        rotary_dim: c.rotary_dim.unwrap_or(spec.head_dim),
        interleaved: true,
        scaling: RopeScaling::None,
    });
    spec.attention.qkv_layout = QkvLayout::Separate;
    spec.attention.qkv_bias = false;
    spec.attention.o_bias = false;
    spec.block = BlockLayout::Parallel { shared_norm: true };
    spec.tie_word_embeddings = c.tie_word_embeddings.unwrap_or(false);
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
