//! Multinomial sampling after each warper follows the warped distribution
//! (chi-square goodness of fit, fixed seeds) and never picks masked tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kiln_core::GenerationParams;
use kiln_sampling::{build_chain, softmax, History, Rng, Sampler};

/// Chi-square critical value for `dof` degrees of freedom at α = 0.001
/// (Wilson–Hilferty approximation).
fn critical(dof: f64) -> f64 {
    let z = 3.090;
    let a = 2.0 / (9.0 * dof);
    dof * (1.0 - a + z * a.sqrt()).powi(3)
}

fn logits() -> Vec<f32> {
    // A fixed, uneven distribution over 40 tokens.
    (0..40)
        .map(|i| ((i * 37 % 17) as f32) * 0.31 - ((i % 5) as f32) * 0.7)
        .collect()
}

#[test]
fn sampling_follows_each_warped_distribution() {
    let configs: Vec<(&str, GenerationParams)> = vec![
        (
            "plain",
            GenerationParams {
                do_sample: Some(true),
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
            "top_k",
            GenerationParams {
                top_k: Some(5),
                ..Default::default()
            },
        ),
        (
            "top_p",
            GenerationParams {
                top_p: Some(0.8),
                ..Default::default()
            },
        ),
        (
            "min_p",
            GenerationParams {
                min_p: Some(0.1),
                ..Default::default()
            },
        ),
        (
            "typical_p",
            GenerationParams {
                typical_p: Some(0.9),
                ..Default::default()
            },
        ),
    ];
    let draws = 40_000usize;
    for (seed, (name, params)) in configs.into_iter().enumerate() {
        let mut warped = logits();
        build_chain(&params, &[]).apply(
            &mut warped,
            &History {
                all_ids: &[],
                prompt_len: 0,
            },
        );
        let probs = softmax(&warped);
        let mut sampler = Sampler::Multinomial(Rng::new(1000 + seed as u64));
        let mut counts = vec![0usize; probs.len()];
        for _ in 0..draws {
            counts[sampler.sample(&warped).unwrap() as usize] += 1;
        }
        let mut chi2 = 0.0;
        let mut support = 0;
        for (p, &c) in probs.iter().zip(&counts) {
            if *p == 0.0 {
                assert_eq!(c, 0, "{name}: a masked token was sampled");
                continue;
            }
            support += 1;
            let expected = draws as f64 * f64::from(*p);
            chi2 += (c as f64 - expected).powi(2) / expected;
        }
        assert!(support >= 2, "{name}: the warper left {support} tokens");
        let limit = critical((support - 1) as f64);
        assert!(
            chi2 < limit,
            "{name}: chi² = {chi2:.1} ≥ {limit:.1} with {support} tokens"
        );
    }
}

#[test]
fn a_sampler_with_the_same_seed_repeats_itself() {
    let l = logits();
    let run = |seed| {
        let mut s = Sampler::Multinomial(Rng::new(seed));
        (0..50).map(|_| s.sample(&l).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}
