//! One LoRA training step equals PEFT's: loss, every gradient, and the
//! weights after one AdamW step (`*-lora/train_step.golden.*`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use kiln_models::adapter::Adapter;
use kiln_models::{causal_lm_loss_sum, Model};
use kiln_train::optim::{AdamW, AdamWConfig};
use kiln_train::params::TrainableAdapter;
use serde::Deserialize;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models")
        .join(name)
}

#[derive(Deserialize)]
struct Optimizer {
    lr: f64,
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
}

#[derive(Deserialize)]
struct StepGolden {
    input_ids: Vec<Vec<u32>>,
    attention_mask: Vec<Vec<u8>>,
    labels: Vec<Vec<i64>>,
    loss: f64,
    optimizer: Optimizer,
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Each row's ids and labels cut to its attention mask.
fn trimmed_rows(golden: &StepGolden) -> Vec<(&[u32], &[i64])> {
    golden
        .input_ids
        .iter()
        .zip(&golden.attention_mask)
        .zip(&golden.labels)
        .map(|((ids, mask), labels)| {
            let len = mask.iter().filter(|&&m| m == 1).count();
            (&ids[..len], &labels[..len])
        })
        .collect()
}

fn check_step(base: &str, adapter_dir: &str) {
    let dir = fixture(adapter_dir);
    let golden: StepGolden =
        serde_json::from_str(&std::fs::read_to_string(dir.join("train_step.golden.json")).unwrap())
            .unwrap();
    let expected: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("train_step.golden.safetensors"), &Device::Cpu)
            .unwrap();
    let model = Model::load_dir(&fixture(base)).unwrap();
    let trainable = TrainableAdapter::from_adapter(&Adapter::load(&dir).unwrap()).unwrap();
    let decoder = trainable.attach(&model.decoder).unwrap();

    // Right padding cannot influence earlier positions of a causal model:
    // each row runs trimmed to its mask; the loss averages over all tokens.
    let rows = trimmed_rows(&golden);
    let mut total: Option<Tensor> = None;
    let mut count = 0;
    for &(ids, labels) in &rows {
        let logits = decoder.forward_train(ids).unwrap();
        let (sum, n) = causal_lm_loss_sum(&logits, labels).unwrap();
        count += n;
        total = Some(match total {
            Some(t) => (t + sum).unwrap(),
            None => sum,
        });
    }
    let loss = (total.unwrap() / count as f64).unwrap();
    let value = f64::from(loss.to_scalar::<f32>().unwrap());
    assert!(
        (value - golden.loss).abs() <= 1e-5,
        "{adapter_dir}: loss {value} vs PEFT {}",
        golden.loss
    );

    let grads = loss.backward().unwrap();
    let mut grad_list = Vec::new();
    for p in &trainable.params {
        let g = grads.get(p.var.as_tensor()).cloned();
        let key = format!("grad.{}", p.name.replace(".weight", ".default.weight"));
        let want = &expected[&key];
        let got = g.clone().expect("every LoRA tensor gets a gradient");
        let diff = max_abs(&got.reshape(want.shape()).unwrap(), want);
        assert!(diff <= 1e-5, "{adapter_dir} {key}: max |Δ| {diff}");
        grad_list.push(g);
    }
    // The hand-written backward (what `kiln tune` runs on these families)
    // equals PEFT as well.
    assert!(decoder.has_hand_backward());
    let mut hand_loss = 0f64;
    let mut hand_grads: HashMap<candle_core::TensorId, Tensor> = HashMap::new();
    for &(ids, labels) in &rows {
        let out = decoder
            .loss_and_grads(ids, labels, 1.0 / count as f64)
            .unwrap()
            .unwrap();
        hand_loss += out.loss_sum;
        for (id, g) in out.grads {
            let sum = match hand_grads.remove(&id) {
                Some(old) => (old + g).unwrap(),
                None => g,
            };
            hand_grads.insert(id, sum);
        }
    }
    let hand_loss = hand_loss / count as f64;
    assert!(
        (hand_loss - golden.loss).abs() <= 1e-5,
        "{adapter_dir}: hand-written loss {hand_loss} vs PEFT {}",
        golden.loss
    );
    for p in &trainable.params {
        let key = format!("grad.{}", p.name.replace(".weight", ".default.weight"));
        let want = &expected[&key];
        let got = &hand_grads[&p.var.as_tensor().id()];
        let diff = max_abs(&got.reshape(want.shape()).unwrap(), want);
        assert!(
            diff <= 1e-5,
            "{adapter_dir} hand-written {key}: max |Δ| {diff}"
        );
    }

    let o = &golden.optimizer;
    let config = AdamWConfig {
        beta1: o.betas[0],
        beta2: o.betas[1],
        eps: o.eps,
        weight_decay: o.weight_decay,
    };
    // The optimiser alone, fed PEFT's own gradients, lands on PEFT's weights.
    let replay = TrainableAdapter::from_adapter(&Adapter::load(&dir).unwrap()).unwrap();
    let peft_grads: Vec<Option<Tensor>> = replay
        .params
        .iter()
        .map(|p| {
            Some(
                expected[&format!("grad.{}", p.name.replace(".weight", ".default.weight"))].clone(),
            )
        })
        .collect();
    AdamW::new(config)
        .step(&replay.params, &peft_grads, o.lr)
        .unwrap();
    for p in &replay.params {
        let want = &expected[&format!("after.{}", p.name.replace(".weight", ".default.weight"))];
        let diff = max_abs(&p.var.as_tensor().reshape(want.shape()).unwrap(), want);
        assert!(
            diff <= 1e-6,
            "{adapter_dir} AdamW on PEFT's gradients, {}: {diff}",
            p.name
        );
    }
    // With kiln's own gradients: within 1e-5 wherever the gradient is not
    // vanishing. On its first step Adam moves each weight by ≈ lr·g/(|g|+ε),
    // so for |g| ≲ 1e-6 a float-rounding difference of 1e-8 in g (well
    // inside the gradient tolerance) changes the step visibly.
    AdamW::new(config)
        .step(&trainable.params, &grad_list, o.lr)
        .unwrap();
    let mut ill_conditioned = 0;
    for (p, g) in trainable.params.iter().zip(&grad_list) {
        let key = format!("after.{}", p.name.replace(".weight", ".default.weight"));
        let want: Vec<f32> = expected[&key].flatten_all().unwrap().to_vec1().unwrap();
        let got: Vec<f32> = p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let g: Vec<f32> = g
            .as_ref()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for i in 0..want.len() {
            if g[i].abs() < 1e-6 {
                ill_conditioned += 1;
                continue;
            }
            assert!(
                (got[i] - want[i]).abs() <= 1e-5,
                "{adapter_dir} {key}[{i}]: {} vs {}",
                got[i],
                want[i]
            );
        }
    }
    assert!(
        ill_conditioned < 10,
        "{ill_conditioned} vanishing gradients"
    );
    // The attached decoder sees the update (it shares the tensors).
    let after = decoder.forward_train(&golden.input_ids[0][..4]).unwrap();
    let before = model
        .decoder
        .with_adapter(&Adapter::load(&dir).unwrap())
        .unwrap()
        .forward_train(&golden.input_ids[0][..4])
        .unwrap();
    assert!(max_abs(&after, &before) > 1e-4);
}

#[test]
fn llama_lora_step_equals_peft() {
    check_step("llama", "llama-lora");
}

#[test]
fn qwen2_lora_step_equals_peft() {
    check_step("qwen2", "qwen2-lora");
}
