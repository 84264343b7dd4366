//! The `kiln` binary end to end on the bundled fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::{data, fixture, kiln, kiln_json, kiln_with_stdin, temp_dir};

fn golden_prompt(name: &str) -> Value {
    let text = std::fs::read_to_string(PathBuf::from(fixture(name)).join("golden.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    golden["prompts"][0].clone()
}

#[test]
fn generate_json_gives_the_reference_greedy_ids() {
    let model = fixture("qwen2");
    let p = golden_prompt("qwen2");
    let v = kiln_json(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        p["text"].as_str().unwrap(),
        "--max-new-tokens",
        "24",
        "--min-new-tokens",
        "24",
        "--json",
    ]);
    assert_eq!(v["token_ids"], p["greedy_24_new_ids"]);
    assert_eq!(v["prompt_ids"], p["input_ids"]);
    assert_eq!(v["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 24);
    assert!(v["text"].is_string());
}

#[test]
fn generate_streams_text() {
    let out = kiln(&[
        "generate",
        "--model",
        &fixture("llama"),
        "--prompt",
        "Hello world",
        "--max-new-tokens",
        "8",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty());
}

#[test]
fn tokenize_json_matches_transformers() {
    let p = golden_prompt("llama");
    let v = kiln_json(&[
        "tokenize",
        "--model",
        &fixture("llama"),
        "--text",
        p["text"].as_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["ids"], p["input_ids"]);
    assert_eq!(v["pieces"][0], "<s>");
    let v = kiln_json(&[
        "tokenize",
        "--model",
        &fixture("llama"),
        "--text",
        p["text"].as_str().unwrap(),
        "--no-special",
        "--json",
    ]);
    assert_eq!(
        v["ids"].as_array().unwrap()[..],
        p["input_ids"].as_array().unwrap()[1..]
    );
}

#[test]
fn inspect_reports_family_and_parameters() {
    let v = kiln_json(&["inspect", "--model", &fixture("llama"), "--json"]);
    assert_eq!(v["family"], "llama");
    assert_eq!(v["layers"], 2);
    assert_eq!(v["kv_heads"], 2);
    assert_eq!(v["context_length"], 256);
    let stored: u64 = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .product::<u64>()
        })
        .sum();
    assert_eq!(v["parameters"].as_u64().unwrap(), stored);
    assert_eq!(v["tensor_dtypes"]["F32"], 21);
}

#[test]
fn bench_json_reports_speeds() {
    let v = kiln_json(&[
        "bench",
        "--model",
        &fixture("llama"),
        "--prompt-tokens",
        "16",
        "--decode-tokens",
        "4",
        "--repetitions",
        "2",
        "--json",
    ]);
    assert!(v["prefill_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["decode_samples"].as_array().unwrap().len(), 2);
    assert!(v["peak_rss_mib"].as_f64().unwrap() > 1.0);
}

#[test]
fn bad_model_is_a_clear_error() {
    let out = kiln(&["inspect", "--model", "/nonexistent/dir/x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither a local model directory nor a hub id"),
        "{err}"
    );
}

#[test]
fn generate_beam_search_matches_transformers() {
    let model = fixture("llama");
    let text = std::fs::read_to_string(PathBuf::from(&model).join("golden.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    let v = kiln_json(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        golden["prompts"][0]["text"].as_str().unwrap(),
        "--num-beams",
        "4",
        "--num-return-sequences",
        "2",
        "--max-new-tokens",
        "10",
        "--min-new-tokens",
        "10",
        "--early-stopping",
        "--json",
    ]);
    let got: Vec<Value> = v["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["token_ids"].clone())
        .collect();
    assert_eq!(
        Value::Array(got),
        golden["beam_search"]["sequences_new_ids"]
    );
}

#[test]
fn generate_sampling_is_reproducible_with_a_seed() {
    let args = |seed: &'static str| {
        vec![
            "generate",
            "--model",
            "",
            "--prompt",
            "Hello",
            "--temperature",
            "0.8",
            "--top-p",
            "0.9",
            "--seed",
            seed,
            "--max-new-tokens",
            "12",
            "--min-new-tokens",
            "12",
            "--json",
        ]
    };
    let model = fixture("qwen2");
    let run = |seed| {
        let mut a = args(seed);
        a[2] = &model;
        kiln_json(&a)["token_ids"].clone()
    };
    assert_eq!(run("3"), run("3"));
    assert_ne!(run("3"), run("4"));
}

#[test]
fn generate_json_stream_emits_events() {
    let out = kiln(&[
        "generate",
        "--model",
        &fixture("qwen2"),
        "--prompt",
        "Hi",
        "--max-new-tokens",
        "4",
        "--min-new-tokens",
        "4",
        "--json",
        "--stream",
        "--logprobs",
        "2",
    ]);
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tokens = lines.iter().filter(|l| l["event"] == "token").count();
    assert_eq!(tokens, 4);
    assert_eq!(lines.iter().filter(|l| l["event"] == "finished").count(), 1);
    assert_eq!(
        lines[0]["logprob"]["top_logprobs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(lines.last().unwrap()["usage"]["completion_tokens"], 4);
}

#[test]
fn bad_sampling_parameters_are_rejected() {
    let out = kiln(&[
        "generate",
        "--model",
        &fixture("llama"),
        "--prompt",
        "x",
        "--temperature",
        "-1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid temperature: must be ≥ 0"), "{err}");
    let out = kiln(&[
        "generate",
        "--model",
        &fixture("llama"),
        "--prompt",
        "x",
        "--num-beams",
        "2",
        "--num-return-sequences",
        "3",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than num_beams"));
}

#[test]
fn generate_with_a_builtin_template() {
    let v = kiln_json(&[
        "generate",
        "--model",
        &fixture("llama"),
        "--prompt",
        "Name a colour.",
        "--template",
        "alpaca",
        "--max-new-tokens",
        "2",
        "--json",
    ]);
    assert!(v["prompt_ids"].as_array().unwrap().len() > 5);
    let out = kiln(&[
        "generate",
        "--model",
        &fixture("llama"),
        "--prompt",
        "x",
        "--template",
        "nope",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a built-in"));
}

#[test]
fn chat_session_with_commands() {
    let out = kiln_with_stdin(
        &[
            "chat",
            "--model",
            &fixture("qwen2"),
            "--max-new-tokens",
            "6",
            "--system",
            "Be brief.",
        ],
        "/params\nHello there\n/set temperature 0.5\n/set top_p 7\n/reset\n안녕하세요\n/quit\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"max_new_tokens\": 6"), "{stdout}");
    assert!(stdout.contains("(ok)"));
    assert!(stdout.contains("error: invalid top_p"), "{stdout}");
    assert!(stdout.contains("(history cleared)"));
    // Two replies were produced (prompt markers "> " around them).
    assert!(stdout.matches("> ").count() >= 6, "{stdout}");
}

/// `inspect`, `tokenize`, `generate` and `bench` work for every family.
#[test]
fn every_family_works_from_the_command_line() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models");
    let mut families = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("adapter_config.json").exists() {
            continue; // adapters are covered by the adapter tests
        }
        let model = dir.display().to_string();
        let golden: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap())
                .unwrap();
        let p = &golden["prompts"][0];
        let text = p["text"].as_str().unwrap();
        let info = kiln_json(&["inspect", "--model", &model, "--json"]);
        assert!(info["parameters"].as_u64().unwrap() > 0, "{model}");
        let tok = kiln_json(&["tokenize", "--model", &model, "--text", text, "--json"]);
        assert_eq!(tok["ids"], p["input_ids"], "{model}");
        let gen = kiln_json(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            text,
            "--max-new-tokens",
            "24",
            "--min-new-tokens",
            "24",
            "--json",
        ]);
        assert_eq!(gen["token_ids"], p["greedy_24_new_ids"], "{model}");
        let bench = kiln_json(&[
            "bench",
            "--model",
            &model,
            "--prompt-tokens",
            "8",
            "--decode-tokens",
            "2",
            "--repetitions",
            "1",
            "--json",
        ]);
        assert!(bench["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
        families += 1;
    }
    assert_eq!(families, 22);
}

#[test]
fn tokenize_a_vocab_only_gguf_as_llama_cpp_does() {
    // With --no-special, `<s>` is plain text ("▁<", "s", ">"), as in llama.cpp's tests;
    // without it, BOS is added and `<s>` is the special token.
    let vocab = data("tokenizers/ggml-vocab-llama-spm.gguf");
    let plain = kiln_json(&[
        "tokenize",
        "--model",
        &vocab,
        "--text",
        "Hello <s> world",
        "--no-special",
        "--json",
    ]);
    assert_eq!(
        plain["ids"],
        serde_json::json!([15043, 529, 29879, 29958, 3186])
    );
    let special = kiln_json(&[
        "tokenize",
        "--model",
        &vocab,
        "--text",
        "Hello <s> world",
        "--json",
    ]);
    assert_eq!(special["ids"][0], 1, "BOS added");
    assert_eq!(special["ids"][3], 1, "<s> parsed as the special token");
}

#[test]
fn quantize_writes_a_gguf_that_generate_runs() {
    let dir = temp_dir("quantize");
    let out = dir.join("llama_k-q8_0.gguf");
    let res = kiln(&[
        "quantize",
        "--model",
        &fixture("llama_k"),
        "--type",
        "Q8_0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains("16 Q8_0"));
    let info = kiln_json(&["inspect", "--model", out.to_str().unwrap(), "--json"]);
    assert_eq!(info["gguf_metadata"]["general.file_type"], "7");
    assert_generates_four_tokens(&out, "Hello world");
    let bad = kiln(&[
        "quantize",
        "--model",
        &fixture("llama_k"),
        "--type",
        "Q9",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected one of"));
    let _ = std::fs::remove_dir_all(dir);
}

/// `kiln merge` onto a GGUF base writes a GGUF that `generate` runs, with the
/// merged tensors in the type asked for; a directory output is refused.
#[test]
fn merge_onto_a_gguf_base() {
    let dir = temp_dir("merge-gguf");
    let out = dir.join("merged.gguf");
    let base = data("gguf/llama-q4_0.gguf");
    let adapter = fixture("llama-lora");
    let res = kiln(&[
        "merge",
        "-m",
        &base,
        "--adapter",
        &adapter,
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q8_0",
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains("merged 14 tensors"));
    assert!(String::from_utf8_lossy(&res.stderr)
        .contains("blk.0.attn_q.weight: stored as Q8_0 (was Q4_0)"));
    assert_generates_four_tokens(&out, "Hello");
    let res = kiln(&[
        "merge",
        "-m",
        &base,
        "--adapter",
        &adapter,
        "-o",
        dir.join("d").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("merges into a .gguf file"));
    let _ = std::fs::remove_dir_all(dir);
}

/// `kiln generate` runs the model file `model` and returns four token ids.
fn assert_generates_four_tokens(model: &std::path::Path, prompt: &str) {
    let gen = kiln_json(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        prompt,
        "--max-new-tokens",
        "4",
        "--json",
    ]);
    assert_eq!(gen["token_ids"].as_array().unwrap().len(), 4);
}
