//! `kiln merge`: fold an adapter into a Hugging Face checkpoint and write a
//! new checkpoint directory (weights in the base's dtype).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::{Adapter, ModuleWeights};
use crate::{ModelError, Result};

/// Files copied unchanged from the base directory.
const COPIED: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
];

/// Merges `adapter` into the safetensors checkpoint in `base` and writes
/// `out/model.safetensors` plus the base's config and tokenizer files.
/// `transposed` says the family stores projections `[in, out]` (GPT-2's
/// Conv1D). Returns the number of tensors changed.
pub fn merge_into_dir(
    base: &Path,
    adapter: &Adapter,
    out: &Path,
    transposed: bool,
) -> Result<usize> {
    let files = crate::ModelFiles::discover(base)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| ModelError::Io { path, source: e }
    };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for file in &files.weights {
        let loaded = candle_core::safetensors::load(file, &Device::Cpu).map_err(|e| {
            ModelError::InvalidWeights {
                path: file.clone(),
                message: e.to_string(),
            }
        })?;
        tensors.extend(loaded);
    }
    let mut changed = 0;
    for (module, weights) in &adapter.modules {
        let name = format!("{module}.weight");
        let stored = tensors.get(&name).ok_or_else(|| {
            ModelError::InvalidInput(format!(
                "the adapter targets {module}, which {} does not have",
                base.display()
            ))
        })?;
        let dtype = stored.dtype();
        let mut w = stored.to_dtype(DType::F32)?;
        if transposed {
            w = w.t()?;
        }
        let bias_name = format!("{module}.bias");
        match weights {
            ModuleWeights::Lora { a, b } => {
                let delta = (b.matmul(a)? * adapter.lora_scale(module)?)?;
                w = (w + delta)?;
            }
            ModuleWeights::Ia3 { l } => {
                if adapter.config.is_feedforward(module)? {
                    w = w.broadcast_mul(&l.unsqueeze(0)?)?;
                } else {
                    w = w.broadcast_mul(&l.unsqueeze(1)?)?;
                    if let Some(bias) = tensors.get(&bias_name) {
                        let scaled = (bias.to_dtype(DType::F32)? * l)?.to_dtype(bias.dtype())?;
                        tensors.insert(bias_name.clone(), scaled);
                    }
                }
            }
        }
        if transposed {
            w = w.t()?;
        }
        tensors.insert(name, w.contiguous()?.to_dtype(dtype)?);
        changed += 1;
    }
    for (name, t) in &adapter.saved {
        let dtype = tensors.get(name).map_or(DType::F32, Tensor::dtype);
        tensors.insert(name.clone(), t.to_dtype(dtype)?);
        changed += 1;
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let target = out.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &target).map_err(|e| ModelError::InvalidWeights {
        path: target.clone(),
        message: e.to_string(),
    })?;
    for name in COPIED {
        let src = base.join(name);
        if src.is_file() {
            std::fs::copy(&src, out.join(name)).map_err(io(&src))?;
        }
    }
    Ok(changed)
}
