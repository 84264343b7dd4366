//! A 50 MB text file is indexed in parts with bounded memory: the test
//! binary counts every heap allocation and requires the peak to stay far
//! below the file's size (reading it whole would hold it several times over:
//! text, pieces, chunk texts and vectors). Every part is stored, chunk
//! offsets are file-relative, and re-indexing the unchanged file embeds
//! nothing; after the file shrinks, its stale parts are gone.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unsafe_code
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_core::{CoreError, Embedder};
use kiln_rag::ingest::{index_paths, IndexOptions};
use kiln_rag::split::RecursiveSplitter;
use kiln_store::{OpenMode, Store};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A cheap deterministic embedder (a hash of the text), so the test measures
/// the loader and not a model.
struct Hashing;

impl Embedder for Hashing {
    fn name(&self) -> &str {
        "hashing"
    }
    fn dimension(&self) -> usize {
        8
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, CoreError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut h: u32 = 2_166_136_261;
                (0..8)
                    .map(|i| {
                        for b in t.bytes().take(64).chain([i as u8]) {
                            h = (h ^ u32::from(b)).wrapping_mul(16_777_619);
                        }
                        (h % 1000) as f32 / 1000.0 - 0.5
                    })
                    .collect()
            })
            .collect())
    }
}

/// About `bytes` of prose-like lines and paragraphs.
fn write_text(path: &std::path::Path, bytes: usize) {
    let words = [
        "kiln", "glaze", "clay", "fire", "cone", "bisque", "potter", "wheel", "ash", "slip",
    ];
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut written, mut i) = (0usize, 0usize);
    while written < bytes {
        let line: String = (0..12)
            .map(|k| words[(i * 7 + k * 3) % words.len()])
            .collect::<Vec<_>>()
            .join(" ");
        let line = if i % 9 == 8 {
            format!("{line}.\n\n")
        } else {
            format!("{line}.\n")
        };
        file.write_all(line.as_bytes()).unwrap();
        written += line.len();
        i += 1;
    }
    file.write_all(b"The end: an obsidian kiln.\n").unwrap();
}

#[test]
fn a_50_mb_file_is_indexed_in_parts_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    let size = 50 << 20;
    write_text(&path, size);
    let index = dir.path().join("index");
    let options = IndexOptions {
        splitter: RecursiveSplitter::new(4000, 200),
        ..IndexOptions::default()
    };
    let index_file = |store: &mut Store| {
        index_paths(
            store,
            &Hashing,
            std::slice::from_ref(&path),
            &options,
            &mut |_, _, _| {},
        )
        .unwrap()
    };
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let stats = index_file(&mut Store::open(&index, OpenMode::Write).unwrap());
    let peak = PEAK.load(Ordering::Relaxed) - before;
    eprintln!(
        "peak heap {:.1} MiB for a {} MiB file",
        peak as f64 / 1048576.0,
        size >> 20
    );
    assert!(
        peak < size / 4,
        "peak heap {peak} bytes for a {size}-byte file"
    );
    assert!(stats.indexed >= 50, "{stats:?}");
    let store = Store::open(&index, OpenMode::Read).unwrap();
    let docs = store.documents().unwrap();
    assert_eq!(docs.len(), stats.indexed);
    let source = path.display().to_string();
    assert!(docs
        .iter()
        .all(|d| d.source == source && d.id.starts_with(&format!("{source}#part"))));
    // Offsets are file-relative: the closing line is found near the end of
    // the file, not near the start of its part.
    let hits = store.bm25_search("obsidian", 1, None).unwrap();
    let chars = std::fs::read_to_string(&path).unwrap().chars().count();
    assert!(
        hits[0].end <= chars && hits[0].end + 5000 > chars,
        "{:?} of {chars}",
        (hits[0].start, hits[0].end)
    );
    drop(store);
    // Unchanged: nothing re-embedded.
    let mut store = Store::open(&index, OpenMode::Write).unwrap();
    let again = index_file(&mut store);
    assert_eq!((again.indexed, again.unchanged), (0, stats.indexed));
    // Shrunk to 20 MB: the parts past the end are deleted.
    write_text(&path, 20 << 20);
    let shrunk = index_file(&mut store);
    let parts = store.documents().unwrap().len();
    assert!(
        parts < stats.indexed && parts >= 20,
        "{parts} parts after shrinking ({shrunk:?})"
    );
}
