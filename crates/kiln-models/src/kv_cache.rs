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
