//! The Llama-lineage fixtures against transformers' goldens: tokenizer ids,
//! logits at every position, 24 greedy ids, and per-step logits of cached
//! incremental decoding.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::Tensor;
use common::{fixture, golden, max_abs_diff};
use kiln_models::{Logits, Model};

const TOLERANCE: f32 = 1e-4;

fn check_family(name: &str) {
    let model = Model::load_dir(&fixture(name)).unwrap();
    let tokenizer = model.tokenizer().unwrap();
    let (golden, tensors) = golden(name);
    assert!(!golden.prompts.is_empty());
    for (i, p) in golden.prompts.iter().enumerate() {
        let ids = tokenizer.encode(&p.text, true).unwrap().ids;
        assert_eq!(ids, p.input_ids, "{name} prompt {i}: tokenizer ids");

        let mut cache = model.decoder.new_cache();
        let logits = model
            .decoder
            .forward(&p.input_ids, &mut cache, Logits::All)
            .unwrap();
        let diff = max_abs_diff(&logits, &tensors[&p.logits]);
        assert!(
            diff <= TOLERANCE,
            "{name} prompt {i}: logits max |Δ| = {diff}"
        );

        // Greedy with the KV cache, EOS never picked (min_new_tokens = 24):
        // one prefill, then one token per step.
        let eos = model.eos_token_ids();
        let mut cache = model.decoder.new_cache();
        let mut logits = model
            .decoder
            .forward(&p.input_ids, &mut cache, Logits::Last)
            .unwrap();
        let mut new_ids = Vec::new();
        let mut step_logits = Vec::new();
        for _ in 0..24 {
            let row: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
            let mut best: Option<usize> = None;
            for t in (0..row.len()).filter(|t| !eos.contains(&(*t as u32))) {
                if best.is_none_or(|b| row[t] > row[b]) {
                    best = Some(t);
                }
            }
            let next = best.unwrap() as u32;
            step_logits.push(row);
            new_ids.push(next);
            logits = model
                .decoder
                .forward(&[next], &mut cache, Logits::Last)
                .unwrap();
        }
        assert_eq!(
            new_ids, p.greedy_24_new_ids,
            "{name} prompt {i}: greedy ids"
        );
        let out_steps = step_logits.len();
        let steps: Vec<f32> = step_logits.concat();
        let steps = Tensor::from_vec(
            steps,
            (out_steps, model.spec().vocab_size),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let diff = max_abs_diff(&steps, &tensors[&p.greedy_step_logits]);
        assert!(
            diff <= TOLERANCE,
            "{name} prompt {i}: step logits max |Δ| = {diff}"
        );
    }
}

#[test]
fn llama_matches_transformers() {
    check_family("llama");
}

#[test]
fn llama_k_matches_transformers() {
    check_family("llama_k");
}

#[test]
fn mistral_matches_transformers() {
    check_family("mistral");
}

#[test]
fn qwen2_matches_transformers() {
    check_family("qwen2");
}

#[test]
fn qwen3_matches_transformers() {
    check_family("qwen3");
}

#[test]
fn phi3_matches_transformers() {
    check_family("phi3");
}

#[test]
fn gemma2_matches_transformers() {
    check_family("gemma2");
}

/// Prefill in chunks plus single steps gives the same logits as one pass.
#[test]
fn chunked_prefill_equals_full_forward() {
    for name in ["llama", "gemma2", "mistral"] {
        let model = Model::load_dir(&fixture(name)).unwrap();
        let (golden, _) = golden(name);
        let ids = &golden.prompts[1].input_ids;
        let mut full_cache = model.decoder.new_cache();
        let full = model
            .decoder
            .forward(ids, &mut full_cache, Logits::All)
            .unwrap();
        let mut cache = model.decoder.new_cache();
        let mut parts = vec![model
            .decoder
            .forward(&ids[..5], &mut cache, Logits::All)
            .unwrap()];
        parts.push(
            model
                .decoder
                .forward(&ids[5..12], &mut cache, Logits::All)
                .unwrap(),
        );
        for id in &ids[12..] {
            parts.push(
                model
                    .decoder
                    .forward(&[*id], &mut cache, Logits::All)
                    .unwrap(),
            );
        }
        let chunked = Tensor::cat(&parts, 0).unwrap();
        let diff = max_abs_diff(&full, &chunked);
        assert!(
            diff <= TOLERANCE,
            "{name}: chunked vs full max |Δ| = {diff}"
        );
        assert_eq!(cache.len(), ids.len());
    }
}
