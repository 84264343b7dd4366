//! GGUF files (llama.cpp's format, versions 2 and 3): a memory-mapped
//! reader with typed metadata, the model spec and tokenizer the metadata
//! describes, and the tensor names llama.cpp uses.

mod config;
pub mod export;
mod names;
mod pages;
mod parse;
mod tokenizer;
mod value;
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::gguf_config;
pub use names::gguf_tensor_name;
pub use pages::{MappedPages, FAULT_AROUND_BYTES};
pub use tokenizer::tokenizer_from_gguf;
pub use value::MetadataValue;

use crate::kernels::quant::{GgmlType, QMatrix, SharedBytes};
use crate::{ModelError, Result};

/// One tensor in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Element type.
    pub ty: GgmlType,
    /// Row-major shape (ggml's `ne` reversed: `[rows, cols]` for a matrix).
    pub shape: Vec<usize>,
    /// Absolute byte offset of the data.
    pub offset: usize,
    /// Data length in bytes.
    pub len: usize,
}

/// An open GGUF file.
#[derive(Clone)]
pub struct GgufFile {
    path: PathBuf,
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<TensorEntry>,
    bytes: SharedBytes,
    /// The mapping behind `bytes` when the file was opened from disk (for
    /// [`GgufFile::release_pages`]).
    mapping: Option<MappedPages>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// What a loaded model keeps of its GGUF file for `kiln inspect`: the
/// version and each metadata value's one-line summary (the parsed arrays —
/// a 262k-token vocabulary with scores and types is ~100 MB of heap — are
/// dropped once the model and tokenizer are built).
#[derive(Debug, Clone, PartialEq)]
pub struct GgufSummary {
    /// GGUF format version.
    pub version: u32,
    /// Metadata keys in file order with [`MetadataValue::summary`] of each.
    pub metadata: Vec<(String, String)>,
}

impl GgufFile {
    /// The file's version and summarised metadata.
    pub fn summary(&self) -> GgufSummary {
        GgufSummary {
            version: self.version,
            metadata: self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.summary()))
                .collect(),
        }
    }

    /// [`GgufFile::summary`], freeing the parsed metadata: call it once the
    /// spec and tokenizer are read and before the weights load, so that a
    /// large vocabulary's values (262k pieces with scores and types) do not
    /// sit in memory beside the packed weights. Afterwards `get` finds
    /// nothing; the tensor table stays.
    pub fn take_summary(&mut self) -> GgufSummary {
        let summary = self.summary();
        self.metadata = Vec::new();
        summary
    }

    /// Maps and parses `path`; any structural problem is an
    /// [`ModelError::InvalidWeights`] naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mapping = Arc::new(map(&file, path)?);
        let bytes: SharedBytes = mapping.clone();
        let mut parsed = Self::from_bytes(path, bytes)?;
        parsed.mapping = Some(MappedPages::new(mapping));
        Ok(parsed)
    }

    /// Parses a GGUF image already in memory (`path` names it in errors).
    pub fn from_bytes(path: &Path, bytes: SharedBytes) -> Result<Self> {
        let parsed =
            parse::parse((*bytes).as_ref()).map_err(|message| ModelError::InvalidWeights {
                path: path.to_path_buf(),
                message,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            version: parsed.version,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            bytes,
            mapping: None,
        })
    }

    /// Tells the kernel that the whole pages inside byte range `range` of
    /// the file will not be read again soon (a layer keeps its own packed
    /// copy), so they leave this process's resident memory. Harmless if they
    /// are read after all: the mapping is a shared read-only file mapping, so
    /// the pages come back from the file. Does nothing for images held in
    /// memory ([`GgufFile::from_bytes`]) or out-of-range input.
    pub fn release_pages(&self, range: std::ops::Range<usize>) {
        if let Some(pages) = &self.mapping {
            pages.release(range);
        }
    }

    /// The mapping's page releaser when the file was opened from disk
    /// (`None` for images held in memory).
    pub fn mapped_pages(&self) -> Option<MappedPages> {
        self.mapping.clone()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Format version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> &[(String, MetadataValue)] {
        &self.metadata
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(MetadataValue::as_str)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
            .ok_or_else(|| self.invalid("metadata has no general.architecture"))
    }

    /// The tensor table.
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// The entry of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The stored bytes of a tensor entry of this file.
    pub fn tensor_bytes(&self, entry: &TensorEntry) -> Result<&[u8]> {
        let all: &[u8] = (*self.bytes).as_ref();
        all.get(entry.offset..entry.offset + entry.len)
            .ok_or_else(|| self.invalid(format!("tensor {} does not fit in the file", entry.name)))
    }

    /// Tensor `name` as a block matrix `[rows, cols]` (1-D tensors are one row;
    /// higher dimensions fold into rows).
    pub fn matrix(&self, name: &str) -> Result<QMatrix> {
        let t = self.tensor(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
            files: self.path.display().to_string(),
        })?;
        let cols = t.shape.last().copied().unwrap_or(1);
        let rows = t.shape.iter().rev().skip(1).product::<usize>();
        QMatrix::new(t.ty, rows, cols, self.bytes.clone(), t.offset)
            .ok_or_else(|| self.invalid(format!("tensor {name} does not fit in the file")))
    }

    /// An error about this file.
    pub fn invalid(&self, message: impl Into<String>) -> ModelError {
        ModelError::InvalidWeights {
            path: self.path.clone(),
            message: message.into(),
        }
    }
}

/// Maps `file` read-only.
#[allow(unsafe_code)]
fn map(file: &std::fs::File, path: &Path) -> Result<memmap2::Mmap> {
    // SAFETY: mapped read-only; like every mmap-based loader (llama.cpp
    // included) we assume the file is not truncated while it is loaded.
    // Every offset is validated against the mapped length before use.
    unsafe { memmap2::Mmap::map(file) }.map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}
