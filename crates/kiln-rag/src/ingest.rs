//! Indexing: load → split → embed → store, skipping unchanged documents
//! (same content hash) and replacing changed ones.

use std::path::PathBuf;

use kiln_core::Embedder;
use kiln_store::{Chunk, Document, VectorStoreWriter};
use serde_json::Value;

use crate::load::{load_file, walk, Loaded, Outcome};
use crate::split::{split_markdown, Piece, RecursiveSplitter};
use crate::stream;
use crate::Result;

/// Indexing settings.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// The splitter (markdown files are split at headings first).
    pub splitter: RecursiveSplitter,
    /// File-name globs for directories (all files when empty).
    pub globs: Vec<String>,
    /// The JSONL field holding the text.
    pub text_field: String,
    /// Chunks embedded per call.
    pub batch: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            splitter: RecursiveSplitter::new(1000, 200),
            globs: Vec::new(),
            text_field: "text".into(),
            batch: 32,
        }
    }
}

/// What an indexing run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexStats {
    /// Files looked at.
    pub files: usize,
    /// Documents (re)indexed.
    pub indexed: usize,
    /// Documents unchanged since the last run.
    pub unchanged: usize,
    /// Files skipped, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Chunks embedded and stored.
    pub chunks: usize,
    /// Live vectors in the saved HNSW graph (0 when the index is small
    /// enough for exact search).
    pub ann_nodes: usize,
}

/// FNV-1a 64 of the text and everything that shapes its chunks.
fn content_hash(text: &str, options: &IndexOptions, model: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let settings = format!(
        "{}|{}|{:?}|{}|{model}",
        options.splitter.chunk_size,
        options.splitter.chunk_overlap,
        options.splitter.length,
        options.text_field
    );
    for b in settings.bytes().chain([0]).chain(text.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Indexes `paths` into `store` with `embedder`; `progress` hears about
/// each document (`(files done, files total, chunks so far)`).
pub fn index_paths(
    store: &mut dyn VectorStoreWriter,
    embedder: &dyn Embedder,
    paths: &[PathBuf],
    options: &IndexOptions,
    progress: &mut dyn FnMut(usize, usize, usize),
) -> Result<IndexStats> {
    if options.batch == 0 || options.splitter.chunk_size == 0 {
        return Err(crate::RagError::Invalid(
            "batch and chunk size must be at least 1".into(),
        ));
    }
    store.bind_model(embedder.name(), embedder.dimension())?;
    let files = walk(paths, &options.globs)?;
    let mut stats = IndexStats {
        files: files.len(),
        ..Default::default()
    };
    for (i, file) in files.iter().enumerate() {
        let id = file.display().to_string();
        if stream::should_stream(file) {
            let parts = stream::for_each_part(file, stream::PART_BYTES, &mut |part| {
                index_document(store, embedder, &part, options, &mut stats)
            })?;
            match parts {
                Ok(n) => {
                    // The file may have been indexed whole, or in more parts.
                    store.delete(&id)?;
                    delete_parts(store, &id, n)?;
                }
                Err(why) => stats.skipped.push((id, why)),
            }
        } else {
            match load_file(file, &options.text_field)? {
                Outcome::Skipped(why) => stats.skipped.push((id, why)),
                Outcome::Loaded(docs) => {
                    for doc in docs {
                        index_document(store, embedder, &doc, options, &mut stats)?;
                    }
                    // The file may have been streamed in parts before.
                    delete_parts(store, &id, 0)?;
                }
            }
        }
        progress(i + 1, files.len(), stats.chunks);
    }
    stats.ann_nodes = store.finish()?;
    Ok(stats)
}

/// Deletes the stored parts `first..` of a streamed file (read-only when there are none).
fn delete_parts(store: &mut dyn VectorStoreWriter, id: &str, first: usize) -> Result<()> {
    let mut n = first;
    while store.content_hash(&stream::part_id(id, n))?.is_some() {
        store.delete(&stream::part_id(id, n))?;
        n += 1;
    }
    Ok(())
}

fn index_document(
    store: &mut dyn VectorStoreWriter,
    embedder: &dyn Embedder,
    doc: &Loaded,
    options: &IndexOptions,
    stats: &mut IndexStats,
) -> Result<()> {
    let hash = content_hash(&doc.text, options, embedder.name());
    if store.content_hash(&doc.id)?.as_deref() == Some(hash.as_str()) {
        stats.unchanged += 1;
        return Ok(());
    }
    let pieces: Vec<Piece> = if doc.markdown {
        split_markdown(&doc.text, &options.splitter)
    } else {
        options.splitter.split(&doc.text)
    };
    let mut chunks = Vec::with_capacity(pieces.len());
    for batch in pieces.chunks(options.batch) {
        // The heading path goes into what is embedded: it is context.
        let inputs: Vec<String> = batch
            .iter()
            .map(|p| match &p.heading {
                Some(h) => format!("{h}\n{}", p.text),
                None => p.text.clone(),
            })
            .collect();
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&refs)?;
        for (p, vector) in batch.iter().zip(vectors) {
            let mut metadata = serde_json::Map::new();
            if let Some(h) = &p.heading {
                metadata.insert("heading".into(), Value::String(h.clone()));
            }
            chunks.push(Chunk {
                text: p.text.clone(),
                page: doc.page_at(p.start),
                start: doc.offset + p.start,
                end: doc.offset + p.end,
                heading: p.heading.clone(),
                metadata,
                vector,
            });
        }
    }
    store.upsert(
        &Document {
            id: doc.id.clone(),
            source: doc.source.clone(),
            content_hash: hash,
            metadata: doc.metadata.clone(),
        },
        &chunks,
    )?;
    stats.indexed += 1;
    stats.chunks += chunks.len();
    Ok(())
}
