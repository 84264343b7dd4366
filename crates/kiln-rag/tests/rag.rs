//! Indexing real files with a real sentence-transformers model and
//! retrieving from them: loaders, skipping, incremental re-indexing,
//! vector/BM25/hybrid search, the answer prompt.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use kiln_models::encoder::SentenceEmbedder;
use kiln_rag::ingest::{index_paths, IndexOptions};
use kiln_rag::retrieve::{search, Mode, SearchOptions};
use kiln_rag::split::RecursiveSplitter;
use kiln_store::{OpenMode, Store};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data")
        .join(rel)
}

/// The real all-MiniLM-L6-v2 when `$KILN_MODELS` has it, else the tiny
/// BERT fixture (random weights: only the keyword tests mean much then).
fn embedder() -> (SentenceEmbedder, bool) {
    if let Some(dir) = std::env::var_os("KILN_MODELS") {
        let p = Path::new(&dir).join("all-MiniLM-L6-v2");
        if p.is_dir() {
            return (SentenceEmbedder::load(&p).unwrap(), true);
        }
    }
    (
        SentenceEmbedder::load(&data("encoders/bert")).unwrap(),
        false,
    )
}

#[test]
fn index_search_and_reindex() {
    let (emb, real) = embedder();
    let work = std::env::temp_dir().join(format!("kiln-rag-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let docs = work.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for f in std::fs::read_dir(data("rag")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, docs.join(f.file_name().unwrap())).unwrap();
    }
    let index = work.join("index");
    let mut store = Store::open(&index, OpenMode::Write).unwrap();
    let options = IndexOptions {
        splitter: RecursiveSplitter::new(200, 20),
        ..Default::default()
    };
    let mut calls = 0;
    let stats = index_paths(
        &mut store,
        &emb,
        std::slice::from_ref(&docs),
        &options,
        &mut |_, _, _| calls += 1,
    )
    .unwrap();
    assert_eq!(stats.files, 6);
    assert_eq!(calls, 6);
    // blob.bin is binary; empty.txt loads as an empty document (no chunks).
    assert_eq!(stats.skipped.len(), 1, "{:?}", stats.skipped);
    assert!(stats.skipped[0].1.contains("binary"));
    // bread.html, empty.txt, korean.txt, kilns.md, 2 JSONL records.
    assert_eq!(stats.indexed, 6);
    store.check().unwrap();

    // Keyword search finds the HTML page's text but not its script or nav.
    let hits = search(
        &store,
        &emb,
        "sourdough starter",
        &SearchOptions {
            k: 3,
            mode: Mode::Bm25,
            filter: None,
            min_score: None,
        },
    )
    .unwrap();
    assert!(hits[0].source.ends_with("bread.html"), "{hits:?}");
    assert!(hits
        .iter()
        .all(|h| !h.text.contains("track(") && !h.text.contains("Shop")));
    // Markdown chunks know their heading.
    let hits = search(
        &store,
        &emb,
        "thermal shock hot kiln",
        &SearchOptions {
            k: 1,
            mode: Mode::Bm25,
            filter: None,
            min_score: None,
        },
    )
    .unwrap();
    assert_eq!(hits[0].heading.as_deref(), Some("Kilns > Safety"));
    // JSONL metadata filters.
    let rust = kiln_store::Filter::parse("topic=rust").unwrap();
    let hits = search(
        &store,
        &emb,
        "dependencies",
        &SearchOptions {
            k: 5,
            mode: Mode::Hybrid,
            filter: Some(&rust),
            min_score: None,
        },
    )
    .unwrap();
    assert!(!hits.is_empty() && hits.iter().all(|h| h.source.ends_with("notes.jsonl")));
    if real {
        // Meaning, not words: no keyword overlap with the answer.
        let hits = search(
            &store,
            &emb,
            "How do I make a loaf rise?",
            &SearchOptions {
                k: 1,
                mode: Mode::Vector,
                filter: None,
                min_score: None,
            },
        )
        .unwrap();
        assert!(hits[0].source.ends_with("bread.html"), "{hits:?}");
        let hits = search(
            &store,
            &emb,
            "What is the capital of South Korea?",
            &SearchOptions {
                k: 1,
                mode: Mode::Hybrid,
                filter: None,
                min_score: None,
            },
        )
        .unwrap();
        assert!(hits[0].source.ends_with("korean.txt"), "{hits:?}");
    }

    // Unchanged files are skipped; a changed file replaces only its chunks.
    let before = store.chunk_count().unwrap();
    let again = index_paths(
        &mut store,
        &emb,
        std::slice::from_ref(&docs),
        &options,
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!((again.indexed, again.unchanged), (0, 6));
    std::fs::write(docs.join("korean.txt"), "부산은 항구 도시입니다.\n").unwrap();
    let third = index_paths(
        &mut store,
        &emb,
        std::slice::from_ref(&docs),
        &options,
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!((third.indexed, third.unchanged), (1, 5));
    assert_eq!(store.chunk_count().unwrap(), before);
    let hits = search(
        &store,
        &emb,
        "부산은",
        &SearchOptions {
            k: 1,
            mode: Mode::Bm25,
            filter: None,
            min_score: None,
        },
    )
    .unwrap();
    assert!(hits[0].text.contains("항구"));

    let prompt = kiln_rag::answer::messages("Why not open a hot kiln?", &hits);
    assert_eq!(prompt.len(), 2);
    assert!(prompt[1].content.starts_with("Sources:\n\n[1] "));
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn token_sized_chunks_fit_the_encoder() {
    let emb = SentenceEmbedder::load(&data("encoders/bert")).unwrap();
    let tokenizer = emb.tokenizer().clone();
    let count = move |s: &str| tokenizer.encode(s, false).unwrap().ids.len();
    let splitter = RecursiveSplitter::new(24, 4).with_length(count.clone());
    let text = std::fs::read_to_string(data("rag/kilns.md"))
        .unwrap()
        .repeat(3);
    let pieces = kiln_rag::split::split_markdown(&text, &splitter);
    assert!(pieces.len() > 3);
    for p in &pieces {
        assert!(
            count(&p.text) <= 24,
            "{} tokens: {:?}",
            count(&p.text),
            p.text
        );
    }
}

#[test]
fn mmr_prefers_a_different_chunk_over_a_near_duplicate() {
    use kiln_store::Hit;
    let hit = |id: i64, v: Vec<f32>| Hit {
        chunk_id: id,
        document: format!("d{id}"),
        source: String::new(),
        text: String::new(),
        page: None,
        heading: None,
        start: 0,
        end: 0,
        score: 0.0,
        vector: v,
    };
    let query = vec![1.0, 0.2, 0.0];
    let candidates = vec![
        hit(1, vec![1.0, 0.1, 0.0]),
        hit(2, vec![1.0, 0.11, 0.0]),
        hit(3, vec![0.7, 0.7, 0.0]),
    ];
    let picked = kiln_rag::retrieve::mmr(&query, candidates, 2, 0.5);
    let ids: Vec<i64> = picked.iter().map(|h| h.chunk_id).collect();
    assert_eq!(
        ids,
        [2, 3],
        "the near-duplicate of the first pick is skipped"
    );
}

/// The same documents indexed into PostgreSQL/pgvector retrieve the same
/// chunks with the same scores as the embedded store (vector, BM25,
/// hybrid). Needs `KILN_TEST_PG` (see kiln-store's pgvector tests).
#[test]
fn pgvector_backend_retrieves_like_the_embedded_store() {
    let url = std::env::var("KILN_TEST_PG").unwrap_or_default();
    if url == "skip" {
        return;
    }
    assert!(
        url.starts_with("postgres"),
        "set KILN_TEST_PG (`scripts/pg.sh start` prints it) or KILN_TEST_PG=skip"
    );
    let (emb, _) = embedder();
    let options = IndexOptions {
        splitter: RecursiveSplitter::new(200, 20),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("kiln-rag-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let name = format!("rag_{}", std::process::id());
    let mut local = Store::open(&dir, OpenMode::Write).unwrap();
    let mut pg = kiln_store::PgStore::open(&url, &name, OpenMode::Write).unwrap();
    for store in [
        &mut local as &mut dyn kiln_store::VectorStoreWriter,
        &mut pg,
    ] {
        let stats = index_paths(store, &emb, &[data("rag")], &options, &mut |_, _, _| {}).unwrap();
        assert_eq!(stats.indexed, 6);
    }
    for mode in [Mode::Vector, Mode::Bm25, Mode::Hybrid] {
        for query in ["sourdough starter", "how hot does a kiln get", "김치"] {
            let opts = SearchOptions {
                k: 4,
                mode,
                filter: None,
                min_score: None,
            };
            let a = search(&local, &emb, query, &opts).unwrap();
            let b = search(&pg, &emb, query, &opts).unwrap();
            assert_eq!(a.len(), b.len(), "{mode:?} {query}");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(
                    (&x.document, &x.text),
                    (&y.document, &y.text),
                    "{mode:?} {query}"
                );
                assert!((x.score - y.score).abs() < 1e-4, "{mode:?} {query}");
            }
        }
    }
    // Re-indexing skips unchanged documents on PostgreSQL too.
    let stats = index_paths(&mut pg, &emb, &[data("rag")], &options, &mut |_, _, _| {}).unwrap();
    assert_eq!((stats.indexed, stats.unchanged), (0, 6));
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("DROP SCHEMA kiln_{name} CASCADE"))
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// A real three-page PDF: indexed as one document whose chunks carry their
/// page numbers; search finds the right page.
#[test]
fn pdf_pages_become_chunk_pages() {
    let (emb, real) = embedder();
    let dir = std::env::temp_dir().join(format!("kiln-rag-pdf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = Store::open(&dir, OpenMode::Write).unwrap();
    let options = IndexOptions {
        splitter: RecursiveSplitter::new(120, 0),
        globs: vec!["*.pdf".into()],
        ..Default::default()
    };
    let stats = index_paths(
        &mut store,
        &emb,
        &[data("pdf")],
        &options,
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!((stats.files, stats.indexed), (1, 1));
    let docs = store.documents().unwrap();
    assert_eq!(docs[0].metadata["pages"], 3);
    let opts = |mode| SearchOptions {
        k: 1,
        mode,
        filter: None,
        min_score: None,
    };
    let hit = &search(&store, &emb, "silica alumina glass", &opts(Mode::Bm25)).unwrap()[0];
    assert_eq!(hit.page, Some(2), "{hit:?}");
    let hit = &search(
        &store,
        &emb,
        "crystalline glazes cooling",
        &opts(Mode::Bm25),
    )
    .unwrap()[0];
    assert_eq!(hit.page, Some(3));
    if real {
        let hit = &search(&store, &emb, "how is a bisque fired?", &opts(Mode::Vector)).unwrap()[0];
        assert_eq!(hit.page, Some(1), "{hit:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Cross-encoder re-ranking: every hit gets the cross-encoder's score for
/// (query, text), best first, cut to k (tiny BERT cross-encoder fixture,
/// itself checked against sentence-transformers in kiln-models).
#[test]
fn rerank_orders_by_cross_encoder_scores() {
    let (emb, _) = embedder();
    let dir = std::env::temp_dir().join(format!("kiln-rag-rerank-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = Store::open(&dir, OpenMode::Write).unwrap();
    let options = IndexOptions {
        splitter: RecursiveSplitter::new(200, 20),
        ..Default::default()
    };
    index_paths(
        &mut store,
        &emb,
        &[data("rag")],
        &options,
        &mut |_, _, _| {},
    )
    .unwrap();
    let query = "how hot does a kiln get";
    let opts = SearchOptions {
        k: 8,
        mode: Mode::Hybrid,
        filter: None,
        min_score: None,
    };
    let pool = search(&store, &emb, query, &opts).unwrap();
    assert!(pool.len() >= 4);
    let ce = kiln_models::encoder::CrossEncoder::load(&data("encoders/cross_encoder")).unwrap();
    let ranked = kiln_rag::retrieve::rerank(pool.clone(), query, &ce, 3).unwrap();
    assert_eq!(ranked.len(), 3);
    let mut direct: Vec<f32> = pool
        .iter()
        .map(|h| ce.score(query, &[h.text.as_str()]).unwrap()[0])
        .collect();
    direct.sort_by(|a, b| b.total_cmp(a));
    for (h, want) in ranked.iter().zip(&direct) {
        assert!((h.score - want).abs() < 1e-5, "{} vs {want}", h.score);
    }
    std::fs::remove_dir_all(&dir).ok();
}
