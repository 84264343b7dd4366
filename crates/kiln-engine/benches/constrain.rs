//! Per-token cost of constrained decoding on Qwen2's 151,936-token
//! vocabulary (llama.cpp's vocab-only GGUF): the mask for one step in a
//! structural state, inside a string, inside a number, at a key, and with
//! a budget so tight that every token is checked. Also the one-off cost of
//! the vocabulary tables.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use kiln_core::{OutputConstraint, TokenBytes, TokenId};
use kiln_models::gguf::{tokenizer_from_gguf, GgufFile};
use kiln_sampling::{Constraint, History, LogitsProcessor};
use serde_json::json;

fn bench(c: &mut Criterion) {
    let path = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/tokenizers/ggml-vocab-qwen2.gguf");
    let tok = tokenizer_from_gguf(&GgufFile::open(&path).unwrap())
        .unwrap()
        .unwrap();
    let start = Instant::now();
    let vocab: Arc<TokenBytes> = tok.token_bytes();
    eprintln!(
        "vocabulary tables for {} tokens: {:.1} ms",
        vocab.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    let schema = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["name", "age", "tags"]});
    let grammar = Arc::new(Constraint::grammar_for(&OutputConstraint::JsonSchema(schema)).unwrap());
    let eos = tok.eos_id().unwrap_or(0);
    let at = |prefix: &str, max_new: usize| -> (Constraint, Vec<TokenId>) {
        let mut c = Constraint::new(grammar.clone(), vocab.clone(), &[eos], max_new).unwrap();
        let ids = tok.encode(prefix, false).unwrap().ids;
        for &id in &ids {
            c.accept(id);
        }
        (c, ids)
    };
    let n = tok.vocab_size();
    let mut group = c.benchmark_group("constrain_qwen2_152k");
    for (name, prefix, max_new) in [
        ("start", "", 512),
        ("in_string", "{\"name\":\"Ada Love", 512),
        ("in_number", "{\"name\":\"Ada\",\"age\":3", 512),
        ("at_key", "{\"name\":\"Ada\",", 512),
        ("tight_budget_string", "{\"name\":\"Ada Love", 24),
    ] {
        let (c, ids) = at(prefix, max_new);
        let logits: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.01).collect();
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut c = c.clone();
                let mut l = logits.clone();
                c.apply(
                    &mut l,
                    &History {
                        all_ids: &ids,
                        prompt_len: 0,
                    },
                );
                black_box(l);
            });
        });
    }
    group.bench_function("unconstrained_copy_baseline", |b| {
        let logits: Vec<f32> = vec![0.0; n];
        b.iter(|| black_box(logits.clone()));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
