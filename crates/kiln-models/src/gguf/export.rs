//! `kiln quantize`: a Hugging Face model directory → a GGUF file llama.cpp
//! loads, with the weights in F16, Q8_0, Q4_0, Q4_K_M, Q5_K_M or Q6_K (the
//! `_M` schemes mix types as llama-quantize does), the tokenizer and chat
//! template in `tokenizer.ggml.*` metadata.

use std::collections::HashMap;
use std::path::Path;

use kiln_core::Tokenizer;
use serde_json::Value;

use super::write::{GgufWriter, TensorData};
use super::{gguf_tensor_name, MetadataValue as V};
use crate::arch::{self, TensorRole};
use crate::config::RawConfig;
use crate::kernels::quant::{quantize_row, GgmlType};
use crate::model_files::ModelFiles;
use crate::spec::{PositionEncoding, RopeScaling};
use crate::weights::{SafetensorsWeights, WeightSource};
use crate::{ModelError, ModelSpec, Result};

/// A weight-type scheme, named as llama-quantize names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Every matrix f16.
    F16,
    /// Every matrix Q8_0.
    Q8_0,
    /// Q4_0, output Q6_K.
    Q4_0,
    /// Q4_K; Q6_K for the output and for `attn_v`/`ffn_down` in the layers
    /// llama.cpp gives more bits.
    Q4KM,
    /// As `Q4KM` with Q5_K.
    Q5KM,
    /// Every matrix Q6_K.
    Q6K,
}

impl Scheme {
    /// Every scheme with its name.
    pub const ALL: [(Scheme, &'static str); 6] = [
        (Scheme::F16, "F16"),
        (Scheme::Q8_0, "Q8_0"),
        (Scheme::Q4_0, "Q4_0"),
        (Scheme::Q4KM, "Q4_K_M"),
        (Scheme::Q5KM, "Q5_K_M"),
        (Scheme::Q6K, "Q6_K"),
    ];

    /// Parses a name case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(s, _)| *s)
    }

    /// llama.cpp's `general.file_type`.
    fn file_type(self) -> u32 {
        match self {
            Scheme::F16 => 1,
            Scheme::Q8_0 => 7,
            Scheme::Q4_0 => 2,
            Scheme::Q4KM => 15,
            Scheme::Q5KM => 17,
            Scheme::Q6K => 18,
        }
    }

    /// The type of a matrix with `cols` columns in `role` of `layer`.
    fn type_for(self, role: TensorRole, layer: usize, layers: usize, cols: usize) -> GgmlType {
        // llama.cpp's use_more_bits: the first and last eighth, and every
        // third layer in between.
        let eighth = layers / 8;
        let more_bits = layer < eighth || layer >= 7 * layers / 8 || (layer - eighth) % 3 == 2;
        let mixed = |base: GgmlType| match role {
            TensorRole::Output => GgmlType::Q6_K,
            TensorRole::AttnV | TensorRole::FfnDown if more_bits => GgmlType::Q6_K,
            _ => base,
        };
        let wanted = match self {
            Scheme::F16 => GgmlType::F16,
            Scheme::Q8_0 => GgmlType::Q8_0,
            Scheme::Q4_0 if role == TensorRole::Output => GgmlType::Q6_K,
            Scheme::Q4_0 => GgmlType::Q4_0,
            Scheme::Q4KM => mixed(GgmlType::Q4_K),
            Scheme::Q5KM => mixed(GgmlType::Q5_K),
            Scheme::Q6K => GgmlType::Q6_K,
        };
        // Rows that are not whole k-blocks fall back, as llama-quantize does.
        [wanted, GgmlType::Q8_0, GgmlType::F16]
            .into_iter()
            .find(|t| cols.is_multiple_of(t.block_size()))
            .unwrap_or(GgmlType::F16)
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// Tensors written, by type name.
    pub types: Vec<(String, usize)>,
    /// File size in bytes.
    pub bytes: u64,
}

/// Families `kiln quantize` writes, with llama.cpp's architecture names.
const EXPORTABLE: &[(&str, &str)] = &[
    ("llama", "llama"),
    ("mistral", "llama"),
    ("qwen2", "qwen2"),
    ("qwen3", "qwen3"),
];

/// Converts the model in `dir` to a GGUF file at `out`.
pub fn export(dir: &Path, out: &Path, scheme: Scheme) -> Result<ExportSummary> {
    let files = ModelFiles::discover(dir)?;
    let raw = RawConfig::from_file(&files.config)?;
    let (spec, family) = arch::spec_for(&raw)?;
    let gguf_arch = EXPORTABLE
        .iter()
        .find(|(m, _)| *m == spec.model_type)
        .map(|(_, g)| *g)
        .ok_or_else(|| {
            raw.invalid(format!(
                "kiln quantize writes {} models so far, not {}",
                EXPORTABLE
                    .iter()
                    .map(|(m, _)| *m)
                    .collect::<Vec<_>>()
                    .join(", "),
                spec.model_type
            ))
        })?;
    let mut w = GgufWriter::new();
    write_hparams(&mut w, &raw, &spec, gguf_arch, scheme)?;
    let tokenizer_json = files
        .tokenizer
        .as_ref()
        .ok_or_else(|| ModelError::MissingFile {
            dir: dir.to_path_buf(),
            what: "tokenizer.json".into(),
        })?;
    write_tokenizer(&mut w, tokenizer_json, files.tokenizer_config.as_deref())?;
    let weights = SafetensorsWeights::open(&files.weights)?;
    write_tensors(
        &mut w,
        &spec,
        family.tensor_name,
        &weights,
        gguf_arch,
        scheme,
    )?;
    w.write(out)?;
    let mut types: HashMap<String, usize> = HashMap::new();
    for t in w.tensors() {
        *types.entry(t.ty.name().to_string()).or_default() += 1;
    }
    let mut types: Vec<(String, usize)> = types.into_iter().collect();
    types.sort();
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(ExportSummary { types, bytes })
}

fn u32_of(n: usize) -> V {
    V::U32(u32::try_from(n).unwrap_or(u32::MAX))
}

fn write_hparams(
    w: &mut GgufWriter,
    raw: &RawConfig,
    spec: &ModelSpec,
    a: &str,
    scheme: Scheme,
) -> Result<()> {
    let name = raw
        .path
        .parent()
        .and_then(|p| p.file_name())
        .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned());
    w.set("general.architecture", V::String(a.into()));
    w.set("general.type", V::String("model".into()));
    w.set("general.name", V::String(name));
    w.set("general.file_type", V::U32(scheme.file_type()));
    w.set("general.quantization_version", V::U32(2));
    let k = |s: &str| format!("{a}.{s}");
    w.set(&k("block_count"), u32_of(spec.num_hidden_layers));
    w.set(&k("context_length"), u32_of(spec.max_position_embeddings));
    w.set(&k("embedding_length"), u32_of(spec.hidden_size));
    w.set(&k("feed_forward_length"), u32_of(spec.intermediate_size));
    w.set(&k("attention.head_count"), u32_of(spec.num_attention_heads));
    w.set(
        &k("attention.head_count_kv"),
        u32_of(spec.num_key_value_heads),
    );
    w.set(&k("attention.key_length"), u32_of(spec.head_dim));
    w.set(&k("attention.value_length"), u32_of(spec.head_dim));
    w.set(
        &k("attention.layer_norm_rms_epsilon"),
        V::F32(spec.norm.eps as f32),
    );
    w.set(&k("vocab_size"), u32_of(spec.vocab_size));
    let PositionEncoding::Rope(rope) = &spec.position else {
        return Err(raw.invalid("kiln quantize expects a rotary model"));
    };
    w.set(&k("rope.freq_base"), V::F32(rope.theta as f32));
    w.set(&k("rope.dimension_count"), u32_of(rope.rotary_dim));
    match &rope.scaling {
        RopeScaling::None => {}
        RopeScaling::Linear { factor } => {
            w.set(&k("rope.scaling.type"), V::String("linear".into()));
            w.set(&k("rope.scaling.factor"), V::F32(*factor as f32));
        }
        other => {
            return Err(raw.invalid(format!(
                "kiln quantize cannot write rope scaling {other:?} yet"
            )))
        }
    }
    Ok(())
}

/// ggml token types.
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const BYTE: i32 = 6;

fn write_tokenizer(w: &mut GgufWriter, path: &Path, config: Option<&Path>) -> Result<()> {
    let invalid = |m: String| ModelError::InvalidConfig {
        path: path.to_path_buf(),
        message: m,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let json: Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let model = &json["model"];
    if model["type"] != "BPE" {
        return Err(invalid(format!(
            "kiln quantize writes BPE tokenizers, not {}",
            model["type"]
        )));
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| invalid("model.vocab is missing".into()))?;
    let mut tokens: Vec<String> = Vec::new();
    let mut put = |id: usize, text: &str| {
        if tokens.len() <= id {
            tokens.resize(id + 1, String::new());
        }
        tokens[id] = text.to_string();
    };
    for (text, id) in vocab {
        put(id.as_u64().unwrap_or(0) as usize, text);
    }
    let mut kinds: HashMap<usize, i32> = HashMap::new();
    for t in json["added_tokens"].as_array().into_iter().flatten() {
        let id = t["id"].as_u64().unwrap_or(0) as usize;
        put(id, t["content"].as_str().unwrap_or_default());
        kinds.insert(
            id,
            if t["special"] == true {
                CONTROL
            } else {
                USER_DEFINED
            },
        );
    }
    let unk = model["unk_token"].as_str().map(str::to_string);
    let merges: Vec<(String, String)> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Value::String(s) => s
                .split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string())),
            Value::Array(p) => Some((
                p.first()?.as_str()?.to_string(),
                p.get(1)?.as_str()?.to_string(),
            )),
            _ => None,
        })
        .collect();
    let byte_level = text.contains("\"ByteLevel\"");
    let types: Vec<i32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if let Some(k) = kinds.get(&i) {
                *k
            } else if Some(t) == unk.as_ref() {
                UNKNOWN
            } else if !byte_level && t.len() == 6 && t.starts_with("<0x") && t.ends_with('>') {
                BYTE
            } else {
                NORMAL
            }
        })
        .collect();
    let strings = |v: &[String]| V::Array(v.iter().map(|s| V::String(s.clone())).collect());
    if byte_level {
        w.set("tokenizer.ggml.model", V::String("gpt2".into()));
        w.set(
            "tokenizer.ggml.pre",
            V::String(pre_tokenizer_name(&json).into()),
        );
        w.set("tokenizer.ggml.tokens", strings(&tokens));
        let merges: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
        w.set("tokenizer.ggml.merges", strings(&merges));
    } else {
        // SentencePiece-style: llama.cpp merges by the score of the merged
        // piece, so rank pieces by the merge that makes them.
        let index: HashMap<&str, usize> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        let mut scores = vec![0f32; tokens.len()];
        let mut seen = vec![false; tokens.len()];
        for (rank, (a, b)) in merges.iter().enumerate() {
            if let Some(&id) = index.get(format!("{a}{b}").as_str()) {
                if !seen[id] {
                    seen[id] = true;
                    scores[id] = -(rank as f32) - 1.0;
                }
            }
        }
        w.set("tokenizer.ggml.model", V::String("llama".into()));
        w.set("tokenizer.ggml.pre", V::String("default".into()));
        w.set("tokenizer.ggml.tokens", strings(&tokens));
        w.set(
            "tokenizer.ggml.scores",
            V::Array(scores.into_iter().map(V::F32).collect()),
        );
        let prepends = text.contains("\"Prepend\"")
            || text.contains("\"prepend_scheme\":\"first\"")
            || text.contains("\"prepend_scheme\": \"first\"");
        w.set("tokenizer.ggml.add_space_prefix", V::Bool(prepends));
    }
    w.set(
        "tokenizer.ggml.token_type",
        V::Array(types.into_iter().map(V::I32).collect()),
    );
    let tokenizer = Tokenizer::from_files(path, config)?;
    let special = tokenizer.special_tokens().clone();
    let id_of = |t: &Option<String>| t.as_deref().and_then(|t| tokenizer.token_to_id(t));
    if let Some(id) = id_of(&special.bos_token) {
        w.set("tokenizer.ggml.bos_token_id", V::U32(id));
    }
    if let Some(id) = id_of(&special.eos_token) {
        w.set("tokenizer.ggml.eos_token_id", V::U32(id));
    }
    if let Some(id) = id_of(&special.unk_token) {
        w.set("tokenizer.ggml.unknown_token_id", V::U32(id));
    }
    if let Some(id) = id_of(&special.pad_token) {
        w.set("tokenizer.ggml.padding_token_id", V::U32(id));
    }
    // Whether encoding adds BOS/EOS, as the tokenizer actually does it.
    let with = tokenizer.encode("a", true)?.ids;
    let without = tokenizer.encode("a", false)?.ids;
    let bos = id_of(&special.bos_token);
    let eos = id_of(&special.eos_token);
    w.set(
        "tokenizer.ggml.add_bos_token",
        V::Bool(with.len() > without.len() && with.first().copied() == bos),
    );
    w.set(
        "tokenizer.ggml.add_eos_token",
        V::Bool(with.len() > without.len() && with.last().copied() == eos),
    );
    if let Some(t) = special.chat_template {
        w.set("tokenizer.chat_template", V::String(t));
    }
    Ok(())
}

/// llama.cpp's `tokenizer.ggml.pre` name for a byte-level tokenizer's split regex.
fn pre_tokenizer_name(json: &Value) -> &'static str {
    let text = json["pre_tokenizer"].to_string();
    if text.contains(r"\\p{N}{1,3}") {
        "llama-bpe"
    } else if text.contains(r"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|") {
        "qwen2"
    } else if text.contains("\"Digits\"") {
        "smollm"
    } else {
        "gpt-2"
    }
}

/// Llama's q/k rows back in Meta's interleaved rotary order (what
/// llama.cpp's converter writes for the `llama` architecture).
fn unpermute(values: &[f32], heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    let hd = rows / heads.max(1);
    let mut out = vec![0f32; values.len()];
    for h in 0..heads {
        for j in 0..hd / 2 {
            for s in 0..2 {
                let src = h * hd + s * (hd / 2) + j;
                let dst = h * hd + 2 * j + s;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn write_tensors(
    w: &mut GgufWriter,
    spec: &ModelSpec,
    hf_name: crate::decoder::TensorNamer,
    weights: &dyn WeightSource,
    gguf_arch: &str,
    scheme: Scheme,
) -> Result<()> {
    use rayon::prelude::*;
    let layers = spec.num_hidden_layers;
    let mut jobs: Vec<(TensorRole, usize)> =
        vec![(TensorRole::TokenEmbedding, 0), (TensorRole::OutputNorm, 0)];
    if !spec.tie_word_embeddings {
        jobs.push((TensorRole::Output, 0));
    }
    let mut per_layer = vec![
        TensorRole::AttnNorm,
        TensorRole::AttnQ,
        TensorRole::AttnK,
        TensorRole::AttnV,
        TensorRole::AttnOut,
        TensorRole::FfnNorm,
        TensorRole::FfnGate,
        TensorRole::FfnUp,
        TensorRole::FfnDown,
    ];
    if spec.attention.qk_norm {
        per_layer.extend([TensorRole::AttnQNorm, TensorRole::AttnKNorm]);
    }
    for l in 0..layers {
        jobs.extend(per_layer.iter().map(|&r| (r, l)));
    }
    for (role, layer) in jobs {
        let missing = || ModelError::InvalidInput(format!("no tensor name for {role:?}"));
        let src = hf_name(spec, role, layer).ok_or_else(missing)?;
        let dst = gguf_tensor_name(spec, role, layer).ok_or_else(missing)?;
        let tensor = weights.tensor(&format!("{src}.weight"))?;
        let shape = tensor.dims().to_vec();
        let mut values: Vec<f32> = tensor.flatten_all()?.to_vec1()?;
        let (rows, cols) = match shape.as_slice() {
            [r, c] => (*r, *c),
            [n] => (1, *n),
            _ => {
                return Err(ModelError::InvalidInput(format!(
                    "{src}: unexpected shape {shape:?}"
                )))
            }
        };
        let interleave = gguf_arch == "llama";
        if interleave && role == TensorRole::AttnQ {
            values = unpermute(&values, spec.num_attention_heads, rows, cols);
        }
        if interleave && role == TensorRole::AttnK {
            values = unpermute(&values, spec.num_key_value_heads, rows, cols);
        }
        let ty = if shape.len() == 1 {
            GgmlType::F32
        } else {
            scheme.type_for(role, layer, layers, cols)
        };
        let rows_bytes: Option<Vec<Vec<u8>>> = values
            .par_chunks(cols)
            .map(|r| quantize_row(ty, r))
            .collect();
        let bytes = rows_bytes
            .ok_or_else(|| ModelError::InvalidInput(format!("{src}: cannot encode as {ty}")))?
            .concat();
        w.add_tensor(TensorData {
            name: format!("{dst}.weight"),
            ty,
            shape: shape.clone(),
            bytes,
        });
        let biased = matches!(
            role,
            TensorRole::AttnQ | TensorRole::AttnK | TensorRole::AttnV
        ) && spec.attention.qkv_bias;
        if biased {
            let mut bias: Vec<f32> = weights.tensor(&format!("{src}.bias"))?.to_vec1()?;
            if interleave && role != TensorRole::AttnV {
                let heads = if role == TensorRole::AttnQ {
                    spec.num_attention_heads
                } else {
                    spec.num_key_value_heads
                };
                bias = unpermute(&bias, heads, bias.len(), 1);
            }
            let bytes = quantize_row(GgmlType::F32, &bias).unwrap_or_default();
            w.add_tensor(TensorData {
                name: format!("{dst}.bias"),
                ty: GgmlType::F32,
                shape: vec![bias.len()],
                bytes,
            });
        }
    }
    Ok(())
}
