//! The key/value cache of one sequence: per layer, keys and values stored
//! token-major (`[position, kv_heads, head_dim]`) in growable buffers, so a
//! new token appends without copying what is cached, and cloning a cache
//! (several sequences sharing a prefill) copies it deeply.

use candle_core::{Device, Tensor};

use crate::{ModelError, Result};

/// One layer's cached keys and values.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerKv {
    /// `[len, kv_heads, head_dim]` keys.
    pub(crate) k: KvRows,
    /// `[len, kv_heads, head_dim]` values.
    pub(crate) v: KvRows,
}

/// A layer's keys or values, token-major: f32, or f16 for models whose
/// attention rounds its cache to f16 (GGUF files, as llama.cpp's default
/// cache) — storing them as f16 is that rounding, so nothing else changes,
/// and it halves the cache (SmolLM2-135M at 512 tokens: 22 → 11 MB).
#[derive(Debug, Clone)]
pub(crate) enum KvRows {
    /// Full precision.
    F32(Vec<f32>),
    /// Values rounded to f16.
    F16(Vec<half::f16>),
}

impl Default for KvRows {
    fn default() -> Self {
        Self::F32(Vec::new())
    }
}

impl KvRows {
    /// Number of stored values.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F16(v) => v.len(),
        }
    }

    /// Appends `rows`, rounded to f16 when `half` (an empty buffer then
    /// switches to f16 storage, which does the rounding).
    fn append(&mut self, rows: &[f32], half: bool) {
        if half && self.len() == 0 {
            *self = Self::F16(Vec::new());
        }
        match self {
            Self::F32(v) => {
                grow_for(v, rows.len());
                let start = v.len();
                v.extend_from_slice(rows);
                if half {
                    // Only if a layer's f32 rows were followed by f16 ones.
                    v[start..]
                        .iter_mut()
                        .for_each(|x| *x = crate::kernels::vector::round_f16(*x));
                }
            }
            Self::F16(v) => {
                use half::slice::HalfFloatSliceExt;
                grow_for(v, rows.len());
                let start = v.len();
                v.resize(start + rows.len(), half::f16::ZERO);
                v[start..].convert_from_f32_slice(rows);
            }
        }
    }

    /// The stored values for the attention kernels.
    pub(crate) fn view(&self) -> crate::kernels::attention::KvView<'_> {
        use crate::kernels::attention::KvView;
        match self {
            Self::F32(v) => KvView::F32(v),
            Self::F16(v) => KvView::F16(v),
        }
    }

    /// The values as f32 (borrowed when stored so).
    pub(crate) fn to_f32(&self) -> std::borrow::Cow<'_, [f32]> {
        match self {
            Self::F32(v) => std::borrow::Cow::Borrowed(v),
            Self::F16(v) => {
                use half::slice::HalfFloatSliceExt;
                let mut out = vec![0f32; v.len()];
                v.convert_to_f32_slice(&mut out);
                std::borrow::Cow::Owned(out)
            }
        }
    }
}

/// Keys and values of every layer for the tokens seen so far.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    len: usize,
    /// The tokens cached so far (to recompute when RoPE frequencies change).
    token_ids: Vec<u32>,
}

impl KvCache {
    /// An empty cache for a model with `layers` layers.
    pub fn new(layers: usize) -> Self {
        Self {
            layers: vec![LayerKv::default(); layers],
            len: 0,
            token_ids: Vec::new(),
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends token-major keys and values (`[new, kv_heads, head_dim]`,
    /// flattened) to `layer` and returns the layer's whole cache. With
    /// `half` the values are rounded to f16 (llama.cpp's f16 cache) and an
    /// empty layer stores them as f16.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &[f32],
        v: &[f32],
        half: bool,
    ) -> Result<&LayerKv> {
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| ModelError::InvalidInput(format!("cache has no layer {layer}")))?;
        slot.k.append(k, half);
        slot.v.append(v, half);
        Ok(slot)
    }

    /// Records that `ids` were added to every layer.
    pub(crate) fn advance(&mut self, ids: &[u32]) {
        self.len += ids.len();
        self.token_ids.extend_from_slice(ids);
    }

    /// The cached tokens.
    pub fn token_ids(&self) -> &[u32] {
        &self.token_ids
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = LayerKv::default());
        self.len = 0;
        self.token_ids.clear();
    }
}

/// Reserves room for `extra` more values in a cache vector, growing it by
/// a quarter of its length (at least `extra`) instead of `Vec`'s doubling:
/// the first decode step after a 512-token prompt doubled every layer's
/// keys and values to 1,024 tokens' worth, 16 MiB of f32 that a 640-token
/// run of SmolLM2-135M never used. Growth stays geometric, so appending
/// one token at a time still copies each value a bounded number of times.
fn grow_for<T>(values: &mut Vec<T>, extra: usize) {
    let needed = values.len() + extra;
    if needed > values.capacity() {
        let target = needed.max(values.len() + values.len() / 4);
        values.reserve_exact(target - values.len());
    }
}

impl LayerKv {
    /// Keys and values as `[kv_heads, len, head_dim]` tensors.
    pub(crate) fn tensors(&self, kv_heads: usize, head_dim: usize) -> Result<(Tensor, Tensor)> {
        let len = self.k.len() / (kv_heads * head_dim).max(1);
        let shape = (len, kv_heads, head_dim);
        let k = Tensor::from_slice(&self.k.to_f32(), shape, &Device::Cpu)?
            .transpose(0, 1)?
            .contiguous()?;
        let v = Tensor::from_slice(&self.v.to_f32(), shape, &Device::Cpu)?
            .transpose(0, 1)?
            .contiguous()?;
        Ok((k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_grows_by_a_quarter_and_keeps_every_value() {
        let row = 3 * 64;
        let mut cache = KvCache::new(2);
        let prompt: Vec<f32> = (0..512 * row).map(|i| i as f32).collect();
        for layer in 0..2 {
            cache.append(layer, &prompt, &prompt, false).unwrap();
        }
        cache.advance(&[7; 512]);
        let mut expected = prompt.clone();
        for step in 0..200 {
            let token: Vec<f32> = (0..row).map(|i| -((step * row + i) as f32)).collect();
            for layer in 0..2 {
                let kv = cache.append(layer, &token, &token, false).unwrap();
                // Never more than a quarter beyond what is held (Vec's doubling
                // reserved 1,024 tokens at the first decode step).
                let KvRows::F32(k) = &kv.k else {
                    panic!("f32 cache expected")
                };
                assert!(k.capacity() <= k.len() + k.len() / 4 + row);
            }
            cache.advance(&[1]);
            expected.extend_from_slice(&token);
        }
        assert_eq!(cache.len(), 712);
        let kv = cache.append(1, &[], &[], false).unwrap();
        assert_eq!(kv.k.to_f32().as_ref(), expected.as_slice());
        assert_eq!(kv.v.to_f32().as_ref(), expected.as_slice());
    }

    #[test]
    fn an_f16_cache_holds_f16_rounded_values_exactly() {
        let values: Vec<f32> = (0..96)
            .map(|i| half::f16::from_f32(i as f32 * 0.37 - 11.0).to_f32())
            .collect();
        let mut cache = KvCache::new(1);
        cache.append(0, &values[..48], &values[48..], true).unwrap();
        let kv = cache.append(0, &values[48..], &values[..48], true).unwrap();
        assert!(matches!(kv.k, KvRows::F16(_)));
        let k: Vec<f32> = [&values[..48], &values[48..]].concat();
        assert_eq!(kv.k.to_f32().as_ref(), k.as_slice());
        assert_eq!(kv.k.view().len(), 96);
    }
}
