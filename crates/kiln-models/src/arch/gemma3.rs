//! Gemma 3 (text): Gemma 2's layout plus q/k RMSNorms, no soft-capping,
//! five sliding-window layers to every global one, and a separate RoPE base
//! for the sliding layers (`rope_local_base_freq`).

use serde::Deserialize;

use super::{gemma2, llama, Architecture};
use crate::config::{LlamaLikeConfig, RawConfig};
use crate::{ModelSpec, Result};

/// The gemma3_text family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "gemma3_text",
    spec,
    tensor_name: gemma2::tensor_name,
};

#[derive(Debug, Deserialize)]
struct Gemma3Extra {
    rope_local_base_freq: Option<f64>,
    sliding_window_pattern: Option<usize>,
}

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let mut spec = gemma2::gemma_spec(raw)?;
    let cfg: LlamaLikeConfig = raw.parse()?;
    let extra: Gemma3Extra = raw.parse()?;
    spec.attention.qk_norm = true;
    spec.attention.logit_softcap = None;
    spec.final_logit_softcap = cfg.final_logit_softcapping;
    let pattern = extra.sliding_window_pattern.unwrap_or(6).max(1);
    spec.layer_windows = llama::layer_windows(raw, &cfg, |layer| (layer + 1) % pattern != 0)?;
    spec.local_rope_theta = Some(extra.rope_local_base_freq.unwrap_or(10_000.0));
    Ok(spec)
}
