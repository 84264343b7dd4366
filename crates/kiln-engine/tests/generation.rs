//! The engine against transformers' goldens and its own contracts: greedy
//! ids, beam search, streaming, stop strings, seeds, logprobs, bad parameters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use kiln_core::{FinishReason, GenerationParams};
use kiln_engine::{generate, Event, Output, Request};
use kiln_models::Model;
use serde_json::Value;

const FAMILIES: [&str; 7] = [
    "llama", "llama_k", "mistral", "qwen2", "qwen3", "phi3", "gemma2",
];

fn dir(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models")
        .join(name)
}

fn load(name: &str) -> (Model, Value) {
    let model = Model::load_dir(&dir(name)).unwrap();
    let golden =
        serde_json::from_str(&std::fs::read_to_string(dir(name).join("golden.json")).unwrap())
            .unwrap();
    (model, golden)
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn run(model: &Model, prompt: Vec<u32>, params: GenerationParams) -> (Output, Vec<Event>) {
    let mut events = Vec::new();
    let out = generate(
        model,
        &Request {
            prompt_ids: prompt,
            params,
        },
        |e| events.push(e),
    )
    .unwrap();
    (out, events)
}

fn streamed_text(events: &[Event], sequence: usize) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Token {
                sequence: s, text, ..
            }
            | Event::Text { sequence: s, text }
                if *s == sequence =>
            {
                Some(text.as_str())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn greedy_matches_transformers_and_streams_the_full_decode() {
    for name in FAMILIES {
        let (model, golden) = load(name);
        let tok = model.tokenizer().unwrap();
        for p in golden["prompts"].as_array().unwrap() {
            let params = GenerationParams {
                max_new_tokens: Some(24),
                min_new_tokens: 24,
                ..Default::default()
            };
            let (out, events) = run(&model, ids(&p["input_ids"]), params);
            let seq = &out.sequences[0];
            assert_eq!(seq.token_ids, ids(&p["greedy_24_new_ids"]), "{name}");
            assert_eq!(seq.finish_reason, FinishReason::Length);
            // Deltas concatenate to exactly the decode of all new tokens.
            assert_eq!(streamed_text(&events, 0), seq.text, "{name}");
            assert_eq!(
                seq.text,
                tok.decode(&seq.token_ids, true).unwrap(),
                "{name}"
            );
            assert!(matches!(
                events.last(),
                Some(Event::Finished {
                    reason: FinishReason::Length,
                    ..
                })
            ));
        }
    }
}

#[test]
fn beam_search_matches_transformers() {
    for name in FAMILIES {
        let (model, golden) = load(name);
        let b = &golden["beam_search"];
        let prompt = ids(&golden["prompts"][b["prompt"].as_u64().unwrap() as usize]["input_ids"]);
        let params = GenerationParams {
            num_beams: b["num_beams"].as_u64().unwrap() as usize,
            num_return_sequences: b["num_return_sequences"].as_u64().unwrap() as usize,
            max_new_tokens: Some(b["max_new_tokens"].as_u64().unwrap() as usize),
            min_new_tokens: b["min_new_tokens"].as_u64().unwrap() as usize,
            length_penalty: b["length_penalty"].as_f64().unwrap() as f32,
            early_stopping: b["early_stopping"].as_bool().unwrap(),
            ..Default::default()
        };
        let (out, _) = run(&model, prompt, params);
        let want: Vec<Vec<u32>> = serde_json::from_value(b["sequences_new_ids"].clone()).unwrap();
        let got: Vec<Vec<u32>> = out.sequences.iter().map(|s| s.token_ids.clone()).collect();
        assert_eq!(got, want, "{name}: beam ids");
        for (s, w) in out
            .sequences
            .iter()
            .zip(b["sequences_scores"].as_array().unwrap())
        {
            let w = w.as_f64().unwrap() as f32;
            assert!(
                (s.score.unwrap() - w).abs() <= 1e-4,
                "{name}: score {} vs {w}",
                s.score.unwrap()
            );
        }
    }
}

#[test]
fn stop_string_spanning_two_tokens_is_honoured() {
    let (model, golden) = load("qwen2");
    let tok = model.tokenizer().unwrap();
    let p = &golden["prompts"][1];
    let greedy = ids(&p["greedy_24_new_ids"]);
    // A stop string made of the end of token 5's text and the start of token 6's.
    let before = tok.decode(&greedy[..5], true).unwrap();
    let through = tok.decode(&greedy[..7], true).unwrap();
    let boundary = tok.decode(&greedy[..6], true).unwrap().len();
    let start = boundary - 1;
    let mut end = boundary + 1;
    while !through.is_char_boundary(end) {
        end += 1;
    }
    let stop = through[start..end].to_string();
    assert!(start >= before.len().saturating_sub(1));
    let params = GenerationParams {
        max_new_tokens: Some(24),
        min_new_tokens: 24,
        stop: vec![stop.clone()],
        ..Default::default()
    };
    let (out, events) = run(&model, ids(&p["input_ids"]), params);
    let seq = &out.sequences[0];
    let full = tok.decode(&greedy, true).unwrap();
    let cut = full.find(&stop).unwrap();
    assert_eq!(seq.text, full[..cut], "stop {stop:?}");
    assert_eq!(seq.finish_reason, FinishReason::Stop);
    assert_eq!(streamed_text(&events, 0), seq.text);
    assert!(!streamed_text(&events, 0).contains(&stop));
}

#[test]
fn seeds_reproduce_and_n_shares_the_prefill() {
    let (model, golden) = load("llama");
    let prompt = ids(&golden["prompts"][0]["input_ids"]);
    let params = |seed, n| GenerationParams {
        temperature: Some(1.0),
        top_k: Some(50),
        seed: Some(seed),
        num_return_sequences: n,
        max_new_tokens: Some(16),
        min_new_tokens: 16,
        ..Default::default()
    };
    let (a, _) = run(&model, prompt.clone(), params(7, 1));
    let (b, _) = run(&model, prompt.clone(), params(7, 1));
    assert_eq!(a.sequences[0].token_ids, b.sequences[0].token_ids);
    let (c, _) = run(&model, prompt.clone(), params(8, 1));
    assert_ne!(a.sequences[0].token_ids, c.sequences[0].token_ids);
    let (many, _) = run(&model, prompt, params(7, 3));
    assert_eq!(many.sequences.len(), 3);
    assert_eq!(many.sequences[0].token_ids, a.sequences[0].token_ids);
    assert_ne!(many.sequences[1].token_ids, many.sequences[2].token_ids);
    assert_eq!(many.usage.completion_tokens, 48);
}

#[test]
fn logprobs_are_the_model_distribution() {
    let (model, golden) = load("llama");
    let p = &golden["prompts"][0];
    let params = GenerationParams {
        max_new_tokens: Some(3),
        min_new_tokens: 3,
        logprobs: Some(5),
        ..Default::default()
    };
    let (out, _) = run(&model, ids(&p["input_ids"]), params);
    let lp = &out.sequences[0].logprobs;
    assert_eq!(lp.len(), 3);
    for l in lp {
        assert_eq!(l.top.len(), 5);
        assert_eq!(l.top[0].0, l.token, "greedy picks the top token");
        assert!((l.top[0].1 - l.logprob).abs() < 1e-6);
        assert!(l.top.windows(2).all(|w| w[0].1 >= w[1].1));
        let mass: f32 = l.top.iter().map(|t| t.1.exp()).sum();
        assert!(mass <= 1.0 + 1e-5);
    }
}

#[test]
fn eos_ends_generation_with_stop() {
    let (model, golden) = load("llama");
    let p = &golden["prompts"][0];
    // Only EOS (id 2) and one other token allowed; a big bias makes EOS win at once.
    let params = GenerationParams {
        max_new_tokens: Some(10),
        logit_bias: vec![(2, 100.0)],
        ..Default::default()
    };
    let (out, _) = run(&model, ids(&p["input_ids"]), params);
    assert_eq!(out.sequences[0].token_ids, vec![2]);
    assert_eq!(out.sequences[0].finish_reason, FinishReason::Stop);
    assert_eq!(out.sequences[0].text, "");
}

#[test]
fn bad_parameters_fail_before_any_work() {
    let (model, _) = load("llama");
    let cases = [
        (
            GenerationParams {
                temperature: Some(-0.5),
                ..Default::default()
            },
            "temperature",
        ),
        (
            GenerationParams {
                top_p: Some(1.5),
                ..Default::default()
            },
            "top_p",
        ),
        (
            GenerationParams {
                num_beams: 2,
                num_return_sequences: 3,
                ..Default::default()
            },
            "num_beams",
        ),
        (
            GenerationParams {
                max_new_tokens: Some(0),
                ..Default::default()
            },
            "max_new_tokens",
        ),
    ];
    for (params, field) in cases {
        let mut events = 0;
        let err = generate(
            &model,
            &Request {
                prompt_ids: vec![1, 5],
                params,
            },
            |_| events += 1,
        )
        .unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
        assert_eq!(events, 0);
    }
    let err = generate(
        &model,
        &Request {
            prompt_ids: vec![],
            params: GenerationParams::default(),
        },
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("empty"));
    let long = vec![5u32; 300];
    let err = generate(
        &model,
        &Request {
            prompt_ids: long,
            params: GenerationParams::default(),
        },
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("context is 256"), "{err}");
}
