//! Writes the embeddings of every `text` field of a JSONL file as
//! little-endian f16, row after row:
//! `cargo run --release -p kiln-models --example embed_jsonl -- MODEL_DIR IN.jsonl OUT.f16`.
//! Used to make `tests/data/ir/cacm/minilm.f16` (see scripts/make-cacm-embeddings.sh).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kiln_models::encoder::SentenceEmbedder;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = SentenceEmbedder::load(Path::new(&args[0])).unwrap();
    let texts: Vec<String> = std::fs::read_to_string(&args[1])
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let mut out = Vec::with_capacity(texts.len() * model.dimension() * 2);
    for batch in texts.chunks(256) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        for v in model.embed(&refs).unwrap() {
            for x in v {
                out.extend_from_slice(&half::f16::from_f32(x).to_le_bytes());
            }
        }
        eprint!(
            "\r{} / {}",
            out.len() / (2 * model.dimension()),
            texts.len()
        );
    }
    std::fs::write(&args[2], out).unwrap();
    eprintln!();
}
