//! Constrained decoding on synthetic and real vocabularies: every output of
//! random walks through random schemas parses and validates; bad schemas
//! are refused with a clear message; the token budget is honoured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use kiln_core::{OutputConstraint, TokenBytes, TokenId, Tokenizer};
use kiln_sampling::{Constraint, Grammar, History, LogitsProcessor, Rng};
use serde_json::{json, Value};
use support::schemas::{random_schema, validates};

const EOS: TokenId = 0;

/// Bytes 0..=255 as tokens, plus JSON-ish multi-byte pieces, EOS at id 0.
fn synthetic_vocab() -> Arc<TokenBytes> {
    let mut pieces: Vec<Option<Vec<u8>>> = vec![None];
    pieces.extend((0..=255u8).map(|b| Some(vec![b])));
    for p in [
        "{\"",
        "\":",
        "\",\"",
        "\"}",
        "},",
        "[{",
        "}]",
        "true",
        "false",
        "null",
        "12",
        "3.5",
        "-0",
        "name",
        "id0",
        "\"id0\":",
        "red",
        "green",
        "hello world",
        " the",
        "é",
        "naï",
        "ve\"",
        "\\n",
        "\\u00e9",
        "abc\"def",
        "\"x\"",
        "0.",
        "\":\"",
        "\"]",
        ",\"",
        "ok",
        "score",
        "tags1",
    ] {
        pieces.push(Some(p.as_bytes().to_vec()));
    }
    pieces.push(Some(vec![0xC3])); // the first half of "é"
    Arc::new(TokenBytes::from_pieces(pieces))
}

/// Runs the constraint with random logits until EOS or `max` tokens.
fn random_walk(
    grammar: Arc<Grammar>,
    vocab: Arc<TokenBytes>,
    rng: &mut Rng,
    max: usize,
) -> (Vec<u8>, bool) {
    let mut c = Constraint::new(grammar, vocab.clone(), &[EOS], max).unwrap();
    let mut ids: Vec<TokenId> = Vec::new();
    let mut out = Vec::new();
    for _ in 0..max {
        let mut logits: Vec<f32> = (0..vocab.len())
            .map(|_| (rng.next_u64() % 1000) as f32 / 100.0)
            .collect();
        c.apply(
            &mut logits,
            &History {
                all_ids: &ids,
                prompt_len: 0,
            },
        );
        let allowed: Vec<usize> = (0..logits.len())
            .filter(|&i| logits[i].is_finite())
            .collect();
        assert!(
            !allowed.is_empty(),
            "no token allowed after {:?}",
            String::from_utf8_lossy(&out)
        );
        let best = *allowed
            .iter()
            .max_by(|&&a, &&b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        let id = best as TokenId;
        if id == EOS {
            return (out, true);
        }
        c.accept(id);
        ids.push(id);
        out.extend_from_slice(vocab.get(id).unwrap());
    }
    (out, false)
}

#[test]
fn random_schemas_on_a_synthetic_vocabulary_always_give_valid_json() {
    let vocab = synthetic_vocab();
    let mut rng = Rng::new(7);
    for i in 0..500 {
        let schema = random_schema(&mut rng, 3);
        let grammar = Arc::new(Grammar::from_schema(&schema).unwrap());
        let (out, ended) = random_walk(grammar, vocab.clone(), &mut rng, 200);
        let text = String::from_utf8(out)
            .unwrap_or_else(|e| panic!("schema {i} {schema}: not UTF-8: {e}"));
        assert!(
            ended,
            "schema {i} {schema}: no EOS within the budget: {text}"
        );
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("schema {i} {schema}: {e}: {text}"));
        assert!(
            validates(&schema, &value),
            "schema {i} {schema}: invalid {text}"
        );
    }
}

#[test]
fn a_tight_budget_still_closes_the_value() {
    let vocab = synthetic_vocab();
    let schema = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "n": {"type": "integer"}}, "required": ["name", "tags", "n"]});
    let grammar = Arc::new(Grammar::from_schema(&schema).unwrap());
    // The shortest value, {"name":"","tags":["",""],"n":0}, is 32 bytes.
    for max in [33, 40, 60] {
        for seed in 0..20 {
            let (out, ended) =
                random_walk(grammar.clone(), vocab.clone(), &mut Rng::new(seed), max);
            let text = String::from_utf8(out).unwrap();
            assert!(ended, "budget {max}: {text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(validates(&schema, &v), "{text}");
        }
    }
}

#[test]
fn labels_are_matched_exactly() {
    let vocab = synthetic_vocab();
    let labels: Vec<String> = ["red", "green", "greenish", "blue"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let grammar =
        Arc::new(Constraint::grammar_for(&OutputConstraint::Choice(labels.clone())).unwrap());
    let mut rng = Rng::new(1);
    for _ in 0..100 {
        let (out, ended) = random_walk(grammar.clone(), vocab.clone(), &mut rng, 20);
        assert!(ended);
        let text = String::from_utf8(out).unwrap();
        assert!(labels.contains(&text), "{text}");
    }
}

#[test]
fn json_object_mode_gives_an_object() {
    let vocab = synthetic_vocab();
    let grammar = Arc::new(Constraint::grammar_for(&OutputConstraint::JsonObject).unwrap());
    let mut rng = Rng::new(3);
    for _ in 0..100 {
        let (out, ended) = random_walk(grammar.clone(), vocab.clone(), &mut rng, 120);
        assert!(ended);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v.is_object(), "{v}");
    }
}

fn fixture_tokenizer(name: &str) -> Tokenizer {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/models")
        .join(name);
    Tokenizer::from_files(
        &dir.join("tokenizer.json"),
        Some(&dir.join("tokenizer_config.json")),
    )
    .unwrap()
}

#[test]
fn real_vocabularies_byte_level_and_sentencepiece() {
    for name in ["gpt2", "llama", "qwen2"] {
        let tok = fixture_tokenizer(name);
        let vocab = tok.token_bytes();
        // Token bytes decode back to what the tokenizer decodes.
        for id in [100u32, 200, 300, 500, 900] {
            if let Some(b) = vocab.get(id) {
                let text = tok.decode(&[id, id], false).unwrap();
                if let Ok(s) = std::str::from_utf8(b) {
                    assert!(
                        text.replace(' ', "").contains(&s.replace(' ', "")),
                        "{name} {id}: {s:?} vs {text:?}"
                    );
                }
            }
        }
        let eos = tok.eos_id().unwrap_or(0);
        let mut rng = Rng::new(11);
        for i in 0..100 {
            let schema = random_schema(&mut rng, 2);
            let grammar = Arc::new(Grammar::from_schema(&schema).unwrap());
            let mut c = Constraint::new(grammar, vocab.clone(), &[eos], 150).unwrap();
            let mut ids = Vec::new();
            let mut ended = false;
            for _ in 0..150 {
                let mut logits: Vec<f32> = (0..tok.vocab_size())
                    .map(|_| (rng.next_u64() % 1000) as f32 / 100.0)
                    .collect();
                c.apply(
                    &mut logits,
                    &History {
                        all_ids: &ids,
                        prompt_len: 0,
                    },
                );
                let best = (0..logits.len())
                    .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                    .unwrap() as TokenId;
                assert!(
                    logits[best as usize].is_finite(),
                    "{name} schema {i}: nothing allowed"
                );
                if best == eos {
                    ended = true;
                    break;
                }
                c.accept(best);
                ids.push(best);
            }
            let text = tok.decode(&ids, true).unwrap();
            assert!(ended, "{name} schema {i} {schema}: {text}");
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} schema {i} {schema}: {e}: {text:?}"));
            assert!(validates(&schema, &v), "{name} {schema}: {text}");
        }
    }
}

#[test]
fn unsupported_or_ambiguous_schemas_are_refused_clearly() {
    let cases = [
        (json!({"type": "string", "pattern": "a+"}), "pattern"),
        (json!({"type": "integer", "minimum": 3}), "minimum"),
        (
            json!({"anyOf": [{"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "object"}]}),
            "start differently",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}),
            "\"b\"",
        ),
        (json!({"type": "wat"}), "unknown type"),
        (json!({"$ref": "#/$defs/missing"}), "not found"),
        (
            json!({"type": "array", "minItems": 3, "maxItems": 1}),
            "minItems",
        ),
        (json!(42), "object"),
    ];
    for (schema, needle) in cases {
        let err = Grammar::from_schema(&schema).unwrap_err().to_string();
        assert!(err.contains(needle), "{schema}: {err}");
    }
    assert!(Grammar::choice(&[]).is_err());
}

#[test]
fn recursive_refs_and_unions_work() {
    let schema = json!({
        "$defs": {"node": {"type": "object", "properties": {
            "v": {"type": "integer"},
            "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}}, "required": ["v"]}},
        "anyOf": [{"$ref": "#/$defs/node"}, {"type": "string"}, {"type": "null"}]
    });
    let grammar = Arc::new(Grammar::from_schema(&schema).unwrap());
    let vocab = synthetic_vocab();
    let mut rng = Rng::new(5);
    let mut objects = 0;
    for _ in 0..200 {
        let (out, ended) = random_walk(grammar.clone(), vocab.clone(), &mut rng, 150);
        assert!(ended);
        let v: Value = serde_json::from_slice(&out).unwrap();
        fn ok(v: &Value) -> bool {
            match v {
                Value::Object(o) => {
                    o.get("v").is_some_and(Value::is_i64)
                        && o.get("kids").is_none_or(|k| {
                            k.as_array()
                                .is_some_and(|a| a.len() <= 2 && a.iter().all(ok))
                        })
                }
                _ => false,
            }
        }
        assert!(v.is_string() || v.is_null() || ok(&v), "{v}");
        objects += usize::from(v.is_object());
    }
    assert!(objects > 0);
}
