//! Feeds arbitrary bytes to the GGUF reader, the spec and tokenizer built
//! from its metadata, and every tensor's dequantization: none may panic.
//! Crashes found are kept in `tests/data/gguf-fuzz/` and replayed by
//! `crates/kiln-models/tests/gguf_corrupt.rs`.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use kiln_models::gguf::{gguf_config, tokenizer_from_gguf, GgufFile};
use kiln_models::weights::{GgufWeights, WeightSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(Path::new("fuzz.gguf"), Arc::new(data.to_vec())) else {
        return;
    };
    let weights = GgufWeights::new(&file);
    for t in file.tensors() {
        let _ = weights.tensor(&t.name);
    }
    let _ = gguf_config(&file);
    let _ = tokenizer_from_gguf(&file);
});
