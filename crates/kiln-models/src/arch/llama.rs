//! Llama (and the shared parts of its descendants): RMSNorm, SwiGLU MLP,
//! RoPE, grouped-query attention.

use super::{Architecture, TensorRole};
use crate::config::{LlamaLikeConfig, RawConfig, RawRopeParameters};
use crate::spec::{
    Activation, AttentionSpec, BlockLayout, MlpKind, NormKind, NormSpec, PositionEncoding,
    QkvLayout, RopeScaling, RopeSpec,
};
use crate::{ModelSpec, Result};

/// The llama family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "llama",
    spec,
    tensor_name,
};

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let cfg: LlamaLikeConfig = raw.parse()?;
    llama_like_spec(raw, &cfg)
}

/// Tensor names shared by Llama, Mistral, Qwen2/3 and Gemma 2.
pub(super) fn tensor_name(_spec: &ModelSpec, role: TensorRole, layer: usize) -> Option<String> {
    let l = |s: &str| Some(format!("model.layers.{layer}.{s}"));
    match role {
        TensorRole::TokenEmbedding => Some("model.embed_tokens".into()),
        TensorRole::OutputNorm => Some("model.norm".into()),
        TensorRole::Output => Some("lm_head".into()),
        TensorRole::AttnNorm => l("input_layernorm"),
        TensorRole::AttnQ => l("self_attn.q_proj"),
        TensorRole::AttnK => l("self_attn.k_proj"),
        TensorRole::AttnV => l("self_attn.v_proj"),
        TensorRole::AttnOut => l("self_attn.o_proj"),
        TensorRole::AttnQNorm => l("self_attn.q_norm"),
        TensorRole::AttnKNorm => l("self_attn.k_norm"),
        TensorRole::FfnNorm => l("post_attention_layernorm"),
        TensorRole::FfnGate => l("mlp.gate_proj"),
        TensorRole::FfnUp => l("mlp.up_proj"),
        TensorRole::FfnDown => l("mlp.down_proj"),
        TensorRole::PositionEmbedding
        | TensorRole::AttnQkv
        | TensorRole::AttnPostNorm
        | TensorRole::FfnGateUp
        | TensorRole::FfnPostNorm => None,
    }
}

/// The spec of a plain Llama; descendants start from it and change fields.
pub(super) fn llama_like_spec(raw: &RawConfig, cfg: &LlamaLikeConfig) -> Result<ModelSpec> {
    let heads = cfg.num_attention_heads;
    if heads == 0 {
        return Err(raw.invalid("num_attention_heads must be positive"));
    }
    let head_dim = cfg.head_dim.unwrap_or(cfg.hidden_size / heads);
    let act_name = cfg
        .hidden_activation
        .as_deref()
        .or(cfg.hidden_act.as_deref())
        .unwrap_or("silu");
    let activation = Activation::from_hf(act_name)
        .ok_or_else(|| raw.invalid(format!("unsupported activation {act_name:?}")))?;
    let bias = cfg.attention_bias.unwrap_or(false);
    Ok(ModelSpec {
        model_type: raw.model_type.clone(),
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        num_hidden_layers: cfg.num_hidden_layers,
        num_attention_heads: heads,
        num_key_value_heads: cfg.num_key_value_heads.unwrap_or(heads),
        head_dim,
        vocab_size: cfg.vocab_size,
        max_position_embeddings: cfg.max_position_embeddings.unwrap_or(2048),
        norm: NormSpec {
            kind: NormKind::Rms,
            eps: cfg.rms_norm_eps.unwrap_or(1e-6),
            weight_offset: 0.0,
        },
        activation,
        mlp: MlpKind::Gated { fused: false },
        mlp_bias: cfg.mlp_bias.unwrap_or(false),
        position: PositionEncoding::Rope(rope_spec(raw, cfg, head_dim)?),
        attention: AttentionSpec {
            scale: (head_dim as f64).powf(-0.5),
            logit_softcap: None,
            qk_norm: false,
            qkv_layout: QkvLayout::Separate,
            qkv_bias: bias,
            o_bias: bias,
        },
        layer_windows: layer_windows(raw, cfg, |_| false)?,
        block: BlockLayout::Sequential,
        embedding_scale: None,
        final_logit_softcap: None,
        tie_word_embeddings: cfg.tie_word_embeddings.unwrap_or(false),
        lm_head_bias: false,
        transposed_linear_weights: false,
        kv_cache_f16: false,
        local_rope_theta: None,
        bos_token_id: cfg
            .bos_token_id
            .as_ref()
            .and_then(|b| b.to_vec().first().copied()),
        eos_token_ids: cfg
            .eos_token_id
            .as_ref()
            .map(|e| e.to_vec())
            .unwrap_or_default(),
        dtype: cfg.dtype.clone(),
    })
}

/// Per-layer sliding windows: `layer_types` when the config has it, otherwise
/// `default_sliding(layer)` decides which layers use `sliding_window`.
pub(super) fn layer_windows(
    raw: &RawConfig,
    cfg: &LlamaLikeConfig,
    default_sliding: impl Fn(usize) -> bool,
) -> Result<Vec<Option<usize>>> {
    let n = cfg.num_hidden_layers;
    let Some(window) = cfg.sliding_window else {
        return Ok(vec![None; n]);
    };
    if window == 0 {
        return Err(raw.invalid("sliding_window must be positive"));
    }
    match &cfg.layer_types {
        Some(types) => {
            if types.len() != n {
                return Err(raw.invalid(format!(
                    "layer_types has {} entries for {n} layers",
                    types.len()
                )));
            }
            types
                .iter()
                .map(|t| match t.as_str() {
                    "sliding_attention" => Ok(Some(window)),
                    "full_attention" => Ok(None),
                    other => Err(raw.invalid(format!("unsupported layer type {other:?}"))),
                })
                .collect()
        }
        None => Ok((0..n)
            .map(|i| default_sliding(i).then_some(window))
            .collect()),
    }
}

/// RoPE from either config layout.
pub(super) fn rope_spec(
    raw: &RawConfig,
    cfg: &LlamaLikeConfig,
    head_dim: usize,
) -> Result<RopeSpec> {
    let params: RawRopeParameters = cfg
        .rope_parameters
        .clone()
        .or_else(|| cfg.rope_scaling.clone())
        .unwrap_or_default();
    let theta = params.rope_theta.or(cfg.rope_theta).unwrap_or(10_000.0);
    let partial = params
        .partial_rotary_factor
        .or(cfg.partial_rotary_factor)
        .unwrap_or(1.0);
    if !(partial > 0.0 && partial <= 1.0) {
        return Err(raw.invalid(format!("partial_rotary_factor {partial} is not in (0, 1]")));
    }
    let rotary_dim = ((head_dim as f64 * partial) as usize) & !1;
    let max_pos = cfg.max_position_embeddings.unwrap_or(2048);
    let original = params
        .original_max_position_embeddings
        .or(cfg.original_max_position_embeddings);
    let need_original = || {
        original
            .ok_or_else(|| raw.invalid("rope scaling needs \"original_max_position_embeddings\""))
    };
    let factor = || {
        params
            .factor
            .ok_or_else(|| raw.invalid("rope scaling needs \"factor\""))
    };
    let scaling = match params.kind() {
        None | Some("default") => RopeScaling::None,
        Some("linear") => RopeScaling::Linear { factor: factor()? },
        Some("llama3") => RopeScaling::Llama3 {
            factor: factor()?,
            low_freq_factor: params.low_freq_factor.unwrap_or(1.0),
            high_freq_factor: params.high_freq_factor.unwrap_or(4.0),
            original_max_position_embeddings: original.unwrap_or(8192),
        },
        Some("dynamic") => RopeScaling::Dynamic {
            factor: factor()?,
            max_position_embeddings: max_pos,
        },
        Some("yarn") => {
            let original = need_original()?;
            let factor = params.factor.unwrap_or(max_pos as f64 / original as f64);
            let get_mscale = |m: f64| if factor <= 1.0 { 1.0 } else { 0.1 * m * factor.ln() + 1.0 };
            let mscale = match (params.mscale, params.mscale_all_dim) {
                (Some(m), Some(all)) if m != 0.0 && all != 0.0 => get_mscale(m) / get_mscale(all),
                _ => get_mscale(1.0),
            };
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: original,
                beta_fast: params.beta_fast.unwrap_or(32.0),
                beta_slow: params.beta_slow.unwrap_or(1.0),
                attention_factor: params.attention_factor.unwrap_or(mscale),
                truncate: params.truncate.unwrap_or(true),
            }
        }
        Some("longrope") | Some("su") => {
            let original = need_original()?;
            let (Some(short), Some(long)) = (params.short_factor.clone(), params.long_factor.clone())
            else {
                return Err(raw.invalid("longrope needs \"short_factor\" and \"long_factor\""));
            };
            if short.len() != rotary_dim / 2 || long.len() != rotary_dim / 2 {
                return Err(raw.invalid(format!(
                    "longrope factors must have {} entries (rotary dim / 2)",
                    rotary_dim / 2
                )));
            }
            let factor = params.factor.unwrap_or(max_pos as f64 / original as f64);
            let default_attention = if factor <= 1.0 {
                1.0
            } else {
                (1.0 + factor.ln() / (original as f64).ln()).sqrt()
            };
            RopeScaling::LongRope {
                short_factor: short,
                long_factor: long,
                original_max_position_embeddings: original,
                attention_factor: params.attention_factor.unwrap_or(default_attention),
            }
        }
        Some(other) => {
            return Err(raw.invalid(format!(
                "unsupported rope_type {other:?} (supported: default, linear, dynamic, llama3, yarn, longrope)"
            )))
        }
    };
    Ok(RopeSpec {
        theta,
        rotary_dim,
        interleaved: false,
        scaling,
    })
}
