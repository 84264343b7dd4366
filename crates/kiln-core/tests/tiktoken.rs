//! kiln's tiktoken encodings against OpenAI's `tiktoken` package: every case in
//! `tests/data/tiktoken/goldens.json` (made by
//! `scripts/fixtures/make-tiktoken-goldens.py`) must encode to the same ids
//! and decode back to the text.
//!
//! The rank files come from `$KILN_MODELS/tiktoken` (`scripts/fetch-tiktoken.sh`,
//! run by `scripts/test.sh`); without `KILN_MODELS` the test says so and returns.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use kiln_core::tiktoken::{known_encoding, TiktokenEncoding};
use serde_json::Value;

fn goldens() -> Value {
    let path = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/tiktoken/goldens.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check(name: &str) {
    let Some(models) = std::env::var_os("KILN_MODELS") else {
        eprintln!("KILN_MODELS is not set: skipping {name} (scripts/test.sh sets it)");
        return;
    };
    let known = known_encoding(name).unwrap();
    let path = PathBuf::from(models)
        .join("tiktoken")
        .join(format!("{name}.tiktoken"));
    let enc = TiktokenEncoding::from_file(known, &path).unwrap();
    let golden = &goldens()[name];
    assert_eq!(enc.vocab_size() as u64, golden["n_vocab"].as_u64().unwrap());
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect()
    };
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() > 150);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ordinary"]);
        assert_eq!(enc.encode_ordinary(text).unwrap(), want, "{name}: {text:?}");
        assert_eq!(enc.count(text).unwrap(), want.len());
        assert_eq!(enc.decode(&want).unwrap(), text, "{name}: decode {text:?}");
        if let Some(special) = case.get("special") {
            assert_eq!(
                enc.encode_with_special(text).unwrap(),
                ids(special),
                "{name}: special {text:?}"
            );
        }
    }
}

#[test]
fn cl100k_base_matches_tiktoken() {
    check("cl100k_base");
}

#[test]
fn o200k_base_matches_tiktoken() {
    check("o200k_base");
}
