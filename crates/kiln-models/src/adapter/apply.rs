//! Attaching an [`Adapter`] to a [`Decoder`]: each adapted projection
//! becomes a [`Linear::Lora`] / [`Linear::Ia3`] around the shared base
//! layer, with the adapter's rows put in the order kiln keeps the base's.

use candle_core::{Device, Tensor};

use super::{Adapter, AdapterKind, ModuleWeights};
use crate::arch::{self, TensorRole};
use crate::decoder::{qkv_block_order, regroup_qkv_rows};
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
                    Linear::Lora {
                        base,
                        a: a.clone(),
                        b: to_kiln_row_order(&spec, role, b)?,
                        scale: adapter.lora_scale(&module)?,
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
                    let l = if on_input {
                        l.clone()
                    } else {
                        to_kiln_row_order(&spec, role, &l.unsqueeze(1)?)?.squeeze(1)?
                    };
                    Linear::Ia3 {
                        base,
                        scale: l,
                        on_input,
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
    fn apply_saved_modules(&mut self, adapter: &Adapter, family: &arch::Architecture) -> Result<()> {
        let spec = self.spec().clone();
        for (name, tensor) in &adapter.saved {
            let embed = (family.tensor_name)(&spec, TensorRole::TokenEmbedding, 0);
            let head = (family.tensor_name)(&spec, TensorRole::Output, 0);
            let module = name.strip_suffix(".weight").unwrap_or(name);
            if Some(module) == embed.as_deref() {
                check_dims(module, "weight", tensor, &[spec.vocab_size, spec.hidden_size])?;
                self.set_embedding(Embedding::Dense(tensor.clone()));
            } else if Some(module) == head.as_deref() {
                check_dims(module, "weight", tensor, &[spec.vocab_size, spec.hidden_size])?;
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
fn to_kiln_row_order(spec: &ModelSpec, role: TensorRole, t: &Tensor) -> Result<Tensor> {
    if role == TensorRole::AttnQkv {
        if let Some(order) = qkv_block_order(spec) {
            return regroup_qkv_rows(t, &order, spec.head_dim);
        }
    }
    let interleaved = matches!(&spec.position, PositionEncoding::Rope(r) if r.interleaved);
    let gguf_llama = interleaved && matches!(spec.model_type.as_str(), "llama" | "mistral");
    let heads = match role {
        TensorRole::AttnQ => spec.num_attention_heads,
        TensorRole::AttnK => spec.num_key_value_heads,
        _ => return Ok(t.clone()),
    };
    if !gguf_llama {
        return Ok(t.clone());
    }
    let (rows, cols) = t.dims2()?;
    let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
    let permuted = crate::gguf::export::unpermute(&values, heads, rows, cols);
    Ok(Tensor::from_vec(permuted, (rows, cols), &Device::Cpu)?)
}
