//! The files of a Hugging Face model directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{ModelError, Result};

/// The files kiln reads from a model directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The directory.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: PathBuf,
    /// Weight files (one, or the shards named by the index).
    pub weights: Vec<PathBuf>,
    /// `tokenizer.json`, if present.
    pub tokenizer: Option<PathBuf>,
    /// `tokenizer_config.json`, if present.
    pub tokenizer_config: Option<PathBuf>,
    /// `generation_config.json`, if present.
    pub generation_config: Option<PathBuf>,
}

/// `model.safetensors.index.json`: which shard holds each tensor.
#[derive(Debug, Deserialize)]
pub(crate) struct ShardIndex {
    pub(crate) weight_map: std::collections::HashMap<String, String>,
}

impl ShardIndex {
    /// Reads an index file.
    pub(crate) fn from_file(path: &Path) -> Result<Self> {
        crate::config::read_json(path)
    }

    /// The distinct shard file names, sorted.
    pub(crate) fn shards(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.weight_map.values().collect();
        set.into_iter().cloned().collect()
    }
}

/// Name of the single-file weights.
pub(crate) const SINGLE_WEIGHTS: &str = "model.safetensors";
/// Name of the shard index.
pub(crate) const SHARD_INDEX: &str = "model.safetensors.index.json";

impl ModelFiles {
    /// Finds the files of the model in `dir`.
    pub fn discover(dir: &Path) -> Result<Self> {
        let config = dir.join("config.json");
        if !config.is_file() {
            return Err(ModelError::MissingFile {
                dir: dir.to_path_buf(),
                what: "config.json".into(),
            });
        }
        let optional = |name: &str| {
            let p = dir.join(name);
            p.is_file().then_some(p)
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            weights: weight_files(dir)?,
            tokenizer: optional("tokenizer.json"),
            tokenizer_config: optional("tokenizer_config.json"),
            generation_config: optional("generation_config.json"),
        })
    }
}

fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(SINGLE_WEIGHTS);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(SHARD_INDEX);
    if index.is_file() {
        let shards = ShardIndex::from_file(&index)?.shards();
        if shards.is_empty() {
            return Err(ModelError::InvalidConfig {
                path: index,
                message: "weight_map is empty".into(),
            });
        }
        return Ok(shards.into_iter().map(|s| dir.join(s)).collect());
    }
    Err(ModelError::MissingFile {
        dir: dir.to_path_buf(),
        what: format!("{SINGLE_WEIGHTS} or {SHARD_INDEX}"),
    })
}
