//! Warpers that reshape the distribution: temperature, top-k, top-p, min-p
//! and typical-p, each with transformers' exact rule (`min_tokens_to_keep` = 1).

use crate::processor::{History, LogitsProcessor};
use crate::softmax::{softmax, sorted_finite_ascending};

/// Divides logits by the temperature (> 0).
#[derive(Debug, Clone)]
pub struct Temperature {
    /// The temperature.
    pub temperature: f32,
}

impl LogitsProcessor for Temperature {
    fn apply(&mut self, logits: &mut [f32], _history: &History<'_>) {
        for l in logits.iter_mut() {
            *l /= self.temperature;
        }
    }
    fn name(&self) -> &'static str {
        "temperature"
    }
}

/// Keeps tokens whose logit is at least the k-th largest (ties kept).
#[derive(Debug, Clone)]
pub struct TopK {
    /// k (≥ 1).
    pub k: usize,
}

impl LogitsProcessor for TopK {
    fn apply(&mut self, logits: &mut [f32], _history: &History<'_>) {
        let k = self.k.clamp(1, logits.len().max(1));
        if k >= logits.len() {
            return;
        }
        let mut scratch = logits.to_vec();
        let (_, kth, _) = scratch.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let threshold = *kth;
        for l in logits.iter_mut() {
            if *l < threshold {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    fn name(&self) -> &'static str {
        "top_k"
    }
}

/// Nucleus sampling: in ascending order, removes tokens whose cumulative
/// probability is ≤ 1 − p; the most likely token always stays.
#[derive(Debug, Clone)]
pub struct TopP {
    /// p in (0, 1].
    pub p: f32,
}

impl LogitsProcessor for TopP {
    fn apply(&mut self, logits: &mut [f32], _history: &History<'_>) {
        if self.p >= 1.0 {
            return;
        }
        let probs = softmax(logits);
        let order = sorted_finite_ascending(logits);
        let mut cumulative = 0f32;
        let last = order.len().saturating_sub(1);
        for (rank, &i) in order.iter().enumerate() {
            cumulative += probs[i];
            if cumulative <= 1.0 - self.p && rank < last {
                logits[i] = f32::NEG_INFINITY;
            }
        }
    }
    fn name(&self) -> &'static str {
        "top_p"
    }
}

/// Removes tokens whose probability is below `min_p` × the top probability.
#[derive(Debug, Clone)]
pub struct MinP {
    /// min_p in [0, 1].
    pub min_p: f32,
}

impl LogitsProcessor for MinP {
    fn apply(&mut self, logits: &mut [f32], _history: &History<'_>) {
        let probs = softmax(logits);
        let top = probs.iter().copied().fold(0f32, f32::max);
        let threshold = self.min_p * top;
        let best = crate::sampler::argmax(logits);
        for (i, (l, p)) in logits.iter_mut().zip(&probs).enumerate() {
            if *p < threshold && Some(i) != best {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    fn name(&self) -> &'static str {
        "min_p"
    }
}

/// Locally typical sampling (Meister et al.), as transformers implements it.
#[derive(Debug, Clone)]
pub struct TypicalP {
    /// Probability mass to keep, in (0, 1).
    pub mass: f32,
}

impl LogitsProcessor for TypicalP {
    fn apply(&mut self, logits: &mut [f32], _history: &History<'_>) {
        if self.mass >= 1.0 {
            return;
        }
        let probs = softmax(logits);
        let log_probs: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let entropy: f32 = -probs
            .iter()
            .zip(&log_probs)
            .filter(|(p, _)| **p > 0.0)
            .map(|(p, lp)| p * lp)
            .sum::<f32>();
        // Distance of each token's surprise from the entropy; -inf logits go last.
        let shifted: Vec<f32> = log_probs
            .iter()
            .map(|lp| {
                if lp.is_finite() {
                    (-lp - entropy).abs()
                } else {
                    f32::INFINITY
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| shifted[a].total_cmp(&shifted[b]));
        let mut cumulative = 0f32;
        let mut last_ind = 0usize;
        for &i in &order {
            cumulative += probs[i];
            if cumulative < self.mass {
                last_ind += 1;
            }
        }
        let last_ind = last_ind.min(order.len().saturating_sub(1));
        let cutoff = shifted[order[last_ind]];
        for (rank, &i) in order.iter().enumerate() {
            if rank > 0 && shifted[i] > cutoff {
                logits[i] = f32::NEG_INFINITY;
            }
        }
    }
    fn name(&self) -> &'static str {
        "typical_p"
    }
}
