//! The `kiln` binary end to end on the bundled fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> String {
    data(&format!("models/{name}"))
}

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

fn kiln_json(args: &[&str]) -> Value {
    let out = kiln(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn golden_prompt(name: &str) -> Value {
    let text = std::fs::read_to_string(PathBuf::from(fixture(name)).join("golden.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    golden["prompts"][0].clone()
}

#[test]
fn generate_json_gives_the_reference_greedy_ids() {
    let model = fixture("qwen2");
    let p = golden_prompt("qwen2");
    let v = kiln_json(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        p["text"].as_str().unwrap(),
        "--max-new-tokens",
        "24",
        "--min-new-tokens",
        "24",
        "--json",
    ]);
    assert_eq!(v["token_ids"], p["greedy_24_new_ids"]);
    assert_eq!(v["prompt_ids"], p["input_ids"]);
    assert_eq!(v["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 24);
    assert!(v["text"].is_string());
}

#[test]
fn generate_streams_text() {
    let out = kiln(&[
        "generate",
        "--model",
        &fixture("llama"),
        "--prompt",
        "Hello world",
        "--max-new-tokens",
        "8",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty());
}

#[test]
fn tokenize_json_matches_transformers() {
    let p = golden_prompt("llama");
    let v = kiln_json(&[
        "tokenize",
        "--model",
        &fixture("llama"),
        "--text",
        p["text"].as_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["ids"], p["input_ids"]);
    assert_eq!(v["pieces"][0], "<s>");
    let v = kiln_json(&[
        "tokenize",
        "--model",
        &fixture("llama"),
        "--text",
        p["text"].as_str().unwrap(),
        "--no-special",
        "--json",
    ]);
    assert_eq!(
        v["ids"].as_array().unwrap()[..],
        p["input_ids"].as_array().unwrap()[1..]
    );
}

#[test]
fn inspect_reports_family_and_parameters() {
    let v = kiln_json(&["inspect", "--model", &fixture("llama"), "--json"]);
    assert_eq!(v["family"], "llama");
    assert_eq!(v["layers"], 2);
    assert_eq!(v["kv_heads"], 2);
    assert_eq!(v["context_length"], 256);
    let stored: u64 = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .product::<u64>()
        })
        .sum();
    assert_eq!(v["parameters"].as_u64().unwrap(), stored);
    assert_eq!(v["tensor_dtypes"]["F32"], 21);
}

#[test]
fn bench_json_reports_speeds() {
    let v = kiln_json(&[
        "bench",
        "--model",
        &fixture("llama"),
        "--prompt-tokens",
        "16",
        "--decode-tokens",
        "4",
        "--repetitions",
        "2",
        "--json",
    ]);
    assert!(v["prefill_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["decode_samples"].as_array().unwrap().len(), 2);
    assert!(v["peak_rss_mib"].as_f64().unwrap() > 1.0);
}

#[test]
fn bad_model_is_a_clear_error() {
    let out = kiln(&["inspect", "--model", "/nonexistent/dir/x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither a local model directory nor a hub id"),
        "{err}"
    );
}

#[test]
fn generate_beam_search_matches_transformers() {
    let model = fixture("llama");
    let text = std::fs::read_to_string(PathBuf::from(&model).join("golden.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    let v = kiln_json(&[
        "generate",
        "--model",
        &model,
        "--prompt",
        golden["prompts"][0]["text"].as_str().unwrap(),
        "--num-beams",
        "4",
        "--num-return-sequences",
        "2",
        "--max-new-tokens",
        "10",
        "--min-new-tokens",
        "10",
        "--early-stopping",
        "--json",
    ]);
    let got: Vec<Value> = v["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["token_ids"].clone())
        .collect();
    assert_eq!(
        Value::Array(got),
        golden["beam_search"]["sequences_new_ids"]
    );
}

#[test]
fn generate_sampling_is_reproducible_with_a_seed() {
    let args = |seed: &'static str| {
        vec![
            "generate",
            "--model",
            "",
            "--prompt",
            "Hello",
            "--temperature",
            "0.8",
            "--top-p",
            "0.9",
            "--seed",
            seed,
            "--max-new-tokens",
            "12",
            "--min-new-tokens",
            "12",
            "--json",
        ]
    };
    let model = fixture("qwen2");
    let run = |seed| {
        let mut a = args(seed);
        a[2] = &model;
        kiln_json(&a)["token_ids"].clone()
    };
    assert_eq!(run("3"), run("3"));
    assert_ne!(run("3"), run("4"));
}

#[test]
fn generate_json_stream_emits_events() {
    let out = kiln(&[
        "generate",
        "--model",
        &fixture("qwen2"),
        "--prompt",
        "Hi",
        "--max-new-tokens",
        "4",
        "--min-new-tokens",
        "4",
        "--json",
        "--stream",
        "--logprobs",
        "2",
    ]);
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tokens = lines.iter().filter(|l| l["event"] == "token").count();
    assert_eq!(tokens, 4);
    assert_eq!(lines.iter().filter(|l| l["event"] == "finished").count(), 1);
    assert_eq!(
        lines[0]["logprob"]["top_logprobs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(lines.last().unwrap()["usage"]["completion_tokens"], 4);
}

#[test]
fn bad_sampling_parameters_are_rejected() {
    let out = kiln(&[
        "generate",
        "--model",
        &fixture("llama"),
        "--prompt",
        "x",
        "--temperature",
        "-1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid temperature: must be ≥ 0"), "{err}");
    let out = kiln(&[
        "generate",
        "--model",
        &fixture("llama"),
        "--prompt",
        "x",
        "--num-beams",
        "2",
        "--num-return-sequences",
        "3",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than num_beams"));
}

#[test]
fn generate_with_a_builtin_template() {
    let v = kiln_json(&[
        "generate",
        "--model",
        &fixture("llama"),
        "--prompt",
        "Name a colour.",
        "--template",
        "alpaca",
        "--max-new-tokens",
        "2",
        "--json",
    ]);
    assert!(v["prompt_ids"].as_array().unwrap().len() > 5);
    let out = kiln(&[
        "generate",
        "--model",
        &fixture("llama"),
        "--prompt",
        "x",
        "--template",
        "nope",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a built-in"));
}

#[test]
fn chat_session_with_commands() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "chat",
            "--model",
            &fixture("qwen2"),
            "--max-new-tokens",
            "6",
            "--system",
            "Be brief.",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(
            "/params\nHello there\n/set temperature 0.5\n/set top_p 7\n/reset\n안녕하세요\n/quit\n"
                .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"max_new_tokens\": 6"), "{stdout}");
    assert!(stdout.contains("(ok)"));
    assert!(stdout.contains("error: invalid top_p"), "{stdout}");
    assert!(stdout.contains("(history cleared)"));
    // Two replies were produced (prompt markers "> " around them).
    assert!(stdout.matches("> ").count() >= 6, "{stdout}");
}

/// `inspect`, `tokenize`, `generate` and `bench` work for every family.
#[test]
fn every_family_works_from_the_command_line() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/models");
    let mut families = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("adapter_config.json").exists() {
            continue; // adapters are covered by the adapter tests
        }
        let model = dir.display().to_string();
        let golden: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap())
                .unwrap();
        let p = &golden["prompts"][0];
        let text = p["text"].as_str().unwrap();
        let info = kiln_json(&["inspect", "--model", &model, "--json"]);
        assert!(info["parameters"].as_u64().unwrap() > 0, "{model}");
        let tok = kiln_json(&["tokenize", "--model", &model, "--text", text, "--json"]);
        assert_eq!(tok["ids"], p["input_ids"], "{model}");
        let gen = kiln_json(&[
            "generate",
            "--model",
            &model,
            "--prompt",
            text,
            "--max-new-tokens",
            "24",
            "--min-new-tokens",
            "24",
            "--json",
        ]);
        assert_eq!(gen["token_ids"], p["greedy_24_new_ids"], "{model}");
        let bench = kiln_json(&[
            "bench",
            "--model",
            &model,
            "--prompt-tokens",
            "8",
            "--decode-tokens",
            "2",
            "--repetitions",
            "1",
            "--json",
        ]);
        assert!(bench["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
        families += 1;
    }
    assert_eq!(families, 22);
}

fn data(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(path)
        .display()
        .to_string()
}

#[test]
fn tokenize_a_vocab_only_gguf_as_llama_cpp_does() {
    // With --no-special, `<s>` is plain text ("▁<", "s", ">"), as in llama.cpp's tests;
    // without it, BOS is added and `<s>` is the special token.
    let vocab = data("tokenizers/ggml-vocab-llama-spm.gguf");
    let plain = kiln_json(&[
        "tokenize",
        "--model",
        &vocab,
        "--text",
        "Hello <s> world",
        "--no-special",
        "--json",
    ]);
    assert_eq!(
        plain["ids"],
        serde_json::json!([15043, 529, 29879, 29958, 3186])
    );
    let special = kiln_json(&[
        "tokenize",
        "--model",
        &vocab,
        "--text",
        "Hello <s> world",
        "--json",
    ]);
    assert_eq!(special["ids"][0], 1, "BOS added");
    assert_eq!(special["ids"][3], 1, "<s> parsed as the special token");
}

#[test]
fn quantize_writes_a_gguf_that_generate_runs() {
    let dir = tempfile_dir();
    let out = dir.join("llama_k-q8_0.gguf");
    let res = kiln(&[
        "quantize",
        "--model",
        &fixture("llama_k"),
        "--type",
        "Q8_0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains("16 Q8_0"));
    let info = kiln_json(&["inspect", "--model", out.to_str().unwrap(), "--json"]);
    assert_eq!(info["gguf_metadata"]["general.file_type"], "7");
    let gen = kiln_json(&[
        "generate",
        "--model",
        out.to_str().unwrap(),
        "--prompt",
        "Hello world",
        "--max-new-tokens",
        "4",
        "--json",
    ]);
    assert_eq!(gen["token_ids"].as_array().unwrap().len(), 4);
    let bad = kiln(&[
        "quantize",
        "--model",
        &fixture("llama_k"),
        "--type",
        "Q9",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected one of"));
    let _ = std::fs::remove_dir_all(dir);
}

/// A fresh directory under the system temp dir.
fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `kiln summarize` splits a real PDF into model-sized pieces, summarises
/// each and merges the summaries (a tiny random model: the plumbing, not
/// the prose, is under test).
#[test]
fn summarize_maps_pieces_and_reduces() {
    let out = kiln(&[
        "summarize",
        &data("pdf/three-pages.pdf"),
        "--model",
        &fixture("llama"),
        "--chunk-tokens",
        "40",
        "--overlap-tokens",
        "0",
        "--max-new-tokens",
        "4",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr.lines().find(|l| l.contains("pieces")).unwrap();
    let n = |word: &str| -> usize {
        let words: Vec<&str> = line.split_whitespace().collect();
        let i = words.iter().position(|w| w.starts_with(word)).unwrap();
        words[i - 1].trim_start_matches('.').parse().unwrap()
    };
    let (pieces, calls) = (n("pieces"), n("model"));
    assert!(pieces >= 3, "{line}");
    assert!(calls > pieces, "one call per piece plus the reduce: {line}");
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    let refined = kiln(&[
        "summarize",
        &data("pdf/three-pages.pdf"),
        "--model",
        &fixture("llama"),
        "--chunk-tokens",
        "40",
        "--overlap-tokens",
        "0",
        "--max-new-tokens",
        "4",
        "--method",
        "refine",
    ]);
    let stderr = String::from_utf8_lossy(&refined.stderr);
    assert!(refined.status.success(), "{stderr}");
    let line = stderr.lines().find(|l| l.contains("pieces")).unwrap();
    assert!(
        line.contains(&format!("{pieces} pieces, {pieces} model calls")),
        "refine: one call per piece: {line}"
    );
    let missing = kiln(&[
        "summarize",
        "no/such/file.txt",
        "--model",
        &fixture("llama"),
    ]);
    assert!(!missing.status.success());
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
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert!(
            ["red", "green", "blue"].contains(&l["label"].as_str().unwrap()),
            "{l}"
        );
    }
    let dir = std::env::temp_dir().join(format!("kiln-extract-{}", std::process::id()));
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
    let dir = std::env::temp_dir().join(format!("kiln-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("a.txt");
    std::fs::write(&f, "Hello world").unwrap();
    let out = kiln(&["tokens", "-m", &model, f.to_str().unwrap(), "--json"]);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            while reader.read_line(&mut String::new()).unwrap() > 2 {}
            let (status, body) = match path.as_str() {
                "/" => ("200 OK", "<p>Kilns fire clay.</p><a href=\"/next\">n</a>"),
                "/next" => ("200 OK", "<p>Glazes melt.</p>"),
                _ => ("404 Not Found", "no"),
            };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
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
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("kiln-sessions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let chat = |input: &str, memory: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args([
                "chat",
                "--model",
                &fixture("qwen2"),
                "--max-new-tokens",
                "4",
                "--session",
                "demo",
                "--memory",
                memory,
            ])
            .arg("--sessions-dir")
            .arg(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
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
    let dir = data("encoders/nli");
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(PathBuf::from(&dir).join("golden.json")).unwrap(),
    )
    .unwrap();
    let case = &golden["cases"][2];
    assert_eq!(case["multi_label"], false);
    let out = kiln(&[
        "zero-shot",
        "-m",
        &dir,
        "--labels",
        "sports,politics,science,travel",
        "--hypothesis",
        "This text is about {}.",
        "--text",
        case["text"].as_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["labels"], case["labels"]);
}
