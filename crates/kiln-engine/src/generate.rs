//! The generation loop for one request.

use kiln_core::{FinishReason, GenerationDefaults, GenerationParams, TokenId, Usage};
use kiln_models::{Logits, Model};
use kiln_sampling::{Constraint, Rng, TokenLogprob};

use crate::sequence::{Sequence, StepContext};
use crate::{EngineError, Result};

/// A generation request: prompt ids and parameters (merged with the model's
/// `generation_config.json` inside [`generate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The prompt, special tokens included.
    pub prompt_ids: Vec<TokenId>,
    /// What to generate.
    pub params: GenerationParams,
}

/// Streamed events. The `text` of a sequence's events concatenates to its
/// final [`SequenceOutput::text`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A token was generated, with the text it completes (possibly empty).
    Token {
        /// Which returned sequence.
        sequence: usize,
        /// The token.
        token: TokenId,
        /// Text delta (never a partial UTF-8 character, never a stop string).
        text: String,
        /// Log-probabilities when requested.
        logprob: Option<TokenLogprob>,
    },
    /// Text released at the end (held back for a possible stop string).
    Text {
        /// Which returned sequence.
        sequence: usize,
        /// Text delta.
        text: String,
    },
    /// A sequence ended.
    Finished {
        /// Which returned sequence.
        sequence: usize,
        /// Why.
        reason: FinishReason,
    },
}

/// One returned sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceOutput {
    /// New token ids (an ending EOS included).
    pub token_ids: Vec<TokenId>,
    /// The text (special tokens skipped, cut before any stop string).
    pub text: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Per-token log-probabilities when requested.
    pub logprobs: Vec<TokenLogprob>,
    /// Beam score (sum of log-probs / length^length_penalty) for beam search.
    pub score: Option<f32>,
}

/// Everything a request produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The sequences, in order (best first for beam search).
    pub sequences: Vec<SequenceOutput>,
    /// Token counts.
    pub usage: Usage,
}

/// The model's defaults from `generation_config.json`.
pub(crate) fn defaults_of(model: &Model) -> GenerationDefaults {
    let g = &model.generation_config;
    GenerationDefaults {
        max_new_tokens: g.max_new_tokens,
        do_sample: g.do_sample,
        temperature: g.temperature.map(|t| t as f32),
        top_k: g.top_k.filter(|&k| k > 0),
        top_p: g.top_p.map(|p| p as f32),
        repetition_penalty: g.repetition_penalty.map(|p| p as f32),
    }
}

/// Checks `request` against `model` before any work: parameters merged with
/// the model's defaults and validated, a prompt that is not empty and fits
/// the context. Returns the merged parameters.
pub fn prepare(model: &Model, request: &Request) -> Result<GenerationParams> {
    let params = request.params.with_defaults(&defaults_of(model));
    params.validate()?;
    let prompt = &request.prompt_ids;
    if prompt.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    let context = model.spec().context_length();
    if prompt.len() >= context {
        return Err(EngineError::PromptTooLong {
            prompt: prompt.len(),
            context,
        });
    }
    Ok(params)
}

/// The constraint processor a request's `constraint` asks for (its grammar
/// compiled against the model's vocabulary), or `None`.
pub fn constraint_for(model: &Model, params: &GenerationParams) -> Result<Option<Constraint>> {
    let Some(output) = &params.constraint else {
        return Ok(None);
    };
    let grammar = std::sync::Arc::new(Constraint::grammar_for(output)?);
    let vocab = model.tokenizer()?.token_bytes();
    let eos = model.eos_token_ids();
    Ok(Some(Constraint::new(
        grammar,
        vocab,
        &eos,
        params.max_new_tokens(),
    )?))
}

/// Generates for `request`, calling `on_event` as text is produced.
pub fn generate(
    model: &Model,
    request: &Request,
    mut on_event: impl FnMut(Event),
) -> Result<Output> {
    let params = prepare(model, request)?;
    let constraint = constraint_for(model, &params)?;
    let prompt = &request.prompt_ids;
    let context = model.spec().context_length();
    let tokenizer = model.tokenizer()?;
    let eos = model.eos_token_ids();
    if params.num_beams > 1 {
        return crate::beam::beam_search(model, prompt, &params, &eos, &mut on_event);
    }

    let mut cache = model.decoder.new_cache();
    let first_logits = model.decoder.forward(prompt, &mut cache, Logits::Last)?;
    let first_logits: Vec<f32> = first_logits.flatten_all()?.to_vec1()?;
    let seed = params
        .seed
        .unwrap_or_else(|| Rng::from_entropy().next_u64());
    let mut sequences: Vec<Sequence> = (0..params.num_return_sequences)
        .map(|i| {
            Sequence::new(
                i,
                prompt,
                cache.clone(),
                &params,
                &eos,
                seed,
                constraint.as_ref(),
            )
        })
        .collect();
    let ctx = StepContext {
        tokenizer,
        eos: &eos,
        ignore_eos: params.ignore_eos,
        top_logprobs: params.logprobs,
        max_new_tokens: params.max_new_tokens(),
        context,
    };
    for seq in &mut sequences {
        let mut logits = first_logits.clone();
        loop {
            let Some(token) = seq.advance(logits, &ctx, &mut on_event)? else {
                break;
            };
            let next = model
                .decoder
                .forward(&[token], &mut seq.cache, Logits::Last)?;
            logits = next.flatten_all()?.to_vec1()?;
        }
    }
    let completion_tokens = sequences.iter().map(|s| s.generated().len()).sum();
    Ok(Output {
        usage: Usage {
            prompt_tokens: prompt.len(),
            completion_tokens,
            total_tokens: prompt.len() + completion_tokens,
        },
        sequences: sequences.into_iter().map(Sequence::into_output).collect(),
    })
}
