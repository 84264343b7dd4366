//! Model families. Each family is one file that maps its `config.json` onto a
//! [`ModelSpec`] and its tensor names onto [`TensorRole`]s, plus one row in
//! [`REGISTRY`]. There is no per-family forward pass.

mod falcon;
mod gemma2;
mod gemma3;
mod gpt2;
mod gpt_neox;
mod gptj;
mod llama;
mod mistral;
mod mpt;
mod phi;
mod phi3;
mod qwen2;
mod qwen3;
mod stablelm;
mod starcoder2;

use crate::config::RawConfig;
use crate::{ModelError, ModelSpec, Result};

/// What a weight tensor is for, independent of how a family names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorRole {
    /// Token embedding table `[vocab, hidden]`.
    TokenEmbedding,
    /// Learned position table `[positions, hidden]`.
    PositionEmbedding,
    /// Final norm before the LM head.
    OutputNorm,
    /// LM head `[vocab, hidden]`.
    Output,
    /// Norm before attention.
    AttnNorm,
    /// Query projection.
    AttnQ,
    /// Key projection.
    AttnK,
    /// Value projection.
    AttnV,
    /// Fused q/k/v projection.
    AttnQkv,
    /// Attention output projection.
    AttnOut,
    /// Per-head norm of queries (Qwen3).
    AttnQNorm,
    /// Per-head norm of keys (Qwen3).
    AttnKNorm,
    /// Norm after attention (Gemma 2 sandwich).
    AttnPostNorm,
    /// Norm before the MLP.
    FfnNorm,
    /// MLP gate projection.
    FfnGate,
    /// MLP up projection.
    FfnUp,
    /// Fused gate and up projection.
    FfnGateUp,
    /// MLP down projection.
    FfnDown,
    /// Norm after the MLP (Gemma 2 sandwich).
    FfnPostNorm,
}

/// A model family: its `model_type`, how its config becomes a spec, and how
/// its tensors are named.
#[derive(Debug)]
pub struct Architecture {
    /// `model_type` in `config.json`.
    pub model_type: &'static str,
    /// Builds the validated spec from `config.json`.
    pub spec: fn(&RawConfig) -> Result<ModelSpec>,
    /// The tensor name prefix (without `.weight`/`.bias`) of a role in a
    /// layer; `None` if the family has no such tensor.
    pub tensor_name: fn(&ModelSpec, TensorRole, usize) -> Option<String>,
}

/// Every supported family.
pub static REGISTRY: &[Architecture] = &[
    llama::ARCH,
    mistral::ARCH,
    qwen2::ARCH,
    qwen3::ARCH,
    phi3::ARCH,
    gemma2::ARCH,
    gemma3::ARCH,
    gpt2::ARCH,
    gptj::ARCH,
    gpt_neox::ARCH,
    falcon::ARCH,
    mpt::ARCH,
    phi::ARCH,
    starcoder2::ARCH,
    stablelm::ARCH,
];

/// The family of a `model_type`.
pub fn lookup(model_type: &str) -> Option<&'static Architecture> {
    REGISTRY.iter().find(|a| a.model_type == model_type)
}

/// Builds the spec of a parsed config through its family.
pub fn spec_for(config: &RawConfig) -> Result<(ModelSpec, &'static Architecture)> {
    let arch = lookup(&config.model_type).ok_or_else(|| ModelError::UnsupportedModel {
        path: config.path.clone(),
        model_type: config.model_type.clone(),
        supported: REGISTRY
            .iter()
            .map(|a| a.model_type)
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let spec = (arch.spec)(config)?;
    spec.validate().map_err(|m| config.invalid(m))?;
    Ok((spec, arch))
}
