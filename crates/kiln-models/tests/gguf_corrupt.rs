//! Corrupt and truncated GGUF files are rejected with a clear error, never a
//! panic: hand-made damage of each kind, every truncation of a real file,
//! random byte flips, and the regression inputs in `tests/data/gguf-fuzz/`.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_models::gguf::GgufFile;
use kiln_models::weights::{GgufWeights, WeightSource};

fn data(path: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data")
        .join(path)
}

/// Parses `bytes` and, if that works, touches every tensor; returns the
/// error message if any step failed.
fn load(bytes: Vec<u8>) -> Option<String> {
    let file = match GgufFile::from_bytes(Path::new("test.gguf"), Arc::new(bytes)) {
        Ok(f) => f,
        Err(e) => return Some(e.to_string()),
    };
    let weights = GgufWeights::new(&file);
    for t in file.tensors() {
        if let Err(e) = weights.tensor(&t.name) {
            return Some(e.to_string());
        }
    }
    let _ = kiln_models::gguf::tokenizer_from_gguf(&file);
    let _ = kiln_models::gguf::gguf_config(&file);
    None
}

fn sample() -> Vec<u8> {
    std::fs::read(data("gguf/llama-q4_0.gguf")).unwrap()
}

fn expect_error(bytes: Vec<u8>, needle: &str) {
    let err = load(bytes).unwrap_or_else(|| panic!("accepted a file that should fail ({needle})"));
    assert!(
        err.contains(needle),
        "error {err:?} does not mention {needle:?}"
    );
}

#[test]
fn each_kind_of_damage_has_a_clear_error() {
    let good = sample();
    assert!(load(good.clone()).is_none(), "the sample itself must load");

    let mut bad = good.clone();
    bad[0..4].copy_from_slice(b"GGML");
    expect_error(bad, "not a GGUF file");

    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&99u32.to_le_bytes());
    expect_error(bad, "version 99");

    let mut bad = good.clone();
    bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    expect_error(bad, "tensor count");

    let mut bad = good.clone();
    bad[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    expect_error(bad, "metadata count");

    // The first key's length claims more bytes than the file has.
    let mut bad = good.clone();
    bad[24..32].copy_from_slice(&(1u64 << 50).to_le_bytes());
    expect_error(bad, "metadata key");

    // Data cut off: the last tensor lies past the end of the file.
    let mut bad = good.clone();
    bad.truncate(good.len() - 10);
    expect_error(bad, "past the end of the file");

    // An unknown tensor type id.
    let file = GgufFile::from_bytes(Path::new("x"), Arc::new(good.clone())).unwrap();
    let first = &file.tensors()[0];
    let name_at = find(&good, first.name.as_bytes());
    let dims_at = name_at + first.name.len();
    let type_at = dims_at + 4 + 8 * first.shape.len();
    let mut bad = good.clone();
    bad[type_at..type_at + 4].copy_from_slice(&77u32.to_le_bytes());
    expect_error(bad, "unsupported tensor type id 77");

    // A tensor offset far outside the file.
    let mut bad = good.clone();
    bad[type_at + 4..type_at + 12].copy_from_slice(&(1u64 << 60).to_le_bytes());
    expect_error(bad, "past the end of the file");

    // Absurd dimension count.
    let mut bad = good;
    bad[dims_at..dims_at + 4].copy_from_slice(&9u32.to_le_bytes());
    expect_error(bad, "dimensions");
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn every_truncation_is_rejected_or_loads() {
    let good = sample();
    // Every cut inside the header and tables, then a stride through the data.
    let header_end = 4096.min(good.len());
    let cuts = (0..header_end).chain((header_end..good.len()).step_by(997));
    for cut in cuts {
        let bytes = good[..cut].to_vec();
        // Must not panic; a short file is an error unless nothing was lost.
        if let Some(err) = load(bytes) {
            assert!(!err.is_empty());
        }
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let good = sample();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let mut bytes = good.clone();
        for _ in 0..(1 + next() % 4) {
            // Mostly the header and tables, where structure lives.
            let span = if next() % 4 == 0 { bytes.len() } else { 4096 };
            let at = (next() as usize) % span.min(bytes.len());
            bytes[at] = next() as u8;
        }
        let _ = load(bytes);
    }
}

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = data("gguf-fuzz");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            let _ = load(std::fs::read(&path).unwrap());
        }
    }
}
