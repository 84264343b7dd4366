//! The store: replace/delete semantics, exact search against brute force,
//! BM25, filters, one writer at a time, readers beside a writer, and crash
//! safety under SIGKILL.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_store::{Chunk, Document, Filter, OpenMode, Store, StoreError};
use serde_json::{json, Map, Value};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
}

fn doc(id: &str, meta: Value) -> Document {
    Document {
        id: id.into(),
        source: format!("{id}.txt"),
        content_hash: format!("hash-{id}"),
        metadata: meta.as_object().cloned().unwrap_or_default(),
    }
}

fn chunk(text: &str, vector: Vec<f32>) -> Chunk {
    Chunk {
        text: text.into(),
        page: None,
        start: 0,
        end: text.len(),
        heading: None,
        metadata: Map::new(),
        vector,
    }
}

#[test]
fn upsert_replaces_and_delete_removes() {
    let dir = temp("upsert");
    let mut s = Store::open(&dir, OpenMode::Write).unwrap();
    s.bind_model("m", 2).unwrap();
    s.upsert(
        &doc("a", json!({})),
        &[chunk("one", vec![1.0, 0.0]), chunk("two", vec![0.0, 1.0])],
    )
    .unwrap();
    s.upsert(&doc("b", json!({})), &[chunk("three", vec![1.0, 1.0])])
        .unwrap();
    assert_eq!(s.chunk_count().unwrap(), 3);
    // Re-indexing a document replaces only its chunks.
    s.upsert(&doc("a", json!({})), &[chunk("uno", vec![1.0, 0.0])])
        .unwrap();
    assert_eq!(s.chunk_count().unwrap(), 2);
    assert_eq!(s.content_hash("a").unwrap().as_deref(), Some("hash-a"));
    assert!(s.delete("b").unwrap());
    assert!(!s.delete("b").unwrap());
    assert_eq!(s.chunk_count().unwrap(), 1);
    assert!(matches!(
        s.bind_model("other", 2),
        Err(StoreError::ModelMismatch { .. })
    ));
    assert!(matches!(
        s.upsert(&doc("c", json!({})), &[chunk("x", vec![1.0; 3])]),
        Err(StoreError::Dimension {
            expected: 2,
            got: 3
        })
    ));
    s.check().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn exact_search_equals_brute_force_and_filters_apply() {
    let dir = temp("search");
    let mut s = Store::open(&dir, OpenMode::Write).unwrap();
    s.bind_model("m", 16).unwrap();
    let mut seed = 7;
    let mut all = Vec::new();
    for d in 0..40 {
        let chunks: Vec<Chunk> = (0..5)
            .map(|c| {
                let v: Vec<f32> = (0..16).map(|_| lcg(&mut seed)).collect();
                all.push((format!("d{d}"), v.clone()));
                chunk(&format!("doc {d} chunk {c}"), v)
            })
            .collect();
        s.upsert(
            &doc(
                &format!("d{d}"),
                json!({"year": 2000 + d, "even": d % 2 == 0}),
            ),
            &chunks,
        )
        .unwrap();
    }
    let q: Vec<f32> = (0..16).map(|_| lcg(&mut seed)).collect();
    let cos = |v: &[f32]| {
        let dot: f32 = v.iter().zip(&q).map(|(a, b)| a * b).sum();
        dot / (v.iter().map(|x| x * x).sum::<f32>().sqrt()
            * q.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    let mut want: Vec<f32> = all.iter().map(|(_, v)| cos(v)).collect();
    want.sort_by(|a, b| b.total_cmp(a));
    let hits = s.vector_search(&q, 10, None).unwrap();
    for (h, w) in hits.iter().zip(&want) {
        assert!((h.score - w).abs() < 1e-5);
    }
    let even = Filter::parse("even=true").unwrap();
    let hits = s.vector_search(&q, 200, Some(&even)).unwrap();
    assert_eq!(hits.len(), 100);
    assert!(hits
        .iter()
        .all(|h| h.document[1..].parse::<u32>().unwrap() % 2 == 0));
    let recent = Filter::parse("year>=2035").unwrap();
    assert_eq!(s.vector_search(&q, 200, Some(&recent)).unwrap().len(), 25);
    let bm = s.bm25_search("doc 7", 3, None).unwrap();
    assert!(bm.iter().all(|h| h.document == "d7"), "{bm:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn one_writer_at_a_time_and_readers_beside_it() {
    let dir = temp("lock");
    let mut w = Store::open(&dir, OpenMode::Write).unwrap();
    w.bind_model("m", 1).unwrap();
    w.upsert(&doc("a", json!({})), &[chunk("x", vec![1.0])])
        .unwrap();
    let err = Store::open(&dir, OpenMode::Write).unwrap_err();
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    assert!(err.to_string().contains("another writer"));
    let r = Store::open(&dir, OpenMode::Read).unwrap();
    assert_eq!(r.chunk_count().unwrap(), 1);
    drop(w);
    Store::open(&dir, OpenMode::Write).unwrap();
    assert!(matches!(
        Store::open(&temp("missing"), OpenMode::Read),
        Err(StoreError::Missing(_))
    ));
    std::fs::remove_dir_all(&dir).ok();
}

/// The child of the crash test: writes documents forever, printing each id
/// once its write returned.
#[test]
#[ignore = "run by crash_safe_under_sigkill as a child process"]
fn crash_child() {
    let Some(dir) = std::env::var_os("KILN_STORE_CRASH_DIR") else {
        return;
    };
    let mut s = Store::open(Path::new(&dir), OpenMode::Write).unwrap();
    s.bind_model("m", 8).unwrap();
    let start: usize = std::env::var("KILN_STORE_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let mut seed = start as u64;
    for i in start.. {
        let chunks: Vec<Chunk> = (0..4)
            .map(|c| {
                chunk(
                    &format!("doc {i} part {c} {}", "text ".repeat(50)),
                    (0..8).map(|_| lcg(&mut seed)).collect(),
                )
            })
            .collect();
        s.upsert(&doc(&format!("doc{i}"), json!({"i": i})), &chunks)
            .unwrap();
        println!("{i}");
    }
}

#[test]
fn crash_safe_under_sigkill() {
    let dir = temp("crash");
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged: Vec<usize> = Vec::new();
    let mut next = 0;
    let mut seed = 99u64;
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KILN_STORE_CRASH_DIR", &dir)
            .env("KILN_STORE_CRASH_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Kill after a random number of acknowledged writes (1..40).
        let target = 1 + ((lcg(&mut seed) + 0.5) * 39.0) as usize;
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(i) = line.trim().parse::<usize>() {
                acknowledged.push(i);
                next = i + 1;
                seen += 1;
                if seen >= target {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Every acknowledged write is there; the store is consistent; the
        // lock died with the process.
        let s = Store::open(&dir, OpenMode::Write).unwrap_or_else(|e| panic!("round {round}: {e}"));
        s.check().unwrap();
        let ids: std::collections::HashSet<String> =
            s.documents().unwrap().into_iter().map(|d| d.id).collect();
        for i in &acknowledged {
            assert!(
                ids.contains(&format!("doc{i}")),
                "round {round}: doc{i} lost"
            );
        }
        next = next.max(ids.len());
        drop(s);
    }
    assert!(acknowledged.len() >= 20);
    std::fs::remove_dir_all(&dir).ok();
}
