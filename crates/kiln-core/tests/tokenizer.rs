//! The tokenizer wrapper on the fixtures' real tokenizer files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use kiln_core::Tokenizer;

fn model_dir(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models")
        .join(name)
}

fn load(name: &str) -> Tokenizer {
    let dir = model_dir(name);
    Tokenizer::from_files(
        &dir.join("tokenizer.json"),
        Some(&dir.join("tokenizer_config.json")),
    )
    .unwrap()
}

/// Every golden prompt encodes to transformers' ids and decodes back to its text.
#[test]
fn golden_prompts_round_trip() {
    for name in ["llama", "qwen2", "gemma2", "phi3"] {
        let text = std::fs::read_to_string(model_dir(name).join("golden.json")).unwrap();
        let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
        let tok = load(name);
        for p in golden["prompts"].as_array().unwrap() {
            let text = p["text"].as_str().unwrap();
            let want: Vec<u32> = serde_json::from_value(p["input_ids"].clone()).unwrap();
            let enc = tok.encode(text, true).unwrap();
            assert_eq!(enc.ids, want, "{name}: {text:?}");
            assert_eq!(enc.pieces.len(), enc.ids.len());
            assert_eq!(tok.decode(&enc.ids, true).unwrap(), text, "{name}: decode");
        }
    }
}

/// Explicit `add_bos_token` / `add_eos_token` rebuild the post-processor as
/// transformers' LlamaTokenizerFast does.
#[test]
fn add_bos_and_eos_flags_are_honoured() {
    let src = model_dir("llama");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        src.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer_config.json")).unwrap())
            .unwrap();
    let config_path = dir.path().join("tokenizer_config.json");
    let ids = |config: &serde_json::Value| {
        std::fs::write(&config_path, config.to_string()).unwrap();
        Tokenizer::from_files(&dir.path().join("tokenizer.json"), Some(&config_path))
            .unwrap()
            .encode("Hello world", true)
            .unwrap()
            .ids
    };
    let plain = ids(&config);
    assert_eq!(plain[0], 1);
    config["add_eos_token"] = true.into();
    config["add_bos_token"] = true.into();
    let both = ids(&config);
    assert_eq!(both[0], 1);
    assert_eq!(*both.last().unwrap(), 2);
    assert_eq!(both.len(), plain.len() + 1);
    config["add_bos_token"] = false.into();
    config["add_eos_token"] = false.into();
    assert_eq!(ids(&config), plain[1..]);
}

#[test]
fn special_tokens_and_chat_template_are_read() {
    let tok = load("llama");
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert!(tok
        .special_tokens()
        .chat_template
        .as_deref()
        .unwrap()
        .contains("[INST]"));
    // qwen3 ships its template as chat_template.jinja
    let tok = load("qwen3");
    assert!(tok.special_tokens().chat_template.is_some());
}

#[test]
fn broken_tokenizer_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{\"model\": 3}").unwrap();
    let err = Tokenizer::from_files(&path, None).unwrap_err().to_string();
    assert!(
        err.contains("invalid tokenizer file") && err.contains("tokenizer.json"),
        "{err}"
    );
}

/// Every fixture's chat template renders transformers' `apply_chat_template`
/// text, and that text encodes to its ids.
#[test]
fn chat_templates_match_transformers() {
    for name in [
        "llama", "llama_k", "mistral", "qwen2", "qwen3", "phi3", "gemma2",
    ] {
        let text = std::fs::read_to_string(model_dir(name).join("golden.json")).unwrap();
        let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
        let chat = &golden["chat"];
        let messages: Vec<kiln_core::ChatMessage> =
            serde_json::from_value(chat["messages"].clone()).unwrap();
        let tok = load(name);
        let add = chat["add_generation_prompt"].as_bool().unwrap();
        let rendered = tok.apply_chat_template(&messages, add, None, None).unwrap();
        assert_eq!(rendered, chat["text"].as_str().unwrap(), "{name}");
        let want: Vec<u32> = serde_json::from_value(chat["input_ids"].clone()).unwrap();
        assert_eq!(tok.encode(&rendered, false).unwrap().ids, want, "{name}");
    }
}
