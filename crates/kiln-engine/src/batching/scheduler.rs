//! The scheduler loop: admit queued requests, build one batch per step
//! (prefill chunks of new requests + one token per decoding sequence), run
//! it, sample, stream events, retire finished and cancelled requests.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use kiln_core::Usage;
use kiln_models::{BatchItem, KvCache, Model};
use kiln_sampling::Rng;
use tokio::sync::mpsc::error::TrySendError;

use super::engine::{Job, StreamEvent};
use super::metrics::{Metrics, Outcome};
use super::EngineConfig;
use crate::generate::generate;
use crate::sequence::{Sequence, StepContext};
use crate::{Output, Result};

/// A request in the batch.
struct Running {
    job: Job,
    /// Prompt tokens already in `prefill_cache`.
    prefilled: usize,
    /// The shared prompt cache while prefilling; forked into the sequences
    /// when the prompt is done.
    prefill_cache: Option<KvCache>,
    seqs: Vec<Sequence>,
    /// Events not yet accepted by the request's channel.
    outbox: VecDeque<StreamEvent>,
    seed: u64,
    /// The final event is in the outbox.
    done: bool,
    /// The receiver is gone.
    cancelled: bool,
}

impl Running {
    fn new(job: Job) -> Self {
        let seed = job
            .params
            .seed
            .unwrap_or_else(|| Rng::from_entropy().next_u64());
        Self {
            job,
            prefilled: 0,
            prefill_cache: None,
            seqs: Vec::new(),
            outbox: VecDeque::new(),
            seed,
            done: false,
            cancelled: false,
        }
    }

    /// Sequences this request occupies in the batch.
    fn width(&self) -> usize {
        self.job.params.num_return_sequences
    }

    fn prompt(&self) -> &[u32] {
        &self.job.request.prompt_ids
    }

    /// Hands queued events to the channel; marks the request cancelled if
    /// the receiver is gone.
    fn flush(&mut self) {
        while let Some(event) = self.outbox.pop_front() {
            match self.job.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.outbox.push_front(event);
                    return;
                }
                Err(TrySendError::Closed(_)) => {
                    self.cancelled = true;
                    self.outbox.clear();
                    return;
                }
            }
        }
    }

    /// Queues the final event; the request no longer counts as running.
    fn end(&mut self, last: StreamEvent, metrics: &Metrics, outcome: Outcome) {
        self.outbox.push_back(last);
        self.done = true;
        self.seqs.clear();
        metrics.running_requests.fetch_sub(1, Ordering::SeqCst);
        metrics.ended(outcome);
    }
}

/// Where one batch row's logits go.
enum Route {
    /// `n` more prompt tokens of request `r` were prefilled.
    Prefill { r: usize, n: usize },
    /// Sequence `s` of request `r` decoded one token.
    Decode { r: usize, s: usize },
}

/// Runs until every handle is gone and all work is done.
pub(crate) fn run(model: &Model, config: &EngineConfig, jobs: &Receiver<Job>, metrics: &Metrics) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut running: Vec<Running> = Vec::new();
    let mut open = true;
    loop {
        let busy = running.iter().any(|r| !r.done);
        // Block for work when idle; poll while only slow readers remain.
        if open && !busy && waiting.is_empty() {
            let wait = if running.is_empty() {
                jobs.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                jobs.recv_timeout(Duration::from_millis(5))
            };
            match wait {
                Ok(job) => waiting.push_back(job),
                Err(RecvTimeoutError::Disconnected) => open = false,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        while open {
            match jobs.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        admit(model, config, &mut waiting, &mut running, metrics);
        for r in &mut running {
            if r.job.events.is_closed() {
                r.cancelled = true;
            }
        }
        retire(&mut running, metrics);
        if running.iter().any(|r| !r.done) {
            step(model, config, &mut running, metrics);
        }
        for r in &mut running {
            r.flush();
        }
        retire(&mut running, metrics);
        if !open && running.is_empty() && waiting.is_empty() {
            return;
        }
    }
}

/// Moves queued requests into the batch while sequence slots are free;
/// beam searches run on their own threads.
fn admit(
    model: &Model,
    config: &EngineConfig,
    waiting: &mut VecDeque<Job>,
    running: &mut Vec<Running>,
    metrics: &Metrics,
) {
    let mut used: usize = running.iter().filter(|r| !r.done).map(Running::width).sum();
    while let Some(job) = waiting.front() {
        let width = job.params.num_return_sequences;
        if used + width > config.max_sequences {
            break;
        }
        let Some(job) = waiting.pop_front() else {
            break;
        };
        metrics.queued.fetch_sub(1, Ordering::SeqCst);
        used += width;
        if job.params.num_beams > 1 {
            run_beam_search(model, job, metrics);
            continue;
        }
        metrics.running_requests.fetch_add(1, Ordering::SeqCst);
        let mut r = Running::new(job);
        r.prefill_cache = Some(model.decoder.new_cache());
        running.push(r);
    }
    publish_live_sequences(running, metrics);
}

/// Beam search keeps all beams in lock-step and reorders caches every step;
/// it runs whole, here, between batch steps (documented limitation: it holds
/// the batch for its duration).
fn run_beam_search(model: &Model, job: Job, metrics: &Metrics) {
    let mut first = true;
    let result = generate(model, &job.request, |event| {
        if first {
            metrics.first_token(job.submitted.elapsed());
            first = false;
        }
        let _ = job.events.try_send(StreamEvent::Generated(event));
    });
    match result {
        Ok(output) => {
            metrics.step(output.usage.prompt_tokens, output.usage.completion_tokens);
            let _ = job.events.try_send(StreamEvent::Done(output));
            metrics.ended(Outcome::Finished);
        }
        Err(e) => {
            let _ = job.events.try_send(StreamEvent::Failed(e.to_string()));
            metrics.ended(Outcome::Failed);
        }
    }
}

/// Drops requests that were cancelled or whose last event was delivered.
fn retire(running: &mut Vec<Running>, metrics: &Metrics) {
    running.retain(|r| {
        let delivered = r.done && r.outbox.is_empty();
        if !(r.cancelled || delivered) {
            return true;
        }
        if !r.done {
            metrics.running_requests.fetch_sub(1, Ordering::SeqCst);
            metrics.ended(Outcome::Cancelled);
        }
        false
    });
}

/// One forward pass over the whole batch, then sampling.
fn step(model: &Model, config: &EngineConfig, running: &mut [Running], metrics: &Metrics) {
    let mut routes = Vec::new();
    let mut items = Vec::new();
    let mut prefill_budget = config.prefill_chunk;
    for (ri, r) in running.iter_mut().enumerate() {
        if r.done || r.cancelled {
            continue;
        }
        let prompt = &r.job.request.prompt_ids;
        if let Some(cache) = r.prefill_cache.as_mut() {
            let n = (prompt.len() - r.prefilled).min(prefill_budget);
            if n == 0 {
                continue;
            }
            prefill_budget -= n;
            items.push(BatchItem {
                ids: &prompt[r.prefilled..r.prefilled + n],
                cache,
            });
            routes.push(Route::Prefill { r: ri, n });
            continue;
        }
        for (si, seq) in r.seqs.iter_mut().enumerate() {
            if seq.finish.is_some() {
                continue;
            }
            let Sequence { all_ids, cache, .. } = seq;
            items.push(BatchItem {
                ids: &all_ids[all_ids.len() - 1..],
                cache,
            });
            routes.push(Route::Decode { r: ri, s: si });
        }
    }
    if items.is_empty() {
        return;
    }
    let result = model.decoder.forward_batch(&mut items);
    drop(items);
    let logits = match result {
        Ok(l) => l,
        Err(e) => {
            for route in &routes {
                let (Route::Prefill { r, .. } | Route::Decode { r, .. }) = route;
                if !running[*r].done {
                    let message = format!("forward pass failed: {e}");
                    running[*r].end(StreamEvent::Failed(message), metrics, Outcome::Failed);
                }
            }
            return;
        }
    };
    // The stop tokens, once per step (not per sequence).
    let eos = model.eos_token_ids();
    let mut prefilled_tokens = 0;
    let mut generated = 0;
    for (route, logits) in routes.into_iter().zip(logits) {
        let (ri, result) = match route {
            Route::Prefill { r: ri, n } => {
                prefilled_tokens += n;
                let r = &mut running[ri];
                r.prefilled += n;
                if r.done || r.prefilled < r.prompt().len() {
                    continue;
                }
                metrics.first_token(r.job.submitted.elapsed());
                generated += r.width();
                (ri, start_sequences(model, r, &logits, &eos))
            }
            Route::Decode { r: ri, s } => {
                generated += 1;
                (ri, advance(model, &mut running[ri], s, logits, &eos))
            }
        };
        if let Err(e) = result {
            if !running[ri].done {
                let message = e.to_string();
                running[ri].end(StreamEvent::Failed(message), metrics, Outcome::Failed);
            }
        }
    }
    metrics.step(prefilled_tokens, generated);
    for r in running.iter_mut() {
        if !r.done && r.prefill_cache.is_none() && r.seqs.iter().all(|s| s.finish.is_some()) {
            finish(r, metrics);
        }
    }
    publish_live_sequences(running, metrics);
}

/// What sampling needs to know about a request.
fn step_context<'a>(model: &'a Model, r: &Running, eos: &'a [u32]) -> Result<StepContext<'a>> {
    Ok(StepContext {
        tokenizer: model.tokenizer()?,
        eos,
        ignore_eos: r.job.params.ignore_eos,
        top_logprobs: r.job.params.logprobs,
        max_new_tokens: r.job.params.max_new_tokens(),
        context: model.spec().context_length(),
    })
}

/// The prompt is prefilled: fork its cache into the request's sequences and
/// sample each one's first token from the prompt's last logits.
fn start_sequences(model: &Model, r: &mut Running, logits: &[f32], eos: &[u32]) -> Result<()> {
    let Some(cache) = r.prefill_cache.take() else {
        return Ok(());
    };
    let n = r.width();
    let mut seqs = Vec::with_capacity(n);
    for i in 0..n {
        let cache = cache.clone();
        seqs.push(Sequence::new(
            i,
            r.prompt(),
            cache,
            &r.job.params,
            eos,
            r.seed,
            r.job.constraint.as_ref(),
        ));
    }
    r.seqs = seqs;
    for s in 0..n {
        advance(model, r, s, logits.to_vec(), eos)?;
    }
    Ok(())
}

/// Samples sequence `s` of `r` from `logits`, queueing its events.
fn advance(model: &Model, r: &mut Running, s: usize, logits: Vec<f32>, eos: &[u32]) -> Result<()> {
    let ctx = step_context(model, r, eos)?;
    let Running { seqs, outbox, .. } = r;
    let Some(seq) = seqs.get_mut(s) else {
        return Ok(());
    };
    seq.advance(logits, &ctx, &mut |event| {
        outbox.push_back(StreamEvent::Generated(event));
    })?;
    Ok(())
}

/// Every sequence of `r` ended: queue the final [`Output`].
fn finish(r: &mut Running, metrics: &Metrics) {
    let prompt_tokens = r.prompt().len();
    let sequences: Vec<_> = std::mem::take(&mut r.seqs)
        .into_iter()
        .map(Sequence::into_output)
        .collect();
    let completion_tokens = sequences.iter().map(|s| s.token_ids.len()).sum();
    let output = Output {
        sequences,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        },
    };
    r.end(StreamEvent::Done(output), metrics, Outcome::Finished);
}

/// Updates the batch-size gauge.
fn publish_live_sequences(running: &[Running], metrics: &Metrics) {
    let live: usize = running
        .iter()
        .flat_map(|r| &r.seqs)
        .filter(|s| s.finish.is_none())
        .count();
    metrics.running_sequences.store(live, Ordering::SeqCst);
}
