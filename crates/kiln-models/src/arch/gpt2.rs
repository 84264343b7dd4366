//! GPT-2: learned positions, LayerNorm with bias, Conv1D (`[in, out]`)
//! weights, fused `c_attn`, plain GELU MLP, tied head. Also the shared
//! starting point of the GPT-style families (`gpt_like_spec`).

use serde::Deserialize;

use super::{Architecture, TensorRole};
use crate::config::{OneOrMany, RawConfig};
use crate::spec::{
    Activation, AttentionSpec, BlockLayout, MlpKind, NormKind, NormSpec, PositionEncoding,
    QkvLayout,
};
use crate::{ModelSpec, Result};

/// The gpt2 family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "gpt2",
    spec,
    tensor_name,
};

/// The keys GPT-2 and GPT-J share (`n_embd`, `n_layer`, …).
#[derive(Debug, Deserialize)]
pub(super) struct GptNamedConfig {
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_inner: Option<usize>,
    n_positions: usize,
    vocab_size: usize,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    #[serde(flatten)]
    ids: SpecialIds,
}

impl GptNamedConfig {
    /// The sizes in [`GptDims`] form.
    pub(super) fn dims(self) -> GptDims {
        GptDims {
            hidden: self.n_embd,
            layers: self.n_layer,
            heads: self.n_head,
            intermediate: self.n_inner.unwrap_or(4 * self.n_embd),
            vocab: self.vocab_size,
            positions: self.n_positions,
            eps: self.layer_norm_epsilon.unwrap_or(1e-5),
            activation: self
                .activation_function
                .unwrap_or_else(|| "gelu_new".into()),
            ids: self.ids,
        }
    }
}

/// Token ids and dtype, as every config writes them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SpecialIds {
    bos_token_id: Option<OneOrMany>,
    eos_token_id: Option<OneOrMany>,
    #[serde(alias = "torch_dtype")]
    dtype: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Gpt2Extra {
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
    reorder_and_upcast_attn: Option<bool>,
}

/// Sizes every GPT-style config provides under its own names.
pub(super) struct GptDims {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub positions: usize,
    pub eps: f64,
    pub activation: String,
    pub ids: SpecialIds,
}

/// A GPT-style spec: LayerNorm with bias, plain MLP with biases, learned
/// positions, fused q/k/v, tied head. Families change fields from here.
pub(super) fn gpt_like_spec(raw: &RawConfig, d: GptDims) -> Result<ModelSpec> {
    if d.heads == 0 || !d.hidden.is_multiple_of(d.heads) {
        return Err(raw.invalid(format!(
            "hidden size {} is not a multiple of the {} heads",
            d.hidden, d.heads
        )));
    }
    let head_dim = d.hidden / d.heads;
    let activation = Activation::from_hf(&d.activation)
        .ok_or_else(|| raw.invalid(format!("unsupported activation {:?}", d.activation)))?;
    Ok(ModelSpec {
        model_type: raw.model_type.clone(),
        hidden_size: d.hidden,
        intermediate_size: d.intermediate,
        num_hidden_layers: d.layers,
        num_attention_heads: d.heads,
        num_key_value_heads: d.heads,
        head_dim,
        vocab_size: d.vocab,
        max_position_embeddings: d.positions,
        norm: NormSpec {
            kind: NormKind::Layer { bias: true },
            eps: d.eps,
            weight_offset: 0.0,
        },
        activation,
        mlp: MlpKind::Plain,
        mlp_bias: true,
        position: PositionEncoding::Learned,
        attention: AttentionSpec {
            scale: (head_dim as f64).powf(-0.5),
            logit_softcap: None,
            qk_norm: false,
            qkv_layout: QkvLayout::Fused,
            qkv_bias: true,
            o_bias: true,
        },
        layer_windows: vec![None; d.layers],
        block: BlockLayout::Sequential,
        embedding_scale: None,
        final_logit_softcap: None,
        tie_word_embeddings: true,
        lm_head_bias: false,
        transposed_linear_weights: false,
        kv_cache_f16: false,
        local_rope_theta: None,
        bos_token_id: d
            .ids
            .bos_token_id
            .as_ref()
            .and_then(|b| b.to_vec().first().copied()),
        eos_token_ids: d
            .ids
            .eos_token_id
            .as_ref()
            .map(OneOrMany::to_vec)
            .unwrap_or_default(),
        dtype: d.ids.dtype,
    })
}

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let c: GptNamedConfig = raw.parse()?;
    let extra: Gpt2Extra = raw.parse()?;
    if extra.scale_attn_by_inverse_layer_idx == Some(true)
        || extra.reorder_and_upcast_attn == Some(true)
    {
        return Err(raw.invalid(
            "scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported",
        ));
    }
    let mut spec = gpt_like_spec(raw, c.dims())?;
    if extra.scale_attn_weights == Some(false) {
        spec.attention.scale = 1.0;
    }
    spec.transposed_linear_weights = true;
    Ok(spec)
}

fn tensor_name(_spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    let l = |s: &str| Some(format!("transformer.h.{layer}.{s}"));
    match role {
        TensorRole::TokenEmbedding => Some("transformer.wte".into()),
        TensorRole::PositionEmbedding => Some("transformer.wpe".into()),
        TensorRole::OutputNorm => Some("transformer.ln_f".into()),
        TensorRole::Output => Some("lm_head".into()),
        TensorRole::AttnNorm => l("ln_1"),
        TensorRole::AttnQkv => l("attn.c_attn"),
        TensorRole::AttnOut => l("attn.c_proj"),
        TensorRole::FfnNorm => l("ln_2"),
        TensorRole::FfnUp => l("mlp.c_fc"),
        TensorRole::FfnDown => l("mlp.c_proj"),
        _ => None,
    }
}
