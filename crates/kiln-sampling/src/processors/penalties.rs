//! Processors that look at the token history: penalties, n-gram blocking,
//! logit bias, EOS suppression and token masks.

use std::collections::HashMap;

use kiln_core::TokenId;

use crate::processor::{History, LogitsProcessor};

/// transformers' repetition penalty: every token seen in prompt or output has
/// its logit divided by `penalty` when positive, multiplied when negative.
#[derive(Debug, Clone)]
pub struct RepetitionPenalty {
    /// The penalty (> 0; 1 is off).
    pub penalty: f32,
}

impl LogitsProcessor for RepetitionPenalty {
    fn apply(&mut self, logits: &mut [f32], history: &History<'_>) {
        let mut seen = vec![false; logits.len()];
        for &id in history.all_ids {
            let Some(flag) = seen.get_mut(id as usize) else {
                continue;
            };
            if std::mem::replace(flag, true) {
                continue;
            }
            let l = &mut logits[id as usize];
            *l = if *l < 0.0 {
                *l * self.penalty
            } else {
                *l / self.penalty
            };
        }
    }
    fn name(&self) -> &'static str {
        "repetition_penalty"
    }
}

/// OpenAI's penalties on generated tokens:
/// `l -= count * frequency_penalty + (count > 0) * presence_penalty`.
#[derive(Debug, Clone, Default)]
pub struct FrequencyPresencePenalty {
    /// Subtracted once per occurrence.
    pub frequency: f32,
    /// Subtracted once if the token occurred at all.
    pub presence: f32,
    counts: HashMap<TokenId, u32>,
}

impl FrequencyPresencePenalty {
    /// Penalties with no token seen yet.
    pub fn new(frequency: f32, presence: f32) -> Self {
        Self {
            frequency,
            presence,
            counts: HashMap::new(),
        }
    }
}

impl LogitsProcessor for FrequencyPresencePenalty {
    fn apply(&mut self, logits: &mut [f32], _history: &History<'_>) {
        for (&id, &count) in &self.counts {
            if let Some(l) = logits.get_mut(id as usize) {
                *l -= count as f32 * self.frequency + self.presence;
            }
        }
    }
    fn accept(&mut self, token: TokenId) {
        *self.counts.entry(token).or_default() += 1;
    }
    fn name(&self) -> &'static str {
        "frequency_presence_penalty"
    }
}

/// Bans any token that would repeat an n-gram already in the sequence
/// (prompt included, as transformers does).
#[derive(Debug, Clone)]
pub struct NoRepeatNGram {
    /// n (≥ 1).
    pub size: usize,
}

impl LogitsProcessor for NoRepeatNGram {
    fn apply(&mut self, logits: &mut [f32], history: &History<'_>) {
        let ids = history.all_ids;
        let n = self.size;
        if n == 0 || ids.len() + 1 < n {
            return;
        }
        let prefix = &ids[ids.len() + 1 - n..];
        for window in ids.windows(n) {
            if &window[..n - 1] == prefix {
                if let Some(l) = logits.get_mut(window[n - 1] as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
    }
    fn name(&self) -> &'static str {
        "no_repeat_ngram"
    }
}

/// Adds a fixed bias to chosen tokens (OpenAI `logit_bias`).
#[derive(Debug, Clone)]
pub struct LogitBias {
    /// Token and bias pairs.
    pub bias: Vec<(TokenId, f32)>,
}

impl LogitsProcessor for LogitBias {
    fn apply(&mut self, logits: &mut [f32], _history: &History<'_>) {
        for &(id, b) in &self.bias {
            if let Some(l) = logits.get_mut(id as usize) {
                *l += b;
            }
        }
    }
    fn name(&self) -> &'static str {
        "logit_bias"
    }
}

/// Suppresses EOS tokens until `min_new_tokens` tokens were generated.
#[derive(Debug, Clone)]
pub struct MinNewTokens {
    /// Minimum number of generated tokens.
    pub min_new_tokens: usize,
    /// The EOS ids to suppress.
    pub eos_token_ids: Vec<TokenId>,
}

impl LogitsProcessor for MinNewTokens {
    fn apply(&mut self, logits: &mut [f32], history: &History<'_>) {
        if history.generated().len() < self.min_new_tokens {
            for &id in &self.eos_token_ids {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
    }
    fn name(&self) -> &'static str {
        "min_new_tokens"
    }
}

/// Bans listed tokens, or allows only listed tokens.
#[derive(Debug, Clone)]
pub enum TokenMask {
    /// These tokens never appear.
    Banned(Vec<TokenId>),
    /// Only these tokens may appear.
    Allowed(Vec<TokenId>),
}

impl LogitsProcessor for TokenMask {
    fn apply(&mut self, logits: &mut [f32], _history: &History<'_>) {
        match self {
            TokenMask::Banned(ids) => {
                for &id in ids.iter() {
                    if let Some(l) = logits.get_mut(id as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            TokenMask::Allowed(ids) => {
                let mut keep = vec![false; logits.len()];
                for &id in ids.iter() {
                    if let Some(k) = keep.get_mut(id as usize) {
                        *k = true;
                    }
                }
                for (l, k) in logits.iter_mut().zip(keep) {
                    if !k {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
        }
    }
    fn name(&self) -> &'static str {
        "token_mask"
    }
}
