//! The SQLite-backed store.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value};

use crate::bm25;
use crate::{Chunk, Document, Filter, Hit, Result, StoreError};

/// How to open an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Search only; many readers at once, also next to a writer.
    Read,
    /// Create if missing and write; one writer at a time (file lock).
    Write,
}

/// An index directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    conn: Connection,
    /// Held for the life of a writer; the OS drops it if the process dies.
    _lock: Option<File>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, content_hash TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL, text TEXT NOT NULL, page INTEGER,
    start INTEGER NOT NULL, end_ INTEGER NOT NULL, heading TEXT,
    metadata TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document);
";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn json_map(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// One stored chunk as search reads it.
struct Row {
    /// The hit (its `vector` filled in).
    hit: Hit,
    metadata: Map<String, Value>,
}

impl Store {
    /// Opens the index in `dir`.
    pub fn open(dir: &Path, mode: OpenMode) -> Result<Self> {
        let db = dir.join("store.sqlite");
        let (conn, lock) = match mode {
            OpenMode::Read => {
                if !db.is_file() {
                    return Err(StoreError::Missing(dir.to_path_buf()));
                }
                let conn = Connection::open_with_flags(
                    &db,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                (conn, None)
            }
            OpenMode::Write => {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
                let lock_path = dir.join("write.lock");
                let lock = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(io(&lock_path))?;
                match lock.try_lock() {
                    Ok(()) => {}
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(StoreError::Locked(dir.to_path_buf()))
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
                }
                let conn = Connection::open(&db)?;
                // WAL + FULL: a committed transaction is on disk before the
                // commit returns, and readers never block the writer.
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "FULL")?;
                conn.execute_batch(SCHEMA)?;
                (conn, Some(lock))
            }
        };
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            conn,
            _lock: lock,
        })
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a free-form setting of the index (e.g. where its embedding
    /// model lives).
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    /// A setting stored with [`Self::set_meta`].
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// The embedding model and width the index was built with.
    pub fn embedding_model(&self) -> Result<Option<(String, usize)>> {
        let name = self.meta("embedding_model")?;
        let dim = self.meta("dimension")?.and_then(|d| d.parse().ok());
        Ok(name.zip(dim))
    }

    /// Records (on first use) or checks the embedding model.
    pub fn bind_model(&self, name: &str, dimension: usize) -> Result<()> {
        match self.embedding_model()? {
            Some((stored, _)) if stored != name => Err(StoreError::ModelMismatch {
                stored,
                given: name.to_string(),
            }),
            Some((_, dim)) if dim != dimension => Err(StoreError::Dimension {
                expected: dim,
                got: dimension,
            }),
            Some(_) => Ok(()),
            None => {
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('embedding_model', ?1), ('dimension', ?2)",
                    params![name, dimension.to_string()],
                )?;
                Ok(())
            }
        }
    }

    /// The stored content hash of document `id`.
    pub fn content_hash(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT content_hash FROM documents WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Replaces document `doc.id` and all its chunks in one transaction:
    /// once this returns, the write survives a crash.
    pub fn upsert(&mut self, doc: &Document, chunks: &[Chunk]) -> Result<()> {
        if let Some((_, dim)) = self.embedding_model()? {
            if let Some(bad) = chunks.iter().find(|c| c.vector.len() != dim) {
                return Err(StoreError::Dimension {
                    expected: dim,
                    got: bad.vector.len(),
                });
            }
        }
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM chunks WHERE document = ?1", [&doc.id])?;
        tx.execute(
            "INSERT OR REPLACE INTO documents (id, source, content_hash, metadata) VALUES (?1, ?2, ?3, ?4)",
            params![doc.id, doc.source, doc.content_hash, Value::Object(doc.metadata.clone()).to_string()],
        )?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO chunks (document, ord, text, page, start, end_, heading, metadata, vector)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (i, c) in chunks.iter().enumerate() {
                insert.execute(params![
                    doc.id,
                    i as i64,
                    c.text,
                    c.page,
                    c.start as i64,
                    c.end as i64,
                    c.heading,
                    Value::Object(c.metadata.clone()).to_string(),
                    vector_bytes(&c.vector),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes document `id` and its chunks; `false` when it was not there.
    pub fn delete(&mut self, id: &str) -> Result<bool> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM chunks WHERE document = ?1", [id])?;
        let n = tx.execute("DELETE FROM documents WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Every document.
    pub fn documents(&self) -> Result<Vec<Document>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, source, content_hash, metadata FROM documents ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(Document {
                id: r.get(0)?,
                source: r.get(1)?,
                content_hash: r.get(2)?,
                metadata: json_map(&r.get::<_, String>(3)?),
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// Reads every chunk passing `filter`.
    fn rows(&self, filter: Option<&Filter>) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare(
            "SELECT c.id, c.document, d.source, c.text, c.page, c.heading, c.start, c.end_,
                    c.metadata, d.metadata, c.vector
             FROM chunks c JOIN documents d ON d.id = c.document ORDER BY c.id",
        )?;
        let rows = stmt.query_map([], |r| {
            let mut metadata = json_map(&r.get::<_, String>(9)?);
            metadata.extend(json_map(&r.get::<_, String>(8)?));
            Ok(Row {
                hit: Hit {
                    chunk_id: r.get(0)?,
                    document: r.get(1)?,
                    source: r.get(2)?,
                    text: r.get(3)?,
                    page: r.get(4)?,
                    heading: r.get(5)?,
                    start: r.get::<_, i64>(6)? as usize,
                    end: r.get::<_, i64>(7)? as usize,
                    score: 0.0,
                    vector: bytes_vector(&r.get::<_, Vec<u8>>(10)?),
                },
                metadata,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            if filter.is_none_or(|f| f.matches(&row.metadata)) {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// The `k` chunks most similar to `query` (cosine), exact search.
    pub fn vector_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>> {
        if let Some((_, dim)) = self.embedding_model()? {
            if query.len() != dim {
                return Err(StoreError::Dimension {
                    expected: dim,
                    got: query.len(),
                });
            }
        }
        let qn = query.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let mut hits: Vec<Hit> = self
            .rows(filter)?
            .into_iter()
            .map(|row| {
                let dot: f32 = row.hit.vector.iter().zip(query).map(|(a, b)| a * b).sum();
                let n = row
                    .hit
                    .vector
                    .iter()
                    .map(|x| x * x)
                    .sum::<f32>()
                    .sqrt()
                    .max(1e-12);
                Hit {
                    score: dot / (n * qn),
                    ..row.hit
                }
            })
            .collect();
        top_k(&mut hits, k);
        Ok(hits)
    }

    /// The `k` chunks with the best BM25 score for `query`.
    pub fn bm25_search(&self, query: &str, k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>> {
        let rows = self.rows(filter)?;
        let index = bm25::Index::build(rows.iter().map(|r| r.hit.text.as_str()));
        let scores = index.scores(query, bm25::Params::default());
        let mut hits: Vec<Hit> = scores
            .into_iter()
            .map(|(i, score)| Hit {
                score,
                ..rows[i as usize].hit.clone()
            })
            .collect();
        top_k(&mut hits, k);
        Ok(hits)
    }

    /// SQLite's integrity check plus kiln's own (every vector has the
    /// index's width, every chunk has its document).
    pub fn check(&self) -> Result<()> {
        let ok: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(StoreError::Corrupt(ok));
        }
        if let Some((_, dim)) = self.embedding_model()? {
            let bad: i64 = self.conn.query_row(
                "SELECT COUNT(*) FROM chunks WHERE length(vector) != ?1",
                [(dim * 4) as i64],
                |r| r.get(0),
            )?;
            if bad > 0 {
                return Err(StoreError::Corrupt(format!(
                    "{bad} vectors of the wrong width"
                )));
            }
        }
        let orphans: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM chunks WHERE document NOT IN (SELECT id FROM documents)",
            [],
            |r| r.get(0),
        )?;
        if orphans > 0 {
            return Err(StoreError::Corrupt(format!(
                "{orphans} chunks without a document"
            )));
        }
        Ok(())
    }
}

/// Keeps the `k` best hits, best first (ties: lower chunk id first).
fn top_k(hits: &mut Vec<Hit>, k: usize) {
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    hits.truncate(k);
}
