//! The `kiln` binary end to end on the bundled fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/models")
        .join(name)
        .display()
        .to_string()
}

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

fn kiln_json(args: &[&str]) -> Value {
    let out = kiln(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

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
