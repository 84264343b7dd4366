//! `kiln serve` as a process: settings from a TOML file and `KILN_*`
//! variables, several models with names, a clean exit on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{fixture, kiln_command, KilnServe};

fn get(url: &str, key: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let mut resp = req.call().unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap(),
    )
}

#[test]
fn serve_reads_toml_and_env_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("kiln-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("kiln.toml");
    std::fs::write(
        &config,
        format!(
            "models = [\"first={}\", \"{}\"]\nport = 0\napi_key = \"from-file\"\nmax_sequences = 4\n",
            fixture("llama"),
            fixture("qwen2")
        ),
    )
    .unwrap();
    let mut command = kiln_command();
    command
        .args(["serve", "--config"])
        .arg(&config)
        // The environment beats the file.
        .env("KILN_API_KEY", "from-env");
    let mut server = KilnServe::spawn(command);
    let base = server.base.clone();
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "binds loopback by default: {base}"
    );
    assert_eq!(get(&format!("{base}/v1/models"), Some("from-file")).0, 401);
    let (status, body) = get(&format!("{base}/v1/models"), Some("from-env"));
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["first", "qwen2"]);
    let (status, page) = get(&format!("{base}/"), None);
    assert_eq!(status, 200);
    assert!(page.contains("<title>kiln chat</title>"));
    // SIGTERM: graceful shutdown, exit code 0.
    let killed = Command::new("kill")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.child.wait().unwrap().success());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn serve_refuses_bad_settings_clearly() {
    let out = kiln_command()
        .args(["serve"])
        .env_remove("KILN_MODEL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model to serve"));
    let out = kiln_command()
        .args([
            "serve",
            "--model",
            &fixture("llama"),
            "--host",
            "localhost:80",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an IP address"));
}

#[test]
fn embed_prints_sentence_transformers_vectors() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/encoders/bert");
    let out = kiln_command()
        .args(["embed", "--json", "--model"])
        .arg(&dir)
        .args([
            "--text",
            "Hello world",
            "--text",
            "Retrieval augmented generation",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dimension"], 48);
    let golden = candle_free_golden(&dir);
    for (i, want) in golden.iter().enumerate() {
        let got: Vec<f32> = serde_json::from_value(v["embeddings"][i].clone()).unwrap();
        let diff = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "text {i}: {diff}");
    }
    let out = kiln_command()
        .args(["embed", "--model"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to embed"));
}

/// The first two golden embeddings of a fixture, read from its safetensors
/// file by hand (a header of JSON, then little-endian f32 rows).
fn candle_free_golden(dir: &std::path::Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let info = &header["embeddings"];
    let start = 8 + n + info["data_offsets"][0].as_u64().unwrap() as usize;
    let dim = info["shape"][1].as_u64().unwrap() as usize;
    (0..2)
        .map(|r| {
            (0..dim)
                .map(|c| {
                    let at = start + (r * dim + c) * 4;
                    f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
                })
                .collect()
        })
        .collect()
}

#[test]
fn index_search_and_ask_end_to_end() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data");
    let index = std::env::temp_dir().join(format!("kiln-cli-index-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&index);
    let kiln = |args: &[&str]| kiln_command().args(args).output().unwrap();
    let bert = root.join("encoders/bert").display().to_string();
    let docs = root.join("rag").display().to_string();
    let idx = index.display().to_string();
    let out = kiln(&[
        "index",
        &docs,
        "--index",
        &idx,
        "--embedding-model",
        &bert,
        "--chunk-size",
        "200",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("indexed 6 documents"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("blob.bin: binary file"));
    // The index remembers its embedding model.
    let out = kiln(&[
        "search",
        "sourdough starter",
        "--index",
        &idx,
        "--mode",
        "bm25",
        "-k",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(hit["source"].as_str().unwrap().ends_with("bread.html"));
    let out = kiln(&[
        "ask",
        "Why not open a hot kiln?",
        "--index",
        &idx,
        "--mode",
        "bm25",
        "-k",
        "2",
        "--no-answer",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("[1] ") && text.contains("kilns.md (Kilns > Safety)"),
        "{text}"
    );
    let llama = root.join("models/llama").display().to_string();
    let out = kiln(&[
        "ask",
        "Why not open a hot kiln?",
        "--index",
        &idx,
        "-k",
        "1",
        "--model",
        &llama,
        "--max-new-tokens",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\n\nSources:\n[1] "));
    let out = kiln(&[
        "ask",
        "Why not open a hot kiln?",
        "--index",
        &idx,
        "-k",
        "1",
        "--model",
        &llama,
        "--hyde",
        "--no-answer",
        "--mode",
        "vector",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("hypothetical answer (HyDE): "));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("[1] "));
    // The same question answered by a server (`--backend`).
    let server = KilnServe::start(&["--model", &format!("tiny={llama}")]);
    let base = server.base.clone();
    let out = kiln(&[
        "ask",
        "Why not open a hot kiln?",
        "--index",
        &idx,
        "-k",
        "1",
        "--backend",
        &format!("{base}/v1"),
        "--backend-model",
        "tiny",
        "--max-new-tokens",
        "5",
    ]);
    drop(server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\n\nSources:\n[1] ") && !text.starts_with("\n\nSources"),
        "{text}"
    );
    let out = kiln(&["search", "x", "--index", "/nonexistent/index"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no index here"));
    std::fs::remove_dir_all(&index).ok();
}
