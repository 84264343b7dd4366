//! The tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata,
//! tokenizing as llama.cpp does: SentencePiece-style (`llama`: score-ranked
//! merges, byte fallback) with kiln's compact [`SpmTokenizer`]; byte-level
//! BPE (`gpt2`, split by the `tokenizer.ggml.pre` regexes) and WordPiece
//! (`bert`) as `tokenizers` pipelines.

use std::collections::HashMap;

use kiln_core::{AddedPiece, BpeParts, PieceKind, SpecialTokens, SpmTokenizer, Tokenizer};
use serde_json::{json, Value};

use super::{GgufFile, MetadataValue};
use crate::Result;

/// ggml token types.
const UNKNOWN: i64 = 2;
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// The SentencePiece word-boundary marker.
const SPACE: &str = "\u{2581}";

/// The tokenizer in `file`, or `None` if the file has no vocabulary.
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<Option<Tokenizer>> {
    let Some(model) = file.get_str("tokenizer.ggml.model") else {
        return Ok(None);
    };
    let vocab = Vocab::read(file)?;
    let build_error = |e: String| file.invalid(format!("cannot build its tokenizer: {e}"));
    let pre = file.get_str("tokenizer.ggml.pre").unwrap_or("default");
    if model == "llama" {
        let special = special_tokens(file, &vocab, model, true);
        let kinds: Vec<PieceKind> = vocab
            .types
            .iter()
            .map(|&t| PieceKind::from_ggml(t))
            .collect();
        let add_space_prefix = flag(file, "add_space_prefix").unwrap_or(true);
        let spm = SpmTokenizer::new(&vocab.tokens, &vocab.scores, &kinds, add_space_prefix)
            .map_err(build_error)?;
        drop(vocab);
        return Tokenizer::from_spm(spm, special)
            .map(Some)
            .map_err(build_error);
    }
    // The BPE model's merges go to the tokenizer directly, not through JSON.
    let ((mut tokenizer_json, bpe_parts), default_bos) = match model {
        "gpt2" => (bpe(file, &vocab, pre)?, pre_adds_bos(pre)),
        "bert" => ((wordpiece(&vocab), None), true),
        other => {
            return Err(file.invalid(format!(
                "tokenizer model {other:?} is not supported (llama, gpt2 and bert are)"
            )))
        }
    };
    tokenizer_json["version"] = json!("1.0");
    // WordPiece vocabularies are small and go through JSON whole; BPE
    // models get their vocabulary and added tokens after the JSON is read.
    let added = vocab.added_tokens(model == "bert");
    tokenizer_json["added_tokens"] = match bpe_parts {
        Some(_) => json!([]),
        None => added
            .iter()
            .map(|(id, t)| {
                json!({
                    "id": id, "content": t.content, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": t.special,
                })
            })
            .collect(),
    };
    let special = special_tokens(file, &vocab, model, default_bos);
    // The vocabulary's copies are in the parts now: free them before the
    // tokenizer builds its maps (the peak of loading a 262k vocabulary).
    drop(vocab);
    let json = tokenizer_json.to_string();
    drop(tokenizer_json);
    match bpe_parts {
        Some(mut parts) => {
            parts.added_tokens = added.into_iter().map(|(_, t)| t).collect();
            Tokenizer::from_json_with_bpe(json.as_bytes(), parts, special)
        }
        None => Tokenizer::from_json(json.as_bytes(), special),
    }
    .map(Some)
    .map_err(build_error)
}

/// A boolean `tokenizer.ggml.{key}`, if the file has it.
fn flag(file: &GgufFile, key: &str) -> Option<bool> {
    file.get(&format!("tokenizer.ggml.{key}"))
        .and_then(MetadataValue::as_bool)
}

/// BOS/EOS/UNK/PAD pieces, the add-BOS/EOS flags (`default_bos` when the
/// file does not say) and the chat template.
fn special_tokens(file: &GgufFile, vocab: &Vocab, model: &str, default_bos: bool) -> SpecialTokens {
    let id = |k: &str| {
        file.get(&format!("tokenizer.ggml.{k}"))
            .and_then(MetadataValue::as_u64)
            .and_then(|i| vocab.tokens.get(i as usize).cloned())
    };
    let (bos_key, eos_key, add_eos_key) = if model == "bert" {
        ("cls_token_id", "seperator_token_id", "add_sep_token")
    } else {
        ("bos_token_id", "eos_token_id", "add_eos_token")
    };
    SpecialTokens {
        bos_token: id(bos_key),
        eos_token: id(eos_key),
        unk_token: id("unknown_token_id"),
        pad_token: id("padding_token_id"),
        add_bos_token: Some(flag(file, "add_bos_token").unwrap_or(default_bos)),
        add_eos_token: Some(flag(file, add_eos_key).unwrap_or(model == "bert")),
        chat_template: file.get_str("tokenizer.chat_template").map(str::to_string),
    }
}

/// Whether llama.cpp adds BOS by default for a BPE pre-tokenizer.
fn pre_adds_bos(pre: &str) -> bool {
    matches!(
        pre,
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "deepseek-llm" | "deepseek-coder"
    )
}

/// Tokens, scores and types.
struct Vocab {
    tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i64>,
}

impl Vocab {
    fn read(file: &GgufFile) -> Result<Self> {
        let tokens: Vec<String> = file
            .get("tokenizer.ggml.tokens")
            .and_then(MetadataValue::as_array)
            .ok_or_else(|| file.invalid("tokenizer.ggml.tokens is missing or not an array"))?
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect();
        let numbers = |key: &str| -> Vec<f64> {
            file.get(key)
                .and_then(MetadataValue::as_array)
                .map(|a| a.iter().filter_map(MetadataValue::as_f64).collect())
                .unwrap_or_default()
        };
        let mut scores: Vec<f32> = numbers("tokenizer.ggml.scores")
            .into_iter()
            .map(|s| s as f32)
            .collect();
        let mut types: Vec<i64> = numbers("tokenizer.ggml.token_type")
            .into_iter()
            .map(|t| t as i64)
            .collect();
        scores.resize(tokens.len(), 0.0);
        types.resize(tokens.len(), 1);
        Ok(Self {
            tokens,
            scores,
            types,
        })
    }

    /// `piece → id`, the first id winning for duplicated pieces.
    fn map(&self, rename: impl Fn(&str, i64) -> Option<String>) -> HashMap<String, u32> {
        let mut map = HashMap::with_capacity(self.tokens.len());
        for (i, (t, &ty)) in self.tokens.iter().zip(&self.types).enumerate() {
            if let Some(name) = rename(t, ty) {
                map.entry(name).or_insert(i as u32);
            }
        }
        map
    }

    /// Control, unknown and user-defined tokens, matched in raw text: id,
    /// piece and whether it is special.
    fn added_tokens(&self, all_bracketed_special: bool) -> Vec<(usize, AddedPiece)> {
        self.tokens
            .iter()
            .zip(&self.types)
            .enumerate()
            .filter(|(_, (t, &ty))| {
                matches!(ty, UNKNOWN | CONTROL | USER_DEFINED)
                    || (all_bracketed_special && t.starts_with('[') && t.ends_with(']'))
            })
            .map(|(i, (t, &ty))| {
                let piece = AddedPiece {
                    content: t.clone(),
                    special: ty != USER_DEFINED,
                };
                (i, piece)
            })
            .collect()
    }
}

/// The split regexes llama.cpp applies, in order, for a pre-tokenizer name.
fn pre_tokenizer_regexes(pre: &str) -> Option<&'static [&'static str]> {
    const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    Some(match pre {
        "default" => &[
            r"[\p{P}\$\+<=>\^~\|]+",
            GPT2,
            r"\p{N}+",
            r"[0-9][0-9][0-9]",
        ],
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "smaug-bpe" | "dbrx" => &[LLAMA3],
        "qwen2" | "stablelm2" | "hunyuan" => &[QWEN2],
        "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" => &[GPT2],
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva" => {
            &[r"\p{N}", GPT2]
        }
        "falcon" => &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
        "deepseek-llm" => &[
            "[\r\n]",
            "\\s?[A-Za-z\u{b5}\u{c0}-\u{d6}\u{d8}-\u{f6}\u{f8}-\u{1ba}\u{1bc}-\u{1bf}\u{1c4}-\u{293}\u{295}-\u{2af}\u{370}-\u{373}\u{376}\u{377}\u{37b}-\u{37d}\u{37f}\u{386}\u{388}-\u{38a}\u{38c}\u{38e}-\u{3a1}\u{3a3}-\u{3f5}\u{3f7}-\u{481}\u{48a}-\u{52f}\u{531}-\u{556}\u{10a0}-\u{10c5}\u{13a0}-\u{13f5}\u{13f8}-\u{13fd}\u{1c90}-\u{1cba}\u{1cbd}-\u{1cbf}\u{1d00}-\u{1d2b}\u{1d6b}-\u{1d77}\u{1d79}-\u{1d9a}\u{1e00}-\u{1f15}\u{1f18}-\u{1f1d}\u{1f20}-\u{1f45}\u{1f48}-\u{1f4d}\u{1f50}-\u{1f57}\u{1f59}\u{1f5b}\u{1f5d}\u{1f5f}-\u{1f7d}\u{1f80}-\u{1fb4}\u{1fb6}-\u{1fbc}\u{1fbe}\u{1fc2}-\u{1fc4}\u{1fc6}-\u{1fcc}\u{1fd0}-\u{1fd3}\u{1fd6}-\u{1fdb}\u{1fe0}-\u{1fec}\u{1ff2}-\u{1ff4}\u{1ff6}-\u{1ffc}\u{2102}\u{2107}\u{210a}-\u{2113}\u{2115}\u{2119}-\u{211d}\u{2124}\u{2126}\u{2128}\u{212a}-\u{212d}\u{212f}-\u{2134}\u{2139}\u{213c}-\u{213f}\u{2145}-\u{2149}\u{214e}\u{2183}\u{2184}\u{2c00}-\u{2c7b}\u{2c7e}-\u{2ce4}\u{2ceb}-\u{2cee}\u{2cf2}\u{2cf3}\u{a640}-\u{a66d}\u{a680}-\u{a69b}\u{a722}-\u{a76f}\u{a771}-\u{a787}\u{a78b}-\u{a78e}\u{ab70}-\u{abbf}\u{fb00}-\u{fb06}\u{fb13}-\u{fb17}\u{ff21}-\u{ff3a}\u{ff41}-\u{ff5a}\u{10400}-\u{1044f}\u{104b0}-\u{104d3}\u{104d8}-\u{104fb}\u{10c80}-\u{10cb2}\u{10cc0}-\u{10cf2}\u{118a0}-\u{118df}\u{1e900}-\u{1e943}]+",
            "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
            "\\s+$",
            "[一-龥ࠀ-一가-퟿]+",
            "\\p{N}+",
        ],
        "deepseek-coder" => &[
            "[\r\n]",
            "\\s?\\p{L}+",
            "\\s?\\p{P}+",
            "[一-龥ࠀ-一가-퟿]+",
            "\\p{N}",
        ],
        _ => return None,
    })
}

/// Byte-level BPE with the file's merges and llama.cpp's split regexes
/// (vocabulary and merges in the returned parts, as for [`spm`]).
fn bpe(file: &GgufFile, vocab: &Vocab, pre: &str) -> Result<(Value, Option<BpeParts>)> {
    let regexes = pre_tokenizer_regexes(pre).ok_or_else(|| {
        file.invalid(format!(
            "pre-tokenizer {pre:?} (tokenizer.ggml.pre) is not supported"
        ))
    })?;
    let merges: Vec<(String, String)> = file
        .get("tokenizer.ggml.merges")
        .and_then(MetadataValue::as_array)
        .ok_or_else(|| file.invalid("a gpt2 tokenizer needs tokenizer.ggml.merges"))?
        .iter()
        .filter_map(MetadataValue::as_str)
        .filter_map(|m| m.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut splits: Vec<Value> = regexes
        .iter()
        .map(|r| json!({"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": false}))
        .collect();
    splits.push(json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}));
    let llama3 = matches!(pre, "llama3" | "llama-v3" | "llama-bpe" | "falcon3");
    let map = vocab.map(|t, _| Some(t.to_string()));
    let json = json!({
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": splits},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": llama3,
            "vocab": {}, "merges": [],
        },
    });
    let parts = BpeParts {
        vocab: map,
        merges,
        unk_token: None,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: llama3,
        added_tokens: Vec::new(),
    };
    Ok((json, Some(parts)))
}

/// WordPiece: llama.cpp stores word starts as `▁word` and continuations
/// bare; `tokenizers` wants `word` and `##cont`.
fn wordpiece(vocab: &Vocab) -> Value {
    let map = vocab.map(|t, _| {
        Some(if let Some(rest) = t.strip_prefix(SPACE) {
            rest.to_string()
        } else if t.starts_with('[') && t.ends_with(']') {
            t.to_string()
        } else {
            format!("##{t}")
        })
    });
    let unk = vocab
        .types
        .iter()
        .position(|&t| t == UNKNOWN)
        .map_or_else(|| "[UNK]".to_string(), |i| vocab.tokens[i].clone());
    json!({
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": true, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": null,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {
            "type": "WordPiece", "unk_token": unk, "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": map,
        },
    })
}
