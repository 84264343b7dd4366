//! Rank files for tiktoken encodings: fetched once from a mirror (a local
//! HTTP server on 127.0.0.1), checked against the pinned SHA-256, cached, and
//! refused when offline or corrupt.
//!
//! The real rank files come from `$KILN_MODELS/tiktoken` (`scripts/test.sh`
//! fetches them); without `KILN_MODELS` the test says so and returns.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kiln_models::tiktoken::TiktokenSource;

/// Serves `body` for every GET; counts requests.
fn serve(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/encodings", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (url, hits)
}

#[test]
fn rank_files_are_fetched_checked_and_cached() {
    let Some(models) = std::env::var_os("KILN_MODELS") else {
        eprintln!("KILN_MODELS is not set: skipping (scripts/test.sh sets it)");
        return;
    };
    let real = std::fs::read(PathBuf::from(models).join("tiktoken/cl100k_base.tiktoken")).unwrap();
    let (url, hits) = serve(real);
    let cache = tempfile::tempdir().unwrap();
    let source = TiktokenSource {
        dir: cache.path().to_path_buf(),
        base_url: Some(url.clone()),
        offline: false,
    };
    // A model name picks its encoding; the first load downloads.
    let enc = source.load("gpt-4-turbo").unwrap();
    assert_eq!(enc.name(), "cl100k_base");
    assert_eq!(
        enc.encode_ordinary("hello world").unwrap(),
        vec![15339, 1917]
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(cache.path().join("cl100k_base.tiktoken").is_file());
    // The second comes from the cache, even offline.
    let offline = TiktokenSource {
        offline: true,
        ..source.clone()
    };
    offline.load("cl100k_base").unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Offline with nothing cached: a clear error.
    let err = offline.load("o200k_base").unwrap_err().to_string();
    assert!(
        err.contains("offline") && err.contains("o200k_base"),
        "{err}"
    );
    // Unknown names list what is known.
    let err = source.load("llama-3").unwrap_err().to_string();
    assert!(err.contains("cl100k_base, o200k_base"), "{err}");
}

#[test]
fn a_corrupt_download_is_refused_and_not_cached() {
    let (url, _) = serve(b"IQ== 0\n".to_vec());
    let cache = tempfile::tempdir().unwrap();
    let source = TiktokenSource {
        dir: cache.path().to_path_buf(),
        base_url: Some(url),
        offline: false,
    };
    let err = source.load("o200k_base").unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}
