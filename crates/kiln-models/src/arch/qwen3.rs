//! Qwen3: Qwen2 without q/k/v biases, with RMSNorm over each q and k head
//! and an explicit `head_dim`.

use super::{llama, qwen2, Architecture};
use crate::config::{LlamaLikeConfig, RawConfig};
use crate::{ModelSpec, Result};

/// The qwen3 family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "qwen3",
    spec,
    tensor_name: llama::tensor_name,
};

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let cfg: LlamaLikeConfig = raw.parse()?;
    let mut spec = llama::llama_like_spec(raw, &cfg)?;
    spec.attention.qk_norm = true;
    spec.layer_windows = qwen2::qwen_windows(raw, &cfg)?;
    Ok(spec)
}
