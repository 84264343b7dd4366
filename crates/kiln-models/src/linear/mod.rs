//! [`Linear`]: every projection in every model. An enum so quantized weights
//! and adapters (LoRA, IA3) become variants, not copies of the model.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use half::bf16;
use rayon::prelude::*;

use crate::gguf::MappedPages;
use crate::kernels::quant::{ActivationFormat, GgmlType, QMatrix};
use crate::kernels::{bf16_to_f32, gemv_bf16};
use crate::{ModelError, Result};

mod adapted;
mod frozen;
pub(crate) use adapted::reordered;
pub(crate) use frozen::input_grad_into;

/// A linear layer `y = x Wᵀ + b`.
#[derive(Debug, Clone)]
pub enum Linear {
    /// Dense f32 weight `[out, in]` with an optional bias `[out]`.
    Dense {
        /// `[out_features, in_features]`.
        weight: Tensor,
        /// `[out_features]`.
        bias: Option<Tensor>,
    },
    /// bf16 weight kept 16-bit, row-major `[rows = out, cols = in]`: one
    /// token goes through kiln's bf16 GEMV (half the bytes of f32); a
    /// prompt converts the weight to f32 for candle's GEMM.
    Bf16 {
        /// The values.
        weight: Arc<Vec<bf16>>,
        /// `out_features`.
        rows: usize,
        /// `in_features`.
        cols: usize,
        /// `[out_features]`.
        bias: Option<Tensor>,
    },
    /// Weight kept in a GGUF block format (quantized, f16 or bf16) and
    /// multiplied straight from the blocks.
    Quant {
        /// `[out_features, in_features]` blocks.
        weight: QMatrix,
        /// `[out_features]`.
        bias: Option<Tensor>,
    },
    /// A LoRA update on a base layer: `base(x) + scale · (x Aᵀ) Bᵀ`.
    Lora {
        /// The frozen layer underneath (itself possibly adapted).
        base: Box<Linear>,
        /// `lora_A`: `[rank, in_features]`.
        a: Tensor,
        /// `lora_B`: `[out_features, rank]`.
        b: Tensor,
        /// `alpha / r` (or `alpha / √r` with rsLoRA).
        scale: f64,
        /// When set, output row `i` of the update is row `out_rows[i]` of
        /// `B`'s (u32 indices): the adapter's rows put in kiln's order at
        /// run time, for trainable `B`s that must stay the optimiser's own
        /// tensors (frozen ones are reordered once when attached).
        out_rows: Option<Tensor>,
    },
    /// IA³ on a base layer: `base(x) ⊙ l` (output scaling) or `base(x ⊙ l)`
    /// (input scaling, PEFT's feed-forward modules).
    Ia3 {
        /// The frozen layer underneath.
        base: Box<Linear>,
        /// `l`: `[out_features]`, or `[in_features]` when `on_input`.
        scale: Tensor,
        /// Whether `l` scales the input instead of the output.
        on_input: bool,
        /// As for [`Linear::Lora`]: output reordering of a trainable `l`.
        out_rows: Option<Tensor>,
    },
}

impl Linear {
    /// `x`: `[tokens, in]` → `[tokens, out]`. Differentiable in `x` (and in
    /// adapter weights that are candle `Var`s) whenever `x` is tracked by
    /// autograd, whatever the base layer's format.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (y, bias) = match self {
            Linear::Lora {
                base,
                a,
                b,
                scale,
                out_rows,
            } => return adapted::lora(base, a, b, *scale, out_rows.as_ref(), x),
            Linear::Ia3 {
                base,
                scale,
                on_input,
                out_rows,
            } => return adapted::ia3(base, scale, *on_input, out_rows.as_ref(), x),
            Linear::Bf16 { .. } | Linear::Quant { .. } if x.track_op() => {
                return frozen::forward_tracked(self, x)
            }
            Linear::Dense { weight, bias } => (x.matmul(&weight.t()?)?, bias),
            Linear::Bf16 {
                weight,
                rows,
                cols,
                bias,
            } if x.dim(0)? == 1 => {
                let input: Vec<f32> = x.flatten_all()?.to_vec1()?;
                let mut out = vec![0f32; *rows];
                gemv_bf16(weight, *rows, *cols, &input, &mut out).ok_or_else(|| {
                    ModelError::InvalidInput(format!(
                        "input width {} does not match the layer's {cols}",
                        input.len()
                    ))
                })?;
                (Tensor::from_vec(out, (1, *rows), &Device::Cpu)?, bias)
            }
            Linear::Bf16 {
                weight,
                rows,
                cols,
                bias,
            } => {
                let w = Tensor::from_vec(bf16_to_f32(weight), (*rows, *cols), &Device::Cpu)?;
                (x.matmul(&w.t()?)?, bias)
            }
            Linear::Quant { weight, bias } => (quant_forward(weight, x)?, bias),
        };
        Ok(match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        match self {
            Linear::Dense { weight, .. } => weight.dims().first().copied().unwrap_or(0),
            Linear::Bf16 { rows, .. } => *rows,
            Linear::Quant { weight, .. } => weight.rows(),
            Linear::Lora { base, .. } | Linear::Ia3 { base, .. } => base.out_features(),
        }
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        match self {
            Linear::Dense { weight, .. } => weight.dims().get(1).copied().unwrap_or(0),
            Linear::Bf16 { cols, .. } => *cols,
            Linear::Quant { weight, .. } => weight.cols(),
            Linear::Lora { base, .. } | Linear::Ia3 { base, .. } => base.in_features(),
        }
    }

    /// The bias, if any (of the base layer for adapted ones).
    pub fn bias(&self) -> Option<&Tensor> {
        match self {
            Linear::Dense { bias, .. } | Linear::Bf16 { bias, .. } | Linear::Quant { bias, .. } => {
                bias.as_ref()
            }
            Linear::Lora { base, .. } | Linear::Ia3 { base, .. } => base.bias(),
        }
    }

    /// Rows `rows` of the weight as f32 (`[rows.len(), in]`, row-major),
    /// adapters not applied.
    pub fn base_weight_rows(&self, rows: std::ops::Range<usize>) -> Result<Vec<f32>> {
        let bad = || ModelError::InvalidInput("weight rows out of range".into());
        match self {
            Linear::Dense { weight, .. } => {
                if rows.end > self.out_features() {
                    return Err(bad());
                }
                Ok(weight
                    .narrow(0, rows.start, rows.len())?
                    .flatten_all()?
                    .to_vec1()?)
            }
            Linear::Bf16 { weight, cols, .. } => weight
                .get(rows.start * cols..rows.end * cols)
                .map(bf16_to_f32)
                .ok_or_else(bad),
            Linear::Quant { weight, .. } => weight.dequantize_rows(rows).ok_or_else(bad),
            Linear::Lora { base, .. } | Linear::Ia3 { base, .. } => base.base_weight_rows(rows),
        }
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        match self {
            Linear::Dense { weight, bias } => {
                weight.elem_count() + bias.as_ref().map_or(0, Tensor::elem_count)
            }
            Linear::Bf16 { weight, bias, .. } => {
                weight.len() + bias.as_ref().map_or(0, Tensor::elem_count)
            }
            Linear::Quant { weight, bias } => {
                weight.rows() * weight.cols() + bias.as_ref().map_or(0, Tensor::elem_count)
            }
            Linear::Lora { base, a, b, .. } => {
                base.parameter_count() + a.elem_count() + b.elem_count()
            }
            Linear::Ia3 { base, scale, .. } => base.parameter_count() + scale.elem_count(),
        }
    }
}

/// `[layer.forward(x) for layer in layers]`: layers that read the same input
/// (q/k/v, gate/up). A single untracked token through block-format layers
/// runs as one parallel product over all of them
/// ([`QMatrix::matvec_many`]); anything else layer by layer. Same values
/// either way.
pub fn forward_many<const N: usize>(layers: [&Linear; N], x: &Tensor) -> Result<[Tensor; N]> {
    let matrices: Option<Vec<&QMatrix>> = layers
        .iter()
        .map(|l| match l {
            Linear::Quant { weight, .. } => Some(weight),
            _ => None,
        })
        .collect();
    let single_token = x.dims2()?.0 == 1 && !x.track_op();
    if let (Some(matrices), true) = (matrices, single_token) {
        let input: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let outs = QMatrix::matvec_many(&matrices, &input).ok_or_else(|| {
            ModelError::InvalidInput("input width does not match the layers'".into())
        })?;
        let mut tensors = Vec::with_capacity(N);
        for (layer, out) in layers.iter().zip(outs) {
            let rows = out.len();
            let y = Tensor::from_vec(out, (1, rows), &Device::Cpu)?;
            tensors.push(match layer.bias() {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            });
        }
        return tensors
            .try_into()
            .map_err(|_| ModelError::InvalidInput("layer count changed".into()));
    }
    let mut tensors = Vec::with_capacity(N);
    for layer in layers {
        tensors.push(layer.forward(x)?);
    }
    tensors
        .try_into()
        .map_err(|_| ModelError::InvalidInput("layer count changed".into()))
}

/// `x Wᵀ` for a block-format weight: the block kernels for single tokens,
/// short quantized prompts and every prompt on packed rows; other prompts
/// go through [`quant_gemm`].
fn quant_forward(weight: &QMatrix, x: &Tensor) -> Result<Tensor> {
    let (tokens, width) = x.dims2()?;
    if width != weight.cols() {
        return Err(ModelError::InvalidInput(format!(
            "input width {width} does not match the layer's {}",
            weight.cols()
        )));
    }
    // f16/bf16 prompts always, quantized ones from GEMM_MIN_TOKENS: the
    // tiled f32 GEMM (activations rounded to the weights' format first).
    let float_type = matches!(weight.ty(), GgmlType::F16 | GgmlType::BF16 | GgmlType::F32);
    let gemm_from = if weight.is_packed() {
        usize::MAX
    } else if weight.has_batch_kernel() {
        GEMM_MIN_TOKENS_BATCH_KERNEL
    } else if weight.ty().is_k_quant() {
        GEMM_MIN_TOKENS_K_QUANT
    } else {
        GEMM_MIN_TOKENS
    };
    if (float_type && tokens > 1) || tokens >= gemm_from {
        return quant_gemm(weight, x);
    }
    let input: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let out = weight
        .matmul(&input, tokens)
        .ok_or_else(|| ModelError::InvalidInput("input does not match the layer".into()))?;
    Ok(Tensor::from_vec(
        out,
        (tokens, weight.rows()),
        &Device::Cpu,
    )?)
}

/// From this many tokens on, quantized weights are dequantized tile by tile
/// for candle's f32 GEMM: per-token block dot products cost more than
/// converting the weights once per prompt. (f16/bf16 weights take that path
/// for any prompt.)
const GEMM_MIN_TOKENS: usize = 32;
/// The same for the k-quants (Q2_K … Q6_K), whose row dequantization is
/// slower: measured on TinyLlama Q4_K_M (2026-11-28) the block kernels are
/// 1.6–1.8× faster at 32 tokens and even at ~64, the GEMM path 1.1× faster
/// at 96.
const GEMM_MIN_TOKENS_K_QUANT: usize = 64;
/// The same for unpacked matrices with a four-token kernel (Q8_0/Q4_0/Q4_1):
/// measured equal to the GEMM path at 32 tokens (`examples/qbench.rs`),
/// while the GEMM path dequantizes every weight on every call — for batched
/// decode steps of 32+ sequences that cost dominates. Packed rows never
/// take the GEMM path: with the token-split products they ran 512-token
/// prompts 1.5–2.1× faster than it (2026-12-03, Zen 4, SmolLM2 and
/// TinyLlama shapes, Q8_0/Q4_0/Q4_1/Q4_K_M).
const GEMM_MIN_TOKENS_BATCH_KERNEL: usize = 128;
/// f32 bytes of weights dequantized at a time by [`quant_gemm`] (bounds its
/// memory): 2048 rows of a 2048-wide matrix, 744 of a 5632-wide one. Each
/// tile is one GEMM call that packs the activations again (the `gemm`
/// crate's packing was 17% of a TinyLlama F16 prompt), so tiles are as
/// large as the L3 cache allows: TinyLlama-shaped F16 prompts ran 60.7 →
/// 67.8 tok/s from 4 to 16 MiB (65.5 at 12, 63.0 at 32; peak RSS +23 MiB;
/// 2026-12-05, Zen 4 VM with 32 MiB L3).
const GEMM_TILE_BYTES: usize = 16 << 20;

/// `x Wᵀ` for a prompt: activations rounded as the block kernels would
/// round them (so results match the token path to float rounding), weights
/// dequantized `GEMM_TILE_BYTES` at a time, each tile's product written
/// straight into its columns of the output.
fn quant_gemm(weight: &QMatrix, x: &Tensor) -> Result<Tensor> {
    use crate::kernels::gemm::{matmul_into, MatRef};
    let (tokens, width) = x.dims2()?;
    let format = ActivationFormat::for_weights(weight.ty());
    let mut rounded: Vec<f32> = x.flatten_all()?.to_vec1::<f32>()?;
    rounded
        .par_chunks_mut(width)
        .for_each(|row| format.round_trip_in_place(row));
    let rows = weight.rows();
    let mut out = vec![0f32; tokens * rows];
    let tile_rows = (GEMM_TILE_BYTES / (4 * width.max(1))).max(16);
    for start in (0..rows).step_by(tile_rows) {
        let end = (start + tile_rows).min(rows);
        let n = end - start;
        let into = &mut out[start..];
        let activations = MatRef::row_major(&rounded, tokens, width);
        let mismatch = || ModelError::InvalidInput("input does not match the layer".into());
        if weight.ty() == GgmlType::F16 {
            // F16 tiles are converted already transposed (one SIMD pass)
            // into a reused huge-page buffer, so the `gemm` crate reads them
            // without its scalar strided packing: TinyLlama-shaped F16
            // prompts 66.6 → 75.2 tok/s (2026-12-05, Zen 4 VM, three
            // alternated rounds); reusing the huge-page buffer instead of
            // a fresh heap tile per call, 69.4–69.6 → 76.6–77.8 over three
            // repetitions. For the block types the separate transpose costs
            // more than that packing.
            weight
                .with_rows_transposed(start..end, |tile| {
                    matmul_into(
                        into,
                        rows,
                        activations,
                        MatRef::row_major(tile, width, n),
                        true,
                    )
                })
                .ok_or_else(|| ModelError::InvalidInput("weight rows out of range".into()))?
                .ok_or_else(mismatch)?;
        } else {
            let tile = weight
                .dequantize_rows(start..end)
                .ok_or_else(|| ModelError::InvalidInput("weight rows out of range".into()))?;
            matmul_into(
                into,
                rows,
                activations,
                MatRef::row_major(&tile, n, width).t(),
                true,
            )
            .ok_or_else(mismatch)?;
        }
    }
    Ok(Tensor::from_vec(out, (tokens, rows), &Device::Cpu)?)
}

/// Runs `f` on the values of `t` as one row-major slice: borrowed when `t`
/// is a contiguous f32 CPU tensor, copied otherwise.
pub(crate) fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            if let Some(slice) = v.get(start..end) {
                return f(slice);
            }
        }
    }
    f(&t.flatten_all()?.to_vec1::<f32>()?)
}

/// A token embedding table, dense or in a GGUF block format (rows are
/// dequantized as they are looked up).
#[derive(Debug, Clone)]
pub enum Embedding {
    /// f32 `[vocab, hidden]`.
    Dense(Tensor),
    /// Blocks `[vocab, hidden]`.
    Quant(QMatrix),
    /// Blocks `[vocab, hidden]` read in place from a memory-mapped file;
    /// each lookup releases the pages it made resident.
    Mapped {
        /// The table, its bytes in the mapping.
        table: QMatrix,
        /// The mapping's page releaser.
        pages: MappedPages,
    },
}

/// Rows `ids` of a block-format table, dequantized: `[ids.len(), cols]`;
/// `after_read` is called with each row index once it is read.
fn quant_rows(m: &QMatrix, ids: &[u32], mut after_read: impl FnMut(usize)) -> Result<Tensor> {
    let mut values = Vec::with_capacity(ids.len() * m.cols());
    for &id in ids {
        let row = m.row(id as usize).ok_or_else(|| {
            ModelError::InvalidInput(format!("token id {id} is outside the table"))
        })?;
        values.extend_from_slice(&row);
        after_read(id as usize);
    }
    Ok(Tensor::from_vec(
        values,
        (ids.len(), m.cols()),
        &Device::Cpu,
    )?)
}

impl Embedding {
    /// The rows of `ids`: `[ids.len(), hidden]`.
    pub fn lookup(&self, ids: &[u32]) -> Result<Tensor> {
        match self {
            Embedding::Dense(table) => {
                let idx = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
                Ok(table.index_select(&idx, 0)?)
            }
            Embedding::Quant(m) => quant_rows(m, ids, |_| {}),
            Embedding::Mapped { table, pages } => quant_rows(table, ids, |id| {
                if let Some(read) = table.row_byte_range(id) {
                    pages.release_read(read, table.byte_range());
                }
            }),
        }
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        match self {
            Embedding::Dense(t) => t.elem_count(),
            Embedding::Quant(m) | Embedding::Mapped { table: m, .. } => m.rows() * m.cols(),
        }
    }

    /// The same table as an LM head (tied embeddings).
    pub fn as_linear(&self) -> Linear {
        match self {
            Embedding::Dense(t) => Linear::Dense {
                weight: t.clone(),
                bias: None,
            },
            Embedding::Quant(m) | Embedding::Mapped { table: m, .. } => Linear::Quant {
                weight: m.clone(),
                bias: None,
            },
        }
    }
}
