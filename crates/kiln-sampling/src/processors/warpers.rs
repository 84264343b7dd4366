//! Warpers that reshape the distribution: temperature, top-k, top-p, min-p
//! and typical-p, each with transformers' exact rule (`min_tokens_to_keep` = 1).

use crate::processor::{History, LogitsProcessor};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::softmax::{first_key_reaching, on_compact, softmax_into, Scratch};

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
        let k = self.k.max(1);
        if k >= logits.len() {
            return;
        }
        // One pass with a min-heap of the k largest: most logits are rejected
        // by a single comparison with the heap's minimum.
        let mut heap: BinaryHeap<Reverse<Ordered>> = BinaryHeap::with_capacity(k + 1);
        for &l in logits.iter() {
            if heap.len() < k {
                heap.push(Reverse(Ordered(l)));
            } else if heap.peek().is_some_and(|m| l > m.0 .0) {
                heap.pop();
                heap.push(Reverse(Ordered(l)));
            }
        }
        let Some(threshold) = heap.peek().map(|m| m.0 .0) else {
            return;
        };
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

/// f32 with a total order, for heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ordered(f32);

impl Eq for Ordered {}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Nucleus sampling: in ascending order, removes tokens whose cumulative
/// probability is ≤ 1 − p; the most likely token always stays.
#[derive(Debug, Clone)]
pub struct TopP {
    p: f32,
    scratch: Scratch,
}

impl TopP {
    /// Nucleus mass `p` in (0, 1].
    pub fn new(p: f32) -> Self {
        Self {
            p,
            scratch: Scratch::default(),
        }
    }
}

impl LogitsProcessor for TopP {
    fn apply(&mut self, logits: &mut [f32], _history: &History<'_>) {
        on_compact(logits, |l| self.apply_dense(l));
    }
    fn name(&self) -> &'static str {
        "top_p"
    }
}

impl TopP {
    fn apply_dense(&mut self, logits: &mut [f32]) {
        if self.p >= 1.0 {
            return;
        }
        softmax_into(logits, &mut self.scratch.probs);
        let total: f32 = self.scratch.probs.iter().sum();
        // Ascending cumsum c_i = total − (mass of more likely tokens), so a
        // token stays iff the mass strictly above it is < p − (1 − total):
        // keep the most likely tokens up to the first whose inclusive mass
        // reaches that. Keys are negated logits (smaller = more likely).
        self.scratch.key.clear();
        self.scratch.key.extend(logits.iter().map(|l| -l));
        let Some(cutoff) = first_key_reaching(&mut self.scratch, self.p - (1.0 - total)) else {
            return;
        };
        for l in logits.iter_mut() {
            if -*l > cutoff {
                *l = f32::NEG_INFINITY;
            }
        }
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
        if self.min_p <= 0.0 {
            return;
        }
        // p_i < min_p · p_max  ⇔  l_i < l_max + ln(min_p): no softmax needed.
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let threshold = max + self.min_p.ln();
        for l in logits.iter_mut() {
            if *l < threshold {
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
    mass: f32,
    scratch: Scratch,
}

impl TypicalP {
    /// Probability `mass` to keep, in (0, 1].
    pub fn new(mass: f32) -> Self {
        Self {
            mass,
            scratch: Scratch::default(),
        }
    }
}

impl LogitsProcessor for TypicalP {
    fn apply(&mut self, logits: &mut [f32], _history: &History<'_>) {
        on_compact(logits, |l| self.apply_dense(l));
    }
    fn name(&self) -> &'static str {
        "typical_p"
    }
}

impl TypicalP {
    fn apply_dense(&mut self, logits: &mut [f32]) {
        if self.mass >= 1.0 {
            return;
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return;
        }
        let sum = softmax_into(logits, &mut self.scratch.probs);
        // log p_i = l_i - lse, so the entropy needs no per-token logarithm:
        // H = lse - Σ p_i l_i.
        let lse = max + sum.ln();
        let probs = &self.scratch.probs;
        let expected: f32 = logits
            .iter()
            .zip(probs)
            .filter(|(l, _)| l.is_finite())
            .map(|(l, p)| p * l)
            .sum();
        let entropy = lse - expected;
        self.scratch.key.clear();
        self.scratch.key.extend(logits.iter().map(|&l| {
            if l.is_finite() {
                (lse - l - entropy).abs()
            } else {
                f32::INFINITY
            }
        }));
        let cutoff = first_key_reaching(&mut self.scratch, self.mass).unwrap_or(f32::INFINITY);
        let shifted = &self.scratch.key;
        let finite: Vec<usize> = (0..logits.len())
            .filter(|&i| logits[i].is_finite())
            .collect();
        let best = finite
            .iter()
            .copied()
            .min_by(|&a, &b| shifted[a].total_cmp(&shifted[b]).then(a.cmp(&b)));
        for (i, l) in logits.iter_mut().enumerate() {
            if shifted[i] > cutoff && Some(i) != best {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::softmax::softmax;
    use crate::Rng;

    /// Straightforward transformers-style versions over a full sort. The
    /// fast versions may differ only where f32 rounding decides a tie.
    fn reference_top_p(logits: &mut [f32], p: f32) {
        let probs = softmax(logits);
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(a.cmp(&b)));
        let mut c = 0f32;
        let last = order.len() - 1;
        for (rank, &i) in order.iter().enumerate() {
            c += probs[i];
            if c <= 1.0 - p && rank < last {
                logits[i] = f32::NEG_INFINITY;
            }
        }
    }

    fn reference_typical(logits: &mut [f32], mass: f32) {
        let probs = softmax(logits);
        let lp: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let ent: f32 = -probs.iter().zip(&lp).map(|(p, l)| p * l).sum::<f32>();
        let shifted: Vec<f32> = lp.iter().map(|l| (-l - ent).abs()).collect();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| shifted[a].total_cmp(&shifted[b]).then(a.cmp(&b)));
        let mut c = 0f32;
        let mut last_ind = 0;
        for &i in &order {
            c += probs[i];
            if c < mass {
                last_ind += 1;
            }
        }
        let cutoff = shifted[order[last_ind.min(order.len() - 1)]];
        for (rank, &i) in order.iter().enumerate() {
            if rank > 0 && shifted[i] > cutoff {
                logits[i] = f32::NEG_INFINITY;
            }
        }
    }

    fn random_logits(seed: u64, n: usize, scale: f32) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n)
            .map(|_| (r.next_f64() as f32 - 0.5) * scale)
            .collect()
    }

    #[test]
    fn head_based_warpers_equal_full_sort_on_large_vocabularies() {
        let h = History {
            all_ids: &[],
            prompt_len: 0,
        };
        for seed in 0..20 {
            for scale in [2.0, 8.0, 30.0] {
                let base = random_logits(seed, 5000, scale);
                for p in [0.5f32, 0.9, 0.99] {
                    let (mut a, mut b) = (base.clone(), base.clone());
                    TopP::new(p).apply(&mut a, &h);
                    reference_top_p(&mut b, p);
                    let masked = |v: &[f32]| v.iter().map(|x| x.is_finite()).collect::<Vec<_>>();
                    let diff = masked(&a)
                        .iter()
                        .zip(masked(&b))
                        .filter(|(x, y)| **x != *y)
                        .count();
                    let kept = masked(&b).iter().filter(|x| **x).count();
                    assert!(
                        diff <= 1,
                        "top_p {p} seed {seed} scale {scale}: {diff} of {kept} differ"
                    );
                    let (mut a, mut b) = (base.clone(), base.clone());
                    TypicalP::new(p).apply(&mut a, &h);
                    reference_typical(&mut b, p);
                    let diff = masked(&a)
                        .iter()
                        .zip(masked(&b))
                        .filter(|(x, y)| **x != *y)
                        .count();
                    // Near-flat distributions put many tokens at the cutoff:
                    // f32 summation order may move it by a token or two.
                    assert!(
                        diff <= 3,
                        "typical {p} seed {seed} scale {scale}: {diff} tokens differ"
                    );
                }
                let (mut a, mut b) = (base.clone(), base.clone());
                TopK { k: 40 }.apply(&mut a, &h);
                let mut sorted = b.clone();
                sorted.sort_by(|x, y| y.total_cmp(x));
                let kth = sorted[39];
                b.iter_mut().for_each(|l| {
                    if *l < kth {
                        *l = f32::NEG_INFINITY
                    }
                });
                assert_eq!(a, b);
            }
        }
    }
}
