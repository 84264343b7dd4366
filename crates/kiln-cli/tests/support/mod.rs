//! Shared helpers of the CLI tests: fixture paths, running the `kiln` binary,
//! a live `kiln serve` on loopback, and a scripted HTTP server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// A path under the repository's `tests/data`.
pub fn data(path: &str) -> String {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data")
        .join(path)
        .display()
        .to_string()
}

/// A fixture model directory (`tests/data/models/<name>`).
pub fn fixture(name: &str) -> String {
    data(&format!("models/{name}"))
}

/// The `kiln` binary, offline.
pub fn kiln_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command.env("HF_HUB_OFFLINE", "1");
    command
}

/// Runs `kiln ARGS…` offline.
pub fn kiln(args: &[&str]) -> Output {
    kiln_command().args(args).output().unwrap()
}

/// Runs `kiln ARGS…` with `input` on stdin; requires success.
pub fn kiln_with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = kiln_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `kiln ARGS…`, requires success and parses stdout as one JSON value.
pub fn kiln_json(args: &[&str]) -> Value {
    let out = kiln(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Requires that `out` failed with `needle` in its stderr.
pub fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure, got success: {stderr}"
    );
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
}

/// Stdout as JSON lines.
pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A fresh, empty directory under the system temp dir, unique per test name.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `kiln serve`, killed when dropped.
pub struct KilnServe {
    /// The server process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`, from its first line of output.
    pub base: String,
}

impl KilnServe {
    /// Starts `kiln serve --port 0 ARGS…` offline.
    pub fn start(args: &[&str]) -> Self {
        let mut command = kiln_command();
        command.args(["serve", "--port", "0"]).args(args);
        Self::spawn(command)
    }

    /// Starts a prepared `kiln serve` command and waits for its address.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("kiln serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self { child, base }
    }
}

impl Drop for KilnServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP server on loopback that answers connection `n` (counted from 0)
/// for request path `path` with the raw bytes `respond(n, path)`, or keeps
/// the socket open without answering when it gives `None`. Returns
/// `http://127.0.0.1:PORT` and the connection count.
pub fn scripted_server(
    respond: impl Fn(usize, &str) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let respond = Arc::new(respond);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let respond = respond.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                // Headers, then the body (unread bytes would make the
                // close a reset that clients may see before the answer).
                let mut body_len = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            body_len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    line.clear();
                }
                let _ = std::io::Read::read_exact(&mut reader, &mut vec![0; body_len]);
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                match respond(n, path) {
                    Some(bytes) => {
                        let _ = stream.write_all(&bytes);
                    }
                    None => std::thread::sleep(Duration::from_secs(10)),
                }
            });
        }
    });
    (base, count)
}

/// A complete HTTP/1.1 response with a body.
pub fn http_response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The qwen2 fixture with a chat template that renders tools
/// (`tests/data/templates/hermes-tools.jinja`) and a 2048-token context, in
/// a fresh directory.
pub fn tools_model_dir() -> PathBuf {
    let source = PathBuf::from(fixture("qwen2"));
    let dir = temp_dir("tools-model");
    for entry in std::fs::read_dir(&source).unwrap().flatten() {
        let name = entry.file_name();
        if name != "tokenizer_config.json" {
            std::fs::copy(entry.path(), dir.join(&name)).unwrap();
        }
    }
    let template = std::fs::read_to_string(data("templates/hermes-tools.jinja")).unwrap();
    let config = serde_json::json!({
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "chat_template": template,
    });
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    // Room for the tool definitions (the fixture's context is 256).
    let mut model_config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    model_config["max_position_embeddings"] = Value::from(2048);
    std::fs::write(dir.join("config.json"), model_config.to_string()).unwrap();
    dir
}
