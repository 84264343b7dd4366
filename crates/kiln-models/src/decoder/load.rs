//! Building a [`Decoder`] from a spec, a family's tensor names and a weight
//! source, checking every shape against the config.

use candle_core::Tensor;

use super::attention::{Attention, QkvProjection};
use super::mlp::Mlp;
use super::norm::Norm;
use super::rope::Rope;
use super::{Block, Decoder};
use crate::arch::{Architecture, TensorRole};
use crate::kernels::quant::{quantize_row, GgmlType, QMatrix};
use crate::linear::{Embedding, Linear};
use crate::spec::{BlockLayout, MlpKind, NormKind, PositionEncoding, QkvLayout};
use crate::weights::WeightSource;
use crate::{ModelError, ModelSpec, Result};

/// Loads tensors by role with shape checks.
struct Loader<'a> {
    spec: &'a ModelSpec,
    arch: &'a Architecture,
    names: TensorNamer,
    weights: &'a dyn WeightSource,
    /// Quantize projections to this type while loading (in-situ quantization).
    quantize: Option<GgmlType>,
}

/// Maps a role in a layer to a tensor name prefix.
pub type TensorNamer = fn(&ModelSpec, TensorRole, usize) -> Option<String>;

impl Loader<'_> {
    fn name(&self, role: TensorRole, layer: usize) -> Result<String> {
        (self.names)(self.spec, role, layer).ok_or_else(|| ModelError::MissingTensor {
            name: format!(
                "{role:?} (layer {layer}) has no name in family {}",
                self.arch.model_type
            ),
            files: self.weights.describe(),
        })
    }

    fn check_shape(&self, name: &str, expected: &[usize]) -> Result<()> {
        let (shape, path) = self
            .weights
            .shape(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                files: self.weights.describe(),
            })?;
        if shape != expected {
            return Err(ModelError::ShapeMismatch {
                path: path.to_path_buf(),
                name: name.to_string(),
                actual: shape,
                expected: expected.to_vec(),
            });
        }
        Ok(())
    }

    fn tensor(&self, name: &str, expected: &[usize]) -> Result<Tensor> {
        self.check_shape(name, expected)?;
        self.weights.tensor(name)
    }

    /// `matrix` with its rows packed for the integer kernels where this CPU
    /// has them, the source's copy of the packed bytes released.
    fn packed(&self, matrix: QMatrix) -> QMatrix {
        matrix.with_packed_rows_releasing(&mut |range| self.weights.release_bytes(range))
    }

    /// A projection; bf16 weights stay 16-bit (`Linear::Bf16`).
    fn linear(
        &self,
        role: TensorRole,
        layer: usize,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<Linear> {
        if !self.spec.transposed_linear_weights {
            let name = format!("{}.weight", self.name(role, layer)?);
            self.check_shape(&name, &[out, inp])?;
            if let Some(weight) = self.weights.matrix(&name)? {
                return Ok(Linear::Quant {
                    weight: self.packed(weight),
                    bias: self.bias(role, layer, out, bias)?,
                });
            }
            if let Some(ty) = self.quantize.and_then(|ty| quantized_type(ty, inp)) {
                let values: Vec<f32> = self.weights.tensor(&name)?.flatten_all()?.to_vec1()?;
                return Ok(Linear::Quant {
                    weight: quantize_matrix(ty, &values, out, inp)?.with_packed_rows(),
                    bias: self.bias(role, layer, out, bias)?,
                });
            }
            if let Some(weight) = self.weights.bf16(&name)? {
                return Ok(Linear::Bf16 {
                    weight: std::sync::Arc::new(weight),
                    rows: out,
                    cols: inp,
                    bias: self.bias(role, layer, out, bias)?,
                });
            }
        }
        self.linear_f32(role, layer, out, inp, bias)
    }

    /// A projection with its weight converted to f32.
    fn linear_f32(
        &self,
        role: TensorRole,
        layer: usize,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<Linear> {
        let base = self.name(role, layer)?;
        let name = format!("{base}.weight");
        let weight = if self.spec.transposed_linear_weights {
            // GPT-2's Conv1D stores [in, out].
            self.tensor(&name, &[inp, out])?.t()?.contiguous()?
        } else {
            self.tensor(&name, &[out, inp])?
        };
        Ok(Linear::Dense {
            weight,
            bias: self.bias(role, layer, out, bias)?,
        })
    }

    fn bias(
        &self,
        role: TensorRole,
        layer: usize,
        out: usize,
        present: bool,
    ) -> Result<Option<Tensor>> {
        if !present {
            return Ok(None);
        }
        let base = self.name(role, layer)?;
        Ok(Some(self.tensor(&format!("{base}.bias"), &[out])?))
    }

    /// The fused q/k/v projection, regrouped from per-head or per-group
    /// layouts into `[q | k | v]` rows so attention splits it by offsets.
    fn fused_qkv(&self, layer: usize) -> Result<Linear> {
        let s = self.spec;
        let (h, hd) = (s.hidden_size, s.head_dim);
        let (nh, nkv) = (s.num_attention_heads, s.num_key_value_heads);
        let out = (nh + 2 * nkv) * hd;
        if matches!(
            s.attention.qkv_layout,
            QkvLayout::Fused | QkvLayout::Separate
        ) {
            return self.linear(TensorRole::AttnQkv, layer, out, h, s.attention.qkv_bias);
        }
        // Regrouping works on the f32 tensor.
        let Linear::Dense { weight, bias } =
            self.linear_f32(TensorRole::AttnQkv, layer, out, h, s.attention.qkv_bias)?
        else {
            return Err(ModelError::InvalidInput(
                "fused q/k/v must load as f32".into(),
            ));
        };
        let Some(order) = qkv_block_order(s) else {
            return Ok(Linear::Dense { weight, bias });
        };
        let weight = regroup_qkv_rows(&weight, &order, hd)?;
        let bias = match bias {
            Some(b) => Some(regroup_qkv_rows(&b.unsqueeze(1)?, &order, hd)?.squeeze(1)?),
            None => None,
        };
        Ok(Linear::Dense { weight, bias })
    }

    fn norm(&self, role: TensorRole, layer: usize, dim: usize) -> Result<Norm> {
        let base = self.name(role, layer)?;
        let n = self.spec.norm;
        let mut weight = self.tensor(&format!("{base}.weight"), &[dim])?;
        if n.weight_offset != 0.0 {
            weight = (weight + f64::from(n.weight_offset))?;
        }
        let bias = match n.kind {
            NormKind::Layer { bias: true } => Some(self.tensor(&format!("{base}.bias"), &[dim])?),
            _ => None,
        };
        Ok(Norm {
            kind: n.kind,
            weight,
            bias,
            eps: n.eps as f32,
        })
    }

    fn attention(&self, layer: usize) -> Result<Attention> {
        let s = self.spec;
        let a = s.attention;
        let (h, q, kv) = (s.hidden_size, s.q_width(), s.kv_width());
        let qkv = match a.qkv_layout {
            QkvLayout::Separate => QkvProjection::Separate {
                q: self.linear(TensorRole::AttnQ, layer, q, h, a.qkv_bias)?,
                k: self.linear(TensorRole::AttnK, layer, kv, h, a.qkv_bias)?,
                v: self.linear(TensorRole::AttnV, layer, kv, h, a.qkv_bias)?,
            },
            QkvLayout::Fused | QkvLayout::FusedPerHead | QkvLayout::FusedGrouped => {
                QkvProjection::Fused(self.fused_qkv(layer)?)
            }
        };
        let (q_norm, k_norm) = if a.qk_norm {
            (
                Some(self.norm(TensorRole::AttnQNorm, layer, s.head_dim)?),
                Some(self.norm(TensorRole::AttnKNorm, layer, s.head_dim)?),
            )
        } else {
            (None, None)
        };
        Ok(Attention {
            qkv,
            o_proj: self.linear(TensorRole::AttnOut, layer, h, q, a.o_bias)?,
            q_norm,
            k_norm,
            spec: a,
            num_heads: s.num_attention_heads,
            num_kv_heads: s.num_key_value_heads,
            head_dim: s.head_dim,
            window: s.layer_windows.get(layer).copied().flatten(),
            kv_f16: s.kv_cache_f16,
            alibi_slopes: match s.position {
                PositionEncoding::Alibi { max_bias } => {
                    Some(super::alibi::slopes(s.num_attention_heads, max_bias))
                }
                _ => None,
            },
        })
    }

    fn mlp(&self, layer: usize) -> Result<Mlp> {
        let s = self.spec;
        let (h, i, b) = (s.hidden_size, s.intermediate_size, s.mlp_bias);
        let down = self.linear(TensorRole::FfnDown, layer, h, i, b)?;
        Ok(match s.mlp {
            MlpKind::Gated { fused: false } => Mlp::Gated {
                gate: self.linear(TensorRole::FfnGate, layer, i, h, b)?,
                up: self.linear(TensorRole::FfnUp, layer, i, h, b)?,
                down,
            },
            MlpKind::Gated { fused: true } => Mlp::FusedGated {
                gate_up: self.linear(TensorRole::FfnGateUp, layer, 2 * i, h, b)?,
                down,
            },
            MlpKind::Plain => Mlp::Plain {
                up: self.linear(TensorRole::FfnUp, layer, i, h, b)?,
                down,
            },
        })
    }

    fn block(&self, layer: usize) -> Result<Block> {
        let s = self.spec;
        let h = s.hidden_size;
        let sandwich = s.block == BlockLayout::Sandwich;
        let shared_norm = s.block == BlockLayout::Parallel { shared_norm: true };
        Ok(Block {
            attn_norm: self.norm(TensorRole::AttnNorm, layer, h)?,
            attn: self.attention(layer)?,
            attn_post_norm: sandwich
                .then(|| self.norm(TensorRole::AttnPostNorm, layer, h))
                .transpose()?,
            ffn_norm: (!shared_norm)
                .then(|| self.norm(TensorRole::FfnNorm, layer, h))
                .transpose()?,
            mlp: self.mlp(layer)?,
            ffn_post_norm: sandwich
                .then(|| self.norm(TensorRole::FfnPostNorm, layer, h))
                .transpose()?,
        })
    }
}

/// For q/k/v projections stored per head or per group, the order in which
/// blocks of `head_dim` rows are taken to make `[q heads… | k heads… | v
/// heads…]`; `None` when the stored layout already is that.
pub(crate) fn qkv_block_order(s: &ModelSpec) -> Option<Vec<usize>> {
    let (nh, nkv) = (s.num_attention_heads, s.num_key_value_heads);
    match s.attention.qkv_layout {
        QkvLayout::FusedPerHead => {
            // [head][q,k,v] → block index head*3 + part
            let part = |p: usize| (0..nh).map(move |head| head * 3 + p);
            Some(part(0).chain(part(1)).chain(part(2)).collect())
        }
        QkvLayout::FusedGrouped => {
            // [group][q × g, k, v] → block index group*(g+2) + slot
            let g = nh / nkv.max(1);
            let q = (0..nkv).flat_map(|grp| (0..g).map(move |i| grp * (g + 2) + i));
            let k = (0..nkv).map(|grp| grp * (g + 2) + g);
            let v = (0..nkv).map(|grp| grp * (g + 2) + g + 1);
            Some(q.chain(k).chain(v).collect())
        }
        QkvLayout::Fused | QkvLayout::Separate => None,
    }
}

/// Takes the `head_dim`-row blocks of `t` (`[blocks · head_dim, cols]`) in
/// `order` (from [`qkv_block_order`]).
fn regroup_qkv_rows(t: &Tensor, order: &[usize], head_dim: usize) -> Result<Tensor> {
    let (rows, cols) = t.dims2()?;
    let blocks = t.reshape((rows / head_dim.max(1), head_dim, cols))?;
    let idx = Tensor::from_vec(
        order.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        order.len(),
        t.device(),
    )?;
    Ok(blocks.index_select(&idx, 0)?.reshape((rows, cols))?)
}

/// The type a row of `cols` weights is quantized to when `ty` was asked
/// for: `ty` if the row is whole blocks of it, else Q8_0 (as llama.cpp falls
/// back for k-quants on odd widths), else none.
fn quantized_type(ty: GgmlType, cols: usize) -> Option<GgmlType> {
    [ty, GgmlType::Q8_0]
        .into_iter()
        .find(|t| cols.is_multiple_of(t.block_size()))
}

/// Quantizes a row-major `[rows, cols]` matrix, rows in parallel.
fn quantize_matrix(ty: GgmlType, values: &[f32], rows: usize, cols: usize) -> Result<QMatrix> {
    use rayon::prelude::*;
    let blocks: Option<Vec<Vec<u8>>> = values
        .par_chunks(cols)
        .map(|row| quantize_row(ty, row))
        .collect();
    let bytes: Vec<u8> = blocks
        .ok_or_else(|| ModelError::InvalidInput(format!("cannot quantize to {ty}")))?
        .concat();
    QMatrix::from_vec(ty, rows, cols, bytes)
        .ok_or_else(|| ModelError::InvalidInput(format!("cannot quantize to {ty}")))
}

impl Decoder {
    /// Loads the decoder described by `spec` from `weights`, named as `arch` names them.
    pub fn load(spec: ModelSpec, arch: &Architecture, weights: &dyn WeightSource) -> Result<Self> {
        Self::load_named(spec, arch, arch.tensor_name, weights)
    }

    /// [`Decoder::load`] with tensors named by `names` instead of the
    /// family's Hugging Face names (GGUF files use llama.cpp's).
    pub fn load_named(
        spec: ModelSpec,
        arch: &Architecture,
        names: TensorNamer,
        weights: &dyn WeightSource,
    ) -> Result<Self> {
        Self::load_with(spec, arch, names, weights, None)
    }

    /// [`Decoder::load_named`], quantizing every projection to `quantize`
    /// (`None`: keep the stored types). Rows that are not whole blocks of
    /// the type fall back to Q8_0, or stay as stored.
    pub fn load_with(
        spec: ModelSpec,
        arch: &Architecture,
        names: TensorNamer,
        weights: &dyn WeightSource,
        quantize: Option<GgmlType>,
    ) -> Result<Self> {
        let loader = Loader {
            spec: &spec,
            arch,
            names,
            weights,
            quantize,
        };
        let (h, vocab) = (spec.hidden_size, spec.vocab_size);
        let embed_name = format!("{}.weight", loader.name(TensorRole::TokenEmbedding, 0)?);
        loader.check_shape(&embed_name, &[vocab, h])?;
        let embed_tokens = match weights.matrix(&embed_name)? {
            // A tied table is also the LM head: packed like other projections
            // (lookups then read rows from the packed copy).
            Some(m) if spec.tie_word_embeddings => Embedding::Quant(loader.packed(m)),
            // An untied table is read in place from the file: each lookup
            // releases the pages it mapped, so a long prompt over a hot
            // page cache does not leave megabytes of the table resident.
            Some(m) => match weights.mapped_pages() {
                Some(pages) => Embedding::Mapped { table: m, pages },
                None => Embedding::Quant(m),
            },
            None => Embedding::Dense(loader.weights.tensor(&embed_name)?),
        };
        let (embed_positions, rope) = match &spec.position {
            PositionEncoding::Rope(r) => (None, Some(Rope::new(r.clone()))),
            PositionEncoding::Learned => {
                let name = format!("{}.weight", loader.name(TensorRole::PositionEmbedding, 0)?);
                let table = loader.tensor(&name, &[spec.max_position_embeddings, h])?;
                (Some(table), None)
            }
            PositionEncoding::Alibi { .. } => (None, None),
        };
        let blocks = (0..spec.num_hidden_layers)
            .map(|l| loader.block(l))
            .collect::<Result<Vec<_>>>()?;
        let final_norm = loader.norm(TensorRole::OutputNorm, 0, h)?;
        let lm_head = if spec.tie_word_embeddings {
            embed_tokens.as_linear()
        } else {
            loader.linear(TensorRole::Output, 0, vocab, h, spec.lm_head_bias)?
        };
        let rope_local = match (&spec.position, spec.local_rope_theta) {
            (PositionEncoding::Rope(r), Some(theta)) => Some(Rope::new(crate::spec::RopeSpec {
                theta,
                scaling: crate::spec::RopeScaling::None,
                ..r.clone()
            })),
            _ => None,
        };
        Ok(Self {
            spec,
            rope_local,
            embed_tokens,
            embed_positions,
            blocks,
            final_norm,
            lm_head,
            rope,
        })
    }
}
