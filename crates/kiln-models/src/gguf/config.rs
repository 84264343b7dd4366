//! GGUF metadata → the `config.json` a Hugging Face checkpoint of the same
//! model would carry, so the families in `arch/` build the spec exactly as
//! they do for safetensors. GGUF-only differences (rope layout, norms with
//! the Gemma `+1` already folded in) are applied to the spec afterwards.

use serde_json::{json, Map, Value};

use super::GgufFile;
use crate::arch::{self, Architecture};
use crate::config::RawConfig;
use crate::spec::PositionEncoding;
use crate::{ModelError, ModelSpec, Result};

/// llama.cpp architecture names → transformers `model_type`.
const FAMILIES: &[(&str, &str)] = &[
    ("llama", "llama"),
    ("mistral", "mistral"),
    ("qwen2", "qwen2"),
    ("qwen3", "qwen3"),
    ("phi3", "phi3"),
    ("gemma2", "gemma2"),
    ("gemma3", "gemma3_text"),
    ("gpt2", "gpt2"),
    ("gptj", "gptj"),
    ("gptneox", "gpt_neox"),
    ("falcon", "falcon"),
    ("mpt", "mpt"),
    ("phi2", "phi"),
    ("starcoder2", "starcoder2"),
    ("stablelm", "stablelm"),
];

/// The spec and family of the model in `file`.
pub fn gguf_config(file: &GgufFile) -> Result<(ModelSpec, &'static Architecture)> {
    let arch_name = file.architecture()?.to_string();
    let model_type = FAMILIES
        .iter()
        .find(|(g, _)| *g == arch_name)
        .map(|(_, m)| *m)
        .ok_or_else(|| ModelError::UnsupportedModel {
            path: file.path().to_path_buf(),
            model_type: format!("{arch_name} (GGUF general.architecture)"),
            supported: FAMILIES
                .iter()
                .map(|(g, _)| *g)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let json = hf_config(file, &arch_name, model_type)?;
    let raw = RawConfig::from_str(file.path(), &json.to_string())?;
    let (mut spec, arch) = arch::spec_for(&raw)?;
    let quantized = file.tensors().iter().any(|t| t.ty.is_quantized());
    adapt_spec(&mut spec, &arch_name, quantized);
    spec.validate().map_err(|m| raw.invalid(m))?;
    Ok((spec, arch))
}

/// Reads `{arch}.{key}`.
fn key<'a>(file: &'a GgufFile, arch: &str, key: &str) -> Option<&'a super::MetadataValue> {
    file.get(&format!("{arch}.{key}"))
}

fn usize_key(file: &GgufFile, arch: &str, name: &str) -> Option<usize> {
    let v = key(file, arch, name)?;
    // Some files store per-layer arrays (e.g. head_count_kv); take the first.
    let v = v.as_array().and_then(|a| a.first()).unwrap_or(v);
    v.as_u64().and_then(|n| usize::try_from(n).ok())
}

fn required(file: &GgufFile, arch: &str, name: &str) -> Result<usize> {
    usize_key(file, arch, name)
        .ok_or_else(|| file.invalid(format!("metadata has no integer {arch}.{name}")))
}

fn f64_key(file: &GgufFile, arch: &str, name: &str) -> Option<f64> {
    key(file, arch, name).and_then(super::MetadataValue::as_f64)
}

fn hf_config(file: &GgufFile, arch: &str, model_type: &str) -> Result<Value> {
    let hidden = required(file, arch, "embedding_length")?;
    let layers = required(file, arch, "block_count")?;
    let heads = required(file, arch, "attention.head_count")?;
    let kv_heads = usize_key(file, arch, "attention.head_count_kv").unwrap_or(heads);
    let ffn = usize_key(file, arch, "feed_forward_length").unwrap_or(4 * hidden);
    let context = usize_key(file, arch, "context_length").unwrap_or(2048);
    let vocab = file
        .tensor("token_embd.weight")
        .and_then(|t| t.shape.first().copied())
        .ok_or_else(|| file.invalid("no token_embd.weight tensor"))?;
    let head_dim = usize_key(file, arch, "attention.key_length").unwrap_or(hidden / heads.max(1));
    let tied = file.tensor("output.weight").is_none();
    let id = |k: &str| {
        file.get(&format!("tokenizer.ggml.{k}"))
            .and_then(|v| v.as_u64())
    };
    let mut c = Map::new();
    c.insert("model_type".into(), json!(model_type));
    c.insert("vocab_size".into(), json!(vocab));
    c.insert("tie_word_embeddings".into(), json!(tied));
    if let Some(b) = id("bos_token_id") {
        c.insert("bos_token_id".into(), json!(b));
    }
    if let Some(e) = id("eos_token_id") {
        c.insert("eos_token_id".into(), json!(e));
    }
    if let Some(ft) = file.get("general.file_type").and_then(|v| v.as_u64()) {
        c.insert("torch_dtype".into(), json!(file_type_name(ft)));
    }
    let rms_eps = f64_key(file, arch, "attention.layer_norm_rms_epsilon");
    let ln_eps = f64_key(file, arch, "attention.layer_norm_epsilon");
    let rope_dims = usize_key(file, arch, "rope.dimension_count");
    match model_type {
        "gpt2" | "gptj" => {
            c.insert("n_embd".into(), json!(hidden));
            c.insert("n_layer".into(), json!(layers));
            c.insert("n_head".into(), json!(heads));
            c.insert("n_inner".into(), json!(ffn));
            c.insert("n_positions".into(), json!(context));
            c.insert("layer_norm_epsilon".into(), json!(ln_eps.unwrap_or(1e-5)));
            if let Some(r) = rope_dims {
                c.insert("rotary_dim".into(), json!(r));
            }
        }
        _ => {
            c.insert("hidden_size".into(), json!(hidden));
            c.insert("num_hidden_layers".into(), json!(layers));
            c.insert("num_attention_heads".into(), json!(heads));
            c.insert("num_key_value_heads".into(), json!(kv_heads));
            c.insert("intermediate_size".into(), json!(ffn));
            c.insert("max_position_embeddings".into(), json!(context));
            c.insert("head_dim".into(), json!(head_dim));
            if let Some(e) = rms_eps {
                c.insert("rms_norm_eps".into(), json!(e));
            }
            if let Some(e) = ln_eps {
                c.insert("layer_norm_eps".into(), json!(e));
                c.insert("layer_norm_epsilon".into(), json!(e));
            }
            if let Some(theta) = f64_key(file, arch, "rope.freq_base") {
                c.insert("rope_theta".into(), json!(theta));
            }
            if let Some(r) = rope_dims.filter(|&r| r != head_dim && head_dim > 0) {
                c.insert(
                    "partial_rotary_factor".into(),
                    json!(r as f64 / head_dim as f64),
                );
            }
            if let Some(scaling) = rope_scaling(file, arch) {
                c.insert("rope_scaling".into(), scaling);
            }
            let bias = file.tensor("blk.0.attn_q.bias").is_some()
                || file.tensor("blk.0.attn_qkv.bias").is_some();
            c.insert("attention_bias".into(), json!(bias));
            if let Some(w) = usize_key(file, arch, "attention.sliding_window") {
                c.insert("sliding_window".into(), json!(w));
            }
            if let Some(v) = f64_key(file, arch, "rope.freq_base_swa") {
                c.insert("rope_local_base_freq".into(), json!(v));
            }
            if let Some(v) = usize_key(file, arch, "attention.sliding_window_pattern") {
                c.insert("sliding_window_pattern".into(), json!(v));
            }
            if let Some(v) = f64_key(file, arch, "attn_logit_softcapping") {
                c.insert("attn_logit_softcapping".into(), json!(v));
            }
            if let Some(v) = f64_key(file, arch, "final_logit_softcapping") {
                c.insert("final_logit_softcapping".into(), json!(v));
            }
        }
    }
    Ok(Value::Object(c))
}

/// llama.cpp's `general.file_type` (`llama_ftype`) as its name.
fn file_type_name(ft: u64) -> String {
    let name = match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        other => return format!("GGUF file type {other}"),
    };
    name.to_string()
}

/// `{arch}.rope.scaling.*` as a transformers `rope_scaling` object.
fn rope_scaling(file: &GgufFile, arch: &str) -> Option<Value> {
    let kind = key(file, arch, "rope.scaling.type")?.as_str()?;
    let factor = f64_key(file, arch, "rope.scaling.factor")?;
    match kind {
        "linear" => Some(json!({"rope_type": "linear", "factor": factor})),
        "yarn" => {
            let original = usize_key(file, arch, "rope.scaling.original_context_length")?;
            Some(json!({
                "rope_type": "yarn",
                "factor": factor,
                "original_max_position_embeddings": original,
            }))
        }
        _ => None,
    }
}

/// What differs between a GGUF file and the checkpoint it was converted from.
fn adapt_spec(spec: &mut ModelSpec, arch: &str, quantized: bool) {
    // GGUF stores every matrix `[out, in]` (GPT-2's Conv1D transposed).
    spec.transposed_linear_weights = false;
    // llama.cpp's f16 attention arithmetic matters on quantized files, where
    // one rounding flip of an 8-bit activation moves logits by ~0.05; float
    // files stay in f32 so they also match transformers within 1e-2.
    spec.kv_cache_f16 = quantized;
    // llama.cpp's converter permutes Llama's q/k rows back to Meta's
    // interleaved rotary layout (and runs "normal" rope on them).
    if arch == "llama" || arch == "mistral" {
        if let PositionEncoding::Rope(r) = &mut spec.position {
            r.interleaved = true;
        }
    }
    // The Gemma converters store `1 + w` for every RMSNorm weight.
    if arch.starts_with("gemma") {
        spec.norm.weight_offset = 0.0;
    }
}
