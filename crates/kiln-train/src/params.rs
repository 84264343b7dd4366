//! The trainable adapter: its weights as candle `Var`s (what autograd
//! differentiates and the optimiser updates), attached to a frozen base,
//! and written as a PEFT adapter directory.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use kiln_models::adapter::{
    Adapter, AdapterConfig, AdapterKind, ModuleSelector, ModuleWeights, CONFIG_FILE, PEFT_PREFIX,
    WEIGHTS_FILE,
};
use kiln_models::Decoder;

use crate::error::io_error;
use crate::{Result, TrainError};

/// One trainable tensor: its PEFT name and value.
#[derive(Debug, Clone)]
pub struct Param {
    /// Name in `adapter_model.safetensors`
    /// (`base_model.model.<module>.lora_A.weight`).
    pub name: String,
    /// The value, tracked by autograd.
    pub var: Var,
}

/// An adapter being trained.
#[derive(Debug, Clone)]
pub struct TrainableAdapter {
    /// Its configuration (written as `adapter_config.json`).
    pub config: AdapterConfig,
    /// Every trainable tensor, in a fixed order.
    pub params: Vec<Param>,
}

/// A small deterministic generator (SplitMix64) for initial weights.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl TrainableAdapter {
    /// A fresh adapter for every projection of `decoder` that `config`
    /// targets, initialised as PEFT does: LoRA `A` Kaiming-uniform
    /// (bound `1/√in`), `B` zero (so training starts from the base model);
    /// IA³ vectors one. Errors name any target that matches nothing.
    pub fn new(config: AdapterConfig, decoder: &Decoder, seed: u64) -> Result<Self> {
        let mut rng = SplitMix(seed);
        let mut params = Vec::new();
        let projections = decoder.projection_modules()?;
        for p in &projections {
            if !config.targets(&p.module)? {
                continue;
            }
            let prefix = format!("{PEFT_PREFIX}{}", p.module);
            match config.kind {
                AdapterKind::Lora => {
                    let rank = config.rank_of(&p.module)?;
                    let bound = 1.0 / (p.in_features as f64).sqrt();
                    let a: Vec<f32> = (0..rank * p.in_features)
                        .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                        .collect();
                    let a = Tensor::from_vec(a, (rank, p.in_features), &Device::Cpu)?;
                    let b = Tensor::zeros(
                        (p.out_features, rank),
                        candle_core::DType::F32,
                        &Device::Cpu,
                    )?;
                    params.push(Param {
                        name: format!("{prefix}.lora_A.weight"),
                        var: Var::from_tensor(&a)?,
                    });
                    params.push(Param {
                        name: format!("{prefix}.lora_B.weight"),
                        var: Var::from_tensor(&b)?,
                    });
                }
                AdapterKind::Ia3 => {
                    let width = if config.is_feedforward(&p.module)? {
                        p.in_features
                    } else {
                        p.out_features
                    };
                    let ones = Tensor::ones(width, candle_core::DType::F32, &Device::Cpu)?;
                    params.push(Param {
                        name: format!("{prefix}.ia3_l"),
                        var: Var::from_tensor(&ones)?,
                    });
                }
            }
        }
        if params.is_empty() {
            let names: Vec<&str> = projections
                .iter()
                .map(|p| p.module.as_str())
                .take(12)
                .collect();
            return Err(TrainError::Invalid(format!(
                "target modules {} match no projection of this model (it has e.g. {})",
                describe(&config.target_modules),
                names.join(", ")
            )));
        }
        if let ModuleSelector::Names(wanted) = &config.target_modules {
            for w in wanted {
                if !projections
                    .iter()
                    .any(|p| p.module == *w || p.module.ends_with(&format!(".{w}")))
                {
                    return Err(TrainError::Invalid(format!(
                        "target module {w:?} is not in the model (its projections end in {})",
                        short_names(&projections).join(", ")
                    )));
                }
            }
        }
        Ok(Self { config, params })
    }

    /// Trainable copies of a loaded adapter's weights (to continue training
    /// it, or to check one step against a reference).
    pub fn from_adapter(adapter: &Adapter) -> Result<Self> {
        let mut params = Vec::new();
        for (module, weights) in &adapter.modules {
            let prefix = format!("{PEFT_PREFIX}{module}");
            match weights {
                ModuleWeights::Lora { a, b } => {
                    params.push(Param {
                        name: format!("{prefix}.lora_A.weight"),
                        var: Var::from_tensor(&a.copy()?)?,
                    });
                    params.push(Param {
                        name: format!("{prefix}.lora_B.weight"),
                        var: Var::from_tensor(&b.copy()?)?,
                    });
                }
                ModuleWeights::Ia3 { l } => params.push(Param {
                    name: format!("{prefix}.ia3_l"),
                    var: Var::from_tensor(&l.copy()?)?,
                }),
            }
        }
        Ok(Self {
            config: adapter.config.clone(),
            params,
        })
    }

    /// The adapter with its weights being the trainable tensors themselves
    /// (attached layers see every optimiser update).
    pub fn adapter(&self) -> Result<Adapter> {
        let tensors = self
            .params
            .iter()
            .map(|p| (p.name.clone(), p.var.as_tensor().clone()));
        Ok(Adapter::from_tensors(self.config.clone(), tensors)?)
    }

    /// `base` with this adapter attached (sharing the base's weights).
    pub fn attach(&self, base: &Decoder) -> Result<Decoder> {
        Ok(base.with_adapter(&self.adapter()?)?)
    }

    /// Number of trainable values.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|p| p.var.elem_count()).sum()
    }

    /// Current values by name (for checkpoints).
    pub fn tensors(&self) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for p in &self.params {
            out.insert(p.name.clone(), p.var.as_tensor().copy()?);
        }
        Ok(out)
    }

    /// Sets every parameter from `tensors` (a checkpoint); all must be present.
    pub fn load_values(&self, tensors: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        for p in &self.params {
            let t = tensors
                .get(&p.name)
                .ok_or_else(|| TrainError::Invalid(format!("the checkpoint has no {}", p.name)))?;
            p.var.set(t)?;
        }
        Ok(())
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` as PEFT
    /// writes them (loadable by `PeftModel.from_pretrained`).
    pub fn save(&self, dir: &Path, base_model: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let config = peft_config_json(&self.config, base_model);
        let path = dir.join(CONFIG_FILE);
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        std::fs::write(&path, text).map_err(io_error(&path))?;
        let tensors: std::collections::HashMap<String, Tensor> = self
            .params
            .iter()
            .map(|p| {
                // PEFT stores IA³ vectors as [out, 1] or [1, in].
                let t = p.var.as_tensor();
                let t = if p.name.ends_with(".ia3_l") {
                    let module = p
                        .name
                        .trim_start_matches(PEFT_PREFIX)
                        .trim_end_matches(".ia3_l");
                    if self.config.is_feedforward(module).unwrap_or(false) {
                        t.unsqueeze(0)
                    } else {
                        t.unsqueeze(1)
                    }
                } else {
                    Ok(t.clone())
                };
                t.map(|t| (p.name.clone(), t))
            })
            .collect::<candle_core::Result<_>>()?;
        let path = dir.join(WEIGHTS_FILE);
        candle_core::safetensors::save(&tensors, &path)?;
        Ok(())
    }
}

fn describe(selector: &ModuleSelector) -> String {
    match selector {
        ModuleSelector::Regex(r) => format!("regex {r:?}"),
        ModuleSelector::Names(n) => format!("{n:?}"),
    }
}

fn short_names(projections: &[kiln_models::adapter::ProjectionInfo]) -> Vec<String> {
    let mut names: Vec<String> = projections
        .iter()
        .filter_map(|p| p.module.rsplit('.').next().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `adapter_config.json` with the keys PEFT's configs read.
fn peft_config_json(c: &AdapterConfig, base_model: &str) -> serde_json::Value {
    let targets = match &c.target_modules {
        ModuleSelector::Regex(r) => serde_json::Value::from(r.clone()),
        ModuleSelector::Names(n) => serde_json::Value::from(n.clone()),
    };
    match c.kind {
        AdapterKind::Lora => serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": c.rank,
            "lora_alpha": c.alpha,
            "use_rslora": c.use_rslora,
            "target_modules": targets,
            "rank_pattern": c.rank_pattern,
            "alpha_pattern": c.alpha_pattern,
            "lora_dropout": 0.0,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": null,
            "use_dora": false,
        }),
        AdapterKind::Ia3 => {
            let ff = match &c.feedforward_modules {
                Some(ModuleSelector::Regex(r)) => serde_json::Value::from(r.clone()),
                Some(ModuleSelector::Names(n)) => serde_json::Value::from(n.clone()),
                None => serde_json::Value::Array(Vec::new()),
            };
            serde_json::json!({
                "peft_type": "IA3",
                "task_type": "CAUSAL_LM",
                "base_model_name_or_path": base_model,
                "target_modules": targets,
                "feedforward_modules": ff,
                "fan_in_fan_out": false,
                "inference_mode": true,
                "init_ia3_weights": true,
                "modules_to_save": null,
            })
        }
    }
}
