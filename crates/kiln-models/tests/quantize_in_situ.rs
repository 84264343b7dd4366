//! In-situ quantization (`Model::load_quantized`): a safetensors model
//! quantized while loading stays close to transformers' numbers, closer the
//! more bits the type keeps.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use kiln_models::kernels::quant::GgmlType;
use kiln_models::{HubOptions, Model};

#[test]
fn quantized_loads_track_the_float_model() {
    // (type, max |Δ logits| allowed vs transformers) on llama_k (256-wide
    // rows): the distance of llama.cpp's own files of that type from
    // transformers (tests/data/gguf/TOLERANCES.md), i.e. kiln's quantizers
    // must lose no more than llama-quantize does.
    let cases = [
        (GgmlType::F16, 1.21e-2),
        (GgmlType::Q8_0, 0.323),
        (GgmlType::Q6_K, 0.702),
        (GgmlType::Q4_K, 2.69),
        (GgmlType::Q4_0, 2.86),
    ];
    let (golden, tensors) = common::golden("llama_k");
    let dir = common::fixture("llama_k");
    let mut previous = 0f32;
    for (ty, tol) in cases {
        let model = Model::load_quantized(dir.to_str().unwrap(), &HubOptions::from_env(), Some(ty))
            .unwrap();
        assert!(
            model.decoder.parameter_count() > 0
                && format!("{:?}", model.decoder).contains(ty.name()),
            "{ty}: projections were not quantized"
        );
        let mut worst = 0f32;
        for p in &golden.prompts {
            let logits = common::all_logits(&model, &p.input_ids);
            worst = worst.max(common::max_abs_diff(&logits, &tensors[&p.logits]));
        }
        println!("{ty}: max|Δ| {worst:.3e}");
        assert!(worst <= tol, "{ty}: {worst} > {tol}");
        assert!(
            worst >= previous * 0.5,
            "{ty} should not beat a wider type by far"
        );
        previous = worst;
    }
}
