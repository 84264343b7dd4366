//! Memory-mapped safetensors files, single or sharded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use super::{TensorInfo, WeightSource};
use crate::{ModelError, Result};

/// One or more memory-mapped `.safetensors` files.
pub struct SafetensorsWeights {
    files: Vec<PathBuf>,
    maps: Vec<MmapedSafetensors>,
    /// Tensor name → index into `files`/`maps`.
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for SafetensorsWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsWeights")
            .field("files", &self.files)
            .field("tensors", &self.index.len())
            .finish()
    }
}

impl SafetensorsWeights {
    /// Maps every file and indexes its tensors.
    pub fn open(files: &[PathBuf]) -> Result<Self> {
        let mut maps = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for (i, path) in files.iter().enumerate() {
            let map = map_file(path)?;
            for (name, _) in map.tensors() {
                index.insert(name, i);
            }
            maps.push(map);
        }
        Ok(Self {
            files: files.to_vec(),
            maps,
            index,
        })
    }
}

/// Maps one file, turning a truncated or malformed file into a clear error.
#[allow(unsafe_code)]
fn map_file(path: &Path) -> Result<MmapedSafetensors> {
    if let Err(source) = std::fs::metadata(path) {
        return Err(ModelError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    // SAFETY: the file is mapped read-only; like every mmap-based loader we
    // assume nobody truncates it while the model is loaded. The header and
    // data length are validated by safetensors before any tensor is read.
    unsafe { MmapedSafetensors::new(path) }.map_err(|e| ModelError::InvalidWeights {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

impl WeightSource for SafetensorsWeights {
    fn tensor(&self, name: &str) -> Result<Tensor> {
        let &i = self
            .index
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                files: self.describe(),
            })?;
        let invalid = |e: candle_core::Error| ModelError::InvalidWeights {
            path: self.files[i].clone(),
            message: format!("tensor {name}: {e}"),
        };
        let tensor = self.maps[i].load(name, &Device::Cpu).map_err(invalid)?;
        tensor.to_dtype(DType::F32).map_err(invalid)
    }

    fn bf16(&self, name: &str) -> Result<Option<Vec<half::bf16>>> {
        let Some(&i) = self.index.get(name) else {
            return Ok(None);
        };
        let view = self.maps[i]
            .get(name)
            .map_err(|e| ModelError::InvalidWeights {
                path: self.files[i].clone(),
                message: format!("tensor {name}: {e}"),
            })?;
        if view.dtype() != safetensors::Dtype::BF16 {
            return Ok(None);
        }
        Ok(Some(
            view.data()
                .chunks_exact(2)
                .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
        ))
    }

    fn shape(&self, name: &str) -> Option<(Vec<usize>, &Path)> {
        let &i = self.index.get(name)?;
        let view = self.maps[i].get(name).ok()?;
        Some((view.shape().to_vec(), self.files[i].as_path()))
    }

    fn summary(&self) -> Vec<TensorInfo> {
        let mut out: Vec<TensorInfo> = self
            .maps
            .iter()
            .flat_map(|m| m.tensors())
            .map(|(name, view)| TensorInfo {
                name,
                dtype: format!("{:?}", view.dtype()),
                shape: view.shape().to_vec(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn describe(&self) -> String {
        self.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
