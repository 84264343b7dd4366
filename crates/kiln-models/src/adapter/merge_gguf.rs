//! `kiln merge` onto a GGUF base: the adapter is attached to the loaded
//! model as for inference, each adapted projection is folded into an f32
//! weight in the file's row order, and a new GGUF is written with every
//! other tensor and all metadata copied unchanged. Merged tensors are
//! re-encoded in their stored type when kiln can quantize it (F32, F16,
//! BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K), else in Q8_0 (or F16 for rows
//! that Q8_0 blocks do not divide) — or all in a type the caller names, since
//! re-quantizing to 4 bits adds noise of the order of a small adapter's effect.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;

use super::Adapter;
use crate::arch::TensorRole;
use crate::decoder::qkv_block_order;
use crate::gguf::write::{GgufWriter, TensorData};
use crate::gguf::{gguf_tensor_name, GgufFile, MetadataValue};
use crate::kernels::quant::{quantize_row, GgmlType};
use crate::{Model, ModelError, Result};

/// What a GGUF merge did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufMergeSummary {
    /// Tensors whose values changed.
    pub changed: usize,
    /// Merged tensors stored in another type than the base's: `(name, from, to)`.
    pub retyped: Vec<(String, GgmlType, GgmlType)>,
    /// Bytes written.
    pub bytes: u64,
}

/// Merges `adapter` into the GGUF model `base` and writes `out` (a GGUF);
/// merged tensors are stored as `merged_type`, or in their own type.
pub fn merge_into_gguf(
    base: &Path,
    adapter: &Adapter,
    out: &Path,
    merged_type: Option<GgmlType>,
) -> Result<GgufMergeSummary> {
    if !adapter.saved.is_empty() {
        return Err(ModelError::InvalidInput(
            "the adapter saves whole modules (modules_to_save); merging those into a GGUF is not supported — merge into a Hugging Face base instead".into(),
        ));
    }
    let file = GgufFile::open(base)?;
    let model = Model::load_gguf(base)?;
    let mut adapted = model.decoder.with_adapter(adapter)?;
    let spec = adapted.spec().clone();
    let mut merged: HashMap<String, Tensor> = HashMap::new();
    for (role, layer, linear) in adapted.projections_mut() {
        if !linear.is_adapted() {
            continue;
        }
        let name = gguf_tensor_name(&spec, role, layer).ok_or_else(|| {
            ModelError::InvalidInput(format!("no GGUF name for {role:?} of layer {layer}"))
        })?;
        let (weight, bias) = linear.merged_weight()?;
        let to_file = |t: Tensor| -> Result<Tensor> {
            match (role, qkv_block_order(&spec)) {
                (TensorRole::AttnQkv, Some(order)) => file_block_order(&t, &order, spec.head_dim),
                _ => Ok(t),
            }
        };
        merged.insert(format!("{name}.weight"), to_file(weight)?);
        if let Some(bias) = bias {
            if file.tensor(&format!("{name}.bias")).is_some() {
                let column = to_file(bias.unsqueeze(1)?)?.squeeze(1)?;
                merged.insert(format!("{name}.bias"), column);
            }
        }
    }
    let mut writer = GgufWriter::new();
    for (key, value) in file.metadata() {
        // The writer aligns data to 32 bytes itself.
        if key != "general.alignment" {
            writer.set(key, value.clone());
        }
    }
    writer.set("general.alignment", MetadataValue::U32(32));
    let mut summary = GgufMergeSummary::default();
    for entry in file.tensors() {
        let Some(values) = merged.get(&entry.name) else {
            writer.add_tensor(TensorData {
                name: entry.name.clone(),
                ty: entry.ty,
                shape: entry.shape.clone(),
                bytes: file.tensor_bytes(entry)?.to_vec(),
            });
            continue;
        };
        let cols = entry.shape.last().copied().unwrap_or(1);
        let rows: Vec<f32> = values.flatten_all()?.to_vec1()?;
        if rows.len() != entry.shape.iter().product::<usize>() {
            return Err(ModelError::InvalidInput(format!(
                "merged {} has {} values, the file's tensor {:?}",
                entry.name,
                rows.len(),
                entry.shape
            )));
        }
        let ty = merged_type
            .into_iter()
            .chain([entry.ty, GgmlType::Q8_0, GgmlType::F16])
            .find(|&ty| quantize_row(ty, &rows[..cols]).is_some())
            .unwrap_or(GgmlType::F32);
        let mut bytes = Vec::new();
        for row in rows.chunks_exact(cols) {
            bytes.extend(quantize_row(ty, row).ok_or_else(|| {
                ModelError::InvalidInput(format!("cannot encode {} as {ty:?}", entry.name))
            })?);
        }
        if ty != entry.ty {
            summary.retyped.push((entry.name.clone(), entry.ty, ty));
        }
        summary.changed += 1;
        writer.add_tensor(TensorData {
            name: entry.name.clone(),
            ty,
            shape: entry.shape.clone(),
            bytes,
        });
    }
    writer.write(out)?;
    summary.bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(summary)
}

/// Rows of kiln's regrouped fused q/k/v (`[q… | k… | v…]`) put back in the
/// file's block order: kiln's block `i` is the file's block `order[i]`.
fn file_block_order(t: &Tensor, order: &[usize], head_dim: usize) -> Result<Tensor> {
    let mut inverse = vec![0u32; order.len() * head_dim];
    for (kiln_block, &file_block) in order.iter().enumerate() {
        for r in 0..head_dim {
            inverse[file_block * head_dim + r] = (kiln_block * head_dim + r) as u32;
        }
    }
    let idx = Tensor::from_vec(inverse, order.len() * head_dim, t.device())?;
    Ok(t.index_select(&idx, 0)?)
}
