//! Helpers shared by the integration tests: fixture paths and golden files.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use serde::Deserialize;

/// `tests/data/models/<name>` at the workspace root.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models")
        .join(name)
}

/// One golden prompt.
#[derive(Debug, Deserialize)]
pub struct GoldenPrompt {
    pub text: String,
    pub input_ids: Vec<u32>,
    pub logits: String,
    pub greedy_step_logits: String,
    pub greedy_24_new_ids: Vec<u32>,
}

/// `golden.json` (the parts these tests read).
#[derive(Debug, Deserialize)]
pub struct Golden {
    pub prompts: Vec<GoldenPrompt>,
}

/// Reads `golden.json` and `golden.safetensors` of a fixture.
pub fn golden(name: &str) -> (Golden, HashMap<String, Tensor>) {
    let dir = fixture(name);
    let text = std::fs::read_to_string(dir.join("golden.json")).unwrap();
    let golden: Golden = serde_json::from_str(&text).unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu).unwrap();
    (golden, tensors)
}

/// Largest absolute difference of two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Logits at every position of `ids`, from an empty cache.
pub fn all_logits(model: &kiln_models::Model, ids: &[u32]) -> Tensor {
    let mut cache = model.decoder.new_cache();
    model
        .decoder
        .forward(ids, &mut cache, kiln_models::Logits::All)
        .unwrap()
}

/// Up to `n` greedy tokens after `prompt` (stopping after any of `eos`).
pub fn greedy(model: &kiln_models::Model, prompt: &[u32], n: usize, eos: &[u32]) -> Vec<u32> {
    use kiln_models::Logits;
    let mut cache = model.decoder.new_cache();
    let mut out = Vec::new();
    let mut logits = model
        .decoder
        .forward(prompt, &mut cache, Logits::Last)
        .unwrap();
    for _ in 0..n {
        let row: Vec<f32> = logits.squeeze(0).unwrap().to_vec1().unwrap();
        let next = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32;
        out.push(next);
        if eos.contains(&next) {
            break;
        }
        logits = model
            .decoder
            .forward(&[next], &mut cache, Logits::Last)
            .unwrap();
    }
    out
}
