//! Writing GGUF files (version 3): metadata and tensors, data aligned to 32
//! bytes, written to a temporary file and renamed so a failed write leaves
//! nothing behind.

use std::io::Write;
use std::path::Path;

use super::MetadataValue;
use crate::kernels::quant::GgmlType;
use crate::{ModelError, Result};

const ALIGNMENT: usize = 32;

/// One tensor to write: name, type, row-major shape and its encoded bytes.
#[derive(Debug, Clone)]
pub struct TensorData {
    /// GGUF name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Element type of `bytes`.
    pub ty: GgmlType,
    /// Row-major shape (`[rows, cols]`).
    pub shape: Vec<usize>,
    /// Encoded blocks.
    pub bytes: Vec<u8>,
}

/// A GGUF file being assembled.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<TensorData>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a metadata value.
    pub fn set(&mut self, key: &str, value: MetadataValue) {
        self.metadata.retain(|(k, _)| k != key);
        self.metadata.push((key.to_string(), value));
    }

    /// Adds a tensor.
    pub fn add_tensor(&mut self, tensor: TensorData) {
        self.tensors.push(tensor);
    }

    /// The tensors added so far.
    pub fn tensors(&self) -> &[TensorData] {
        &self.tensors
    }

    /// Writes the file to `path` (via `path.tmp`, renamed when complete).
    pub fn write(&self, path: &Path) -> Result<()> {
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("gguf.tmp");
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut w = std::io::BufWriter::new(file);
        let result = self.write_to(&mut w).and_then(|()| w.flush());
        drop(w);
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        let mut header = Vec::new();
        header.extend_from_slice(b"GGUF");
        header.extend(3u32.to_le_bytes());
        header.extend((self.tensors.len() as u64).to_le_bytes());
        header.extend((self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut header, key);
            header.extend(type_id(value).to_le_bytes());
            put_value(&mut header, value);
        }
        let mut offset = 0usize;
        for t in &self.tensors {
            put_string(&mut header, &t.name);
            header.extend((t.shape.len() as u32).to_le_bytes());
            for &d in t.shape.iter().rev() {
                header.extend((d as u64).to_le_bytes());
            }
            header.extend(t.ty.id().to_le_bytes());
            header.extend((offset as u64).to_le_bytes());
            offset += t.bytes.len().div_ceil(ALIGNMENT) * ALIGNMENT;
        }
        header.resize(header.len().div_ceil(ALIGNMENT) * ALIGNMENT, 0);
        w.write_all(&header)?;
        for t in &self.tensors {
            w.write_all(&t.bytes)?;
            let pad = t.bytes.len().div_ceil(ALIGNMENT) * ALIGNMENT - t.bytes.len();
            w.write_all(&vec![0u8; pad])?;
        }
        Ok(())
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn type_id(v: &MetadataValue) -> u32 {
    use MetadataValue as V;
    match v {
        V::U8(_) => 0,
        V::I8(_) => 1,
        V::U16(_) => 2,
        V::I16(_) => 3,
        V::U32(_) => 4,
        V::I32(_) => 5,
        V::F32(_) => 6,
        V::Bool(_) => 7,
        V::String(_) => 8,
        V::Array(_) => 9,
        V::U64(_) => 10,
        V::I64(_) => 11,
        V::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &MetadataValue) {
    use MetadataValue as V;
    match v {
        V::U8(x) => out.push(*x),
        V::I8(x) => out.push(*x as u8),
        V::U16(x) => out.extend(x.to_le_bytes()),
        V::I16(x) => out.extend(x.to_le_bytes()),
        V::U32(x) => out.extend(x.to_le_bytes()),
        V::I32(x) => out.extend(x.to_le_bytes()),
        V::F32(x) => out.extend(x.to_le_bytes()),
        V::Bool(x) => out.push(u8::from(*x)),
        V::String(s) => put_string(out, s),
        V::Array(items) => {
            let item_ty = items.first().map_or(4, type_id);
            out.extend(item_ty.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
        V::U64(x) => out.extend(x.to_le_bytes()),
        V::I64(x) => out.extend(x.to_le_bytes()),
        V::F64(x) => out.extend(x.to_le_bytes()),
    }
}
