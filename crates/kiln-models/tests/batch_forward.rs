//! `Decoder::forward_batch` (several sequences in one pass, what continuous
//! batching runs) gives each sequence the logits it gets when run alone.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use kiln_models::{BatchItem, Logits, Model};

/// Prompts of different lengths, then decode steps where some sequences
/// prefill a new prompt while others decode: every row must match the
/// sequence run on its own.
fn check(model: &Model, tol: f32) {
    let vocab = model.spec().vocab_size as u32;
    let prompts: Vec<Vec<u32>> = vec![
        (1..9).map(|i| (i * 7) % vocab).collect(),
        vec![3 % vocab],
        (0..5).map(|i| (i * 13 + 2) % vocab).collect(),
    ];
    let d = &model.decoder;
    // Alone.
    let mut alone = Vec::new();
    for p in &prompts {
        let mut cache = d.new_cache();
        let first: Vec<f32> = d
            .forward(p, &mut cache, Logits::Last)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let next: Vec<f32> = d
            .forward(&[5 % vocab], &mut cache, Logits::Last)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        alone.push((first, next));
    }
    // Batched: step 1 prefills prompts 0 and 1; step 2 decodes them while
    // prompt 2 prefills; step 3 decodes prompt 2.
    let mut caches: Vec<_> = prompts.iter().map(|_| d.new_cache()).collect();
    let (c01, c2) = caches.split_at_mut(2);
    let (c0, c1) = c01.split_at_mut(1);
    let step1 = d
        .forward_batch(&mut [
            BatchItem {
                ids: &prompts[0],
                cache: &mut c0[0],
            },
            BatchItem {
                ids: &prompts[1],
                cache: &mut c1[0],
            },
        ])
        .unwrap();
    let five = [5 % vocab];
    let step2 = d
        .forward_batch(&mut [
            BatchItem {
                ids: &five,
                cache: &mut c0[0],
            },
            BatchItem {
                ids: &prompts[2],
                cache: &mut c2[0],
            },
            BatchItem {
                ids: &five,
                cache: &mut c1[0],
            },
        ])
        .unwrap();
    let step3 = d
        .forward_batch(&mut [BatchItem {
            ids: &five,
            cache: &mut c2[0],
        }])
        .unwrap();
    let pairs = [
        (&step1[0], &alone[0].0),
        (&step1[1], &alone[1].0),
        (&step2[0], &alone[0].1),
        (&step2[1], &alone[2].0),
        (&step2[2], &alone[1].1),
        (&step3[0], &alone[2].1),
    ];
    for (i, (got, want)) in pairs.iter().enumerate() {
        assert_eq!(got.len(), want.len());
        let diff = got
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= tol, "pair {i}: max |Δ| {diff}");
    }
    assert_eq!(caches[0].len(), 9);
    assert_eq!(caches[2].len(), 6);
}

#[test]
fn batched_rows_match_single_sequences_across_families() {
    // rope (llama), learned positions (gpt2), alibi (mpt), sliding window +
    // soft-capping (gemma2), parallel blocks (gptj), q/k norms (qwen3).
    for name in ["llama", "gpt2", "mpt", "gemma2", "gptj", "qwen3", "falcon"] {
        let model = Model::load_dir(&common::fixture(name)).unwrap();
        check(&model, 1e-4);
    }
}

#[test]
fn batched_rows_match_on_a_quantized_gguf() {
    let path = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/gguf/llama-q8_0.gguf");
    let model = Model::load_gguf(&path).unwrap();
    check(&model, 1e-4);
}
