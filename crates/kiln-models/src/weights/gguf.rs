//! Tensors of a GGUF file. Matrices stay in their block format
//! ([`WeightSource::matrix`]); everything else is dequantized to f32.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::{TensorInfo, WeightSource};
use crate::gguf::{GgufFile, MappedPages};
use crate::kernels::quant::{GgmlType, QMatrix};
use crate::{ModelError, Result};

/// The tensors of one GGUF file.
#[derive(Debug)]
pub struct GgufWeights<'a> {
    file: &'a GgufFile,
}

impl<'a> GgufWeights<'a> {
    /// Tensors of `file`.
    pub fn new(file: &'a GgufFile) -> Self {
        Self { file }
    }
}

impl WeightSource for GgufWeights<'_> {
    fn tensor(&self, name: &str) -> Result<Tensor> {
        let entry = self
            .file
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                files: self.describe(),
            })?;
        let values = self.file.matrix(name)?.dequantize();
        Ok(Tensor::from_vec(
            values,
            entry.shape.as_slice(),
            &Device::Cpu,
        )?)
    }

    fn bf16(&self, _name: &str) -> Result<Option<Vec<half::bf16>>> {
        Ok(None)
    }

    fn matrix(&self, name: &str) -> Result<Option<QMatrix>> {
        match self.file.tensor(name) {
            Some(t) if t.shape.len() == 2 && t.ty != GgmlType::F32 => {
                self.file.matrix(name).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn mapped_pages(&self) -> Option<MappedPages> {
        self.file.mapped_pages()
    }

    fn shape(&self, name: &str) -> Option<(Vec<usize>, &Path)> {
        let t = self.file.tensor(name)?;
        Some((t.shape.clone(), self.file.path()))
    }

    fn summary(&self) -> Vec<TensorInfo> {
        self.file
            .tensors()
            .iter()
            .map(|t| TensorInfo {
                name: t.name.clone(),
                dtype: t.ty.name().to_string(),
                shape: t.shape.clone(),
            })
            .collect()
    }

    fn describe(&self) -> String {
        self.file.path().display().to_string()
    }
}
