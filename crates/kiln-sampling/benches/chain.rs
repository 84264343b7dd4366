//! The processor chain on a Qwen2-sized vocabulary (151,936 tokens): each
//! processor alone and the full chain in transformers' order.
//! Run: `cargo bench -p kiln-sampling --bench chain`.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use kiln_core::GenerationParams;
use kiln_sampling::{build_chain, History, Rng, Sampler};

const VOCAB: usize = 151_936;

fn logits() -> Vec<f32> {
    let mut rng = Rng::new(3);
    // Roughly the spread of real LM logits: most tokens far below a few candidates.
    (0..VOCAB)
        .map(|_| {
            let u = rng.next_f64() as f32;
            let v = rng.next_f64() as f32;
            (-2.0 * u.max(1e-9).ln()).sqrt() * (std::f32::consts::TAU * v).cos() * 2.5
        })
        .collect()
}

fn history() -> Vec<u32> {
    (0..1024u32).map(|i| (i * 7919) % VOCAB as u32).collect()
}

fn bench(c: &mut Criterion) {
    let base = logits();
    let ids = history();
    let h = History {
        all_ids: &ids,
        prompt_len: 512,
    };
    let single: Vec<(&str, GenerationParams)> = vec![
        (
            "repetition_penalty",
            GenerationParams {
                repetition_penalty: Some(1.1),
                ..Default::default()
            },
        ),
        (
            "frequency_presence",
            GenerationParams {
                frequency_penalty: 0.5,
                presence_penalty: 0.5,
                ..Default::default()
            },
        ),
        (
            "no_repeat_ngram_3",
            GenerationParams {
                no_repeat_ngram_size: 3,
                ..Default::default()
            },
        ),
        (
            "temperature",
            GenerationParams {
                temperature: Some(0.7),
                ..Default::default()
            },
        ),
        (
            "top_k_50",
            GenerationParams {
                top_k: Some(50),
                ..Default::default()
            },
        ),
        (
            "top_p_0.9",
            GenerationParams {
                top_p: Some(0.9),
                ..Default::default()
            },
        ),
        (
            "min_p_0.05",
            GenerationParams {
                min_p: Some(0.05),
                ..Default::default()
            },
        ),
        (
            "typical_p_0.9",
            GenerationParams {
                typical_p: Some(0.9),
                ..Default::default()
            },
        ),
    ];
    let mut group = c.benchmark_group("processor_152k");
    for (name, params) in &single {
        let mut chain = build_chain(params, &[]);
        for t in &ids[512..] {
            chain.accept(*t);
        }
        group.bench_function(*name, |b| {
            b.iter_batched_ref(
                || base.clone(),
                |l| chain.apply(l, &h),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    let full = GenerationParams {
        repetition_penalty: Some(1.1),
        frequency_penalty: 0.3,
        presence_penalty: 0.3,
        no_repeat_ngram_size: 3,
        temperature: Some(0.7),
        top_k: Some(50),
        top_p: Some(0.9),
        min_p: Some(0.05),
        typical_p: Some(0.95),
        ..Default::default()
    };
    let mut chain = build_chain(&full, &[]);
    let mut sampler = Sampler::Multinomial(Rng::new(1));
    group.bench_function("full_chain_and_sample", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |l| {
                chain.apply(l, &h);
                sampler.sample(l)
            },
            criterion::BatchSize::LargeInput,
        )
    });
    let warpers_only = GenerationParams {
        temperature: Some(0.7),
        top_p: Some(0.9),
        ..Default::default()
    };
    let mut chain = build_chain(&warpers_only, &[]);
    group.bench_function("temperature_top_p_and_sample", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |l| {
                chain.apply(l, &h);
                sampler.sample(l)
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
