//! Where weights come from. The decoder asks a [`WeightSource`] for tensors by
//! name and gets f32 tensors on the CPU, whatever the file stores.

mod gguf;
mod safetensors;

pub use self::gguf::GgufWeights;
pub use self::safetensors::SafetensorsWeights;

use std::path::Path;

use candle_core::Tensor;

use crate::gguf::MappedPages;
use crate::kernels::quant::QMatrix;
use crate::Result;

/// A set of named tensors (one or more files).
pub trait WeightSource {
    /// The tensor called `name`, converted to f32.
    fn tensor(&self, name: &str) -> Result<Tensor>;
    /// The values of `name` when it is stored as bf16 (kept 16-bit for the
    /// bf16 kernels); `None` for any other dtype.
    fn bf16(&self, name: &str) -> Result<Option<Vec<half::bf16>>>;
    /// `name` kept in its stored block format (GGUF matrices), or `None`
    /// when the source stores it as plain floats.
    fn matrix(&self, _name: &str) -> Result<Option<QMatrix>> {
        Ok(None)
    }
    /// Called with byte ranges of the bytes behind [`WeightSource::matrix`]
    /// that a packed copy now serves ([`QMatrix::with_packed_rows_releasing`]):
    /// a memory-mapped source drops them from memory.
    fn release_bytes(&self, range: std::ops::Range<usize>) {
        if let Some(pages) = self.mapped_pages() {
            pages.release(range);
        }
    }
    /// The memory mapping behind [`WeightSource::matrix`]'s bytes: what
    /// [`WeightSource::release_bytes`] releases through, and what tables read
    /// row by row in place (an untied GGUF token embedding) release each
    /// lookup's pages with; `None` when nothing is mapped.
    fn mapped_pages(&self) -> Option<MappedPages> {
        None
    }
    /// Shape of `name` and the file holding it, without loading it.
    fn shape(&self, name: &str) -> Option<(Vec<usize>, &Path)>;
    /// All tensor names with their stored dtype and shape.
    fn summary(&self) -> Vec<TensorInfo>;
    /// The files, for error messages.
    fn describe(&self) -> String;
}

/// Name, stored dtype and shape of one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Stored dtype (`F32`, `BF16`, …).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
}
