//! Hub ids resolve through the Hugging Face cache layout, downloading from a
//! local HTTP server on 127.0.0.1 that serves files in the hub's URL layout
//! (`/{org}/{name}/resolve/{revision}/{file}`). No test touches the internet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::Device;
use common::{fixture, golden};
use kiln_models::{HubOptions, Logits, Model};

/// Request lines with their Authorization header.
type RequestLog = Mutex<Vec<(String, Option<String>)>>;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A minimal hub: serves `root` for repo `org/name`, logs each request line
/// with its Authorization header.
struct FakeHub {
    endpoint: String,
    log: Arc<RequestLog>,
}

impl FakeHub {
    fn start(repo: &'static str, root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                let log = log2.clone();
                std::thread::spawn(move || serve(stream, repo, &root, &log));
            }
        });
        Self { endpoint, log }
    }

    fn requested(&self, file: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| l.contains(&format!("/{file} ")))
            .count()
    }
}

fn serve(mut stream: std::net::TcpStream, repo: &str, root: &Path, log: &RequestLog) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    log.lock()
        .unwrap()
        .push((request_line.clone(), headers.get("authorization").cloned()));
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let prefix = format!("/{repo}/resolve/main/");
    let file = path.strip_prefix(&prefix).map(|f| root.join(f));
    let Some(bytes) = file
        .filter(|f| f.is_file())
        .map(|f| std::fs::read(f).unwrap())
    else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let total = bytes.len();
    let (start, end) = match headers.get("range").and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) => {
            let (a, b) = r.split_once('-').unwrap();
            let a: usize = a.parse().unwrap();
            let b: usize = if b.is_empty() {
                total - 1
            } else {
                b.parse().unwrap()
            };
            (a, b.min(total - 1))
        }
        None => (0, total - 1),
    };
    let body = &bytes[start..=end];
    let etag = format!(
        "\"{:x}-{total}\"",
        bytes.iter().map(|&b| b as u64).sum::<u64>()
    );
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{total}\r\nETag: {etag}\r\nX-Repo-Commit: {COMMIT}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let mut sink = Vec::new();
    let _ = reader.read_to_end(&mut sink);
}

/// The llama fixture with its weights split into two shards plus an index.
fn sharded_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("llama");
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let subset: HashMap<String, candle_core::Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), tensors[*n].clone()))
            .collect();
        candle_core::safetensors::save(&subset, dir.path().join(shard)).unwrap();
        for n in part {
            weight_map.insert((*n).clone(), shard.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    dir
}

fn first_prompt_logits(model: &Model) -> candle_core::Tensor {
    let (g, _) = golden("llama");
    let mut cache = model.decoder.new_cache();
    model
        .decoder
        .forward(&g.prompts[0].input_ids, &mut cache, Logits::All)
        .unwrap()
}

#[test]
fn sharded_local_directory_loads() {
    let dir = sharded_copy();
    let model = Model::load_dir(dir.path()).unwrap();
    assert_eq!(model.files.weights.len(), 2);
    let (g, t) = golden("llama");
    let diff = common::max_abs_diff(&first_prompt_logits(&model), &t[&g.prompts[0].logits]);
    assert!(diff <= 1e-4, "{diff}");
}

#[test]
fn hub_id_downloads_into_the_hf_cache_then_works_offline() {
    let repo_dir = sharded_copy();
    let hub = FakeHub::start("kiln-test/tiny-llama", repo_dir.path().to_path_buf());
    let cache = tempfile::tempdir().unwrap();
    let options = HubOptions {
        endpoint: Some(hub.endpoint.clone()),
        cache_dir: Some(cache.path().to_path_buf()),
        token: Some("hf_secret".into()),
        offline: false,
        progress: false,
    };
    let model = Model::load("kiln-test/tiny-llama", &options).unwrap();
    let snapshot = cache
        .path()
        .join("models--kiln-test--tiny-llama/snapshots")
        .join(COMMIT);
    assert_eq!(model.files.dir, snapshot);
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors.index.json",
        "model-00002-of-00002.safetensors",
    ] {
        assert!(snapshot.join(f).is_file(), "{f} not in the cache");
    }
    assert!(!snapshot.join("chat_template.jinja").exists());
    let (g, t) = golden("llama");
    let diff = common::max_abs_diff(&first_prompt_logits(&model), &t[&g.prompts[0].logits]);
    assert!(diff <= 1e-4, "{diff}");
    // The token is sent as a bearer token.
    assert!(hub
        .log
        .lock()
        .unwrap()
        .iter()
        .all(|(_, auth)| auth.as_deref() == Some("Bearer hf_secret")));

    // A second load reuses the cache: no file is fetched again.
    let config_requests = hub.requested("config.json");
    Model::load("kiln-test/tiny-llama", &options).unwrap();
    assert_eq!(hub.requested("config.json"), config_requests);

    // Offline, the cache alone is enough.
    let offline = HubOptions {
        offline: true,
        endpoint: None,
        ..options.clone()
    };
    Model::load("kiln-test/tiny-llama", &offline).unwrap();
}

#[test]
fn missing_repo_file_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let hub = FakeHub::start("kiln-test/empty", empty.path().to_path_buf());
    let cache = tempfile::tempdir().unwrap();
    let options = HubOptions {
        endpoint: Some(hub.endpoint.clone()),
        cache_dir: Some(cache.path().to_path_buf()),
        token: None,
        offline: false,
        progress: false,
    };
    let err = Model::load("kiln-test/empty", &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("kiln-test/empty/config.json"), "{err}");
    assert!(err.contains("no such file"), "{err}");
}

#[test]
fn options_come_from_the_standard_variables() {
    // Only this test reads these variables.
    std::env::set_var("HF_HOME", "/tmp/kiln-hf-home");
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    std::env::set_var("HF_TOKEN", "hf_abc");
    std::env::remove_var("HF_HUB_CACHE");
    let o = HubOptions::from_env();
    assert_eq!(o.cache_dir, Some(PathBuf::from("/tmp/kiln-hf-home/hub")));
    assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9"));
    assert_eq!(o.token.as_deref(), Some("hf_abc"));
    std::env::set_var("HF_HUB_CACHE", "/tmp/kiln-hub-cache");
    assert_eq!(
        HubOptions::from_env().cache_dir,
        Some(PathBuf::from("/tmp/kiln-hub-cache"))
    );
}
