//! Greedy generation with the KV cache. (The decoding issue replaces the
//! argmax with kiln-sampling's processor chain.)

use std::time::{Duration, Instant};

use crate::decoder::{Decoder, Logits};
use crate::{ModelError, Result};

/// Options of [`generate_greedy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreedyOptions {
    /// Stop after this many new tokens.
    pub max_new_tokens: usize,
    /// EOS is suppressed until this many tokens were generated.
    pub min_new_tokens: usize,
    /// Tokens that end generation.
    pub eos_token_ids: Vec<u32>,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An EOS token was produced.
    Eos,
    /// `max_new_tokens` or the context length was reached.
    Length,
}

/// The new tokens and timings of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GreedyOutput {
    /// New token ids (an EOS that ended generation included).
    pub token_ids: Vec<u32>,
    /// Raw logits of each step, when requested.
    pub step_logits: Vec<Vec<f32>>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Time to the first token (prefill + first pick).
    pub prefill_time: Duration,
    /// Time of all later steps.
    pub decode_time: Duration,
}

/// Index of the largest value; the first one on ties (as torch's argmax).
pub fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Greedy decoding of `prompt`; `keep_logits` records every step's logits.
pub fn generate_greedy(
    decoder: &Decoder,
    prompt: &[u32],
    options: &GreedyOptions,
    keep_logits: bool,
    mut on_token: impl FnMut(u32),
) -> Result<GreedyOutput> {
    if prompt.is_empty() {
        return Err(ModelError::InvalidInput("the prompt has no tokens".into()));
    }
    let context = decoder.spec().max_position_embeddings;
    let mut cache = decoder.new_cache();
    let started = Instant::now();
    let mut logits = decoder.forward(prompt, &mut cache, Logits::Last)?;
    let mut out = GreedyOutput {
        token_ids: Vec::new(),
        step_logits: Vec::new(),
        stop_reason: StopReason::Length,
        prefill_time: Duration::ZERO,
        decode_time: Duration::ZERO,
    };
    let mut decode_started = started;
    while out.token_ids.len() < options.max_new_tokens {
        let mut row: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        if keep_logits {
            out.step_logits.push(row.clone());
        }
        if out.token_ids.len() < options.min_new_tokens {
            for &eos in &options.eos_token_ids {
                if let Some(v) = row.get_mut(eos as usize) {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        let next =
            argmax(&row).ok_or_else(|| ModelError::InvalidInput("empty logits".into()))? as u32;
        out.token_ids.push(next);
        on_token(next);
        if out.token_ids.len() == 1 {
            out.prefill_time = started.elapsed();
            decode_started = Instant::now();
        }
        if options.eos_token_ids.contains(&next) {
            out.stop_reason = StopReason::Eos;
            break;
        }
        if out.token_ids.len() == options.max_new_tokens || cache.len() >= context {
            break;
        }
        logits = decoder.forward(&[next], &mut cache, Logits::Last)?;
    }
    out.decode_time = decode_started.elapsed();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::argmax;

    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), Some(1));
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]), Some(1));
    }
}
