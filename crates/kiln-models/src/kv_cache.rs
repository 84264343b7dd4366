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
    pub(crate) k: Vec<f32>,
    /// `[len, kv_heads, head_dim]` values.
    pub(crate) v: Vec<f32>,
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
    /// flattened) to `layer` and returns the layer's whole cache.
    pub(crate) fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) -> Result<&LayerKv> {
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| ModelError::InvalidInput(format!("cache has no layer {layer}")))?;
        grow_for(&mut slot.k, k.len());
        grow_for(&mut slot.v, v.len());
        slot.k.extend_from_slice(k);
        slot.v.extend_from_slice(v);
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
fn grow_for(values: &mut Vec<f32>, extra: usize) {
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
        let k = Tensor::from_slice(&self.k, shape, &Device::Cpu)?
            .transpose(0, 1)?
            .contiguous()?;
        let v = Tensor::from_slice(&self.v, shape, &Device::Cpu)?
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
            cache.append(layer, &prompt, &prompt).unwrap();
        }
        cache.advance(&[7; 512]);
        let mut expected = prompt.clone();
        for step in 0..200 {
            let token: Vec<f32> = (0..row).map(|i| -((step * row + i) as f32)).collect();
            for layer in 0..2 {
                let kv = cache.append(layer, &token, &token).unwrap();
                // Never more than a quarter beyond what is held (Vec's doubling
                // reserved 1,024 tokens at the first decode step).
                assert!(kv.k.capacity() <= kv.k.len() + kv.k.len() / 4 + row);
            }
            cache.advance(&[1]);
            expected.extend_from_slice(&token);
        }
        assert_eq!(cache.len(), 712);
        let kv = cache.append(1, &[], &[]).unwrap();
        assert_eq!(
            (kv.k.as_slice(), kv.v.as_slice()),
            (expected.as_slice(), expected.as_slice())
        );
    }
}
