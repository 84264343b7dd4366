//! llama.cpp's own vocabulary files and tokenizer tests: every `.inp` string
//! must tokenize to the ids in `.out` (no BOS/EOS, special text not parsed).
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use kiln_models::gguf::{tokenizer_from_gguf, GgufFile};

fn dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/tokenizers")
}

/// The test strings and expected ids of one vocabulary.
fn cases(name: &str) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(dir().join(format!("{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir().join(format!("{name}.gguf.out"))).unwrap();
    let mut inputs: Vec<String> = inp
        .split("\n__ggml_vocab_test__\n")
        .map(str::to_string)
        .collect();
    if inputs.last().is_some_and(String::is_empty) {
        inputs.pop();
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{name}: .inp and .out disagree"
    );
    inputs.into_iter().zip(outputs).collect()
}

#[test]
fn every_llama_cpp_vocab_test_matches() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".gguf").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 10);
    let mut failures = Vec::new();
    let mut total = 0;
    for name in &names {
        let file = GgufFile::open(&dir().join(format!("{name}.gguf"))).unwrap();
        let tokenizer = tokenizer_from_gguf(&file)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap()
            .with_special_parsing(false);
        for (text, want) in cases(name) {
            total += 1;
            let got = tokenizer.encode(&text, false).unwrap().ids;
            if got != want {
                failures.push(format!("{name} {text:?}:\n  got  {got:?}\n  want {want:?}"));
            }
        }
    }
    println!("{total} cases in {} vocabularies", names.len());
    assert!(total > 300, "only {total} cases");
    assert!(
        failures.is_empty(),
        "{} of {total} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
