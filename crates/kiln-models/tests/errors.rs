//! Malformed model directories give a clear error naming the file and the
//! problem, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::fixture;
use kiln_models::{Model, ModelError};

/// A copy of the llama fixture in a temp dir, edited by `edit`.
fn broken(edit: impl FnOnce(&Path)) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("llama")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    edit(dir.path());
    let err = Model::load_dir(dir.path()).unwrap_err();
    let message = err.to_string();
    (dir, message)
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn missing_config() {
    let (_d, msg) = broken(|d| std::fs::remove_file(d.join("config.json")).unwrap());
    assert!(msg.contains("no config.json found"), "{msg}");
}

#[test]
fn corrupt_config() {
    let (_d, msg) =
        broken(|d| std::fs::write(d.join("config.json"), "{\"model_type\": \"llama\",").unwrap());
    assert!(
        msg.contains("config.json") && msg.contains("invalid"),
        "{msg}"
    );
}

#[test]
fn config_missing_field() {
    let (_d, msg) = broken(|d| {
        edit_config(d, |v| {
            v.as_object_mut().unwrap().remove("hidden_size");
        })
    });
    assert!(
        msg.contains("config.json") && msg.contains("hidden_size"),
        "{msg}"
    );
}

#[test]
fn unknown_model_type() {
    let (_d, msg) = broken(|d| edit_config(d, |v| v["model_type"] = "llama9000".into()));
    assert!(
        msg.contains("unsupported model_type \"llama9000\""),
        "{msg}"
    );
    assert!(msg.contains("llama, mistral"), "{msg}");
}

#[test]
fn wrong_tensor_shape() {
    let (_d, msg) = broken(|d| edit_config(d, |v| v["intermediate_size"] = 100.into()));
    assert!(msg.contains("model.safetensors"), "{msg}");
    assert!(msg.contains("model.layers.0.mlp.down_proj.weight"), "{msg}");
    assert!(
        msg.contains("[64, 128]") && msg.contains("[64, 100]"),
        "{msg}"
    );
}

#[test]
fn truncated_safetensors() {
    let (_d, msg) = broken(|d| {
        let path = d.join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert!(
        msg.contains("invalid weights file") && msg.contains("model.safetensors"),
        "{msg}"
    );
}

#[test]
fn garbage_safetensors_header() {
    let (_d, msg) = broken(|d| {
        std::fs::write(
            d.join("model.safetensors"),
            b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk",
        )
        .unwrap()
    });
    assert!(msg.contains("invalid weights file"), "{msg}");
}

#[test]
fn missing_weights() {
    let (_d, msg) = broken(|d| std::fs::remove_file(d.join("model.safetensors")).unwrap());
    assert!(
        msg.contains("model.safetensors or model.safetensors.index.json"),
        "{msg}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let (_d, msg) = broken(|d| edit_config(d, |v| v["num_hidden_layers"] = 3.into()));
    assert!(
        msg.contains("model.layers.2.input_layernorm.weight"),
        "{msg}"
    );
}

#[test]
fn gqa_heads_must_divide() {
    let (_d, msg) = broken(|d| edit_config(d, |v| v["num_key_value_heads"] = 3.into()));
    assert!(
        msg.contains("not a multiple of num_key_value_heads"),
        "{msg}"
    );
}

#[test]
fn unknown_rope_type_is_rejected() {
    let (_d, msg) = broken(|d| {
        edit_config(d, |v| {
            v["rope_scaling"] = serde_json::json!({"rope_type": "wobbly", "factor": 2.0})
        })
    });
    assert!(msg.contains("unsupported rope_type \"wobbly\""), "{msg}");
}

#[test]
fn not_a_model_name() {
    let err = Model::load("no/such/dir", &kiln_models::HubOptions::default()).unwrap_err();
    assert!(matches!(err, ModelError::UnknownModelRef(_)), "{err}");
}

#[test]
fn token_ids_outside_vocab_are_rejected() {
    let model = Model::load_dir(&fixture("llama")).unwrap();
    let mut cache = model.decoder.new_cache();
    let err = model
        .decoder
        .forward(&[1, 5000], &mut cache, kiln_models::Logits::Last)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("token id 5000 is outside the vocabulary"),
        "{err}"
    );
    assert!(cache.is_empty());
}
