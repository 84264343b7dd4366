//! LoRA training learns: a synthetic mapping task on the tiny llama
//! fixture goes from ~0 to ≥ 90% held-out exact match; a run stopped and
//! resumed ends with exactly the uninterrupted run's adapter.
#![allow(clippy::unwrap_used, clippy::too_many_arguments, missing_docs)]

use std::path::PathBuf;

use kiln_models::adapter::AdapterConfig;
use kiln_models::{Decoder, Logits, Model};
use kiln_train::data::{Example, IGNORE};
use kiln_train::params::TrainableAdapter;
use kiln_train::schedule::Decay;
use kiln_train::trainer::{train, TrainConfig, TrainJob, TrainReport};

fn run(
    base: &Decoder,
    adapter: &TrainableAdapter,
    examples: &[Example],
    eval: &[Example],
    config: &TrainConfig,
    run_dir: &std::path::Path,
    resume: bool,
    on_step: impl FnMut(&kiln_train::trainer::StepMetrics),
) -> kiln_train::Result<TrainReport> {
    let job = TrainJob {
        base,
        adapter,
        train: examples,
        eval,
        config,
        run_dir,
        resume,
    };
    train(&job, on_step)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models")
        .join(name)
}

const SEP: u32 = 5;
/// The hidden rule: each of 16 input tokens maps to another token.
fn f(x: u32) -> u32 {
    300 + (x * 7 + 3) % 16
}

/// `[BOS, x1, x2, SEP, f(x1), f(x2)]` with loss on the answer.
fn example(x1: u32, x2: u32) -> Example {
    let ids = vec![1, 100 + x1, 100 + x2, SEP, f(x1), f(x2)];
    let labels = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| if i >= 4 { i64::from(id) } else { IGNORE })
        .collect();
    Example { ids, labels }
}

fn exact_match(decoder: &Decoder, set: &[(u32, u32)]) -> f64 {
    let mut hits = 0;
    for &(a, b) in set {
        let mut cache = decoder.new_cache();
        let mut logits = decoder
            .forward(&[1, 100 + a, 100 + b, SEP], &mut cache, Logits::Last)
            .unwrap();
        let mut out = Vec::new();
        for _ in 0..2 {
            let row: Vec<f32> = logits.squeeze(0).unwrap().to_vec1().unwrap();
            let next = row
                .iter()
                .enumerate()
                .max_by(|x, y| x.1.total_cmp(y.1))
                .unwrap()
                .0 as u32;
            out.push(next);
            logits = decoder.forward(&[next], &mut cache, Logits::Last).unwrap();
        }
        if out == [f(a), f(b)] {
            hits += 1;
        }
    }
    hits as f64 / set.len() as f64
}

fn lora_config() -> AdapterConfig {
    AdapterConfig::from_json(
        r#"{"peft_type":"LORA","r":16,"lora_alpha":32,
            "target_modules":["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]}"#,
        std::path::Path::new("test"),
    )
    .unwrap()
}

fn task() -> (Vec<Example>, Vec<(u32, u32)>) {
    let pairs: Vec<(u32, u32)> = (0..16).flat_map(|a| (0..16).map(move |b| (a, b))).collect();
    // Every fifth pair is held out; each token still appears in both slots.
    let held: Vec<(u32, u32)> = pairs
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, _)| i % 5 == 0)
        .map(|(_, p)| p)
        .collect();
    let train: Vec<Example> = pairs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 0)
        .map(|(_, &(a, b))| example(a, b))
        .collect();
    (train, held)
}

#[test]
fn lora_learns_a_mapping_it_was_not_shown_whole() {
    let model = Model::load_dir(&fixture("llama")).unwrap();
    let (train_set, held) = task();
    let adapter = TrainableAdapter::new(lora_config(), &model.decoder, 7).unwrap();
    let before = exact_match(&adapter.attach(&model.decoder).unwrap(), &held);
    let config = TrainConfig {
        epochs: 12,
        examples_per_step: 16,
        lr: 1e-2,
        warmup_steps: 10,
        decay: Decay::Cosine,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        &model.decoder,
        &adapter,
        &train_set,
        &[],
        &config,
        dir.path(),
        false,
        |_| {},
    )
    .unwrap();
    let after = exact_match(&adapter.attach(&model.decoder).unwrap(), &held);
    let first = report.steps.first().unwrap().loss;
    let last = report.steps.last().unwrap().loss;
    eprintln!(
        "exact match {before} -> {after}; loss {first:.3} -> {last:.3} over {} steps",
        report.steps.len()
    );
    assert!(before <= 0.05, "untrained already scores {before}");
    assert!(after >= 0.9, "held-out exact match only {after}");
}

#[test]
fn a_stopped_run_resumed_ends_exactly_where_an_uninterrupted_one_does() {
    let model = Model::load_dir(&fixture("llama")).unwrap();
    let (train_set, _) = task();
    let train_set = &train_set[..48];
    let config = TrainConfig {
        epochs: 2,
        examples_per_step: 8,
        lr: 5e-3,
        warmup_steps: 2,
        save_every: 2,
        ..TrainConfig::default()
    };
    let whole = TrainableAdapter::new(lora_config(), &model.decoder, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let full = run(
        &model.decoder,
        &whole,
        train_set,
        &[],
        &config,
        dir.path(),
        false,
        |_| {},
    )
    .unwrap();

    let parts = TrainableAdapter::new(lora_config(), &model.decoder, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stopped = TrainConfig {
        max_steps: Some(5),
        ..config.clone()
    };
    run(
        &model.decoder,
        &parts,
        train_set,
        &[],
        &stopped,
        dir.path(),
        false,
        |_| {},
    )
    .unwrap();
    // A fresh process would start from fresh weights: prove they are restored.
    let fresh = TrainableAdapter::new(lora_config(), &model.decoder, 99).unwrap();
    let resumed = run(
        &model.decoder,
        &fresh,
        train_set,
        &[],
        &config,
        dir.path(),
        true,
        |_| {},
    )
    .unwrap();
    assert_eq!(resumed.resumed_from, 5);
    assert_eq!(resumed.steps.len(), full.steps.len());
    let a = whole.tensors().unwrap();
    let b = fresh.tensors().unwrap();
    for (name, t) in &a {
        let x: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = b[name].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(x, y, "{name} differs after resume");
    }
    let losses = |r: &TrainReport| r.steps.iter().map(|m| m.loss).collect::<Vec<_>>();
    assert_eq!(losses(&full), losses(&resumed));
    // Resuming with other data is refused.
    let err = run(
        &model.decoder,
        &fresh,
        &train_set[..40],
        &[],
        &config,
        dir.path(),
        true,
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("differ"), "{err}");
}
