//! Mistral: Llama with a sliding attention window on every layer.

use super::{llama, Architecture};
use crate::config::{LlamaLikeConfig, RawConfig};
use crate::{ModelSpec, Result};

/// The mistral family.
pub(super) const ARCH: Architecture = Architecture {
    model_type: "mistral",
    spec,
    tensor_name: llama::tensor_name,
};

fn spec(raw: &RawConfig) -> Result<ModelSpec> {
    let cfg: LlamaLikeConfig = raw.parse()?;
    let mut spec = llama::llama_like_spec(raw, &cfg)?;
    spec.layer_windows = llama::layer_windows(raw, &cfg, |_| true)?;
    Ok(spec)
}
