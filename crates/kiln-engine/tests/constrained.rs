//! Constrained output through the engine on fixture models with random
//! weights: 1,000 random JSON Schemas, sampled at temperature 1, every
//! output parses, validates and ends with EOS; labels and `json_object`
//! too; n > 1 sequences each keep their own state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../kiln-sampling/tests/support/schemas.rs"]
mod schemas;

use std::path::PathBuf;

use kiln_core::{FinishReason, GenerationParams, OutputConstraint};
use kiln_engine::{generate, Request};
use kiln_models::Model;
use kiln_sampling::Rng;
use schemas::{random_schema, validates};
use serde_json::Value;

fn model(name: &str) -> Model {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models")
        .join(name);
    Model::load_dir(&dir).unwrap()
}

fn run(
    model: &Model,
    constraint: OutputConstraint,
    seed: u64,
    n: usize,
    max: usize,
) -> kiln_engine::Output {
    let tok = model.tokenizer().unwrap();
    let prompt_ids = tok.encode("Reply in JSON:", true).unwrap().ids;
    let params = GenerationParams {
        max_new_tokens: Some(max),
        temperature: Some(1.0),
        seed: Some(seed),
        num_return_sequences: n,
        constraint: Some(constraint),
        ..Default::default()
    };
    generate(model, &Request { prompt_ids, params }, |_| {}).unwrap()
}

#[test]
fn a_thousand_random_schemas_always_give_valid_json() {
    let models: Vec<(&str, Model)> = ["llama", "qwen2", "gpt2", "gemma2"]
        .into_iter()
        .map(|n| (n, model(n)))
        .collect();
    let mut rng = Rng::new(2024);
    for i in 0..1000u64 {
        let schema = random_schema(&mut rng, 3);
        let (name, m) = &models[i as usize % models.len()];
        let out = run(m, OutputConstraint::JsonSchema(schema.clone()), i, 1, 160);
        let s = &out.sequences[0];
        assert_eq!(
            s.finish_reason,
            FinishReason::Stop,
            "{name} #{i} {schema}: {:?}",
            s.text
        );
        let v: Value = serde_json::from_str(&s.text)
            .unwrap_or_else(|e| panic!("{name} #{i} {schema}: {e}: {:?}", s.text));
        assert!(validates(&schema, &v), "{name} #{i} {schema}: {}", s.text);
    }
}

#[test]
fn labels_json_objects_and_several_sequences() {
    let m = model("qwen2");
    let labels: Vec<String> = ["positive", "negative", "neutral"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for seed in 0..10 {
        let out = run(&m, OutputConstraint::Choice(labels.clone()), seed, 3, 20);
        for s in &out.sequences {
            assert!(labels.contains(&s.text), "{:?}", s.text);
        }
        let out = run(&m, OutputConstraint::JsonObject, seed, 2, 80);
        for s in &out.sequences {
            assert!(
                serde_json::from_str::<Value>(&s.text).unwrap().is_object(),
                "{}",
                s.text
            );
        }
    }
}

#[test]
fn a_bad_schema_is_a_user_error_before_any_work() {
    let m = model("llama");
    let params = GenerationParams {
        constraint: Some(OutputConstraint::JsonSchema(
            serde_json::json!({"type": "string", "pattern": "x"}),
        )),
        ..Default::default()
    };
    let err = generate(
        &m,
        &Request {
            prompt_ids: vec![1, 2],
            params,
        },
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, kiln_engine::EngineError::Constraint(_)),
        "{err}"
    );
    assert!(err.to_string().contains("pattern"), "{err}");
}
