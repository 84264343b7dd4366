//! Parsing the GGUF header, metadata and tensor table from bytes, with every
//! length and offset checked against the file so corrupt files fail cleanly.

use super::value::MetadataValue;
use super::TensorEntry;
use crate::kernels::quant::GgmlType;

/// The file's first four bytes.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// Arrays nest at most this deep (llama.cpp writes depth 1).
const MAX_NESTING: usize = 4;
/// Tensors have at most this many dimensions (ggml's limit).
const MAX_DIMS: u32 = 4;

/// What the header and tables hold.
#[derive(Debug)]
pub struct Parsed {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, MetadataValue)>,
    /// Tensor table, offsets absolute in the file.
    pub tensors: Vec<TensorEntry>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

type ParseResult<T> = std::result::Result<T, String>;

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> ParseResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated: {what} needs {n} bytes at offset {} but the file has {}",
                    self.pos,
                    self.bytes.len()
                )
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> ParseResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> ParseResult<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> ParseResult<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must fit in what is left of the file at `min_size` bytes each.
    fn count(&mut self, min_size: usize, what: &str) -> ParseResult<usize> {
        let n = self.u64(what)?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(min_size as u64) > left {
            return Err(format!(
                "{what} claims {n} entries at offset {} but only {left} bytes remain",
                self.pos
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> ParseResult<String> {
        let n = self.count(1, what)?;
        Ok(String::from_utf8_lossy(self.take(n, what)?).into_owned())
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> ParseResult<MetadataValue> {
        use MetadataValue as V;
        Ok(match ty {
            0 => V::U8(self.array::<1>(key)?[0]),
            1 => V::I8(self.array::<1>(key)?[0] as i8),
            2 => V::U16(u16::from_le_bytes(self.array(key)?)),
            3 => V::I16(i16::from_le_bytes(self.array(key)?)),
            4 => V::U32(self.u32(key)?),
            5 => V::I32(i32::from_le_bytes(self.array(key)?)),
            6 => V::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => V::Bool(false),
                1 => V::Bool(true),
                b => return Err(format!("metadata {key}: bool byte {b} is neither 0 nor 1")),
            },
            8 => V::String(self.string(key)?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(format!("metadata {key}: arrays nested too deep"));
                }
                let item_ty = self.u32(key)?;
                let min = match item_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => {
                        return Err(format!("metadata {key}: unknown array item type {other}"))
                    }
                };
                let n = self.count(min, key)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(item_ty, key, depth + 1)?);
                }
                V::Array(items)
            }
            10 => V::U64(self.u64(key)?),
            11 => V::I64(i64::from_le_bytes(self.array(key)?)),
            12 => V::F64(f64::from_le_bytes(self.array(key)?)),
            other => return Err(format!("metadata {key}: unknown value type {other}")),
        })
    }
}

/// Parses a whole GGUF file held in `bytes`.
pub fn parse(bytes: &[u8]) -> ParseResult<Parsed> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic = c.array::<4>("magic")?;
    if &magic != MAGIC {
        return Err(format!(
            "not a GGUF file (magic {magic:02x?}, expected \"GGUF\")"
        ));
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(format!(
            "GGUF version {version} is not supported (2 and 3 are)"
        ));
    }
    // A tensor entry is at least 8 (name) + 4 + 8 + 4 + 8 bytes; a KV 8 + 4 + 1.
    let n_tensors = c.count(32, "tensor count")?;
    let n_kv = c.count(13, "metadata count")?;
    let mut metadata = Vec::with_capacity(n_kv);
    for _ in 0..n_kv {
        let key = c.string("metadata key")?;
        let ty = c.u32(&key)?;
        let value = c.value(ty, &key, 0)?;
        metadata.push((key, value));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        Some((_, v)) => v
            .as_u64()
            .filter(|a| a.is_power_of_two() && *a <= 1 << 20)
            .ok_or_else(|| format!("general.alignment {v:?} is not a power of two"))?
            as usize,
        None => 32,
    };
    let mut raw = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name = c.string("tensor name")?;
        let n_dims = c.u32(&name)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(format!(
                "tensor {name}: {n_dims} dimensions (1 to 4 allowed)"
            ));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(c.u64(&name)?);
        }
        let type_id = c.u32(&name)?;
        let ty = GgmlType::from_id(type_id)
            .ok_or_else(|| format!("tensor {name}: unsupported tensor type id {type_id}"))?;
        let offset = c.u64(&name)?;
        raw.push((name, ne, ty, offset));
    }
    let data_start = c.pos.div_ceil(alignment) * alignment;
    let file_len = bytes.len() as u64;
    let mut tensors = Vec::with_capacity(raw.len());
    for (name, ne, ty, offset) in raw {
        let elements = ne
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("tensor {name}: dimensions {ne:?} are empty or overflow"))?;
        if ne[0] % ty.block_size() as u64 != 0 {
            return Err(format!(
                "tensor {name}: row length {} is not a multiple of {ty}'s block of {}",
                ne[0],
                ty.block_size()
            ));
        }
        let bytes = elements / ty.block_size() as u64 * ty.block_bytes() as u64;
        let start = (data_start as u64).checked_add(offset);
        let end = start.and_then(|s| s.checked_add(bytes));
        match (start, end) {
            (Some(s), Some(e)) if e <= file_len && s % alignment as u64 == 0 => {
                tensors.push(TensorEntry {
                    name,
                    ty,
                    shape: ne.iter().rev().map(|&d| d as usize).collect(),
                    offset: s as usize,
                    len: bytes as usize,
                });
            }
            (Some(s), Some(e)) if e <= file_len => {
                return Err(format!(
                    "tensor {name}: data offset {s} is not aligned to {alignment}"
                ))
            }
            _ => {
                return Err(format!(
                    "tensor {name}: data ({bytes} bytes at offset {offset} after the header) lies past the end of the file ({} bytes)",
                    file_len
                ))
            }
        }
    }
    Ok(Parsed {
        version,
        metadata,
        tensors,
    })
}
