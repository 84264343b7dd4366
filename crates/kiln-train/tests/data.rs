//! Datasets: every record shape, answer-only loss, and bad data named by line.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};

use kiln_core::Tokenizer;
use kiln_train::data::{load_examples, pack, split_eval, DataOptions, IGNORE};

fn tokenizer() -> Tokenizer {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models/qwen2");
    Tokenizer::from_files(
        &dir.join("tokenizer.json"),
        Some(&dir.join("tokenizer_config.json")),
    )
    .unwrap()
}

fn options() -> DataOptions {
    DataOptions {
        train_on_inputs: false,
        max_seq_len: None,
        context: 256,
        chat_template: None,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn every_shape_trains_on_the_answer_only() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "mixed.jsonl",
        concat!(
            r#"{"instruction":"Add","input":"2+2","output":"4"}"#,
            "\n",
            r#"{"instruction":"Greet","context":"","response":"hello"}"#,
            "\n",
            r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hey there"}]}"#,
            "\n",
            r#"{"conversations":[{"from":"human","value":"hi"},{"from":"gpt","value":"yo"}]}"#,
            "\n",
            r#"{"text":"plain text"}"#,
            "\n",
        ),
    );
    let examples = load_examples(&path, &tok, &options()).unwrap();
    assert_eq!(examples.len(), 5);
    let eos = tok.eos_id().unwrap();
    // Alpaca: the prompt is masked, the answer "4" + EOS is learned.
    let a = &examples[0];
    let learned: Vec<u32> = a
        .ids
        .iter()
        .zip(&a.labels)
        .filter(|(_, &l)| l != IGNORE)
        .map(|(&i, _)| i)
        .collect();
    let mut want = tok.encode("4", false).unwrap().ids;
    want.push(eos);
    assert_eq!(learned, want);
    assert_eq!(
        tok.decode(&a.ids[..a.ids.len() - learned.len()], false)
            .unwrap(),
        kiln_train::data::alpaca_prompt("Add", Some("2+2"))
    );
    // Chat: only the assistant turn's text (and its end marker) is learned.
    for e in &examples[2..4] {
        let learned: Vec<u32> = e
            .ids
            .iter()
            .zip(&e.labels)
            .filter(|(_, &l)| l != IGNORE)
            .map(|(&i, _)| i)
            .collect();
        let text = tok.decode(&learned, false).unwrap();
        assert!(
            text.starts_with("hey there") || text.starts_with("yo"),
            "{text:?}"
        );
        assert!(!text.contains("hi"), "{text:?}");
    }
    // Plain text: everything.
    assert!(examples[4].labels.iter().all(|&l| l != IGNORE));
    // --train-on-inputs learns the prompt too.
    let all = load_examples(
        &path,
        &tok,
        &DataOptions {
            train_on_inputs: true,
            ..options()
        },
    )
    .unwrap();
    assert!(all[0].labels.iter().all(|&l| l != IGNORE));
    // JSON arrays work as well as JSONL.
    let arr = write(
        dir.path(),
        "a.json",
        r#"[{"instruction":"Add","input":"2+2","output":"4"}]"#,
    );
    assert_eq!(
        load_examples(&arr, &tok, &options()).unwrap()[0],
        examples[0]
    );
}

#[test]
fn bad_records_are_named_by_line() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{\"text\":\"ok\"}\n{not json\n", ":2:", "malformed JSON"),
        (
            "{\"text\":\"ok\"}\n\n{\"instruction\":\"x\"}\n",
            ":3:",
            "\"output\"",
        ),
        (
            "{\"messages\":[{\"role\":\"user\"}]}\n",
            ":1:",
            "\"content\"",
        ),
        (
            "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n",
            ":1:",
            "no assistant turn",
        ),
        ("{\"foo\":1}\n", ":1:", "unknown record shape"),
        ("[1, 2]", ":1:", "JSON object"),
    ];
    for (i, (text, line, what)) in cases.iter().enumerate() {
        let path = write(dir.path(), &format!("bad{i}.jsonl"), text);
        let err = load_examples(&path, &tok, &options())
            .unwrap_err()
            .to_string();
        assert!(err.contains(line) && err.contains(what), "case {i}: {err}");
    }
    let empty = write(dir.path(), "empty.jsonl", "\n");
    let err = load_examples(&empty, &tok, &options())
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    // Longer than the context: an error unless truncation is asked for.
    let long = format!("{{\"text\":\"{}\"}}\n", "word ".repeat(400));
    let path = write(dir.path(), "long.jsonl", &long);
    let err = load_examples(&path, &tok, &options())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":1:") && err.contains("context") && err.contains("--max-seq-len"),
        "{err}"
    );
    let cut = load_examples(
        &path,
        &tok,
        &DataOptions {
            max_seq_len: Some(64),
            ..options()
        },
    )
    .unwrap();
    assert_eq!(cut[0].ids.len(), 64);
}

#[test]
fn packing_and_splitting_keep_every_token() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..20)
        .map(|i| format!("{{\"text\":\"sample number {i}\"}}\n"))
        .collect();
    let examples = load_examples(&write(dir.path(), "t.jsonl", &lines), &tok, &options()).unwrap();
    let total: usize = examples.iter().map(|e| e.ids.len()).sum();
    let packed = pack(&examples, 16);
    assert!(packed.iter().all(|e| e.ids.len() <= 16));
    assert_eq!(packed.iter().map(|e| e.ids.len()).sum::<usize>(), total);
    let (train, eval) = split_eval(examples.clone(), 0.25, 1);
    assert_eq!((train.len(), eval.len()), (15, 5));
    assert_eq!(
        split_eval(examples, 0.25, 1).1,
        eval,
        "the split is deterministic"
    );
}
