//! The store: the shared backend suite (`suite/`) on the embedded store,
//! plus what only it has: crash safety under SIGKILL.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod suite;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_store::{AnnSettings, Chunk, OpenMode, Store, StoreError, VectorStore, VectorStoreWriter};
use serde_json::json;
use suite::{chunk, doc, lcg, Backend};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Each test its own root directory; index `name` is a folder in it.
struct Embedded(PathBuf);

impl Embedded {
    fn new(test: &str) -> Self {
        Self(temp(test))
    }
}

impl Backend for Embedded {
    fn write(&self, name: &str) -> Result<Box<dyn VectorStoreWriter>, StoreError> {
        let mut s = Store::open(&self.0.join(name), OpenMode::Write)?;
        // Small enough that the recall test goes through the HNSW graph.
        s.set_ann_settings(AnnSettings {
            min_chunks: 500,
            ..Default::default()
        });
        Ok(Box::new(s))
    }
    fn read(&self, name: &str) -> Result<Box<dyn VectorStore>, StoreError> {
        Ok(Box::new(Store::open(&self.0.join(name), OpenMode::Read)?))
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

#[test]
fn upsert_replaces_and_delete_removes() {
    suite::upsert_replaces_and_delete_removes(&Embedded::new("upsert"));
}

#[test]
fn exact_search_equals_brute_force_and_filters_apply() {
    suite::exact_search_equals_brute_force_and_filters_apply(&Embedded::new("search"));
}

#[test]
fn bm25_scores_are_the_shared_ones() {
    suite::bm25_scores_are_the_shared_ones(&Embedded::new("bm25"));
}

#[test]
fn one_writer_at_a_time_and_readers_beside_it() {
    suite::one_writer_at_a_time_and_readers_beside_it(&Embedded::new("lock"));
}

#[test]
fn approximate_search_recall() {
    suite::approximate_search_recall(&Embedded::new("recall"), 2000);
}

#[test]
fn read_mode_is_read_only() {
    suite::read_mode_is_read_only(&Embedded::new("readonly"));
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
