//! The causal-LM loss through the LM head and its gradient, a chunk of
//! rows at a time: only positions with a label run the head, and no
//! `[t, vocab]` matrix is ever held.

use rayon::prelude::*;

use super::linear::{self, Grads};
use super::ops::{matrix, values};
use crate::kernels::vector::Kernels;
use crate::linear::Linear;
use crate::{ModelError, Result};

/// Rows of the LM head computed at a time (128 × a 50k vocabulary ≈ 25 MB).
const ROWS_PER_CHUNK: usize = 128;

/// Positions whose next label counts (`-100` = ignored) and those labels:
/// transformers' causal-LM shift.
pub(super) fn trained_positions(t: usize, labels: &[i64]) -> Vec<(usize, u32)> {
    (0..t.saturating_sub(1))
        .filter_map(|i| {
            let label = labels.get(i + 1).copied().unwrap_or(-100);
            (label >= 0).then_some((i, label as u32))
        })
        .collect()
}

/// What [`lm_loss`] returns.
pub(super) struct LossGrad {
    /// Summed token cross-entropy.
    pub(super) loss_sum: f64,
    /// Gradient of `grad_scale · loss_sum` in the final hidden states
    /// (`[t, width]`, zero at untrained positions).
    pub(super) d_hidden: Vec<f32>,
}

/// Cross-entropy of `head(hidden)` at `positions` and its gradient; LM-head
/// adapter gradients go to `grads`.
pub(super) fn lm_loss(
    head: &Linear,
    hidden: &[f32],
    width: usize,
    positions: &[(usize, u32)],
    grad_scale: f32,
    grads: &mut Grads,
) -> Result<LossGrad> {
    let exp = Kernels::select().exp;
    let mut d_hidden = vec![0f32; hidden.len()];
    let mut loss_sum = 0f64;
    for chunk in positions.chunks(ROWS_PER_CHUNK) {
        let n = chunk.len();
        let mut rows = Vec::with_capacity(n * width);
        for &(i, _) in chunk {
            rows.extend_from_slice(&hidden[i * width..(i + 1) * width]);
        }
        let x = matrix(rows, n, width)?;
        let (logits, tape) = linear::forward(head, &x)?;
        let mut lv = values(&logits)?;
        let vocab = lv.len() / n.max(1);
        if chunk.iter().any(|&(_, label)| label as usize >= vocab) {
            return Err(ModelError::InvalidInput(format!(
                "a label is outside the vocabulary of {vocab} tokens"
            )));
        }
        loss_sum += lv
            .par_chunks_mut(vocab)
            .zip(chunk.par_iter())
            .map(|(row, &(_, label))| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let target = row[label as usize] - max;
                for v in row.iter_mut() {
                    *v -= max;
                }
                exp(row);
                let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
                let k = (f64::from(grad_scale) / sum) as f32;
                for v in row.iter_mut() {
                    *v *= k;
                }
                row[label as usize] -= grad_scale;
                sum.ln() - f64::from(target)
            })
            .sum::<f64>();
        let d_logits = matrix(lv, n, vocab)?;
        let dx = linear::backward(head, &x, &tape, &d_logits, true, grads)?
            .ok_or_else(|| ModelError::InvalidInput("no gradient below the LM head".into()))?;
        let dx = values(&dx)?;
        for (&(i, _), row) in chunk.iter().zip(dx.chunks(width)) {
            d_hidden[i * width..(i + 1) * width].copy_from_slice(row);
        }
    }
    Ok(LossGrad { loss_sum, d_hidden })
}
