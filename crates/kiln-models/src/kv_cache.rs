//! The key/value cache of one sequence.

use candle_core::Tensor;

use crate::Result;

/// Keys and values of every layer for the tokens seen so far.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Per layer: keys and values `[kv_heads, len, head_dim]`.
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
    /// The tokens cached so far (to recompute when RoPE frequencies change).
    token_ids: Vec<u32>,
}

impl KvCache {
    /// An empty cache for a model with `layers` layers.
    pub fn new(layers: usize) -> Self {
        Self {
            layers: vec![None; layers],
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

    /// Appends `k`, `v` (`[kv_heads, new, head_dim]`) to `layer` and returns
    /// the full keys and values.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let slot = self.layers.get_mut(layer).ok_or_else(|| {
            crate::ModelError::InvalidInput(format!("cache has no layer {layer}"))
        })?;
        let (k, v) = match slot.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, k], 1)?, Tensor::cat(&[&pv, v], 1)?),
            None => (k.clone(), v.clone()),
        };
        *slot = Some((k.clone(), v.clone()));
        Ok((k, v))
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
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
        self.token_ids.clear();
    }
}
