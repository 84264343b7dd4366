//! Counters and gauges the engine keeps for `/metrics`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the time-to-first-token histogram buckets.
pub const TTFT_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How far back the tokens/s gauge looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// A point-in-time copy of the engine's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Requests accepted since start.
    pub requests_submitted: u64,
    /// Requests that ran to completion.
    pub requests_finished: u64,
    /// Requests whose receiver went away before they finished.
    pub requests_cancelled: u64,
    /// Requests that failed with an error.
    pub requests_failed: u64,
    /// Requests waiting to start.
    pub queue_depth: usize,
    /// Requests running now.
    pub running_requests: usize,
    /// Sequences decoding now (the batch size).
    pub running_sequences: usize,
    /// Prompt tokens prefilled since start.
    pub prompt_tokens: u64,
    /// Tokens generated since start.
    pub completion_tokens: u64,
    /// Time-to-first-token histogram: cumulative counts per
    /// [`TTFT_BUCKETS`] bound.
    pub ttft_buckets: Vec<(f64, u64)>,
    /// Sum of all times to first token, seconds.
    pub ttft_sum: f64,
    /// Number of times to first token recorded.
    pub ttft_count: u64,
    /// Generated tokens per second over the last ten seconds.
    pub tokens_per_second: f64,
}

/// The live metrics, shared by the engine handle and its scheduler.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) queued: AtomicUsize,
    pub(crate) running_requests: AtomicUsize,
    pub(crate) running_sequences: AtomicUsize,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    submitted: u64,
    finished: u64,
    cancelled: u64,
    failed: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    ttft_counts: [u64; TTFT_BUCKETS.len()],
    ttft_sum: f64,
    ttft_count: u64,
    recent: VecDeque<(Instant, usize)>,
}

/// How a request ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Finished,
    Cancelled,
    Failed,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        let mut guard = match self.counters.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    pub(crate) fn submitted(&self) {
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.with(|c| c.submitted += 1);
    }

    pub(crate) fn first_token(&self, after: Duration) {
        let secs = after.as_secs_f64();
        self.with(|c| {
            for (count, bound) in c.ttft_counts.iter_mut().zip(TTFT_BUCKETS) {
                if secs <= bound {
                    *count += 1;
                }
            }
            c.ttft_sum += secs;
            c.ttft_count += 1;
        });
    }

    pub(crate) fn step(&self, prompt_tokens: usize, generated: usize) {
        let now = Instant::now();
        self.with(|c| {
            c.prompt_tokens += prompt_tokens as u64;
            c.completion_tokens += generated as u64;
            c.recent.push_back((now, generated));
            while c
                .recent
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            {
                c.recent.pop_front();
            }
        });
    }

    pub(crate) fn ended(&self, outcome: Outcome) {
        self.with(|c| match outcome {
            Outcome::Finished => c.finished += 1,
            Outcome::Cancelled => c.cancelled += 1,
            Outcome::Failed => c.failed += 1,
        });
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let now = Instant::now();
        self.with(|c| {
            let tokens: usize = c
                .recent
                .iter()
                .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
                .map(|(_, n)| n)
                .sum();
            let span = c
                .recent
                .front()
                .map_or(0.0, |(t, _)| now.duration_since(*t).as_secs_f64())
                .max(1.0);
            MetricsSnapshot {
                requests_submitted: c.submitted,
                requests_finished: c.finished,
                requests_cancelled: c.cancelled,
                requests_failed: c.failed,
                queue_depth: self.queued.load(Ordering::SeqCst),
                running_requests: self.running_requests.load(Ordering::SeqCst),
                running_sequences: self.running_sequences.load(Ordering::SeqCst),
                prompt_tokens: c.prompt_tokens,
                completion_tokens: c.completion_tokens,
                ttft_buckets: TTFT_BUCKETS.iter().copied().zip(c.ttft_counts).collect(),
                ttft_sum: c.ttft_sum,
                ttft_count: c.ttft_count,
                tokens_per_second: tokens as f64 / span,
            }
        })
    }
}
