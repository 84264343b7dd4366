//! Numerically stable softmax and sorting helpers over logits.

/// Softmax of `logits` in f32 (`-inf` → 0).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![0.0; logits.len()];
    }
    let mut out: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = out.iter().sum();
    for p in &mut out {
        *p /= sum;
    }
    out
}

/// Log-softmax of `logits` (`-inf` stays `-inf`).
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![f32::NEG_INFINITY; logits.len()];
    }
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let log_sum = sum.ln() + max;
    logits.iter().map(|&l| l - log_sum).collect()
}

/// Indices of the finite logits, sorted by ascending logit (ties by index).
pub fn sorted_finite_ascending(logits: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i].is_finite())
        .collect();
    order.sort_unstable_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(a.cmp(&b)));
    order
}
