//! Attaching an [`Adapter`] to a [`Decoder`]: each adapted projection
//! becomes a [`Linear::Lora`] / [`Linear::Ia3`] around the shared base
//! layer, with the adapter's rows put in the order kiln keeps the base's.

use candle_core::{Device, Tensor};

use super::{Adapter, AdapterKind, ModuleWeights};
use crate::arch::{self, TensorRole};
use crate::decoder::qkv_block_order;
use crate::linear::{Embedding, Linear};
use crate::spec::PositionEncoding;
use crate::{Decoder, ModelError, ModelSpec, Result};

impl Decoder {
    /// This decoder with `adapter` attached. Base weights are shared (not
    /// copied); adapters stack when called again. Every module the adapter
    /// names must exist in the model.
    pub fn with_adapter(&self, adapter: &Adapter) -> Result<Decoder> {
        let spec = self.spec().clone();
        let family = arch::lookup(&spec.model_type).ok_or_else(|| {
            ModelError::InvalidInput(format!(
                "adapters need the Hugging Face module names of {:?}, which kiln does not know",
                spec.model_type
            ))
        })?;
        let mut out = self.clone();
        let mut unused: std::collections::BTreeSet<&str> =
            adapter.modules.keys().map(String::as_str).collect();
        for (role, layer, linear) in out.projections_mut() {
            let Some(module) = (family.tensor_name)(&spec, role, layer) else {
                continue;
            };
            let Some(weights) = adapter.modules.get(&module) else {
                continue;
            };
            unused.remove(module.as_str());
            let base = Box::new(linear.clone());
            *linear = match weights {
                ModuleWeights::Lora { a, b } => {
                    check_dims(&module, "lora_A", a, &[a.dim(0)?, linear.in_features()])?;
                    check_dims(&module, "lora_B", b, &[linear.out_features(), a.dim(0)?])?;
                    let (b, out_rows) = to_kiln_row_order(&spec, role, b)?;
                    Linear::Lora {
                        base,
                        a: a.clone(),
                        b,
                        scale: adapter.lora_scale(&module)?,
                        out_rows,
                    }
                }
                ModuleWeights::Ia3 { l } => {
                    let on_input = adapter.config.is_feedforward(&module)?;
                    let width = if on_input {
                        linear.in_features()
                    } else {
                        linear.out_features()
                    };
                    check_dims(&module, "ia3_l", l, &[width])?;
                    let (l, out_rows) = if on_input {
                        (l.clone(), None)
                    } else {
                        to_kiln_row_order(&spec, role, l)?
                    };
                    Linear::Ia3 {
                        base,
                        scale: l,
                        on_input,
                        out_rows,
                    }
                }
            };
        }
        if let Some(module) = unused.into_iter().next() {
            return Err(ModelError::InvalidInput(format!(
                "the adapter has weights for {module}, which is not a projection of this {} model",
                spec.model_type
            )));
        }
        if adapter.config.kind == AdapterKind::Lora || !adapter.saved.is_empty() {
            out.apply_saved_modules(adapter, family)?;
        }
        Ok(out)
    }

    /// This decoder with every adapter folded into dense f32 weights.
    pub fn merge_adapters(&self) -> Result<Decoder> {
        let mut out = self.clone();
        for (_, _, linear) in out.projections_mut() {
            *linear = linear.merged()?;
        }
        Ok(out)
    }

    /// Replaces whole modules an adapter saved (`modules_to_save`): the LM
    /// head and the token embeddings.
    fn apply_saved_modules(
        &mut self,
        adapter: &Adapter,
        family: &arch::Architecture,
    ) -> Result<()> {
        let spec = self.spec().clone();
        for (name, tensor) in &adapter.saved {
            let embed = (family.tensor_name)(&spec, TensorRole::TokenEmbedding, 0);
            let head = (family.tensor_name)(&spec, TensorRole::Output, 0);
            let module = name.strip_suffix(".weight").unwrap_or(name);
            if Some(module) == embed.as_deref() {
                check_dims(
                    module,
                    "weight",
                    tensor,
                    &[spec.vocab_size, spec.hidden_size],
                )?;
                self.set_embedding(Embedding::Dense(tensor.clone()));
            } else if Some(module) == head.as_deref() {
                check_dims(
                    module,
                    "weight",
                    tensor,
                    &[spec.vocab_size, spec.hidden_size],
                )?;
                for (role, _, linear) in self.projections_mut() {
                    if role == TensorRole::Output {
                        *linear = Linear::Dense {
                            weight: tensor.clone(),
                            bias: linear.bias().cloned(),
                        };
                    }
                }
            } else {
                return Err(ModelError::InvalidInput(format!(
                    "the adapter saves {name}; kiln can replace only the token embeddings and the LM head"
                )));
            }
        }
        Ok(())
    }
}

fn check_dims(module: &str, what: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.dims() != expected {
        return Err(ModelError::InvalidInput(format!(
            "{module}.{what} has shape {:?}, the model needs {expected:?}",
            t.dims()
        )));
    }
    Ok(())
}

/// Output rows of an adapter tensor (`[out, …]`, Hugging Face order) put in
/// the order kiln holds the base layer's rows: fused q/k/v regrouped, and
/// Llama q/k rows interleaved as llama.cpp stores them in GGUF files.
/// Tensors recorded for autograd (trainable) are left as they are and the
/// order is returned for the layer to apply at run time.
fn to_kiln_row_order(
    spec: &ModelSpec,
    role: TensorRole,
    t: &Tensor,
) -> Result<(Tensor, Option<Tensor>)> {
    let Some(order) = kiln_row_order(spec, role) else {
        return Ok((t.clone(), None));
    };
    let idx = Tensor::from_vec(order, t.dim(0)?, &Device::Cpu)?;
    if t.track_op() {
        Ok((t.clone(), Some(idx)))
    } else {
        Ok((t.index_select(&idx, 0)?, None))
    }
}

/// For each of kiln's output rows of a `role` projection, the Hugging Face
/// row it holds; `None` when the orders agree.
fn kiln_row_order(spec: &ModelSpec, role: TensorRole) -> Option<Vec<u32>> {
    let hd = spec.head_dim;
    if role == TensorRole::AttnQkv {
        let blocks = qkv_block_order(spec)?;
        return Some(
            blocks
                .iter()
                .flat_map(|&b| (b * hd..(b + 1) * hd).map(|r| r as u32))
                .collect(),
        );
    }
    let interleaved = matches!(&spec.position, PositionEncoding::Rope(r) if r.interleaved);
    let gguf_llama = interleaved && matches!(spec.model_type.as_str(), "llama" | "mistral");
    let heads = match role {
        TensorRole::AttnQ => spec.num_attention_heads,
        TensorRole::AttnK => spec.num_key_value_heads,
        _ => return None,
    };
    if !gguf_llama {
        return None;
    }
    // llama.cpp's converter: GGUF row h·hd + 2j + s holds HF row h·hd + s·hd/2 + j.
    let mut order = vec![0u32; heads * hd];
    for h in 0..heads {
        for j in 0..hd / 2 {
            for s in 0..2 {
                order[h * hd + 2 * j + s] = (h * hd + s * (hd / 2) + j) as u32;
            }
        }
    }
    Some(order)
}

/// One projection an adapter can target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionInfo {
    /// Hugging Face module name (`model.layers.0.self_attn.q_proj`).
    pub module: String,
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
}

impl Decoder {
    /// Every projection with its Hugging Face module name and shape (what
    /// `target_modules` is matched against).
    pub fn projection_modules(&self) -> Result<Vec<ProjectionInfo>> {
        let spec = self.spec().clone();
        let family = arch::lookup(&spec.model_type).ok_or_else(|| {
            ModelError::InvalidInput(format!("no module names for {:?}", spec.model_type))
        })?;
        let mut copy = self.clone();
        Ok(copy
            .projections_mut()
            .into_iter()
            .filter_map(|(role, layer, linear)| {
                (family.tensor_name)(&spec, role, layer).map(|module| ProjectionInfo {
                    module,
                    in_features: linear.in_features(),
                    out_features: linear.out_features(),
                })
            })
            .collect())
    }
}
