//! Building the processor chain for a request, in transformers' order:
//! penalties and n-gram blocking, biases and masks, EOS suppression, then the
//! warpers temperature, top-k, top-p, min-p, typical-p (warpers only when
//! sampling).

use kiln_core::{GenerationParams, TokenId};

use crate::constrain::Constraint;
use crate::processor::ProcessorChain;
use crate::processors::{
    FrequencyPresencePenalty, LogitBias, MinNewTokens, MinP, NoRepeatNGram, RepetitionPenalty,
    Temperature, TokenMask, TopK, TopP, TypicalP,
};

/// The chain for `params` (already merged with the model's defaults).
pub fn build_chain(params: &GenerationParams, eos_token_ids: &[TokenId]) -> ProcessorChain {
    build_chain_with(params, eos_token_ids, None)
}

/// The chain for `params` with a constraint on the output, applied after
/// penalties and masks and before the warpers (so top-k/top-p choose among
/// valid tokens only). With a constraint, `min_new_tokens` is not enforced:
/// a complete value must be able to end.
pub fn build_chain_with(
    params: &GenerationParams,
    eos_token_ids: &[TokenId],
    constraint: Option<Constraint>,
) -> ProcessorChain {
    let constrained = constraint.is_some();
    let mut chain = ProcessorChain::new();
    if let Some(penalty) = params.repetition_penalty.filter(|&p| p != 1.0) {
        chain.push(Box::new(RepetitionPenalty { penalty }));
    }
    if params.frequency_penalty != 0.0 || params.presence_penalty != 0.0 {
        chain.push(Box::new(FrequencyPresencePenalty::new(
            params.frequency_penalty,
            params.presence_penalty,
        )));
    }
    if params.no_repeat_ngram_size > 0 {
        chain.push(Box::new(NoRepeatNGram {
            size: params.no_repeat_ngram_size,
        }));
    }
    if !params.logit_bias.is_empty() {
        chain.push(Box::new(LogitBias {
            bias: params.logit_bias.clone(),
        }));
    }
    if !params.bad_token_ids.is_empty() {
        chain.push(Box::new(TokenMask::Banned(params.bad_token_ids.clone())));
    }
    if let Some(allowed) = &params.allowed_token_ids {
        chain.push(Box::new(TokenMask::Allowed(allowed.clone())));
    }
    if let Some(c) = constraint {
        chain.push(Box::new(c));
    }
    if params.min_new_tokens > 0 && !eos_token_ids.is_empty() && !constrained {
        chain.push(Box::new(MinNewTokens {
            min_new_tokens: params.min_new_tokens,
            eos_token_ids: eos_token_ids.to_vec(),
        }));
    }
    if params.samples() {
        push_warpers(&mut chain, params);
    }
    chain
}

/// The warpers alone (temperature, top-k, top-p, min-p, typical-p).
pub fn push_warpers(chain: &mut ProcessorChain, params: &GenerationParams) {
    if let Some(temperature) = params.temperature.filter(|&t| t != 1.0 && t > 0.0) {
        chain.push(Box::new(Temperature { temperature }));
    }
    if let Some(k) = params.top_k {
        chain.push(Box::new(TopK { k }));
    }
    if let Some(p) = params.top_p.filter(|&p| p < 1.0) {
        chain.push(Box::new(TopP::new(p)));
    }
    if let Some(min_p) = params.min_p.filter(|&p| p > 0.0) {
        chain.push(Box::new(MinP { min_p }));
    }
    if let Some(mass) = params.typical_p.filter(|&p| p < 1.0) {
        chain.push(Box::new(TypicalP::new(mass)));
    }
}
