//! PEFT's `adapter_config.json`: which modules an adapter touches and how
//! strongly, with PEFT's own matching rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::{ModelError, Result};

/// The adapter methods kiln runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    /// Low-rank update `W + s·B·A`.
    Lora,
    /// Learned rescaling of activations (IA³).
    Ia3,
}

/// `target_modules` (and `feedforward_modules`): a list of module-name
/// suffixes or one regular expression matched against the full name.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ModuleSelector {
    /// A regular expression the whole module name must match.
    Regex(String),
    /// Names; a module matches when its name equals one or ends with `.name`.
    Names(Vec<String>),
}

impl ModuleSelector {
    /// Whether `module` (e.g. `model.layers.0.self_attn.q_proj`) is selected.
    pub fn matches(&self, module: &str) -> Result<bool> {
        Ok(match self {
            ModuleSelector::Regex(pattern) => full_regex(pattern)?.is_match(module),
            ModuleSelector::Names(names) => names
                .iter()
                .any(|n| module == n || module.ends_with(&format!(".{n}"))),
        })
    }
}

/// `layers_to_transform`: one layer index or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum LayerSelector {
    One(usize),
    Many(Vec<usize>),
}

/// The fields of `adapter_config.json` kiln reads.
#[derive(Debug, Clone, Deserialize)]
struct RawAdapterConfig {
    peft_type: String,
    #[serde(default)]
    r: Option<usize>,
    #[serde(default)]
    lora_alpha: Option<f64>,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    target_modules: Option<ModuleSelector>,
    #[serde(default)]
    exclude_modules: Option<ModuleSelector>,
    #[serde(default)]
    feedforward_modules: Option<ModuleSelector>,
    #[serde(default)]
    rank_pattern: BTreeMap<String, usize>,
    #[serde(default)]
    alpha_pattern: BTreeMap<String, f64>,
    #[serde(default)]
    modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    layers_to_transform: Option<LayerSelector>,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
}

/// A validated adapter configuration.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// LoRA or IA3.
    pub kind: AdapterKind,
    /// Default LoRA rank (`r`).
    pub rank: usize,
    /// Default LoRA alpha.
    pub alpha: f64,
    /// rsLoRA: scale by `alpha / √r` instead of `alpha / r`.
    pub use_rslora: bool,
    /// Which modules carry the adapter.
    pub target_modules: ModuleSelector,
    /// Modules excluded even when targeted.
    pub exclude_modules: Option<ModuleSelector>,
    /// IA3: modules whose *input* is scaled (the others scale their output).
    pub feedforward_modules: Option<ModuleSelector>,
    /// Per-module rank overrides (pattern → rank).
    pub rank_pattern: BTreeMap<String, usize>,
    /// Per-module alpha overrides (pattern → alpha).
    pub alpha_pattern: BTreeMap<String, f64>,
    /// Modules stored whole in the adapter (e.g. `lm_head`).
    pub modules_to_save: Vec<String>,
    /// Only these layer indices carry the adapter (`None`: all).
    pub layers_to_transform: Option<Vec<usize>>,
    /// The base model the adapter was trained on, as PEFT recorded it.
    pub base_model: Option<String>,
}

impl AdapterConfig {
    /// Reads and validates `adapter_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Parses the JSON text of `adapter_config.json` (`path` names it in errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let invalid = |message: String| ModelError::InvalidConfig {
            path: PathBuf::from(path),
            message,
        };
        let raw: RawAdapterConfig =
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let kind = match raw.peft_type.as_str() {
            "LORA" => AdapterKind::Lora,
            "IA3" => AdapterKind::Ia3,
            other => {
                return Err(invalid(format!(
                    "peft_type {other:?} is not supported (kiln runs LORA and IA3)"
                )))
            }
        };
        if raw.use_dora {
            return Err(invalid("DoRA (use_dora) is not supported".into()));
        }
        if let Some(bias) = raw.bias.as_deref().filter(|b| *b != "none") {
            return Err(invalid(format!(
                "bias {bias:?} is not supported (only \"none\")"
            )));
        }
        let target_modules = raw
            .target_modules
            .ok_or_else(|| invalid("target_modules is missing".into()))?;
        let rank = raw.r.unwrap_or(8);
        if kind == AdapterKind::Lora && rank == 0 {
            return Err(invalid("r must be positive".into()));
        }
        let config = AdapterConfig {
            kind,
            rank,
            alpha: raw.lora_alpha.unwrap_or(8.0),
            use_rslora: raw.use_rslora,
            target_modules,
            exclude_modules: raw.exclude_modules,
            feedforward_modules: raw.feedforward_modules,
            rank_pattern: raw.rank_pattern,
            alpha_pattern: raw.alpha_pattern,
            modules_to_save: raw.modules_to_save.unwrap_or_default(),
            layers_to_transform: raw.layers_to_transform.map(|l| match l {
                LayerSelector::One(i) => vec![i],
                LayerSelector::Many(v) => v,
            }),
            base_model: raw.base_model_name_or_path,
        };
        // Compile every pattern now so a bad one is reported here.
        for selector in [
            Some(&config.target_modules),
            config.exclude_modules.as_ref(),
        ]
        .into_iter()
        .chain([config.feedforward_modules.as_ref()])
        .flatten()
        {
            selector
                .matches("")
                .map_err(|e| invalid(format!("bad module pattern: {e}")))?;
        }
        for key in config
            .rank_pattern
            .keys()
            .chain(config.alpha_pattern.keys())
        {
            pattern_regex(key).map_err(|e| invalid(format!("bad pattern {key:?}: {e}")))?;
        }
        Ok(config)
    }

    /// Whether the adapter applies to `module` (PEFT's rules: target
    /// match, not excluded, in `layers_to_transform` when given).
    pub fn targets(&self, module: &str) -> Result<bool> {
        if !self.target_modules.matches(module)? {
            return Ok(false);
        }
        if let Some(ex) = &self.exclude_modules {
            if ex.matches(module)? {
                return Ok(false);
            }
        }
        if let Some(layers) = &self.layers_to_transform {
            return Ok(layer_index(module).is_some_and(|l| layers.contains(&l)));
        }
        Ok(true)
    }

    /// IA3: whether `module` scales its input (a feed-forward module).
    pub fn is_feedforward(&self, module: &str) -> Result<bool> {
        match &self.feedforward_modules {
            Some(s) => s.matches(module),
            None => Ok(false),
        }
    }

    /// LoRA rank of `module` (`rank_pattern` first, else `r`).
    pub fn rank_of(&self, module: &str) -> Result<usize> {
        Ok(match pattern_value(&self.rank_pattern, module)? {
            Some(r) => r,
            None => self.rank,
        })
    }

    /// LoRA scale of `module`: `alpha / r`, or `alpha / √r` with rsLoRA,
    /// each taken from the patterns when one matches.
    pub fn lora_scale(&self, module: &str) -> Result<f64> {
        let rank = self.rank_of(module)? as f64;
        let alpha = pattern_value(&self.alpha_pattern, module)?.unwrap_or(self.alpha);
        Ok(if self.use_rslora {
            alpha / rank.sqrt()
        } else {
            alpha / rank
        })
    }
}

/// The layer index in a module name (`….layers.3.…` or `….h.3.…`).
fn layer_index(module: &str) -> Option<usize> {
    let parts: Vec<&str> = module.split('.').collect();
    parts
        .windows(2)
        .find(|w| {
            matches!(w[0], "layers" | "h" | "blocks" | "layer") && w[1].parse::<usize>().is_ok()
        })
        .and_then(|w| w[1].parse().ok())
}

fn full_regex(pattern: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| ModelError::InvalidInput(format!("bad module regex {pattern:?}: {e}")))
}

/// PEFT's pattern rule for `rank_pattern`/`alpha_pattern`: the key matches a
/// trailing run of whole name components.
fn pattern_regex(key: &str) -> Result<Regex> {
    Regex::new(&format!(r"^(?:.*\.)?(?:{key})$"))
        .map_err(|e| ModelError::InvalidInput(format!("bad pattern {key:?}: {e}")))
}

fn pattern_value<T: Copy>(patterns: &BTreeMap<String, T>, module: &str) -> Result<Option<T>> {
    for (key, value) in patterns {
        if pattern_regex(key)?.is_match(module) {
            return Ok(Some(*value));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(json: &str) -> AdapterConfig {
        AdapterConfig::from_json(json, Path::new("adapter_config.json")).unwrap()
    }

    #[test]
    fn names_match_suffixes_and_regexes_match_whole_names() {
        let c = config(
            r#"{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj","v_proj"]}"#,
        );
        assert!(c.targets("model.layers.0.self_attn.q_proj").unwrap());
        assert!(!c.targets("model.layers.0.self_attn.k_proj").unwrap());
        assert!(!c.targets("model.layers.0.self_attn.xq_proj").unwrap());
        let c = config(r#"{"peft_type":"LORA","target_modules":".*layers\\.1\\..*(q|k)_proj"}"#);
        assert!(c.targets("model.layers.1.self_attn.k_proj").unwrap());
        assert!(!c.targets("model.layers.0.self_attn.k_proj").unwrap());
    }

    #[test]
    fn scales_follow_patterns_and_rslora() {
        let c = config(
            r#"{"peft_type":"LORA","r":8,"lora_alpha":16,"use_rslora":true,
                "target_modules":["q_proj","v_proj"],
                "rank_pattern":{"layers.1.self_attn.q_proj":4},"alpha_pattern":{"v_proj":32}}"#,
        );
        assert_eq!(c.rank_of("model.layers.1.self_attn.q_proj").unwrap(), 4);
        assert_eq!(c.rank_of("model.layers.0.self_attn.q_proj").unwrap(), 8);
        assert!((c.lora_scale("model.layers.1.self_attn.q_proj").unwrap() - 8.0).abs() < 1e-12);
        let v = c.lora_scale("model.layers.0.self_attn.v_proj").unwrap();
        assert!((v - 32.0 / 8f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn layers_to_transform_and_exclusions_narrow_the_targets() {
        let c = config(
            r#"{"peft_type":"LORA","target_modules":["q_proj"],"layers_to_transform":[1],
                "exclude_modules":["model.layers.1.self_attn.q_proj"]}"#,
        );
        assert!(!c.targets("model.layers.0.self_attn.q_proj").unwrap());
        assert!(!c.targets("model.layers.1.self_attn.q_proj").unwrap());
    }

    #[test]
    fn unsupported_settings_are_refused_by_name() {
        let err = AdapterConfig::from_json(
            r#"{"peft_type":"LORA","use_dora":true,"target_modules":["q_proj"]}"#,
            Path::new("a.json"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("DoRA"), "{err}");
        let err = AdapterConfig::from_json(
            r#"{"peft_type":"PREFIX_TUNING","target_modules":["q_proj"]}"#,
            Path::new("a.json"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("PREFIX_TUNING"), "{err}");
    }
}
