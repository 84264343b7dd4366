//! The logits processors. Each works in place on one row of logits; `None`
//! parameters are never instantiated, so every processor here is active.

mod penalties;
mod warpers;

pub use penalties::{
    FrequencyPresencePenalty, LogitBias, MinNewTokens, NoRepeatNGram, RepetitionPenalty, TokenMask,
};
pub use warpers::{MinP, Temperature, TopK, TopP, TypicalP};
