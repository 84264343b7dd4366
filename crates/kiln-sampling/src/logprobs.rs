//! Log-probabilities of chosen tokens and their top alternatives.

use kiln_core::TokenId;

use crate::softmax::log_softmax;

/// The log-probability of a chosen token and the top alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The chosen token.
    pub token: TokenId,
    /// Its log-probability.
    pub logprob: f32,
    /// The most likely tokens with their log-probabilities, best first.
    pub top: Vec<(TokenId, f32)>,
}

/// Log-probabilities from raw `logits` (before any processor, as OpenAI reports them).
pub fn token_logprob(logits: &[f32], token: TokenId, top_n: usize) -> TokenLogprob {
    let lp = log_softmax(logits);
    let mut idx: Vec<usize> = (0..lp.len()).collect();
    let n = top_n.min(idx.len());
    if n > 0 && n < idx.len() {
        idx.select_nth_unstable_by(n - 1, |&a, &b| lp[b].total_cmp(&lp[a]).then(a.cmp(&b)));
        idx.truncate(n);
    }
    idx.truncate(n);
    idx.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]).then(a.cmp(&b)));
    TokenLogprob {
        token,
        logprob: lp.get(token as usize).copied().unwrap_or(f32::NEG_INFINITY),
        top: idx.into_iter().map(|i| (i as TokenId, lp[i])).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_alternatives_are_sorted_and_normalised() {
        let r = token_logprob(&[0.0, 2.0, 1.0, -1.0], 2, 2);
        assert_eq!(r.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        let total: f32 = [0.0f32, 2.0, 1.0, -1.0].iter().map(|l| l.exp()).sum();
        assert!((r.logprob - (1.0f32.exp() / total).ln()).abs() < 1e-6);
    }
}
