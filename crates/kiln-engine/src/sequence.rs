//! One sequence being sampled: its tokens, cache, processors, sampler, stop
//! matcher and detokenizer.

use kiln_core::GenerationParams;
use kiln_core::{DetokenizerStream, FinishReason, TokenId, Tokenizer};
use kiln_models::KvCache;
use kiln_sampling::{
    build_chain_with, token_logprob, Constraint, History, ProcessorChain, Rng, Sampler,
    StopMatcher, StopStatus, TokenLogprob,
};

use crate::generate::Event;
use crate::Result;

/// The state of one sampled sequence.
pub(crate) struct Sequence {
    pub(crate) index: usize,
    pub(crate) all_ids: Vec<TokenId>,
    pub(crate) prompt_len: usize,
    pub(crate) cache: KvCache,
    pub(crate) chain: ProcessorChain,
    pub(crate) sampler: Sampler,
    pub(crate) stop: StopMatcher,
    pub(crate) detok: DetokenizerStream,
    pub(crate) text: String,
    pub(crate) logprobs: Vec<TokenLogprob>,
    pub(crate) finish: Option<FinishReason>,
}

/// What the loop needs to know to advance a sequence.
pub(crate) struct StepContext<'a> {
    pub(crate) tokenizer: &'a Tokenizer,
    pub(crate) eos: &'a [TokenId],
    pub(crate) ignore_eos: bool,
    pub(crate) top_logprobs: Option<usize>,
    pub(crate) max_new_tokens: usize,
    pub(crate) context: usize,
}

impl Sequence {
    /// Returned sequence `index` of a request, continuing `prompt` whose keys
    /// and values `cache` holds; sampled sequences draw from `seed + index`.
    pub(crate) fn new(
        index: usize,
        prompt: &[TokenId],
        cache: KvCache,
        params: &GenerationParams,
        eos: &[TokenId],
        seed: u64,
        constraint: Option<&Constraint>,
    ) -> Self {
        Self {
            index,
            all_ids: prompt.to_vec(),
            prompt_len: prompt.len(),
            cache,
            chain: build_chain_with(params, eos, constraint.cloned()),
            sampler: if params.samples() {
                Sampler::Multinomial(Rng::new(seed.wrapping_add(index as u64)))
            } else {
                Sampler::Greedy
            },
            stop: StopMatcher::new(&params.stop),
            detok: DetokenizerStream::new(true),
            text: String::new(),
            logprobs: Vec::new(),
            finish: None,
        }
    }

    /// The returned form of a finished (or cut-off) sequence.
    pub(crate) fn into_output(self) -> crate::SequenceOutput {
        crate::SequenceOutput {
            token_ids: self.generated().to_vec(),
            text: self.text,
            finish_reason: self.finish.unwrap_or(FinishReason::Length),
            logprobs: self.logprobs,
            score: None,
        }
    }

    pub(crate) fn generated(&self) -> &[TokenId] {
        &self.all_ids[self.prompt_len..]
    }

    /// Picks the next token from raw `logits`, records it and emits events.
    /// Returns the token when the sequence goes on.
    pub(crate) fn advance(
        &mut self,
        mut logits: Vec<f32>,
        ctx: &StepContext<'_>,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Option<TokenId>> {
        let raw = ctx.top_logprobs.map(|_| logits.clone());
        self.chain.apply(
            &mut logits,
            &History {
                all_ids: &self.all_ids,
                prompt_len: self.prompt_len,
            },
        );
        let Some(token) = self.sampler.sample(&logits) else {
            // Every token was masked: nothing can follow.
            self.finish_with(FinishReason::Stop, ctx, on_event)?;
            return Ok(None);
        };
        self.chain.accept(token);
        self.all_ids.push(token);
        let logprob = match (&raw, ctx.top_logprobs) {
            (Some(raw), Some(n)) => Some(token_logprob(raw, token, n)),
            _ => None,
        };
        if let Some(lp) = &logprob {
            self.logprobs.push(lp.clone());
        }
        if !ctx.ignore_eos && ctx.eos.contains(&token) {
            on_event(Event::Token {
                sequence: self.index,
                token,
                text: String::new(),
                logprob,
            });
            self.finish_with(FinishReason::Stop, ctx, on_event)?;
            return Ok(None);
        }
        let delta = self.detok.push(ctx.tokenizer, token)?;
        let (text, stopped) = match self.stop.push(&delta) {
            StopStatus::Stopped(text) => (text, true),
            StopStatus::Continue(text) => (text, false),
        };
        self.text.push_str(&text);
        on_event(Event::Token {
            sequence: self.index,
            token,
            text,
            logprob,
        });
        if stopped {
            self.finish = Some(FinishReason::Stop);
            on_event(Event::Finished {
                sequence: self.index,
                reason: FinishReason::Stop,
            });
            return Ok(None);
        }
        if self.generated().len() >= ctx.max_new_tokens || self.all_ids.len() >= ctx.context {
            self.finish_with(FinishReason::Length, ctx, on_event)?;
            return Ok(None);
        }
        Ok(Some(token))
    }

    /// Ends the sequence, flushing held-back text.
    fn finish_with(
        &mut self,
        reason: FinishReason,
        ctx: &StepContext<'_>,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let tail = self.detok.finish(ctx.tokenizer)?;
        let (mut rest, stopped) = match self.stop.push(&tail) {
            StopStatus::Stopped(text) => (text, true),
            StopStatus::Continue(text) => (text, false),
        };
        if !stopped {
            rest.push_str(&self.stop.finish());
        }
        let reason = if stopped { FinishReason::Stop } else { reason };
        if !rest.is_empty() {
            self.text.push_str(&rest);
            on_event(Event::Text {
                sequence: self.index,
                text: rest,
            });
        }
        self.finish = Some(reason);
        on_event(Event::Finished {
            sequence: self.index,
            reason,
        });
        Ok(())
    }
}
