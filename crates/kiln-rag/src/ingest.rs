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
                    index_documents(store, embedder, &docs, options, &mut stats)?;
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
    index_documents(store, embedder, std::slice::from_ref(doc), options, stats)
}

/// A document to (re)index: its content hash and pieces.
struct Pending<'a> {
    doc: &'a Loaded,
    hash: String,
    pieces: Vec<Piece>,
}

/// Indexes `docs` in order, skipping unchanged ones. The pieces of
/// consecutive documents are embedded together, in calls of
/// `options.batch` texts (a JSONL file of short records would otherwise
/// embed one text per call and leave all but one core idle); each document
/// is then written on its own, so every acknowledged write is whole.
fn index_documents(
    store: &mut dyn VectorStoreWriter,
    embedder: &dyn Embedder,
    docs: &[Loaded],
    options: &IndexOptions,
    stats: &mut IndexStats,
) -> Result<()> {
    let mut pending: Vec<Pending> = Vec::new();
    let mut pieces = 0;
    for doc in docs {
        let hash = content_hash(&doc.text, options, embedder.name());
        if store.content_hash(&doc.id)?.as_deref() == Some(hash.as_str()) {
            stats.unchanged += 1;
            continue;
        }
        let split = if doc.markdown {
            split_markdown(&doc.text, &options.splitter)
        } else {
            options.splitter.split(&doc.text)
        };
        pieces += split.len();
        pending.push(Pending {
            doc,
            hash,
            pieces: split,
        });
        if pieces >= options.batch {
            write_pending(store, embedder, &mut pending, options, stats)?;
            pieces = 0;
        }
    }
    write_pending(store, embedder, &mut pending, options, stats)
}

/// Embeds the pieces of `pending` and writes each document; empties it.
fn write_pending(
    store: &mut dyn VectorStoreWriter,
    embedder: &dyn Embedder,
    pending: &mut Vec<Pending>,
    options: &IndexOptions,
    stats: &mut IndexStats,
) -> Result<()> {
    // The heading path goes into what is embedded: it is context.
    let inputs: Vec<String> = pending
        .iter()
        .flat_map(|p| &p.pieces)
        .map(|p| match &p.heading {
            Some(h) => format!("{h}\n{}", p.text),
            None => p.text.clone(),
        })
        .collect();
    let mut vectors = Vec::with_capacity(inputs.len());
    for batch in inputs.chunks(options.batch) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        vectors.extend(embedder.embed(&refs)?);
    }
    if vectors.len() != inputs.len() {
        return Err(crate::RagError::Invalid(format!(
            "the embedder returned {} vectors for {} texts",
            vectors.len(),
            inputs.len()
        )));
    }
    let mut vectors = vectors.into_iter();
    for Pending { doc, hash, pieces } in pending.drain(..) {
        let mut chunks = Vec::with_capacity(pieces.len());
        for (p, vector) in pieces.into_iter().zip(vectors.by_ref()) {
            let mut metadata = serde_json::Map::new();
            if let Some(h) = &p.heading {
                metadata.insert("heading".into(), Value::String(h.clone()));
            }
            chunks.push(Chunk {
                page: doc.page_at(p.start),
                start: doc.offset + p.start,
                end: doc.offset + p.end,
                heading: p.heading,
                text: p.text,
                metadata,
                vector,
            });
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
    }
    Ok(())
}
