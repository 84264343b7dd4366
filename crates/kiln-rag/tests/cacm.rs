//! BM25 on CACM (3,204 abstracts, 52 judged topics) with Anserini's
//! settings (k1 0.9, b 0.4, English analyzer with Porter stemming) reaches
//! Anserini's published MAP 0.3123 within 0.01. BM25 needs no embeddings,
//! so the index is built with a constant one-dimensional embedder.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use kiln_core::{CoreError, Embedder};
use kiln_rag::eval::{evaluate, parse_qrels, parse_queries, Run};
use kiln_rag::ingest::{index_paths, IndexOptions};
use kiln_rag::retrieve::{search, Mode, SearchOptions};
use kiln_rag::split::RecursiveSplitter;
use kiln_store::{OpenMode, Store};

struct Constant;

impl Embedder for Constant {
    fn name(&self) -> &str {
        "constant"
    }
    fn dimension(&self) -> usize {
        1
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, CoreError> {
        Ok(texts.iter().map(|_| vec![1.0]).collect())
    }
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/ir/cacm")
        .join(name)
}

#[test]
fn bm25_map_on_cacm_matches_anserini() {
    let dir = std::env::temp_dir().join(format!("kiln-cacm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = Store::open(&dir, OpenMode::Write).unwrap();
    let options = IndexOptions {
        // One chunk per abstract, as Anserini indexes whole documents.
        splitter: RecursiveSplitter::new(1_000_000, 0),
        batch: 512,
        ..Default::default()
    };
    let stats = index_paths(
        &mut store,
        &Constant,
        &[data("corpus.jsonl")],
        &options,
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(stats.indexed, 3204);
    let qrels = parse_qrels(&std::fs::read_to_string(data("qrels.tsv")).unwrap()).unwrap();
    let queries = parse_queries(&std::fs::read_to_string(data("queries.jsonl")).unwrap()).unwrap();
    let mut run = Run::new();
    for (qid, text) in &queries {
        if !qrels.contains_key(qid) {
            continue;
        }
        let hits = search(
            &store,
            &Constant,
            text,
            &SearchOptions {
                k: 1000,
                mode: Mode::Bm25,
                filter: None,
                min_score: None,
            },
        )
        .unwrap();
        run.insert(
            qid.clone(),
            hits.into_iter()
                .map(|h| (h.document, f64::from(h.score)))
                .collect(),
        );
    }
    let (per, all) = evaluate(&qrels, &run);
    assert_eq!(per.len(), 52);
    eprintln!("CACM BM25: MAP {:.4}, P@30 {:.4}", all.map, all.p[&30]);
    assert!((all.map - 0.3123).abs() <= 0.01, "MAP {:.4}", all.map);
    std::fs::remove_dir_all(&dir).ok();
}

/// all-MiniLM-L6-v2 with the CACM abstracts' embeddings precomputed
/// (`minilm.f16`, made by scripts/make-cacm-embeddings.sh): corpus texts
/// are looked up, anything else (the queries) is embedded live.
struct Precomputed {
    live: kiln_models::encoder::SentenceEmbedder,
    known: std::collections::HashMap<String, Vec<f32>>,
}

impl Embedder for Precomputed {
    fn name(&self) -> &str {
        Embedder::name(&self.live)
    }
    fn dimension(&self) -> usize {
        Embedder::dimension(&self.live)
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, CoreError> {
        texts
            .iter()
            .map(|t| match self.known.get(*t) {
                Some(v) => Ok(v.clone()),
                None => Ok(Embedder::embed(&self.live, &[t])?.remove(0)),
            })
            .collect()
    }
}

fn minilm() -> Option<kiln_models::encoder::SentenceEmbedder> {
    let Some(models) = std::env::var_os("KILN_MODELS") else {
        eprintln!("KILN_MODELS is not set: skipping (scripts/test.sh sets it)");
        return None;
    };
    let dir = std::path::Path::new(&models).join("all-MiniLM-L6-v2");
    Some(kiln_models::encoder::SentenceEmbedder::load(&dir).unwrap())
}

fn corpus_texts() -> Vec<String> {
    std::fs::read_to_string(data("corpus.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The stored CACM embeddings, checked against live embeddings of a sample.
fn precomputed(live: kiln_models::encoder::SentenceEmbedder) -> Precomputed {
    let texts = corpus_texts();
    let bytes = std::fs::read(data("minilm.f16")).unwrap();
    let dim = Embedder::dimension(&live);
    assert_eq!(bytes.len(), texts.len() * dim * 2);
    let vectors: Vec<Vec<f32>> = bytes
        .chunks_exact(dim * 2)
        .map(|row| {
            row.chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect()
        })
        .collect();
    for i in (0..texts.len()).step_by(400) {
        let v = Embedder::embed(&live, &[texts[i].as_str()])
            .unwrap()
            .remove(0);
        let diff = v
            .iter()
            .zip(&vectors[i])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            diff < 1e-3,
            "stored embedding {i} is stale ({diff}): rerun scripts/make-cacm-embeddings.sh"
        );
    }
    Precomputed {
        live,
        known: texts.into_iter().zip(vectors).collect(),
    }
}

/// Dense retrieval on CACM with all-MiniLM-L6-v2 through the HNSW graph
/// (the corpus embeddings precomputed, the queries live): recall@10 of the
/// graph against exact search over the 64 topics, and dense/hybrid MAP
/// next to BM25's (figures in BENCHMARKS.md; the asserted floors are a
/// little under them).
#[test]
fn dense_and_hybrid_on_cacm_through_the_hnsw_graph() {
    let Some(live) = minilm() else { return };
    dense_and_hybrid(&precomputed(live));
}

/// The same, embedding all 3,204 abstracts live (3-4 minutes on 2 cores).
#[test]
#[ignore = "slow: embeds all of CACM; run with --ignored"]
fn dense_and_hybrid_on_cacm_embedding_everything() {
    let Some(live) = minilm() else { return };
    dense_and_hybrid(&live);
}

fn dense_and_hybrid(emb: &dyn Embedder) {
    let dir = std::env::temp_dir().join(format!("kiln-cacm-dense-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let started = std::time::Instant::now();
    let mut store = Store::open(&dir, OpenMode::Write).unwrap();
    // CACM's 3,204 abstracts go through the graph, not exact search.
    store.set_ann_settings(kiln_store::AnnSettings {
        min_chunks: 1000,
        ..Default::default()
    });
    let options = IndexOptions {
        splitter: RecursiveSplitter::new(1_000_000, 0),
        batch: 256,
        ..Default::default()
    };
    let stats = index_paths(
        &mut store,
        emb,
        &[data("corpus.jsonl")],
        &options,
        &mut |_, _, _| {},
    )
    .unwrap();
    eprintln!("indexed CACM in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(stats.ann_nodes, 3204);
    assert!(dir.join("ann.bin").is_file());
    let qrels = parse_qrels(&std::fs::read_to_string(data("qrels.tsv")).unwrap()).unwrap();
    let queries = parse_queries(&std::fs::read_to_string(data("queries.jsonl")).unwrap()).unwrap();
    let (mut found, mut total) = (0, 0);
    for (_, text) in &queries {
        let q = &emb.embed(&[text.as_str()]).unwrap()[0];
        let exact: Vec<i64> = store
            .exact_vector_search(q, 10, None)
            .unwrap()
            .iter()
            .map(|h| h.chunk_id)
            .collect();
        let approx = store.vector_search(q, 10, None).unwrap();
        found += approx
            .iter()
            .filter(|h| exact.contains(&h.chunk_id))
            .count();
        total += exact.len();
    }
    let recall = found as f64 / total as f64;
    eprintln!(
        "CACM MiniLM HNSW recall@10 vs exact: {recall:.4} over {} topics ({:.1} s)",
        queries.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(recall >= 0.95, "recall@10 {recall:.4}");
    for (mode, floor) in [(Mode::Vector, 0.28), (Mode::Hybrid, 0.35)] {
        let mut run = Run::new();
        for (qid, text) in &queries {
            if !qrels.contains_key(qid) {
                continue;
            }
            let opts = SearchOptions {
                k: 1000,
                mode,
                filter: None,
                min_score: None,
            };
            let hits = search(&store, emb, text, &opts).unwrap();
            run.insert(
                qid.clone(),
                hits.into_iter()
                    .map(|h| (h.document, f64::from(h.score)))
                    .collect(),
            );
        }
        let (_, all) = evaluate(&qrels, &run);
        eprintln!(
            "CACM {mode:?}: MAP {:.4}, nDCG@10 {:.4} ({:.1} s)",
            all.map,
            all.ndcg_cut_10,
            started.elapsed().as_secs_f64()
        );
        assert!(all.map >= floor, "{mode:?} MAP {:.4}", all.map);
    }
    std::fs::remove_dir_all(&dir).ok();
}
