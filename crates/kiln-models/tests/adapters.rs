//! PEFT adapters against PEFT's own outputs: logits with LoRA / rsLoRA /
//! IA³ attached, greedy continuations, and merged weights.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use common::{all_logits, fixture, max_abs_diff};
use kiln_models::adapter::Adapter;
use kiln_models::Model;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct AdapterPrompt {
    input_ids: Vec<u32>,
    logits: String,
    greedy_16_new_ids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct AdapterGolden {
    base: String,
    prompts: Vec<AdapterPrompt>,
}

fn adapter_golden(name: &str) -> (AdapterGolden, HashMap<String, Tensor>) {
    let dir = fixture(name);
    let golden =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu).unwrap();
    (golden, tensors)
}

/// Greedy continuation without EOS stopping (as the goldens were made).
fn greedy(decoder: &kiln_models::Decoder, prompt: &[u32], n: usize) -> Vec<u32> {
    use kiln_models::Logits;
    let mut cache = decoder.new_cache();
    let mut logits = decoder.forward(prompt, &mut cache, Logits::Last).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let row: Vec<f32> = logits.squeeze(0).unwrap().to_vec1().unwrap();
        let next = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32;
        out.push(next);
        logits = decoder.forward(&[next], &mut cache, Logits::Last).unwrap();
    }
    out
}

const ADAPTERS: &[&str] = &[
    "llama-lora",
    "llama-lora-rslora-attn",
    "llama-ia3",
    "qwen2-lora",
    "qwen2-lora-rslora-attn",
    "qwen2-ia3",
];

#[test]
fn adapted_logits_and_greedy_ids_match_peft() {
    for name in ADAPTERS {
        let (golden, tensors) = adapter_golden(name);
        let model = Model::load_dir(&fixture(&golden.base)).unwrap();
        let adapter = Adapter::load(&fixture(name)).unwrap();
        let decoder = model.decoder.with_adapter(&adapter).unwrap();
        for p in &golden.prompts {
            let mut cache = decoder.new_cache();
            let logits = decoder
                .forward(&p.input_ids, &mut cache, kiln_models::Logits::All)
                .unwrap();
            let diff = max_abs_diff(&logits, &tensors[&p.logits]);
            assert!(diff <= 1e-4, "{name} {}: max |Δ| {diff}", p.logits);
            assert_eq!(
                greedy(&decoder, &p.input_ids, 16),
                p.greedy_16_new_ids,
                "{name} {}",
                p.logits
            );
        }
        // The adapter changes the output (the test would catch a no-op).
        let base = all_logits(&model, &golden.prompts[1].input_ids);
        assert!(
            max_abs_diff(&base, &tensors["logits.1"]) > 1e-3,
            "{name}: adapter had no effect"
        );
    }
}

#[test]
fn merged_weights_match_peft_merge_and_unload() {
    for name in ADAPTERS {
        let (golden, tensors) = adapter_golden(name);
        let base_dir = fixture(&golden.base);
        let model = Model::load_dir(&base_dir).unwrap();
        let adapter = Adapter::load(&fixture(name)).unwrap();
        let ids = &golden.prompts[1].input_ids;
        // In memory …
        let merged = model
            .decoder
            .with_adapter(&adapter)
            .unwrap()
            .merge_adapters()
            .unwrap();
        let mut cache = merged.new_cache();
        let logits = merged
            .forward(ids, &mut cache, kiln_models::Logits::All)
            .unwrap();
        let diff = max_abs_diff(&logits, &tensors["merged_logits.1"]);
        assert!(diff <= 1e-4, "{name} merged in memory: {diff}");
        // … and written as a checkpoint that loads like any other.
        let out = tempfile::tempdir().unwrap();
        let changed =
            kiln_models::adapter::merge_into_dir(&base_dir, &adapter, out.path(), false).unwrap();
        assert_eq!(changed, adapter.modules.len());
        let reloaded = Model::load_dir(out.path()).unwrap();
        let diff = max_abs_diff(&all_logits(&reloaded, ids), &tensors["merged_logits.1"]);
        assert!(diff <= 1e-4, "{name} merged checkpoint: {diff}");
    }
}

#[test]
fn adapters_attach_to_gguf_and_quantized_bases() {
    // llama.cpp's llama GGUF keeps q/k rows interleaved; the adapter's rows
    // must follow. f32 GGUF: as close to PEFT as the base GGUF is to HF.
    let (golden, tensors) = adapter_golden("llama-lora");
    let adapter = Adapter::load(&fixture("llama-lora")).unwrap();
    let gguf = fixture("../gguf/llama-f32.gguf");
    let model = Model::load_gguf(&gguf).unwrap();
    let decoder = model.decoder.with_adapter(&adapter).unwrap();
    for p in &golden.prompts {
        let mut cache = decoder.new_cache();
        let logits = decoder
            .forward(&p.input_ids, &mut cache, kiln_models::Logits::All)
            .unwrap();
        let diff = max_abs_diff(&logits, &tensors[&p.logits]);
        assert!(diff <= 1e-3, "llama-f32.gguf + lora {}: {diff}", p.logits);
    }
    // In-situ Q8_0 base with an f32 adapter.
    let q8 = Model::load_dir_with(
        &fixture("llama"),
        Some(kiln_models::kernels::quant::GgmlType::Q8_0),
    )
    .unwrap();
    let decoder = q8.decoder.with_adapter(&adapter).unwrap();
    let p = &golden.prompts[1];
    let mut cache = decoder.new_cache();
    let logits = decoder
        .forward(&p.input_ids, &mut cache, kiln_models::Logits::All)
        .unwrap();
    // What the adapter adds on the quantized base equals what it adds on
    // the f32 one, up to quantization noise; the base itself moves more.
    let q8_base = all_logits(&q8, &p.input_ids);
    let f32_base = all_logits(&Model::load_dir(&fixture("llama")).unwrap(), &p.input_ids);
    let added_q8 = (logits - &q8_base).unwrap();
    let added_f32 = (&tensors[&p.logits] - &f32_base).unwrap();
    let norm = |t: &Tensor| {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let relative = norm(&(&added_q8 - &added_f32).unwrap()) / norm(&added_f32);
    let base_noise = norm(&(&q8_base - &f32_base).unwrap()) / norm(&f32_base);
    eprintln!("q8_0 + lora: relative error of the update {relative}, of the base {base_noise}");
    assert!(
        relative <= 0.05,
        "q8_0 + lora: the adapter's update is off by {relative} (relative)"
    );
}

#[test]
fn adapters_stack_and_mismatches_are_named() {
    let model = Model::load_dir(&fixture("llama")).unwrap();
    let lora = Adapter::load(&fixture("llama-lora")).unwrap();
    let ia3 = Adapter::load(&fixture("llama-ia3")).unwrap();
    let both = model
        .decoder
        .with_adapter(&lora)
        .unwrap()
        .with_adapter(&ia3)
        .unwrap();
    assert_eq!(
        both.parameter_count(),
        model.decoder.parameter_count() + lora.parameter_count() + ia3.parameter_count()
    );
    // Factors of the wrong shape.
    let mut bad = lora.clone();
    let (name, _) = bad.modules.pop_first().unwrap();
    let a = Tensor::zeros((4, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros((3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    bad.modules.insert(
        name.clone(),
        kiln_models::adapter::ModuleWeights::Lora { a, b },
    );
    let err = model.decoder.with_adapter(&bad).unwrap_err().to_string();
    assert!(err.contains(&name) && err.contains("lora_"), "{err}");
    // A module the model does not have.
    let mut bad = lora.clone();
    let (_, w) = bad.modules.pop_first().unwrap();
    bad.modules
        .insert("model.layers.7.self_attn.q_proj".into(), w);
    let err = model.decoder.with_adapter(&bad).unwrap_err().to_string();
    assert!(err.contains("model.layers.7.self_attn.q_proj"), "{err}");
    // A directory without weights.
    let empty = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("llama-lora").join("adapter_config.json"),
        empty.path().join("adapter_config.json"),
    )
    .unwrap();
    let err = Adapter::load(empty.path()).unwrap_err().to_string();
    assert!(err.contains("adapter_model.safetensors"), "{err}");
}

/// A LoRA on every projection but the head, with deterministic values.
fn synthetic_lora(model: &Model) -> Adapter {
    let mut tensors = Vec::new();
    let mut names = Vec::new();
    for (k, p) in model
        .decoder
        .projection_modules()
        .unwrap()
        .into_iter()
        .enumerate()
    {
        if p.module.ends_with("lm_head") {
            continue;
        }
        let fill = |n: usize, salt: usize| -> Vec<f32> {
            (0..n)
                .map(|j| (((j * 31 + salt * 7) % 23) as f32 - 11.0) * 0.004)
                .collect()
        };
        let a =
            Tensor::from_vec(fill(2 * p.in_features, k), (2, p.in_features), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(
            fill(p.out_features * 2, k + 5),
            (p.out_features, 2),
            &Device::Cpu,
        )
        .unwrap();
        tensors.push((format!("base_model.model.{}.lora_A.weight", p.module), a));
        tensors.push((format!("base_model.model.{}.lora_B.weight", p.module), b));
        names.push(p.module.rsplit('.').next().unwrap().to_string());
    }
    names.sort();
    names.dedup();
    let json =
        serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": names});
    let config = kiln_models::adapter::AdapterConfig::from_json(
        &json.to_string(),
        std::path::Path::new("t"),
    )
    .unwrap();
    Adapter::from_tensors(config, tensors).unwrap()
}

#[test]
fn attached_and_merged_agree_for_fused_and_transposed_layouts() {
    // Fused per-head / grouped q/k/v (rows regrouped at load), GPT-2's
    // Conv1D (stored [in, out]): attaching must put the adapter's rows where
    // kiln keeps the base's; merging works in the checkpoint's own layout.
    for family in [
        "falcon_per_head",
        "falcon_new_arch",
        "gpt_neox",
        "gpt2",
        "phi3",
        "mpt",
    ] {
        let dir = fixture(family);
        let model = Model::load_dir(&dir).unwrap();
        let adapter = synthetic_lora(&model);
        let ids: Vec<u32> = vec![1, 17, 42, 99, 7, 256, 3, 88];
        let attached = model.with_adapter(&adapter).unwrap();
        let out = tempfile::tempdir().unwrap();
        let transposed = model.decoder.spec().transposed_linear_weights;
        kiln_models::adapter::merge_into_dir(&dir, &adapter, out.path(), transposed).unwrap();
        let merged = Model::load_dir(out.path()).unwrap();
        let (a, m) = (all_logits(&attached, &ids), all_logits(&merged, &ids));
        let diff = max_abs_diff(&a, &m);
        assert!(diff <= 1e-4, "{family}: attached vs merged {diff}");
        assert!(
            max_abs_diff(&a, &all_logits(&model, &ids)) > 1e-3,
            "{family}: adapter had no effect"
        );
    }
}

/// `kiln merge` onto GGUF bases: the merged file, loaded alone, gives the
/// logits of the base with the adapter attached — exactly for an f32 base
/// (same products, folded), within re-quantization noise for Q8_0 and Q4_0
/// bases; every other tensor and all metadata are copied.
#[test]
fn adapters_merge_into_gguf_bases() {
    use kiln_models::adapter::merge_into_gguf;
    use kiln_models::gguf::GgufFile;
    use kiln_models::kernels::quant::GgmlType;
    let adapter = Adapter::load(&fixture("llama-lora")).unwrap();
    let ids = [1u32, 306, 496, 304, 244, 263, 217, 889];
    let dir = tempfile::tempdir().unwrap();
    // Tolerance relative to how far the adapter moves the base's logits.
    // Re-quantizing to 4 bits costs up to ~30% of this small adapter's
    // effect; stored as f32 instead, the merge is exact again.
    for (file, ty, tolerance) in [
        ("llama-f32", None, 1e-5f32),
        ("llama-q8_0", None, 0.05),
        ("llama-q4_0", None, 0.4),
        ("llama-q4_0", Some(GgmlType::F32), 1e-5),
    ] {
        let base = fixture(&format!("../gguf/{file}.gguf"));
        let out = dir.path().join(format!("{file}-{ty:?}-merged.gguf"));
        let summary = merge_into_gguf(&base, &adapter, &out, ty).unwrap();
        // The fixture adapter targets all seven projections of both layers.
        assert_eq!(summary.changed, 14, "{file}: {summary:?}");
        assert_eq!(summary.retyped.len(), if ty.is_some() { 14 } else { 0 });
        let attached = Model::load_gguf(&base)
            .unwrap()
            .decoder
            .with_adapter(&adapter)
            .unwrap();
        // Stored as f32, the merged file computes in f32 what the attached
        // adapter folded into dense f32 weights computes (a quantized base
        // otherwise also quantizes the activations).
        let reference = match ty {
            Some(_) => attached.merge_adapters().unwrap(),
            None => attached.clone(),
        };
        let mut cache = reference.new_cache();
        let want = reference
            .forward(&ids, &mut cache, kiln_models::Logits::All)
            .unwrap();
        let merged = Model::load_gguf(&out).unwrap();
        let got = all_logits(&merged, &ids);
        let moved = max_abs_diff(&want, &all_logits(&Model::load_gguf(&base).unwrap(), &ids));
        let diff = max_abs_diff(&got, &want) / moved;
        eprintln!("{file}: merged vs attached max |Δ| {diff} of the adapter's {moved}");
        assert!(diff <= tolerance, "{file}: {diff}");
        let (a, b) = (
            GgufFile::open(&base).unwrap(),
            GgufFile::open(&out).unwrap(),
        );
        assert_eq!(a.tensors().len(), b.tensors().len());
        for (x, y) in a.tensors().iter().zip(b.tensors()) {
            assert_eq!((&x.name, &x.shape), (&y.name, &y.shape));
            let adapted = [
                "attn_q.",
                "attn_k.",
                "attn_v.",
                "attn_output.",
                "ffn_gate.",
                "ffn_up.",
                "ffn_down.",
            ]
            .iter()
            .any(|p| x.name.contains(p));
            if !adapted {
                assert_eq!(
                    a.tensor_bytes(x).unwrap(),
                    b.tensor_bytes(y).unwrap(),
                    "{}",
                    x.name
                );
            }
        }
        assert_eq!(
            a.get_str("tokenizer.ggml.model"),
            b.get_str("tokenizer.ggml.model")
        );
    }
}
