//! Every case of transformers' processor goldens reproduced: masked entries
//! exactly, values within 1e-6.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kiln_core::GenerationParams;
use kiln_sampling::processors::{
    MinP, NoRepeatNGram, RepetitionPenalty, Temperature, TopK, TopP, TypicalP,
};
use kiln_sampling::{build_chain, History, LogitsProcessor, ProcessorChain};
use serde_json::Value;

fn set(params: &mut GenerationParams, key: &str, value: &str) {
    let f = || value.parse::<f32>().unwrap();
    let u = || value.parse::<usize>().unwrap();
    match key {
        "temperature" => params.temperature = Some(f()),
        "top_k" => params.top_k = Some(u()),
        "top_p" => params.top_p = Some(f()),
        "min_p" => params.min_p = Some(f()),
        "typical_p" => params.typical_p = Some(f()),
        "repetition_penalty" => params.repetition_penalty = Some(f()),
        "no_repeat_ngram_size" => params.no_repeat_ngram_size = u(),
        other => panic!("unknown processor {other}"),
    }
}

fn single(key: &str, value: &str) -> Box<dyn LogitsProcessor> {
    let f = || value.parse::<f32>().unwrap();
    match key {
        "temperature" => Box::new(Temperature { temperature: f() }),
        "top_k" => Box::new(TopK {
            k: value.parse().unwrap(),
        }),
        "top_p" => Box::new(TopP::new(f())),
        "min_p" => Box::new(MinP { min_p: f() }),
        "typical_p" => Box::new(TypicalP::new(f())),
        "repetition_penalty" => Box::new(RepetitionPenalty { penalty: f() }),
        "no_repeat_ngram_size" => Box::new(NoRepeatNGram {
            size: value.parse().unwrap(),
        }),
        other => panic!("unknown processor {other}"),
    }
}

#[test]
fn transformers_processor_goldens() {
    let path = format!(
        "{}/../../tests/data/sampling/processors.json",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()
    );
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(cases.len() >= 36);
    for case in cases {
        let spec = case["processors"].as_str().unwrap();
        let ids: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        let mut logits: Vec<f32> = serde_json::from_value(case["logits"].clone()).unwrap();
        let expected: Vec<Option<f32>> = serde_json::from_value(case["expected"].clone()).unwrap();
        let mut chain = match spec.strip_prefix("chain:") {
            Some(list) => {
                let mut params = GenerationParams {
                    do_sample: Some(true),
                    ..Default::default()
                };
                for kv in list.split(',') {
                    let (k, v) = kv.split_once('=').unwrap();
                    set(&mut params, k, v);
                }
                build_chain(&params, &[])
            }
            None => {
                let (k, v) = spec.split_once('=').unwrap();
                let mut chain = ProcessorChain::new();
                chain.push(single(k, v));
                chain
            }
        };
        chain.apply(
            &mut logits,
            &History {
                all_ids: &ids,
                prompt_len: ids.len(),
            },
        );
        for (i, (got, want)) in logits.iter().zip(&expected).enumerate() {
            match want {
                None => assert_eq!(
                    *got,
                    f32::NEG_INFINITY,
                    "case {} {spec}: token {i} should be masked",
                    case["case"]
                ),
                Some(w) => assert!(
                    (got - w).abs() <= 1e-6,
                    "case {} {spec}: token {i}: {got} vs {w}",
                    case["case"]
                ),
            }
        }
    }
}
