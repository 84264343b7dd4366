//! Qwen2: Llama with biases on q/k/v (not o) and an optional sliding window
//! on the layers from `max_window_layers` up.

use super::{llama, Architecture};
use crate::config::{LlamaLikeConfig, RawConfig};
use crate::{ModelSpec, Result};

/// The qwen2 family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "qwen2",
    spec,
    tensor_name: llama::tensor_name,
};

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let cfg: LlamaLikeConfig = raw.parse()?;
    let mut spec = llama::llama_like_spec(raw, &cfg)?;
    spec.attention.qkv_bias = true;
    spec.attention.o_bias = false;
    spec.layer_windows = qwen_windows(raw, &cfg)?;
    Ok(spec)
}

/// Qwen's rule: the window applies only with `use_sliding_window`, and then
/// to layers at or above `max_window_layers`.
pub(super) fn qwen_windows(raw: &RawConfig, cfg: &LlamaLikeConfig) -> Result<Vec<Option<usize>>> {
    if !cfg.use_sliding_window.unwrap_or(false) {
        return Ok(vec![None; cfg.num_hidden_layers]);
    }
    let first = cfg.max_window_layers.unwrap_or(0);
    llama::layer_windows(raw, cfg, |layer| layer >= first)
}
