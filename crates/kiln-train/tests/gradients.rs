//! Gradients of the training forward pass against finite differences on
//! every family's fixture (candle's fused ops would silently drop them), and
//! through frozen quantized layers (QLoRA).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;

use candle_core::Tensor;
use kiln_models::adapter::AdapterConfig;
use kiln_models::{causal_lm_loss_sum, Decoder, Model};
use kiln_train::params::TrainableAdapter;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models")
        .join(name)
}

/// LoRA on every projection but the LM head, with non-zero `B`s (so `A`s get gradients).
fn adapter_for(decoder: &Decoder) -> TrainableAdapter {
    let mut names: Vec<String> = decoder
        .projection_modules()
        .unwrap()
        .into_iter()
        .filter(|p| !p.module.ends_with("lm_head"))
        .map(|p| p.module.rsplit('.').next().unwrap().to_string())
        .collect();
    names.sort();
    names.dedup();
    let json =
        serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": names});
    let config = AdapterConfig::from_json(&json.to_string(), std::path::Path::new("test")).unwrap();
    let adapter = TrainableAdapter::new(config, decoder, 11).unwrap();
    for (i, p) in adapter.params.iter().enumerate() {
        if p.name.contains("lora_B") {
            let t = p.var.as_tensor();
            let n = t.elem_count();
            let v: Vec<f32> = (0..n)
                .map(|j| (((j * 7 + i * 13) % 17) as f32 - 8.0) * 0.01)
                .collect();
            p.var
                .set(&Tensor::from_vec(v, t.shape(), t.device()).unwrap())
                .unwrap();
        }
    }
    adapter
}

fn loss(decoder: &Decoder, ids: &[u32]) -> Tensor {
    let labels: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    let logits = decoder.forward_train(ids).unwrap();
    let (sum, n) = causal_lm_loss_sum(&logits, &labels).unwrap();
    (sum / n as f64).unwrap()
}

fn set_at(t: &candle_core::Var, index: usize, value: f32) {
    let mut v: Vec<f32> = t.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    v[index] = value;
    t.set(&Tensor::from_vec(v, t.as_tensor().shape(), t.device()).unwrap())
        .unwrap();
}

#[test]
fn gradients_match_finite_differences_in_every_family() {
    let ids: Vec<u32> = vec![1, 17, 42, 99, 7, 256, 3, 88, 12, 500];
    for family in [
        "llama",
        "qwen2",
        "qwen3",
        "mistral",
        "phi3",
        "gemma2",
        "gpt2",
        "gpt_neox",
        "gptj",
        "falcon",
        "mpt",
        "stablelm",
        "starcoder2",
        "phi",
        "falcon_per_head",
        "falcon_new_arch",
    ] {
        let model = Model::load_dir(&fixture(family)).unwrap();
        let vocab = model.decoder.spec().vocab_size as u32;
        let ids: Vec<u32> = ids.iter().map(|&i| i % vocab).collect();
        let adapter = adapter_for(&model.decoder);
        let decoder = adapter.attach(&model.decoder).unwrap();
        let grads = loss(&decoder, &ids).backward().unwrap();
        // The first layer's first A and B, and the last B: gradients that
        // cross every block's attention, norms and MLP on the way down.
        let picks = [0, 1, adapter.params.len() - 1];
        for &pi in &picks {
            let p = &adapter.params[pi];
            let g: Vec<f32> = grads
                .get(p.var.as_tensor())
                .unwrap_or_else(|| panic!("{family}: no gradient for {}", p.name))
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let w: Vec<f32> = p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            // The largest gradient entry, measured by central differences.
            let (j, &gj) = g
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap();
            let h = 1e-2f32;
            set_at(&p.var, j, w[j] + h);
            let up = f64::from(loss(&decoder, &ids).to_scalar::<f32>().unwrap());
            set_at(&p.var, j, w[j] - h);
            let down = f64::from(loss(&decoder, &ids).to_scalar::<f32>().unwrap());
            set_at(&p.var, j, w[j]);
            let numeric = (up - down) / (2.0 * f64::from(h));
            let rel = (numeric - f64::from(gj)).abs() / numeric.abs().max(1e-4);
            assert!(
                rel < 0.05,
                "{family} {}[{j}]: autograd {gj} vs finite difference {numeric}",
                p.name
            );
        }
    }
}

#[test]
fn gradients_flow_through_frozen_quantized_layers() {
    use kiln_models::kernels::quant::GgmlType;
    let ids: Vec<u32> = vec![1, 17, 42, 99, 7, 256, 3, 88, 12, 500, 31, 64];
    let f32_model = Model::load_dir(&fixture("llama")).unwrap();
    for ty in [GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::BF16] {
        let q = Model::load_dir_with(&fixture("llama"), Some(ty)).unwrap();
        let a = adapter_for(&f32_model.decoder);
        let b = adapter_for(&q.decoder);
        let ga = loss(&a.attach(&f32_model.decoder).unwrap(), &ids)
            .backward()
            .unwrap();
        let gb = loss(&b.attach(&q.decoder).unwrap(), &ids)
            .backward()
            .unwrap();
        for (pa, pb) in a.params.iter().zip(&b.params) {
            let x: Vec<f32> = ga
                .get(pa.var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let y: Vec<f32> = gb
                .get(pb.var.as_tensor())
                .unwrap_or_else(|| panic!("{ty}: no gradient reached {}", pb.name))
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let dot: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
            let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
            let cos = dot / (norm(&x) * norm(&y)).max(1e-12);
            let floor = if ty == GgmlType::Q4_K { 0.9 } else { 0.98 };
            assert!(
                cos > floor,
                "{ty} {}: cosine with the f32 gradient {cos}",
                pb.name
            );
        }
    }
}
