//! Beam search over the decoder: every running beam keeps its own KV cache.

use kiln_core::{FinishReason, GenerationParams, TokenId, Usage};
use kiln_models::{KvCache, Logits, Model};
use kiln_sampling::{build_chain, log_softmax, BeamSearch, History};

use crate::generate::{Event, Output, SequenceOutput};
use crate::Result;

/// Runs beam search and returns the best `num_return_sequences` hypotheses.
pub(crate) fn beam_search(
    model: &Model,
    prompt: &[TokenId],
    params: &GenerationParams,
    eos: &[TokenId],
    on_event: &mut dyn FnMut(Event),
) -> Result<Output> {
    let tokenizer = model.tokenizer()?;
    let max_new = params.max_new_tokens();
    let context = model.spec().context_length();
    let eos_for_search: &[TokenId] = if params.ignore_eos { &[] } else { eos };
    let mut search = BeamSearch::new(
        params.num_beams,
        params.length_penalty,
        params.early_stopping,
        eos_for_search,
    );
    let mut cache = model.decoder.new_cache();
    let first = model.decoder.forward(prompt, &mut cache, Logits::Last)?;
    let mut rows: Vec<Vec<f32>> = vec![first.flatten_all()?.to_vec1()?];
    let mut caches: Vec<KvCache> = vec![cache];
    let mut histories: Vec<Vec<TokenId>> = vec![prompt.to_vec()];
    for step in 0..max_new {
        let last_step = step + 1 == max_new || prompt.len() + step + 1 >= context;
        // transformers applies the processors to log-softmax scores.
        let processed: Vec<Vec<f32>> = rows
            .iter()
            .zip(&histories)
            .map(|(row, history)| {
                let mut scores = log_softmax(row);
                let mut chain = build_chain(params, eos);
                for &t in &history[prompt.len()..] {
                    chain.accept(t);
                }
                chain.apply(
                    &mut scores,
                    &History {
                        all_ids: history,
                        prompt_len: prompt.len(),
                    },
                );
                scores
            })
            .collect();
        let picks = search.step(&processed, last_step);
        if search.is_done() || picks.is_empty() {
            break;
        }
        let mut next_rows = Vec::with_capacity(picks.len());
        let mut next_caches = Vec::with_capacity(picks.len());
        let mut next_histories = Vec::with_capacity(picks.len());
        for (parent, token) in picks {
            let mut c = caches[parent].clone();
            let logits = model.decoder.forward(&[token], &mut c, Logits::Last)?;
            next_rows.push(logits.flatten_all()?.to_vec1()?);
            next_caches.push(c);
            let mut h = histories[parent].clone();
            h.push(token);
            next_histories.push(h);
        }
        rows = next_rows;
        caches = next_caches;
        histories = next_histories;
    }
    let hypotheses = search.finish(params.num_return_sequences);
    let mut sequences = Vec::with_capacity(hypotheses.len());
    for (i, h) in hypotheses.into_iter().enumerate() {
        let mut text = tokenizer.decode(&h.tokens, true)?;
        let mut reason = if h.ended_by_eos {
            FinishReason::Stop
        } else {
            FinishReason::Length
        };
        if let Some(at) = params
            .stop
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(at);
            reason = FinishReason::Stop;
        }
        on_event(Event::Text {
            sequence: i,
            text: text.clone(),
        });
        on_event(Event::Finished {
            sequence: i,
            reason,
        });
        sequences.push(SequenceOutput {
            token_ids: h.tokens,
            text,
            finish_reason: reason,
            logprobs: Vec::new(),
            score: Some(h.score),
        });
    }
    let completion_tokens = sequences.iter().map(|s| s.token_ids.len()).sum();
    Ok(Output {
        sequences,
        usage: Usage {
            prompt_tokens: prompt.len(),
            completion_tokens,
            total_tokens: prompt.len() + completion_tokens,
        },
    })
}
