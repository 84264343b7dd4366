//! The store test-suite every backend must pass (the embedded store in
//! `store.rs`, PostgreSQL/pgvector in `pgvector.rs`).
#![allow(dead_code)]

use kiln_store::{Chunk, Document, Filter, OpenMode, StoreError, VectorStore, VectorStoreWriter};
use serde_json::{json, Map, Value};

/// Opens indexes of one backend; `name` is unique per test.
pub trait Backend {
    /// Opens (creating) index `name` for writing.
    fn write(&self, name: &str) -> Result<Box<dyn VectorStoreWriter>, StoreError>;
    /// Opens index `name` for reading.
    fn read(&self, name: &str) -> Result<Box<dyn VectorStore>, StoreError>;
}

pub fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
}

pub fn doc(id: &str, meta: Value) -> Document {
    Document {
        id: id.into(),
        source: format!("{id}.txt"),
        content_hash: format!("hash-{id}"),
        metadata: meta.as_object().cloned().unwrap_or_default(),
    }
}

pub fn chunk(text: &str, vector: Vec<f32>) -> Chunk {
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

pub fn upsert_replaces_and_delete_removes(b: &dyn Backend) {
    let mut s = b.write("upsert").unwrap();
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
    assert_eq!(
        s.documents()
            .unwrap()
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(s.delete("b").unwrap());
    assert!(!s.delete("b").unwrap());
    assert_eq!(s.chunk_count().unwrap(), 1);
    let hit = &s.vector_search(&[1.0, 0.1], 1, None).unwrap()[0];
    assert_eq!((hit.text.as_str(), hit.source.as_str()), ("uno", "a.txt"));
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
    assert!(matches!(
        s.vector_search(&[1.0; 3], 1, None),
        Err(StoreError::Dimension { .. })
    ));
    s.set_meta("embedding_path", "/m").unwrap();
    assert_eq!(s.meta("embedding_path").unwrap().as_deref(), Some("/m"));
    s.check().unwrap();
}

pub fn exact_search_equals_brute_force_and_filters_apply(b: &dyn Backend) {
    let mut s = b.write("search").unwrap();
    s.bind_model("m", 16).unwrap();
    let mut seed = 7;
    let mut all = Vec::new();
    for d in 0..40 {
        let chunks: Vec<Chunk> = (0..5)
            .map(|c| {
                let v: Vec<f32> = (0..16).map(|_| lcg(&mut seed)).collect();
                all.push((format!("d{d}"), v.clone()));
                let mut ch = chunk(&format!("doc {d} chunk {c}"), v);
                ch.metadata = json!({"chunk": c}).as_object().cloned().unwrap();
                ch
            })
            .collect();
        s.upsert(
            &doc(
                &format!("d{d}"),
                json!({"year": 2000 + d, "even": d % 2 == 0, "tag": format!("t{}", d % 4)}),
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
    for hits in [
        s.exact_vector_search(&q, 10, None).unwrap(),
        s.vector_search(&q, 10, None).unwrap(),
    ] {
        assert_eq!(hits.len(), 10);
        for (h, w) in hits.iter().zip(&want) {
            assert!((h.score - w).abs() < 1e-5, "{} vs {w}", h.score);
            assert!(
                (cos(&h.vector) - h.score).abs() < 1e-5,
                "hits carry their vectors"
            );
        }
    }
    let even = Filter::parse("even=true").unwrap();
    let hits = s.vector_search(&q, 200, Some(&even)).unwrap();
    assert_eq!(hits.len(), 100);
    assert!(hits
        .iter()
        .all(|h| h.document[1..].parse::<u32>().unwrap() % 2 == 0));
    let recent = Filter::parse("year>=2035").unwrap();
    assert_eq!(s.vector_search(&q, 200, Some(&recent)).unwrap().len(), 25);
    let range = Filter::And(vec![
        Filter::parse("year>=2010").unwrap(),
        Filter::parse("year<=2019").unwrap(),
        Filter::parse("tag=t1|t2").unwrap(),
        // Chunk metadata merges over the document's.
        Filter::parse("chunk=0").unwrap(),
    ]);
    let hits = s.exact_vector_search(&q, 200, Some(&range)).unwrap();
    let mut docs: Vec<&str> = hits.iter().map(|h| h.document.as_str()).collect();
    docs.sort();
    assert_eq!(docs, ["d10", "d13", "d14", "d17", "d18"]);
    assert!(s
        .vector_search(&q, 5, Some(&Filter::parse("tag=none").unwrap()))
        .unwrap()
        .is_empty());
    let bm = s.bm25_search("doc 7", 3, None).unwrap();
    assert!(bm.iter().all(|h| h.document == "d7"), "{bm:?}");
    let bm = s.bm25_search("chunk", 500, Some(&even)).unwrap();
    assert_eq!(bm.len(), 100);
}

/// BM25 scores are identical across backends. The reference is worked by
/// hand: English analyzer terms (stopwords out, Porter stems; doc lengths
/// 7, 4, 3, 3, avgdl 4.25), idf = ln(1 + (N − n + 0.5)/(n + 0.5)) = ln 2
/// for both terms, score = idf · tf·(k1+1)/(tf + k1·(1 − b + b·dl/avgdl))
/// with k1 0.9, b 0.4.
pub fn bm25_scores_are_the_shared_ones(b: &dyn Backend) {
    let mut s = b.write("bm25").unwrap();
    s.bind_model("m", 1).unwrap();
    let texts = [
        "the quick brown fox jumps over the lazy dog",
        "quick thinking saves the day",
        "dogs and foxes are running",
        "nothing to see here",
    ];
    for (i, t) in texts.iter().enumerate() {
        s.upsert(&doc(&format!("d{i}"), json!({})), &[chunk(t, vec![1.0])])
            .unwrap();
    }
    let hits = s.bm25_search("quick fox", 10, None).unwrap();
    let got: Vec<(String, f32)> = hits.iter().map(|h| (h.document.clone(), h.score)).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, "d0");
    let reference = [("d0", 1.2350), ("d2", 0.7340), ("d1", 0.7009)];
    for ((d, score), (rd, rs)) in got.iter().zip(reference) {
        assert_eq!(d, rd);
        assert!((score - rs).abs() < 2e-3, "{d}: {score} vs {rs}");
    }
}

pub fn one_writer_at_a_time_and_readers_beside_it(b: &dyn Backend) {
    let mut w = b.write("lock").unwrap();
    w.bind_model("m", 1).unwrap();
    w.upsert(&doc("a", json!({})), &[chunk("x", vec![1.0])])
        .unwrap();
    let err = b.write("lock").err().unwrap();
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    assert!(err.to_string().contains("another writer"));
    let r = b.read("lock").unwrap();
    assert_eq!(r.chunk_count().unwrap(), 1);
    // A reader sees what the writer commits after it opened.
    w.upsert(&doc("b", json!({})), &[chunk("y", vec![1.0])])
        .unwrap();
    assert_eq!(r.chunk_count().unwrap(), 2);
    drop(w);
    b.write("lock").unwrap();
    assert!(matches!(b.read("missing"), Err(StoreError::Missing(_))));
}

/// Clustered vectors (like real embeddings): 40 centres plus noise.
pub fn clustered(i: usize, dim: usize) -> Vec<f32> {
    let mut seed = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let centre = i % 40;
    (0..dim)
        .map(|d| ((centre * 7 + d * 3) % 11) as f32 / 11.0 + 0.6 * lcg(&mut seed))
        .collect()
}

/// Approximate search finds ≥ 95% of what exact search finds, with and
/// without a filter.
pub fn approximate_search_recall(b: &dyn Backend, n: usize) {
    let dim = 24;
    let mut s = b.write("recall").unwrap();
    s.bind_model("m", dim).unwrap();
    for i in 0..n {
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        s.upsert(
            &doc(&format!("d{i}"), json!({ "parity": parity })),
            &[chunk(&format!("text {i}"), clustered(i, dim))],
        )
        .unwrap();
    }
    s.finish().unwrap();
    let even = Filter::parse("parity=even").unwrap();
    for filter in [None, Some(&even)] {
        let (mut found, mut total) = (0, 0);
        for q in 0..50 {
            let query = clustered(1_000_000 + q, dim);
            let exact: Vec<i64> = s
                .exact_vector_search(&query, 10, filter)
                .unwrap()
                .iter()
                .map(|h| h.chunk_id)
                .collect();
            let approx = s.vector_search(&query, 10, filter).unwrap();
            assert_eq!(approx.len(), 10);
            if filter.is_some() {
                assert!(approx
                    .iter()
                    .all(|h| h.document[1..].parse::<usize>().unwrap() % 2 == 0));
            }
            found += approx
                .iter()
                .filter(|h| exact.contains(&h.chunk_id))
                .count();
            total += exact.len();
        }
        let recall = found as f32 / total as f32;
        assert!(recall >= 0.95, "recall {recall} (filter {filter:?})");
    }
}

/// Opening for reading never creates anything.
pub fn read_mode_is_read_only(b: &dyn Backend) {
    assert!(b.read("never-made").is_err());
    let _ = OpenMode::Read;
}
