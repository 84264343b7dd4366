//! Every family's fixture against transformers' goldens: tokenizer ids,
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
    for name in [
        "llama", "gemma2", "mistral", "gpt2", "gptj", "gpt_neox", "falcon", "mpt",
    ] {
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

/// f16 and bf16 checkpoints load and compute in f32: the logits equal those
/// of an f32 checkpoint holding the same rounded values, and stay close to
/// the f32 golden.
#[test]
fn half_precision_checkpoints_load() {
    use candle_core::DType;
    let src = fixture("llama");
    let (golden, tensors) = golden("llama");
    let ids = &golden.prompts[1].input_ids;
    let weights =
        candle_core::safetensors::load(src.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    for dtype in [DType::F16, DType::BF16] {
        let half_dir = tempfile::tempdir().unwrap();
        let rounded_dir = tempfile::tempdir().unwrap();
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(src.join(f), half_dir.path().join(f)).unwrap();
            std::fs::copy(src.join(f), rounded_dir.path().join(f)).unwrap();
        }
        let half: std::collections::HashMap<String, Tensor> = weights
            .iter()
            .map(|(k, v)| (k.clone(), v.to_dtype(dtype).unwrap()))
            .collect();
        let rounded: std::collections::HashMap<String, Tensor> = half
            .iter()
            .map(|(k, v)| (k.clone(), v.to_dtype(DType::F32).unwrap()))
            .collect();
        candle_core::safetensors::save(&half, half_dir.path().join("model.safetensors")).unwrap();
        candle_core::safetensors::save(&rounded, rounded_dir.path().join("model.safetensors"))
            .unwrap();
        let run = |dir: &std::path::Path| {
            let model = Model::load_dir(dir).unwrap();
            let mut cache = model.decoder.new_cache();
            model.decoder.forward(ids, &mut cache, Logits::All).unwrap()
        };
        let from_half = run(half_dir.path());
        // Same values; bf16 runs through kiln's 16-bit kernels (another
        // summation order), f16 through an f32 copy.
        let same = max_abs_diff(&from_half, &run(rounded_dir.path()));
        assert!(same <= 1e-5, "{dtype:?}: {same}");
        // One token at a time (the bf16 GEMV path) agrees with the f32 copy too.
        let step = |dir: &std::path::Path| {
            let model = Model::load_dir(dir).unwrap();
            let mut cache = model.decoder.new_cache();
            let rows: Vec<Tensor> = ids
                .iter()
                .map(|&id| {
                    model
                        .decoder
                        .forward(&[id], &mut cache, Logits::Last)
                        .unwrap()
                })
                .collect();
            Tensor::cat(&rows, 0).unwrap()
        };
        let stepwise = max_abs_diff(&step(half_dir.path()), &step(rounded_dir.path()));
        assert!(stepwise <= 1e-4, "{dtype:?} stepwise: {stepwise}");
        let drift = max_abs_diff(&from_half, &tensors[&golden.prompts[1].logits]);
        assert!(drift < 0.1, "{dtype:?}: {drift}");
        let model = Model::load_dir(half_dir.path()).unwrap();
        assert!(model
            .tensors
            .iter()
            .all(|t| t.dtype == format!("{dtype:?}").to_uppercase()));
    }
}

#[test]
fn gpt2_matches_transformers() {
    check_family("gpt2");
}

#[test]
fn gptj_matches_transformers() {
    check_family("gptj");
}

#[test]
fn gpt_neox_matches_transformers() {
    check_family("gpt_neox");
}

#[test]
fn falcon_matches_transformers() {
    check_family("falcon");
}

#[test]
fn mpt_matches_transformers() {
    check_family("mpt");
}

// Families and rope scalings whose fixtures `scripts/make_fixtures.py` made with transformers.

#[test]
fn phi_matches_transformers() {
    check_family("phi");
}

#[test]
fn starcoder2_matches_transformers() {
    check_family("starcoder2");
}

#[test]
fn stablelm_matches_transformers() {
    check_family("stablelm");
}

#[test]
fn rope_linear_matches_transformers() {
    check_family("llama_rope_linear");
}

#[test]
fn rope_dynamic_ntk_matches_transformers() {
    check_family("llama_rope_dynamic");
}

#[test]
fn rope_llama3_matches_transformers() {
    check_family("llama_rope_llama3");
}

#[test]
fn rope_yarn_matches_transformers() {
    check_family("llama_rope_yarn");
}

#[test]
fn rope_longrope_matches_transformers() {
    check_family("phi3_longrope");
}

/// The same rope-scaled checkpoints with their config rewritten into the older
/// layout (`rope_theta` at the top level, `rope_scaling` with `type`) give the
/// same logits.
#[test]
fn rope_scaling_in_the_older_config_layout() {
    for name in [
        "llama_rope_linear",
        "llama_rope_dynamic",
        "llama_rope_llama3",
        "llama_rope_yarn",
        "phi3_longrope",
    ] {
        let src = fixture(name);
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        let path = dir.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut params = config["rope_parameters"].take();
        let obj = config.as_object_mut().unwrap();
        obj.remove("rope_parameters");
        obj.insert("rope_theta".into(), params["rope_theta"].take());
        let p = params.as_object_mut().unwrap();
        p.remove("rope_theta");
        let kind = p.remove("rope_type").unwrap();
        p.insert("type".into(), kind);
        obj.insert("rope_scaling".into(), params);
        std::fs::write(&path, config.to_string()).unwrap();

        let model = Model::load_dir(dir.path()).unwrap();
        let (golden, tensors) = golden(name);
        let p = &golden.prompts[1];
        let mut cache = model.decoder.new_cache();
        let logits = model
            .decoder
            .forward(&p.input_ids, &mut cache, Logits::All)
            .unwrap();
        let diff = max_abs_diff(&logits, &tensors[&p.logits]);
        assert!(diff <= TOLERANCE, "{name} (older layout): max |Δ| = {diff}");
    }
}

#[test]
fn falcon_new_decoder_architecture_matches_transformers() {
    check_family("falcon_new_arch");
}

#[test]
fn falcon_per_head_qkv_matches_transformers() {
    check_family("falcon_per_head");
}
