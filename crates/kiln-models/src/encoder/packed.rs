//! The encoder layers of plain bidirectional models (BERT, MiniLM,
//! RoBERTa, XLM-R: absolute positions, erf-GELU or ReLU) with their
//! weights packed once at load, run as one pass per thread: a batch's
//! inputs are split into as many groups as there are threads (by token
//! count), and each thread takes its group through every layer alone —
//! fused `[q | k | v]` projection, attention per input, then the output
//! projection, LayerNorm, MLP and LayerNorm in blocks of rows that stay in
//! the core's cache. No hand-offs between threads inside a layer, and no
//! tensors: the per-operation threading of the generic path cost more than
//! its arithmetic on small batches (BENCHMARKS.md, issue 7).

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::fused::{gelu_erf_serial, norm_row};
use crate::kernels::bidirectional_attention::{self, Scratch, Shape};
use crate::kernels::packed_gemm::{linear_into, PackedLinear};
use crate::linear::Linear;
use crate::Result;

/// Rows of the output-projection + MLP stage handled at once: their
/// `[rows, intermediate]` activations stay in L2.
const ROW_BLOCK: usize = 96;

/// Groups of inputs per thread in a parallel batch.
const GROUPS_PER_THREAD: usize = 4;

/// The MLP's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Activation {
    /// GELU, exact (erf) form.
    GeluErf,
    /// max(0, x).
    Relu,
}

/// A LayerNorm's weights.
#[derive(Debug, Clone)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

#[derive(Debug, Clone)]
struct PackedLayer {
    qkv: PackedLinear,
    o: PackedLinear,
    attn_norm: Norm,
    up: PackedLinear,
    down: PackedLinear,
    out_norm: Norm,
}

/// One layer's weights as the loader found them.
pub(super) struct LayerWeights<'a> {
    /// Query, key, value and attention-output projections.
    pub(super) q: &'a Linear,
    pub(super) k: &'a Linear,
    pub(super) v: &'a Linear,
    pub(super) o: &'a Linear,
    /// LayerNorm after attention: weight, bias.
    pub(super) attn_norm: (&'a Tensor, &'a Tensor),
    /// The MLP.
    pub(super) up: &'a Linear,
    pub(super) down: &'a Linear,
    /// LayerNorm after the MLP: weight, bias.
    pub(super) out_norm: (&'a Tensor, &'a Tensor),
}

/// The embedding tables as the loader found them.
#[derive(Clone, Copy)]
pub(super) struct EmbeddingWeights<'a> {
    /// `[vocab, hidden]` (read in place at each call, not copied).
    pub(super) word: &'a Tensor,
    /// `[positions, hidden]`.
    pub(super) position: Option<&'a Tensor>,
    /// `[types, hidden]`.
    pub(super) token_type: Option<&'a Tensor>,
    /// The LayerNorm after the sum: weight, bias.
    pub(super) norm: (&'a Tensor, &'a Tensor),
}

/// Position and token-type tables (small: copied at load) and the
/// embeddings' LayerNorm.
#[derive(Debug, Clone)]
struct Embeddings {
    position: Vec<f32>,
    /// Empty when the model has no token types.
    token_type: Vec<f32>,
    norm: Norm,
}

/// All layers of an encoder, packed.
#[derive(Debug, Clone)]
pub(super) struct PackedLayers {
    embeddings: Embeddings,
    layers: Vec<PackedLayer>,
    hidden: usize,
    intermediate: usize,
    heads: usize,
    activation: Activation,
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

/// A dense layer with a bias, packed; `None` for any other kind.
fn dense(layers: &[&Linear]) -> Result<Option<PackedLinear>> {
    let mut weight = Vec::new();
    let mut bias = Vec::new();
    let mut n = 0;
    let mut k = None;
    for layer in layers {
        let Linear::Dense {
            weight: w,
            bias: Some(b),
        } = layer
        else {
            return Ok(None);
        };
        let (rows, cols) = w.dims2()?;
        if *k.get_or_insert(cols) != cols || b.elem_count() != rows {
            return Ok(None);
        }
        weight.extend(values(w)?);
        bias.extend(values(b)?);
        n += rows;
    }
    Ok(k.and_then(|k| PackedLinear::new(&weight, Some(&bias), n, k)))
}

fn norm((gamma, beta): (&Tensor, &Tensor), eps: f32, hidden: usize) -> Result<Option<Norm>> {
    let (gamma, beta) = (values(gamma)?, values(beta)?);
    Ok((gamma.len() == hidden && beta.len() == hidden).then_some(Norm { gamma, beta, eps }))
}

impl PackedLayers {
    /// Packs the layers; `None` when one of them has a shape or kind this
    /// path does not run (a LoRA-wrapped or bias-free projection, say).
    pub(super) fn new(
        embeddings: EmbeddingWeights,
        layers: &[LayerWeights],
        hidden: usize,
        heads: usize,
        eps: f32,
        activation: Activation,
    ) -> Result<Option<Self>> {
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Ok(None);
        }
        let Some(position) = embeddings.position else {
            return Ok(None);
        };
        let position = values(position)?;
        let token_type = embeddings
            .token_type
            .map(values)
            .transpose()?
            .unwrap_or_default();
        let Some(embed_norm) = norm(embeddings.norm, eps, hidden)? else {
            return Ok(None);
        };
        if embeddings.word.dims2()?.1 != hidden
            || !position.len().is_multiple_of(hidden)
            || !token_type.len().is_multiple_of(hidden)
        {
            return Ok(None);
        }
        let embeddings = Embeddings {
            position,
            token_type,
            norm: embed_norm,
        };
        let mut packed = Vec::with_capacity(layers.len());
        let mut intermediate = 0;
        for l in layers {
            let (Some(qkv), Some(o), Some(up), Some(down)) = (
                dense(&[l.q, l.k, l.v])?,
                dense(&[l.o])?,
                dense(&[l.up])?,
                dense(&[l.down])?,
            ) else {
                return Ok(None);
            };
            intermediate = up.n();
            let fits = qkv.k() == hidden
                && qkv.n() == 3 * hidden
                && o.k() == hidden
                && o.n() == hidden
                && up.k() == hidden
                && down.k() == intermediate
                && down.n() == hidden;
            let (Some(attn_norm), Some(out_norm)) = (
                norm(l.attn_norm, eps, hidden)?,
                norm(l.out_norm, eps, hidden)?,
            ) else {
                return Ok(None);
            };
            if !fits {
                return Ok(None);
            }
            packed.push(PackedLayer {
                qkv,
                o,
                attn_norm,
                up,
                down,
                out_norm,
            });
        }
        Ok(Some(Self {
            embeddings,
            layers: packed,
            hidden,
            intermediate,
            heads,
            activation,
        }))
    }

    /// The first hidden states `[tokens, hidden]`: word (`word`, the
    /// `[vocab, hidden]` table) + position + token type (0 when `types` is
    /// `None`), layer-normed, on all threads. Errors name an id, position
    /// or type outside its table.
    pub(super) fn embed(
        &self,
        word: &[f32],
        ids: &[u32],
        positions: &[u32],
        types: Option<&[u32]>,
    ) -> Result<Vec<f32>> {
        let h = self.hidden;
        let e = &self.embeddings;
        let rows = |table: &[f32]| table.len() / h;
        let outside = |what: &str, v: u32, n: usize| {
            crate::ModelError::InvalidInput(format!("{what} {v} is outside the table of {n}"))
        };
        if positions.len() != ids.len() || types.is_some_and(|t| t.len() != ids.len()) {
            return Err(crate::ModelError::InvalidInput(
                "ids, positions and types differ in length".into(),
            ));
        }
        if let Some(&id) = ids.iter().find(|&&i| i as usize >= rows(word)) {
            return Err(outside("token id", id, rows(word)));
        }
        if let Some(&p) = positions.iter().find(|&&p| p as usize >= rows(&e.position)) {
            return Err(outside("position", p, rows(&e.position)));
        }
        let type_rows = rows(&e.token_type);
        if let Some(&t) = types
            .into_iter()
            .flatten()
            .find(|&&t| t as usize >= type_rows.max(1))
        {
            return Err(outside("token type", t, type_rows));
        }
        let mut x = vec![0f32; ids.len() * h];
        x.par_chunks_mut(ROW_BLOCK * h)
            .enumerate()
            .for_each(|(block, out)| {
                let mut sum = vec![0f32; h];
                for (i, row) in out.chunks_exact_mut(h).enumerate() {
                    let at = block * ROW_BLOCK + i;
                    let w = ids[at] as usize * h;
                    sum.copy_from_slice(&word[w..w + h]);
                    if type_rows > 0 {
                        let t = types.map_or(0, |t| t[at]) as usize * h;
                        for (s, &v) in sum.iter_mut().zip(&e.token_type[t..t + h]) {
                            *s += v;
                        }
                    }
                    let p = positions[at] as usize * h;
                    let n = &e.norm;
                    norm_row(row, &sum, &e.position[p..p + h], &n.gamma, &n.beta, n.eps);
                }
            });
        Ok(x)
    }

    /// Runs every layer over `x` (`[Σ lens, hidden]`, the inputs' rows
    /// stacked), in place; attention stays within each input.
    pub(super) fn forward(&self, x: &mut [f32], lens: &[usize]) -> Result<()> {
        let total: usize = lens.iter().sum();
        if x.len() != total * self.hidden || lens.contains(&0) {
            return Err(crate::ModelError::InvalidInput(format!(
                "{} hidden values for inputs of {lens:?} tokens",
                x.len()
            )));
        }
        // Several groups per thread, taken as threads come free: the cores
        // of a shared VM do not run at the same speed.
        let threads = rayon::current_num_threads();
        let groups = split_by_tokens(
            lens,
            if threads > 1 {
                GROUPS_PER_THREAD * threads
            } else {
                1
            },
        );
        let mut parts = Vec::with_capacity(groups.len());
        let mut rest = x;
        for group in groups {
            let rows: usize = group.iter().sum();
            let (head, tail) = rest.split_at_mut(rows * self.hidden);
            parts.push((head, group));
            rest = tail;
        }
        if threads == 1 || parts.len() == 1 {
            for (xs, group) in parts {
                self.forward_group(xs, group);
            }
        } else {
            // Largest groups first, each thread taking the next one as it
            // comes free, so the pass ends with small groups on both.
            parts.sort_by_key(|(xs, _)| xs.len());
            let queue = std::sync::Mutex::new(parts);
            let next = || queue.lock().ok().and_then(|mut q| q.pop());
            (0..threads).into_par_iter().for_each(|_| {
                while let Some((xs, group)) = next() {
                    self.forward_group(xs, group);
                }
            });
        }
        Ok(())
    }

    /// Every layer over one group of inputs, on this thread.
    fn forward_group(&self, x: &mut [f32], lens: &[usize]) {
        let (h, inter) = (self.hidden, self.intermediate);
        let rows: usize = lens.iter().sum();
        let block = ROW_BLOCK.min(rows);
        let mut qkv = vec![0f32; rows * 3 * h];
        let mut ctx = vec![0f32; rows * h];
        let mut projected = vec![0f32; block * h];
        let mut attended = vec![0f32; block * h];
        let mut act = vec![0f32; block * inter];
        let mut scratch = Scratch::default();
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        for l in &self.layers {
            // Checked shapes: every product below fits its buffers.
            let _ = linear_into(x, h, rows, &l.qkv, &mut qkv, 3 * h);
            let mut start = 0;
            for &t in lens {
                let shape = Shape {
                    tokens: t,
                    heads: self.heads,
                    head_dim,
                    scale,
                };
                let _ = bidirectional_attention::attend(
                    &qkv[start * 3 * h..],
                    3 * h,
                    shape,
                    &mut ctx[start * h..],
                    h,
                    &mut scratch,
                );
                start += t;
            }
            for r0 in (0..rows).step_by(block) {
                let n = block.min(rows - r0);
                let xs = &mut x[r0 * h..(r0 + n) * h];
                let _ = linear_into(&ctx[r0 * h..], h, n, &l.o, &mut projected, h);
                add_norm(&mut attended[..n * h], &projected, xs, &l.attn_norm);
                let _ = linear_into(&attended, h, n, &l.up, &mut act, inter);
                match self.activation {
                    Activation::GeluErf => gelu_erf_serial(&mut act[..n * inter]),
                    Activation::Relu => act[..n * inter].iter_mut().for_each(|v| *v = v.max(0.0)),
                }
                let _ = linear_into(&act, inter, n, &l.down, &mut projected, h);
                add_norm(xs, &projected, &attended, &l.out_norm);
            }
        }
    }
}

/// `out = LayerNorm(a + b)` row by row (`out`'s length decides the rows).
fn add_norm(out: &mut [f32], a: &[f32], b: &[f32], norm: &Norm) {
    let h = norm.gamma.len();
    for ((o, a), b) in out
        .chunks_exact_mut(h)
        .zip(a.chunks_exact(h))
        .zip(b.chunks_exact(h))
    {
        norm_row(o, a, b, &norm.gamma, &norm.beta, norm.eps);
    }
}

/// `lens` cut into at most `parts` consecutive groups of about equal
/// token counts (none empty).
fn split_by_tokens(lens: &[usize], parts: usize) -> Vec<&[usize]> {
    let total: usize = lens.iter().sum();
    let parts = parts.clamp(1, lens.len().max(1));
    let mut groups = Vec::with_capacity(parts);
    let mut first = 0;
    let mut seen = 0;
    for (i, &t) in lens.iter().enumerate() {
        seen += t;
        let goal = total * (groups.len() + 1) / parts;
        if seen >= goal && groups.len() + 1 < parts {
            groups.push(&lens[first..=i]);
            first = i + 1;
        }
    }
    if first < lens.len() {
        groups.push(&lens[first..]);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_consecutive_balanced_and_cover_every_input() {
        let lens = [10, 12, 30, 31, 40, 90];
        let groups = split_by_tokens(&lens, 2);
        assert_eq!(groups, vec![&lens[..5], &lens[5..]]);
        assert_eq!(split_by_tokens(&lens, 1), vec![&lens[..]]);
        assert_eq!(split_by_tokens(&[5], 4), vec![&[5][..]]);
        let many = split_by_tokens(&lens, 16);
        assert!(many.iter().all(|g| !g.is_empty()) && many.len() > 2);
        assert_eq!(many.concat(), lens);
        assert!(split_by_tokens(&[], 2).is_empty());
    }
}
