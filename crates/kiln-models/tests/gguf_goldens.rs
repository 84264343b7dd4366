//! Every GGUF fixture against llama.cpp's logits on the same file (and, for
//! f32/f16, against transformers' goldens of the checkpoint it came from).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use kiln_models::Model;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Prompt {
    text: String,
    input_ids: Vec<u32>,
    llamacpp_tokenize: Vec<u32>,
    logits: String,
    greedy_24_new_ids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct Golden {
    prompts: Vec<Prompt>,
}

fn gguf_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/gguf")
}

fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(gguf_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".gguf").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// `TOLERANCES.md`: llama.cpp's distance to transformers per file.
fn llama_cpp_vs_transformers() -> HashMap<String, f32> {
    let text = std::fs::read_to_string(gguf_dir().join("TOLERANCES.md")).unwrap();
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let d = cells.get(2)?.parse::<f32>().ok()?;
            Some((cells[1].to_string(), d))
        })
        .collect()
}

fn load_golden(name: &str) -> (Golden, HashMap<String, Tensor>) {
    let dir = gguf_dir();
    let text = std::fs::read_to_string(dir.join(format!("{name}.golden.json"))).unwrap();
    let tensors = candle_core::safetensors::load(
        dir.join(format!("{name}.golden.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    (serde_json::from_str(&text).unwrap(), tensors)
}

/// Positions where llama.cpp's top-2 margin exceeds 0.1 but kiln's argmax differs.
fn argmax_disagreements(ours: &Tensor, theirs: &Tensor) -> usize {
    let ours: Vec<Vec<f32>> = ours.to_vec2().unwrap();
    let theirs: Vec<Vec<f32>> = theirs.to_vec2().unwrap();
    ours.iter()
        .zip(&theirs)
        .filter(|(o, t)| {
            let mut sorted = t.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let argmax = |v: &[f32]| {
                v.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .unwrap()
                    .0
            };
            sorted[0] - sorted[1] > 0.1 && argmax(o) != argmax(t)
        })
        .count()
}

#[test]
fn gguf_fixtures_match_llama_cpp() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let reference_distance = llama_cpp_vs_transformers();
    for name in names() {
        let model = Model::load_gguf(&gguf_dir().join(format!("{name}.gguf")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let tokenizer = model.tokenizer().unwrap();
        let (golden, tensors) = load_golden(&name);
        let quantized = !(name.ends_with("-f32") || name.ends_with("-f16"));
        // f32/f16: within 1e-2. Quantized: 5e-2, except the 256-wide llama_k
        // files where one 8-bit rounding flip of an activation moves logits by
        // up to ~0.17; there at least as close as llama.cpp is to transformers.
        let tol = if !quantized {
            1e-2
        } else if name.starts_with("llama_k") {
            reference_distance[&name].min(0.2)
        } else {
            5e-2
        };
        let (mut worst, mut disagree, mut positions) = (0f32, 0, 0);
        let mut greedy_equal = 0;
        for p in &golden.prompts {
            let ids = tokenizer.encode(&p.text, true).unwrap().ids;
            if ids != p.llamacpp_tokenize {
                failures.push(format!("{name}: tokenization of {:?}", p.text));
            }
            let logits = common::all_logits(&model, &p.input_ids);
            let want = &tensors[&p.logits];
            worst = worst.max(common::max_abs_diff(&logits, want));
            disagree += argmax_disagreements(&logits, want);
            positions += p.input_ids.len();
            let greedy = common::greedy(&model, &p.input_ids, p.greedy_24_new_ids.len(), &[]);
            greedy_equal += usize::from(greedy == p.greedy_24_new_ids);
        }
        report.push(format!(
            "{name:16} max|Δ| {worst:.2e}  argmax disagreements (margin>0.1) {disagree}/{positions}  greedy equal {greedy_equal}/{}",
            golden.prompts.len()
        ));
        if worst > tol || disagree > 0 {
            failures.push(format!(
                "{name}: max|Δ| {worst:.3e} (tolerance {tol:.0e}), {disagree} argmax disagreements"
            ));
        }
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn float_gguf_files_match_transformers() {
    // mistral is left out: its GGUF carries no sliding window (TOLERANCES.md).
    // The bound is 1e-2, or llama.cpp's own distance where that is larger
    // (llama_k-f16: its f16-rounded weights alone move logits by 1.2e-2).
    let reference_distance = llama_cpp_vs_transformers();
    for family in ["llama", "llama_k", "qwen2", "qwen3", "gpt2"] {
        let (golden, tensors) = common::golden(family);
        for ty in ["f32", "f16"] {
            let model = Model::load_gguf(&gguf_dir().join(format!("{family}-{ty}.gguf"))).unwrap();
            for p in &golden.prompts {
                let logits = common::all_logits(&model, &p.input_ids);
                let d = common::max_abs_diff(&logits, &tensors[&p.logits]);
                let tol = reference_distance[&format!("{family}-{ty}")].max(1e-2);
                assert!(d <= tol, "{family}-{ty} {:?}: {d} > {tol}", p.text);
            }
        }
    }
}

/// Matrices packed for the eight-row kernels, with the file's pages of the
/// packed rows released, read back (rows, products) like the file's blocks.
#[test]
fn packed_matrices_read_like_the_file_after_its_pages_are_released() {
    use kiln_models::gguf::GgufFile;
    for name in ["llama-q4_0", "llama-q8_0"] {
        let file = GgufFile::open(&gguf_dir().join(format!("{name}.gguf"))).unwrap();
        let mut packed_any = false;
        for entry in file.tensors() {
            if entry.shape.len() != 2 {
                continue;
            }
            let plain = file.matrix(&entry.name).unwrap();
            let packed = plain.clone().with_packed_rows();
            if let Some(range) = packed.packed_byte_range() {
                file.release_pages(range);
                packed_any = true;
            }
            assert_eq!(
                packed.dequantize(),
                plain.dequantize(),
                "{name} {}",
                entry.name
            );
            assert_eq!(packed.row(1), plain.row(1));
            let x: Vec<f32> = (0..plain.cols() * 2)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let (a, b) = (plain.matmul(&x, 2).unwrap(), packed.matmul(&x, 2).unwrap());
            for (p, q) in a.iter().zip(&b) {
                assert!(
                    (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                    "{name} {}",
                    entry.name
                );
            }
        }
        // The packed kernels exist on x86-64 with AVX2/FMA/F16C only.
        #[cfg(target_arch = "x86_64")]
        let simd = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c");
        #[cfg(not(target_arch = "x86_64"))]
        let simd = false;
        assert_eq!(packed_any, simd, "{name}");
    }
}
