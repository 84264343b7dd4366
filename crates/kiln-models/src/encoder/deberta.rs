//! DeBERTa's disentangled attention (v2/v3, as transformers'
//! `DisentangledSelfAttention` computes it): besides content·content, each
//! score gets a content→position term (the query against the key's relative
//! position embedding) and a position→content term (the key against the
//! query's), over relative distances that are clamped to a span or put in
//! log buckets. The relative embeddings are shared by all layers (optionally
//! layer-normed); each layer projects them with its own key/query
//! projections (`share_att_key`) or separate position projections.

use candle_core::{Device, Tensor};

use super::config::EncoderConfig;
use crate::linear::Linear;
use crate::Result;

/// The relative-position part of DeBERTa attention.
#[derive(Debug, Clone)]
pub(super) struct Disentangled {
    /// `[2·span, hidden]`, normalised when the config says so.
    relative_embeddings: Tensor,
    /// Half the number of relative embeddings.
    span: i64,
    buckets: i64,
    max_relative: i64,
    c2p: bool,
    p2c: bool,
    /// Per layer, the position projections when they are not the content ones.
    position_projections: Vec<PositionProjections>,
}

/// A layer's separate position projections (`share_att_key: false`).
#[derive(Debug, Clone, Default)]
pub(super) struct PositionProjections {
    /// For content→position (`pos_key_proj`).
    pub key: Option<Linear>,
    /// For position→content (`pos_query_proj`).
    pub query: Option<Linear>,
}

/// The per-layer positional keys and queries, `[heads, 2·span, head_dim]`.
pub(super) struct PositionStates {
    key: Option<Tensor>,
    query: Option<Tensor>,
}

impl Disentangled {
    /// The relative part from the config, the relative embeddings (cut to
    /// the `2·span` rows used) and the layers' position projections (none
    /// when keys are shared).
    pub fn new(
        config: &EncoderConfig,
        relative_embeddings: Tensor,
        position_projections: Vec<PositionProjections>,
    ) -> std::result::Result<Self, String> {
        let max_relative = if config.max_relative_positions < 1 {
            config.max_position_embeddings as i64
        } else {
            config.max_relative_positions
        };
        let span = if config.position_buckets > 0 {
            config.position_buckets
        } else {
            max_relative
        };
        let has = |t: &str| config.pos_att_type.iter().any(|x| x == t);
        let rows = (2 * span) as usize;
        let available = relative_embeddings.dim(0).map_err(|e| e.to_string())?;
        if available < rows {
            return Err(format!(
                "rel_embeddings has {available} rows, the config needs {rows}"
            ));
        }
        let relative_embeddings = relative_embeddings
            .narrow(0, 0, rows)
            .and_then(|r| r.contiguous())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            relative_embeddings,
            span,
            buckets: config.position_buckets,
            max_relative,
            c2p: has("c2p"),
            p2c: has("p2c"),
            position_projections,
        })
    }

    /// How many terms a score sums (1 + one per relative term): the score is
    /// divided by `sqrt(head_dim · scale_factor)`.
    pub fn scale_factor(&self) -> usize {
        1 + usize::from(self.c2p) + usize::from(self.p2c)
    }

    /// Layer `index`'s positional keys and queries, projected by its own
    /// position projections or by the content ones (`key`, `query`).
    pub fn position_states(
        &self,
        index: usize,
        key: &Linear,
        query: &Linear,
        heads: usize,
    ) -> Result<PositionStates> {
        let separate = self.position_projections.get(index);
        let project = |linear: &Linear| -> Result<Tensor> {
            let y = linear.forward(&self.relative_embeddings)?;
            let rows = y.dim(0)?;
            let hd = y.dim(1)? / heads;
            Ok(y.reshape((rows, heads, hd))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let key = match (self.c2p, separate.and_then(|p| p.key.as_ref())) {
            (false, _) => None,
            (true, Some(own)) => Some(project(own)?),
            (true, None) => Some(project(key)?),
        };
        let query = match (self.p2c, separate.and_then(|p| p.query.as_ref())) {
            (false, _) => None,
            (true, Some(own)) => Some(project(own)?),
            (true, None) => Some(project(query)?),
        };
        Ok(PositionStates { key, query })
    }

    /// The gather indices of an input of `t` tokens (the same in every
    /// layer): for each query/key pair, the relative-embedding row each term reads.
    pub fn indices(&self, t: usize, heads: usize) -> Result<RelativeIndex> {
        let last = 2 * self.span - 1;
        // Relative position of query i to key j, bucketed.
        let rel: Vec<i64> = (0..t as i64)
            .flat_map(|i| (0..t as i64).map(move |j| (i, j)))
            .map(|(i, j)| relative_position(i - j, self.buckets, self.max_relative))
            .collect();
        let index = |f: &dyn Fn(i64) -> i64| -> Result<Tensor> {
            let idx: Vec<u32> = rel.iter().map(|&r| f(r).clamp(0, last) as u32).collect();
            Ok(Tensor::from_vec(idx, (1, t, t), &Device::Cpu)?
                .broadcast_as((heads, t, t))?
                .contiguous()?)
        };
        Ok(RelativeIndex {
            c2p: self.c2p.then(|| index(&|r| r + self.span)).transpose()?,
            p2c: self.p2c.then(|| index(&|r| self.span - r)).transpose()?,
        })
    }

    /// The relative terms `[heads, t, t]` for one input's queries and keys
    /// `[heads, t, head_dim]`, already divided by the score scale; `index`
    /// from [`Self::indices`] for this input's length.
    pub fn bias(
        &self,
        q: &Tensor,
        k: &Tensor,
        states: &PositionStates,
        index: &RelativeIndex,
    ) -> Result<Tensor> {
        let (heads, t, hd) = q.dims3()?;
        let scale = ((hd * self.scale_factor()) as f64).sqrt();
        let mut score = Tensor::zeros((heads, t, t), q.dtype(), q.device())?;
        if let (Some(pos_key), Some(idx)) = (&states.key, &index.c2p) {
            // content→position: q_i · K_pos[δ(i, j)]
            let c2p = q.matmul(&pos_key.t()?)?.gather(idx, 2)?;
            score = (score + (c2p / scale)?)?;
        }
        if let (Some(pos_query), Some(idx)) = (&states.query, &index.p2c) {
            // position→content: k_j · Q_pos[δ(j, i)], read transposed.
            let p2c = k.matmul(&pos_query.t()?)?.gather(idx, 2)?.transpose(1, 2)?;
            score = (score + (p2c / scale)?)?;
        }
        Ok(score)
    }
}

/// Where each relative term reads, per query/key pair (`[heads, t, t]`).
#[derive(Debug, Clone)]
pub(super) struct RelativeIndex {
    c2p: Option<Tensor>,
    p2c: Option<Tensor>,
}

/// DeBERTa's relative position of a query to a key at distance `relative`
/// (`query − key`): exact near zero, log-bucketed beyond half the buckets.
fn relative_position(relative: i64, buckets: i64, max_position: i64) -> i64 {
    if buckets <= 0 || max_position <= 0 {
        return relative;
    }
    let mid = buckets / 2;
    let abs = if relative < mid && relative > -mid {
        mid - 1
    } else {
        relative.abs()
    };
    if abs <= mid {
        return relative;
    }
    // In f32, as torch computes it (the ceiling is sensitive to rounding).
    let log = ((abs as f32 / mid as f32).ln()
        / (((max_position - 1) as f64 / mid as f64) as f32).ln()
        * (mid - 1) as f32)
        .ceil() as i64
        + mid;
    log * relative.signum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_buckets_match_transformers() {
        // make_log_bucket_position(rel, bucket_size=8, max_position=512) in torch.
        let want = [
            (0, 0),
            (3, 3),
            (-4, -4),
            (5, 5),
            (6, 5),
            (12, 5),
            (-20, -5),
            (100, 6),
            (511, 7),
        ];
        for (rel, bucket) in want {
            assert_eq!(relative_position(rel, 8, 512), bucket, "{rel}");
        }
        assert_eq!(relative_position(-40, -1, 16), -40);
    }
}
