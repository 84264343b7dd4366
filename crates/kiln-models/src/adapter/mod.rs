//! PEFT adapters (LoRA, IA³): loading `adapter_config.json` +
//! `adapter_model.safetensors`, attaching them to a [`Decoder`] as
//! [`Linear`](crate::Linear) variants (no second copy of the model: the
//! adapted decoder shares every base weight), and merging them into the
//! base weights.

mod apply;
mod config;
mod merge;
mod merge_gguf;

pub use apply::ProjectionInfo;
pub use config::{AdapterConfig, AdapterKind, ModuleSelector};
pub use merge::merge_into_dir;
pub use merge_gguf::{merge_into_gguf, GgufMergeSummary};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::{ModelError, Result};

/// The file PEFT writes the adapter config to.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The file PEFT writes adapter weights to.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The prefix PEFT puts before module names in adapter files.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// The weights an adapter holds for one module.
#[derive(Debug, Clone)]
pub enum ModuleWeights {
    /// LoRA factors.
    Lora {
        /// `lora_A.weight`: `[rank, in_features]`.
        a: Tensor,
        /// `lora_B.weight`: `[out_features, rank]`.
        b: Tensor,
    },
    /// IA³ scaling vector `ia3_l` (flattened).
    Ia3 {
        /// `[out_features]`, or `[in_features]` for feed-forward modules.
        l: Tensor,
    },
}

/// A loaded adapter.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// Where it was loaded from (empty for adapters built in memory).
    pub dir: PathBuf,
    /// Its configuration.
    pub config: AdapterConfig,
    /// Per-module weights, by Hugging Face module name
    /// (`model.layers.0.self_attn.q_proj`).
    pub modules: BTreeMap<String, ModuleWeights>,
    /// Whole tensors of `modules_to_save`, by full tensor name
    /// (`lm_head.weight`).
    pub saved: BTreeMap<String, Tensor>,
}

impl Adapter {
    /// Loads a PEFT adapter directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let config = AdapterConfig::from_file(&dir.join(CONFIG_FILE))?;
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.is_file() {
            let what = if dir.join("adapter_model.bin").is_file() {
                format!("{WEIGHTS_FILE} (adapter_model.bin is a pickle; re-save with safe_serialization=True)")
            } else {
                WEIGHTS_FILE.to_string()
            };
            return Err(ModelError::MissingFile {
                dir: dir.to_path_buf(),
                what,
            });
        }
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| {
            ModelError::InvalidWeights {
                path: weights.clone(),
                message: e.to_string(),
            }
        })?;
        let mut adapter = Self::from_tensors(config, tensors).map_err(|e| match e {
            ModelError::InvalidInput(message) => ModelError::InvalidWeights {
                path: weights.clone(),
                message,
            },
            other => other,
        })?;
        adapter.dir = dir.to_path_buf();
        Ok(adapter)
    }

    /// Builds an adapter from tensors named as PEFT names them
    /// (`base_model.model.<module>.lora_A.weight`, `….ia3_l`, or a
    /// `modules_to_save` tensor), converting them to f32.
    pub fn from_tensors(
        config: AdapterConfig,
        tensors: impl IntoIterator<Item = (String, Tensor)>,
    ) -> Result<Self> {
        let mut lora_a = BTreeMap::new();
        let mut lora_b = BTreeMap::new();
        let mut modules = BTreeMap::new();
        let mut saved = BTreeMap::new();
        for (name, tensor) in tensors {
            let tensor = tensor.to_dtype(candle_core::DType::F32)?;
            let short = name
                .strip_prefix(PEFT_PREFIX)
                .unwrap_or(&name)
                .replace(".default", "");
            if let Some(module) = short.strip_suffix(".lora_A.weight") {
                lora_a.insert(module.to_string(), tensor);
            } else if let Some(module) = short.strip_suffix(".lora_B.weight") {
                lora_b.insert(module.to_string(), tensor);
            } else if let Some(module) = short.strip_suffix(".ia3_l") {
                modules.insert(
                    module.to_string(),
                    ModuleWeights::Ia3 {
                        l: tensor.flatten_all()?,
                    },
                );
            } else if short.contains(".lora_") || short.contains("lora_embedding") {
                return Err(ModelError::InvalidInput(format!(
                    "adapter tensor {name} is of a kind kiln does not support"
                )));
            } else {
                saved.insert(short.replace(".modules_to_save", ""), tensor);
            }
        }
        for (module, a) in lora_a {
            let b = lora_b.remove(&module).ok_or_else(|| {
                ModelError::InvalidInput(format!("{module} has lora_A but no lora_B"))
            })?;
            let (rank, _) = a.dims2()?;
            let (_, rank_b) = b.dims2()?;
            if rank != rank_b {
                return Err(ModelError::InvalidInput(format!(
                    "{module}: lora_A has rank {rank} but lora_B {rank_b}"
                )));
            }
            modules.insert(module, ModuleWeights::Lora { a, b });
        }
        if let Some(module) = lora_b.keys().next() {
            return Err(ModelError::InvalidInput(format!(
                "{module} has lora_B but no lora_A"
            )));
        }
        if modules.is_empty() && saved.is_empty() {
            return Err(ModelError::InvalidInput(
                "the adapter holds no weights".into(),
            ));
        }
        Ok(Self {
            dir: PathBuf::new(),
            config,
            modules,
            saved,
        })
    }

    /// The scale a LoRA update of `module` is multiplied by.
    pub fn lora_scale(&self, module: &str) -> Result<f64> {
        self.config.lora_scale(module)
    }

    /// Number of adapter parameters.
    pub fn parameter_count(&self) -> usize {
        self.modules
            .values()
            .map(|m| match m {
                ModuleWeights::Lora { a, b } => a.elem_count() + b.elem_count(),
                ModuleWeights::Ia3 { l } => l.elem_count(),
            })
            .sum::<usize>()
            + self.saved.values().map(Tensor::elem_count).sum::<usize>()
    }
}
