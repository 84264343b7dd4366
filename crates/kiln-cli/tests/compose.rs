//! The composing commands end to end on the bundled fixtures: summarize
//! (local and through a live `kiln serve`), classify/extract, prompt
//! templates, token counting (model tokenizers and tiktoken), crawl, chat
//! sessions and zero-shot classification.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::{
    assert_fails_with, data, fixture, http_response, json_lines, kiln, kiln_command, kiln_json,
    kiln_with_stdin, scripted_server, temp_dir, KilnServe,
};

/// `kiln summarize` splits a real PDF into model-sized pieces, summarises
/// each and merges the summaries (a tiny random model: the plumbing, not
/// the prose, is under test).
#[test]
fn summarize_maps_pieces_and_reduces() {
    let llama = fixture("llama");
    let out = kiln_command()
        .args(summarize_args(&["--model", &llama], &[]))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let (pieces, calls) = summary_counts(&stderr);
    assert!(pieces >= 3, "{stderr}");
    assert!(
        calls > pieces,
        "one call per piece plus the reduce: {stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    let refined = kiln_command()
        .args(summarize_args(
            &["--model", &llama],
            &["--method", "refine"],
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refined.stderr);
    assert!(refined.status.success(), "{stderr}");
    assert_eq!(
        summary_counts(&stderr),
        (pieces, pieces),
        "refine: one call per piece"
    );
    let missing = kiln(&["summarize", "no/such/file.txt", "--model", &llama]);
    assert!(!missing.status.success());
}

/// `kiln summarize` of the three-page PDF in 40-token pieces with `model`
/// arguments (a local model or a backend) and `extra` ones.
fn summarize_args(model: &[&str], extra: &[&str]) -> Vec<String> {
    let pdf = data("pdf/three-pages.pdf");
    let mut args = vec!["summarize", &pdf];
    args.extend_from_slice(model);
    args.extend_from_slice(&[
        "--chunk-tokens",
        "40",
        "--overlap-tokens",
        "0",
        "--max-new-tokens",
        "4",
    ]);
    args.extend_from_slice(extra);
    args.into_iter().map(String::from).collect()
}

/// `(pieces, model calls)` from summarize's "N pieces, M model calls, …" line.
fn summary_counts(stderr: &str) -> (usize, usize) {
    let line = stderr
        .lines()
        .find(|l| l.contains("model calls"))
        .unwrap_or_else(|| panic!("no counts in {stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let before = |word: &str| -> usize {
        let i = words.iter().position(|w| w.starts_with(word)).unwrap();
        words[i - 1].trim_start_matches('.').parse().unwrap()
    };
    (before("pieces"), before("model"))
}

/// `classify`, `extract`, `generate --schema`: constrained output on a
/// random-weight fixture is still a label / valid JSON.
#[test]
fn classify_and_extract_always_give_valid_output() {
    let model = fixture("qwen2");
    let out = kiln(&[
        "classify",
        "-m",
        &model,
        "--labels",
        "red,green,blue",
        "--text",
        "the sky",
        "--text",
        "grass",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert!(
            ["red", "green", "blue"].contains(&l["label"].as_str().unwrap()),
            "{l}"
        );
    }
    let dir = temp_dir("extract");
    std::fs::create_dir_all(&dir).unwrap();
    let schema = dir.join("schema.json");
    std::fs::write(&schema, r#"{"type":"object","properties":{"name":{"type":"string","maxLength":10},"n":{"type":"integer"}},"required":["name","n"]}"#).unwrap();
    let doc = dir.join("doc.txt");
    std::fs::write(&doc, "Ada is 36.").unwrap();
    let out = kiln(&[
        "extract",
        "-m",
        &model,
        "--schema",
        schema.to_str().unwrap(),
        doc.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["source"], doc.display().to_string());
    assert!(
        line["data"]["name"].is_string() && line["data"]["n"].is_i64(),
        "{line}"
    );
    let gen = kiln_json(&[
        "generate",
        "-m",
        &model,
        "-p",
        "x",
        "--schema",
        schema.to_str().unwrap(),
        "--json",
        "--max-new-tokens",
        "60",
    ]);
    let v: Value = serde_json::from_str(gen["text"].as_str().unwrap()).unwrap();
    assert!(v["n"].is_i64(), "{v}");
    std::fs::write(&schema, r#"{"type":"string","pattern":"a+"}"#).unwrap();
    let out = kiln(&[
        "extract",
        "-m",
        &model,
        "--schema",
        schema.to_str().unwrap(),
        "--text",
        "x",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pattern"));
}

/// `prompt list/show`, `tokens`, and the agent's refusals.
#[test]
fn prompts_tokens_and_agent_errors() {
    let out = kiln(&["prompt", "show", "alpaca", "--var", "instruction=Say hi."]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("### Instruction:\nSay hi.\n\n### Response:"),
        "{text}"
    );
    let out = kiln(&["prompt", "show", "classify", "--var", "text=x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --var for: labels"));
    let model = fixture("llama");
    let dir = temp_dir("tokens");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("a.txt");
    std::fs::write(&f, "Hello world").unwrap();
    let out = kiln(&["tokens", "-m", &model, f.to_str().unwrap(), "--json"]);
    let lines = json_lines(&out);
    let tok = kiln_json(&[
        "tokenize",
        "--model",
        &model,
        "--text",
        "Hello world",
        "--json",
    ]);
    // `tokenize` adds BOS; `tokens` counts the text alone.
    assert_eq!(
        lines[0]["tokens"].as_u64().unwrap() + 1,
        tok["count"].as_u64().unwrap()
    );
    assert_eq!(lines[1]["total"], lines[0]["tokens"]);
    let out = kiln(&["agent", "-m", &model, "--tools", "calculator,fetch", "q"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --allow-host"));
    let out = kiln(&["agent", "-m", &model, "--tools", "teleport", "q"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown tool"));
    let out = kiln(&[
        "agent",
        "-m",
        &model,
        "--max-steps",
        "2",
        "--max-new-tokens",
        "30",
        "What is 2+2?",
    ]);
    assert!(!out.status.success());
    // The fixture's 256-token context cannot hold the agent prompt: a clear error.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no final answer within 2 steps") || err.contains("context is 256"),
        "{err}"
    );
}

/// `kiln crawl` writes one JSON line per page, errors included.
#[test]
fn crawl_writes_jsonl() {
    let (base, _) = scripted_server(|_, path| {
        Some(match path {
            "/" => http_response(
                "200 OK",
                "text/html",
                "<p>Kilns fire clay.</p><a href=\"/next\">n</a>",
            ),
            "/next" => http_response("200 OK", "text/html", "<p>Glazes melt.</p>"),
            _ => http_response("404 Not Found", "text/html", "no"),
        })
    });
    let out = kiln(&[
        "crawl",
        &format!("{base}/"),
        &format!("{base}/gone"),
        "--delay-ms",
        "0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0]["text"]
        .as_str()
        .unwrap()
        .contains("Kilns fire clay."));
    assert!(lines[1]["error"].as_str().unwrap().contains("404"));
    assert!(lines[2]["text"].as_str().unwrap().contains("Glazes melt."));
}

/// `kiln chat --session`: the conversation is saved and resumed; window
/// memory keeps the file whole but sends only the last exchanges.
#[test]
fn chat_sessions_persist_and_resume() {
    let dir = temp_dir("sessions");
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.display().to_string();
    let chat = |input: &str, memory: &str| {
        let out = kiln_with_stdin(
            &[
                "chat",
                "--model",
                &fixture("qwen2"),
                "--max-new-tokens",
                "4",
                "--session",
                "demo",
                "--memory",
                memory,
                "--sessions-dir",
                &dir_arg,
            ],
            input,
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    chat("Hello there\nAnd again\n/quit\n", "buffer");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("demo.json")).unwrap()).unwrap();
    assert_eq!(saved["messages"].as_array().unwrap().len(), 4);
    assert_eq!(saved["messages"][0]["content"], "Hello there");
    let err = chat("Third\n/quit\n", "window:1");
    assert!(err.contains("(session demo: 4 earlier messages)"), "{err}");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("demo.json")).unwrap()).unwrap();
    assert_eq!(saved["messages"].as_array().unwrap().len(), 6);
    let out = kiln(&["chat", "--model", &fixture("qwen2"), "--memory", "forever"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("window:N"));
}

/// `kiln zero-shot` gives transformers' pipeline ranking for the NLI fixture.
#[test]
fn zero_shot_from_the_command_line() {
    // A BERT and a DeBERTa-v3-style NLI model, each against transformers' pipeline.
    for (model, cases) in [
        ("encoders/nli", "cases"),
        ("encoders/deberta_nli", "zero_shot"),
    ] {
        let dir = data(model);
        let golden: Value = serde_json::from_str(
            &std::fs::read_to_string(PathBuf::from(&dir).join("golden.json")).unwrap(),
        )
        .unwrap();
        let case = golden[cases]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["multi_label"] == false && c["candidate_labels"].as_array().unwrap().len() > 2
            })
            .unwrap();
        let labels: Vec<&str> = case["candidate_labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let out = kiln(&[
            "zero-shot",
            "-m",
            &dir,
            "--labels",
            &labels.join(","),
            "--hypothesis",
            case["hypothesis_template"].as_str().unwrap(),
            "--text",
            case["text"].as_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["labels"], case["labels"], "{model}");
    }
}

/// `kiln summarize --backend`: the same map-reduce through a live
/// `kiln serve` (pieces sized by the 4-bytes-a-token estimate, or exactly
/// with a tiktoken encoding).
#[test]
fn summarize_through_a_backend() {
    let server = KilnServe::start(&["--model", &format!("tiny={}", fixture("llama"))]);
    let base = format!("{}/v1", server.base);
    let backend = ["--backend", &base, "--backend-model", "tiny"];
    let summarize = |extra: &[&str]| {
        kiln_command()
            .args(summarize_args(&backend, extra))
            .output()
            .unwrap()
    };
    let out = summarize(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("4 bytes a token"), "{stderr}");
    let (pieces, _) = summary_counts(&stderr);
    assert!(pieces >= 3, "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    if let Some(models) = std::env::var_os("KILN_MODELS") {
        let out = kiln_command()
            .env("KILN_TIKTOKEN_DIR", PathBuf::from(models).join("tiktoken"))
            .args(summarize_args(&backend, &["--encoding", "cl100k_base"]))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("4 bytes a token"), "{stderr}");
    }
    // A dead backend is a clear error, not a hang.
    drop(server);
    let out = summarize(&["--backend-timeout", "5"]);
    assert!(!out.status.success());
}

/// `kiln tokens --encoding`: OpenAI's encodings, by encoding or model name,
/// count as `tiktoken` does (goldens from the real package).
#[test]
fn tokens_with_tiktoken_encodings() {
    let Some(models) = std::env::var_os("KILN_MODELS") else {
        eprintln!("KILN_MODELS is not set: skipping (scripts/test.sh sets it)");
        return;
    };
    let goldens: Value =
        serde_json::from_str(&std::fs::read_to_string(data("tiktoken/goldens.json")).unwrap())
            .unwrap();
    let dir = temp_dir("tiktoken");
    let cases = goldens["o200k_base"]["cases"].as_array().unwrap();
    let case = cases
        .iter()
        .find(|c| c["text"].as_str().unwrap().starts_with("I'll"))
        .unwrap();
    let file = dir.join("text.txt");
    std::fs::write(&file, case["text"].as_str().unwrap()).unwrap();
    let count = |encoding: &str| {
        let out = kiln_command()
            .env("KILN_TIKTOKEN_DIR", PathBuf::from(&models).join("tiktoken"))
            .args([
                "tokens",
                "--encoding",
                encoding,
                "--json",
                file.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out)[0]["tokens"].as_u64().unwrap()
    };
    let want = case["ordinary"].as_array().unwrap().len() as u64;
    assert_eq!(count("o200k_base"), want);
    assert_eq!(count("gpt-4o-mini"), want);
    let out = kiln_command()
        .env("KILN_TIKTOKEN_DIR", dir.join("empty"))
        .env("KILN_OFFLINE", "1")
        .args([
            "tokens",
            "--encoding",
            "cl100k_base",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_fails_with(&out, "offline");
    let out = kiln(&["tokens", "--encoding", "nope", file.to_str().unwrap()]);
    assert_fails_with(&out, "unknown tiktoken encoding");
}

/// `kiln agent --native-tools`: tools offered through the chat template; a
/// template that cannot render tools is refused clearly.
#[test]
fn agent_with_native_tools() {
    let dir = support::tools_model_dir();
    let out = kiln(&[
        "agent",
        "-m",
        dir.to_str().unwrap(),
        "--native-tools",
        "--max-new-tokens",
        "8",
        "--verbose",
        "What is 2 + 2?",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A random-weight model answers (or runs out of steps): the loop ran.
    assert!(
        out.status.success() || stderr.contains("no final answer"),
        "{stderr}"
    );
    let out = kiln(&["agent", "-m", &fixture("llama"), "--native-tools", "q"]);
    assert_fails_with(&out, "does not render tools");
}
