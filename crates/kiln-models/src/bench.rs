//! `kiln bench`: prefill and decode speed of a model on synthetic tokens.

use std::time::Instant;

use serde::Serialize;

use crate::decoder::{Decoder, Logits};
use crate::Result;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchOptions {
    /// Prompt length for the prefill measurement.
    pub prompt_tokens: usize,
    /// Tokens decoded one at a time after the prompt.
    pub decode_tokens: usize,
    /// How many times to repeat the whole measurement.
    pub repetitions: usize,
}

/// Results (medians over repetitions, plus every sample).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Prompt length.
    pub prompt_tokens: usize,
    /// Decoded tokens.
    pub decode_tokens: usize,
    /// Median prefill tokens per second.
    pub prefill_tokens_per_s: f64,
    /// Median decode tokens per second.
    pub decode_tokens_per_s: f64,
    /// Median time to first token (prefill of the prompt) in milliseconds.
    pub time_to_first_token_ms: f64,
    /// Every repetition's prefill tokens/s.
    pub prefill_samples: Vec<f64>,
    /// Every repetition's decode tokens/s.
    pub decode_samples: Vec<f64>,
    /// Peak resident memory of the process in MiB (Linux `VmHWM`).
    pub peak_rss_mib: Option<f64>,
    /// Compute threads (`RAYON_NUM_THREADS`, else all available cores).
    pub threads: usize,
}

/// Runs the benchmark; token ids are a fixed pseudo-random sequence.
pub fn run(decoder: &Decoder, options: BenchOptions) -> Result<BenchReport> {
    let vocab = decoder.spec().vocab_size as u64;
    let prompt: Vec<u32> = (0..options.prompt_tokens as u64)
        .map(|i| ((i * 2_654_435_761 + 12_345) % vocab) as u32)
        .collect();
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    let mut ttft = Vec::new();
    for _ in 0..options.repetitions.max(1) {
        let mut cache = decoder.new_cache();
        let t0 = Instant::now();
        decoder.forward(&prompt, &mut cache, Logits::Last)?;
        let p = t0.elapsed().as_secs_f64();
        ttft.push(p * 1e3);
        prefill.push(options.prompt_tokens as f64 / p);
        let t1 = Instant::now();
        let mut next = prompt.last().copied().unwrap_or(0);
        for _ in 0..options.decode_tokens {
            let logits = decoder.forward(&[next], &mut cache, Logits::Last)?;
            next = logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?;
        }
        decode.push(options.decode_tokens as f64 / t1.elapsed().as_secs_f64());
    }
    Ok(BenchReport {
        prompt_tokens: options.prompt_tokens,
        decode_tokens: options.decode_tokens,
        prefill_tokens_per_s: median(&prefill),
        decode_tokens_per_s: median(&decode),
        time_to_first_token_ms: median(&ttft),
        prefill_samples: prefill,
        decode_samples: decode,
        peak_rss_mib: peak_rss_mib(),
        threads: std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    })
}

/// Median of a sample (0 for an empty one).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Peak resident set size from `/proc/self/status`.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
