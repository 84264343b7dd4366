//! `kiln quantize` (gguf::export): F16 files carry exactly the tensors
//! llama.cpp's own converter writes; quantized files use llama-quantize's
//! type mix; every written file loads back with the checkpoint's tokenizer
//! ids and close logits.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use kiln_models::gguf::export::{export, Scheme};
use kiln_models::gguf::GgufFile;
use kiln_models::{Logits, Model};

fn fixture_gguf(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join(format!("../../tests/data/gguf/{name}.gguf"))
}

/// Name → (type, shape, bytes) of every tensor.
fn tensors(path: &std::path::Path) -> HashMap<String, (String, Vec<usize>, Vec<u8>)> {
    let file = GgufFile::open(path).unwrap();
    file.tensors()
        .iter()
        .map(|t| {
            let m = file.matrix(&t.name).unwrap();
            (
                t.name.clone(),
                (t.ty.name().to_string(), t.shape.clone(), m.data().to_vec()),
            )
        })
        .collect()
}

#[test]
fn f16_export_equals_llama_cpp_converter_and_reloads() {
    let tmp = tempfile::tempdir().unwrap();
    for family in ["llama", "llama_k", "mistral", "qwen2", "qwen3"] {
        let out = tmp.path().join(format!("{family}.gguf"));
        export(&common::fixture(family), &out, Scheme::F16).unwrap();
        let ours = tensors(&out);
        let theirs = tensors(&fixture_gguf(&format!("{family}-f16")));
        assert_eq!(ours.len(), theirs.len(), "{family}: tensor count");
        for (name, want) in &theirs {
            assert_eq!(ours.get(name), Some(want), "{family}: tensor {name}");
        }
        let model = Model::load_gguf(&out).unwrap();
        let (golden, logits) = common::golden(family);
        for p in &golden.prompts {
            let ids = model
                .tokenizer()
                .unwrap()
                .encode(&p.text, true)
                .unwrap()
                .ids;
            assert_eq!(ids, p.input_ids, "{family}: tokenization of {:?}", p.text);
            if family == "mistral" {
                continue; // GGUF has no sliding window (TOLERANCES.md)
            }
            let mut cache = model.decoder.new_cache();
            let got = model
                .decoder
                .forward(&p.input_ids, &mut cache, Logits::All)
                .unwrap();
            let d = common::max_abs_diff(&got, &logits[&p.logits]);
            assert!(d <= 1.3e-2, "{family}: logits differ by {d}");
        }
    }
}

#[test]
fn quantized_exports_use_llama_quantize_type_mix() {
    let tmp = tempfile::tempdir().unwrap();
    // (scheme, llama.cpp's file of it, llama.cpp's distance to transformers)
    for (scheme, theirs, distance) in [
        (Scheme::Q8_0, "llama_k-q8_0", 0.323f32),
        (Scheme::Q4KM, "llama_k-q4_k_m", 2.69),
        (Scheme::Q5KM, "llama_k-q5_k_m", 1.39),
        (Scheme::Q6K, "llama_k-q6_k", 0.702),
        (Scheme::Q4_0, "llama_k-q4_0", 2.86),
    ] {
        let out = tmp.path().join(format!("{theirs}.gguf"));
        export(&common::fixture("llama_k"), &out, scheme).unwrap();
        let ours = tensors(&out);
        for (name, (ty, shape, _)) in tensors(&fixture_gguf(theirs)) {
            let (our_ty, our_shape, _) = &ours[&name];
            assert_eq!((our_ty, our_shape), (&ty, &shape), "{theirs}: {name}");
        }
        let model = Model::load_gguf(&out).unwrap();
        let (golden, logits) = common::golden("llama_k");
        let mut worst = 0f32;
        for p in &golden.prompts {
            let mut cache = model.decoder.new_cache();
            let got = model
                .decoder
                .forward(&p.input_ids, &mut cache, Logits::All)
                .unwrap();
            worst = worst.max(common::max_abs_diff(&got, &logits[&p.logits]));
        }
        println!("{theirs}: kiln's file is {worst:.3} from transformers (llama.cpp's: {distance})");
        assert!(worst <= distance * 1.25, "{theirs}: {worst}");
    }
}
