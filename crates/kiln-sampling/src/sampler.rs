//! Picking the next token from processed logits.

use kiln_core::TokenId;

use crate::rng::Rng;
use crate::softmax::{compact_finite, fast_exp};

/// Index of the largest finite-or-not value; the first on ties (torch's argmax).
pub fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// How the next token is chosen.
#[derive(Debug, Clone)]
pub enum Sampler {
    /// The most likely token.
    Greedy,
    /// A draw from softmax(logits) with a seeded generator.
    Multinomial(Rng),
}

impl Sampler {
    /// Picks a token from processed logits; `None` when every logit is `-inf`.
    pub fn sample(&mut self, logits: &[f32]) -> Option<TokenId> {
        match self {
            Sampler::Greedy => argmax(logits).map(|i| i as TokenId),
            Sampler::Multinomial(rng) => {
                if let Some((idx, values)) = compact_finite(logits) {
                    let mut inner = Sampler::Multinomial(rng.clone());
                    let picked = inner.sample(&values);
                    if let Sampler::Multinomial(advanced) = inner {
                        *rng = advanced;
                    }
                    return picked
                        .and_then(|i| idx.get(i as usize))
                        .map(|&i| i as TokenId);
                }
                // Two passes over exp(l - max) without a buffer: the sum,
                // then the walk to the drawn point.
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if !max.is_finite() {
                    return None;
                }
                let total: f32 = logits.iter().map(|&l| fast_exp(l - max)).sum();
                let u = rng.next_f64() as f32 * total;
                let mut cumulative = 0f32;
                let mut last_nonzero = None;
                for (i, &l) in logits.iter().enumerate() {
                    let p = fast_exp(l - max);
                    if p > 0.0 {
                        cumulative += p;
                        last_nonzero = Some(i);
                        if u < cumulative {
                            return Some(i as TokenId);
                        }
                    }
                }
                // Rounding left u above the total: take the last possible token.
                last_nonzero.map(|i| i as TokenId)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_max() {
        assert_eq!(Sampler::Greedy.sample(&[0.0, 2.0, 2.0]), Some(1));
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn multinomial_never_picks_removed_tokens() {
        let mut s = Sampler::Multinomial(Rng::new(7));
        let logits = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 1.0];
        for _ in 0..1000 {
            let t = s.sample(&logits).unwrap();
            assert!(t == 1 || t == 3);
        }
        assert_eq!(s.sample(&[f32::NEG_INFINITY; 3]), None);
    }
}
