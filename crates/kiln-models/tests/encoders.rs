//! Sentence embeddings vs sentence-transformers: the tiny BERT, MPNet and
//! XLM-RoBERTa fixtures (token ids exact, embeddings within 1e-5) and the
//! real all-MiniLM-L6-v2 (from `$KILN_MODELS`, fetched by scripts/test.sh).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use candle_core::Device;
use kiln_models::encoder::{Pooling, SentenceEmbedder};
use serde_json::Value;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data")
        .join(rel)
}

/// Checks `embedder` on a golden file pair (`.json` with sentences and
/// input ids, `.safetensors` with `embeddings`).
fn check(embedder: &SentenceEmbedder, json: &Path, tensors: &Path, tol: f32) {
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let want = candle_core::safetensors::load(tensors, &Device::Cpu).unwrap()["embeddings"]
        .to_vec2::<f32>()
        .unwrap();
    let sentences: Vec<&str> = golden["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let got = embedder.embed(&sentences).unwrap();
    for (i, s) in sentences.iter().enumerate() {
        let ids: Vec<u32> = serde_json::from_value(golden["input_ids"][i].clone()).unwrap();
        assert_eq!(
            embedder.token_ids(s).unwrap(),
            ids,
            "{}: ids of {s:?}",
            json.display()
        );
        let diff = got[i]
            .iter()
            .zip(&want[i])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff <= tol,
            "{}: sentence {i}: max |Δ| {diff}",
            json.display()
        );
    }
}

#[test]
fn tiny_encoders_match_sentence_transformers() {
    for (name, pooling) in [
        ("bert", Pooling::Mean),
        ("mpnet", Pooling::Mean),
        ("xlm_roberta", Pooling::Cls),
    ] {
        let dir = data(&format!("encoders/{name}"));
        let e = SentenceEmbedder::load(&dir).unwrap();
        assert_eq!(e.pooling(), pooling, "{name}");
        assert_eq!(e.dimension(), 48);
        check(
            &e,
            &dir.join("golden.json"),
            &dir.join("golden.safetensors"),
            1e-5,
        );
    }
}

#[test]
fn real_all_minilm_l6_v2_matches_sentence_transformers() {
    let Some(models) = std::env::var_os("KILN_MODELS") else {
        eprintln!("KILN_MODELS is not set: skipping all-MiniLM-L6-v2 (scripts/test.sh sets it)");
        return;
    };
    let e = SentenceEmbedder::load(&Path::new(&models).join("all-MiniLM-L6-v2")).unwrap();
    assert_eq!((e.dimension(), e.max_seq_length()), (384, 256));
    check(
        &e,
        &data("embeddings/all-MiniLM-L6-v2.golden.json"),
        &data("embeddings/all-MiniLM-L6-v2.golden.safetensors"),
        1e-5,
    );
}

#[test]
fn bad_encoder_directories_fail_clearly() {
    // Decoders embed too (see below); a family kiln does not run is refused.
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(data("models/llama").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "t5"}"#).unwrap();
    let err = SentenceEmbedder::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("unsupported model_type"), "{err}");
    let err = SentenceEmbedder::load(&data("nothing-here"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
    // DeBERTa switches kiln does not implement are refused, never ignored.
    let source = data("encoders/deberta_nli");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("config.json")).unwrap())
            .unwrap();
    for (key, value, message) in [
        ("conv_kernel_size", serde_json::json!(3), "convolution"),
        ("pos_att_type", serde_json::json!("c2p|p2p"), "\"p2p\""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for f in ["model.safetensors", "tokenizer.json"] {
            std::fs::copy(source.join(f), dir.path().join(f)).unwrap();
        }
        let mut bad = config.clone();
        bad[key] = value;
        std::fs::write(dir.path().join("config.json"), bad.to_string()).unwrap();
        let err = kiln_models::encoder::CrossEncoder::load(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{err}");
    }
}

/// Packed batches (many inputs, no padding) give what one input at a time
/// gives, for every family (BERT, MPNet's relative bias, XLM-R's
/// positions), with inputs of very different lengths and more tokens than
/// one batch holds.
#[test]
fn packed_batches_equal_one_input_at_a_time() {
    let long = "word ".repeat(300);
    let texts: Vec<String> = (0..40)
        .map(|i| match i % 4 {
            0 => format!("short {i}"),
            1 => format!("a somewhat longer sentence number {i} about kilns and bread"),
            2 => long.clone(),
            _ => "한국어 문장도 있습니다".to_string(),
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for name in ["bert", "mpnet", "xlm_roberta"] {
        let e = SentenceEmbedder::load(&data(&format!("encoders/{name}"))).unwrap();
        let batched = e.embed(&refs).unwrap();
        assert_eq!(batched.len(), refs.len());
        for (text, b) in refs.iter().zip(&batched) {
            let one = e.embed_ids(&e.token_ids(text).unwrap()).unwrap();
            let diff = one
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(diff <= 1e-5, "{name}: {diff} for {text:.20}");
        }
    }
}

/// A tiny BERT cross-encoder (`scripts/make_cross_encoder_fixture.py`):
/// pair token ids and types equal transformers', scores equal
/// sentence-transformers' `CrossEncoder.predict` logits within 1e-5.
#[test]
fn cross_encoder_matches_sentence_transformers() {
    let dir = data("encoders/cross_encoder");
    let ce = kiln_models::encoder::CrossEncoder::load(&dir).unwrap();
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let pairs = golden["pairs"].as_array().unwrap();
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let mut scores = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        let (q, p) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        let (got_ids, got_types) = ce.pair_ids(q, p).unwrap();
        assert_eq!(got_ids, ids(&golden["input_ids"][i]), "pair {i} ids");
        assert_eq!(
            got_types,
            ids(&golden["token_type_ids"][i]),
            "pair {i} types"
        );
        scores.push(ce.score(q, &[p]).unwrap()[0]);
    }
    for (i, (got, want)) in scores
        .iter()
        .zip(golden["logits"].as_array().unwrap())
        .enumerate()
    {
        let want = want.as_f64().unwrap() as f32;
        assert!((got - want).abs() <= 1e-5, "pair {i}: {got} vs {want}");
    }
    // Batched scoring of one query against several passages agrees.
    let q = pairs[0][0].as_str().unwrap();
    let passages: Vec<&str> = pairs[..2].iter().map(|p| p[1].as_str().unwrap()).collect();
    let batch = ce.score(q, &passages).unwrap();
    assert!((batch[0] - scores[0]).abs() < 1e-5 && (batch[1] - scores[1]).abs() < 1e-5);
    // A sentence-transformers embedding directory is not a cross-encoder.
    assert!(kiln_models::encoder::CrossEncoder::load(&data("encoders/bert")).is_err());
}

/// Zero-shot classification with a tiny NLI cross-encoder
/// (`scripts/fixtures/make-nli-fixture.py`): labels and scores equal
/// transformers' zero-shot-classification pipeline, single- and multi-label.
#[test]
fn zero_shot_matches_the_transformers_pipeline() {
    use kiln_models::encoder::{zero_shot, CrossEncoder};
    let dir = data("encoders/nli");
    let model = CrossEncoder::load(&dir).unwrap();
    assert_eq!(model.labels(), ["contradiction", "neutral", "entailment"]);
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    check_zero_shot(&model, &golden["cases"]);
    let err = zero_shot(&model, "x", &[], "This is {}.", false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one"), "{err}");
    let err = zero_shot(&model, "x", &["a".into()], "no slot", false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("{}"), "{err}");
    let reranker = CrossEncoder::load(&data("encoders/cross_encoder")).unwrap();
    let err = zero_shot(&reranker, "x", &["a".into()], "{}", false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an NLI model"), "{err}");
}

/// Every zero-shot case (the transformers pipeline's labels in order and
/// scores within 1e-5) on `model`.
fn check_zero_shot(model: &kiln_models::encoder::CrossEncoder, cases: &Value) {
    use kiln_models::encoder::zero_shot;
    let cases = cases.as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let labels: Vec<String> = case["candidate_labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        let got = zero_shot(
            model,
            case["text"].as_str().unwrap(),
            &labels,
            case["hypothesis_template"].as_str().unwrap(),
            case["multi_label"].as_bool().unwrap(),
        )
        .unwrap();
        let want_labels: Vec<&str> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let got_labels: Vec<&str> = got.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(got_labels, want_labels, "{case}");
        for (g, w) in got.iter().zip(case["scores"].as_array().unwrap()) {
            assert!(
                (g.score - w.as_f64().unwrap() as f32).abs() < 1e-5,
                "{} vs {w} in {case}",
                g.score
            );
        }
    }
}

/// DeBERTa v3-style (log-bucketed relative positions, shared keys, factorised
/// embeddings) and v2-style (absolute positions, token types, separate
/// position projections, clamped distances) sequence classifiers: the same
/// input ids and logits within 1e-4 as transformers; zero-shot as its pipeline.
#[test]
fn deberta_classifiers_match_transformers() {
    use kiln_models::encoder::CrossEncoder;
    for name in ["deberta_nli", "deberta_alt"] {
        let dir = data(&format!("encoders/{name}"));
        let model = CrossEncoder::load(&dir).unwrap();
        let golden: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap())
                .unwrap();
        let pairs = golden["pairs"].as_array().unwrap();
        let texts: Vec<(&str, &str)> = pairs
            .iter()
            .map(|p| (p["first"].as_str().unwrap(), p["second"].as_str().unwrap()))
            .collect();
        let logits = model.logits(&texts).unwrap();
        for ((pair, got), (a, b)) in pairs.iter().zip(&logits).zip(&texts) {
            let want_ids: Vec<u32> = pair["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(model.pair_ids(a, b).unwrap().0, want_ids, "{name}");
            assert_eq!(got.len(), 3, "{name}: three NLI logits");
            for (g, w) in got.iter().zip(pair["logits"].as_array().unwrap()) {
                let w = w.as_f64().unwrap() as f32;
                assert!((g - w).abs() < 1e-4, "{name}: {g} vs {w} for {a:?}");
            }
        }
        if name == "deberta_nli" {
            check_zero_shot(&model, &golden["zero_shot"]);
        }
    }
}

/// A decoder (the qwen2 fixture) as a sentence embedder, laid out as
/// decoder embedding models ship (sentence-transformers modules, last-token
/// or mean pooling, Normalize), and bare (last token by default): the same
/// token ids and embeddings within 1e-4 as sentence-transformers.
#[test]
fn decoder_models_embed_as_sentence_transformers_does() {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(data("embeddings/decoder-qwen2.json")).unwrap(),
    )
    .unwrap();
    let texts: Vec<&str> = golden["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let check = |model: &SentenceEmbedder, pooling: &str| {
        let got = model.embed(&texts).unwrap();
        let want = golden["pooling"][pooling].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let w: Vec<f32> = serde_json::from_value(w.clone()).unwrap();
            assert_eq!(g.len(), w.len());
            let diff = g
                .iter()
                .zip(&w)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-4, "{pooling}: {diff}");
        }
    };
    let source = data("models/qwen2");
    let bare = SentenceEmbedder::load(&source).unwrap();
    assert_eq!(bare.pooling(), Pooling::LastToken);
    assert_eq!(bare.dimension(), 64);
    for (text, ids) in texts.iter().zip(golden["input_ids"].as_array().unwrap()) {
        let want: Vec<u32> = serde_json::from_value(ids.clone()).unwrap();
        assert_eq!(bare.token_ids(text).unwrap(), want);
    }
    check(&bare, "lasttoken");
    for pooling in ["lasttoken", "mean"] {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&source).unwrap().flatten() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        std::fs::write(
            dir.path().join("1_Pooling/config.json"),
            serde_json::json!({"pooling_mode": pooling}).to_string(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("modules.json"),
            r#"[{"path": "", "type": "sentence_transformers.models.Transformer"},
                {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]"#,
        )
        .unwrap();
        check(&SentenceEmbedder::load(dir.path()).unwrap(), pooling);
    }
}

/// BERT-style models take the packed one-pass-per-thread path, the others
/// the tensor path; bad ids and token types are refused with clear errors
/// on the packed path too.
#[test]
fn packed_path_is_chosen_for_plain_models_and_checks_its_inputs() {
    use kiln_models::encoder::Encoder;
    for (name, packed) in [
        ("encoders/bert", true),
        ("encoders/xlm_roberta", true),
        ("encoders/mpnet", false),
        ("encoders/deberta_nli", false),
    ] {
        let e = Encoder::load(&data(name)).unwrap();
        assert_eq!(e.is_packed(), packed, "{name}");
    }
    let bert = Encoder::load(&data("encoders/bert")).unwrap();
    let err = bert
        .forward_typed(&[&[2, 5, 3]], Some(&[&[0, 9, 0]]))
        .unwrap_err();
    assert!(err.to_string().contains("token type 9"), "{err}");
    let vocab = 30522; // config.json's vocab_size
    let err = bert.forward_batch(&[&[2, vocab, 3]]).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    // Types 0 and 1 both work, and change the states.
    let a = bert
        .forward_typed(&[&[2, 5, 3]], Some(&[&[0, 0, 0]]))
        .unwrap();
    let b = bert
        .forward_typed(&[&[2, 5, 3]], Some(&[&[0, 1, 0]]))
        .unwrap();
    let plain = bert.forward_batch(&[&[2, 5, 3]]).unwrap();
    let v = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(v(&a[0]), v(&plain[0]));
    assert_ne!(v(&a[0]), v(&b[0]));
}
