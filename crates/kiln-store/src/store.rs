//! The SQLite-backed store.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value};

use crate::ann::{self, AnnIndex, AnnOrigin, AnnReport, AnnSettings};
use crate::backend::{check_binding, check_width};
use crate::bm25;
use crate::types::top_k;
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
    ann_settings: AnnSettings,
    /// The HNSW graph, loaded (or built) on the first approximate search.
    ann: RefCell<Option<AnnIndex>>,
    /// The change key ([`Store::change_key`]) the graph was reconciled at.
    ann_key: Cell<Option<(i64, u64)>>,
    ann_report: Cell<Option<AnnReport>>,
    /// Commits made through this handle (SQLite's `data_version` counts
    /// only other connections' commits).
    generation: Cell<u64>,
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

/// The columns [`Store::rows_where`] reads, joined with the document.
const ROW_SELECT: &str =
    "SELECT c.id, c.document, d.source, c.text, c.page, c.heading, c.start, c.end_,
        c.metadata, d.metadata, c.vector
 FROM chunks c JOIN documents d ON d.id = c.document";

/// A random-enough id for a new store (time, process, address entropy):
/// an `ann.bin` copied from another store is recognised as foreign.
fn new_store_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let local = 0u8;
    let addr = &local as *const u8 as usize;
    format!("{nanos:x}-{:x}-{addr:x}", std::process::id())
}

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
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?1)",
                    [new_store_id()],
                )?;
                (conn, Some(lock))
            }
        };
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            conn,
            _lock: lock,
            ann_settings: AnnSettings::default(),
            ann: RefCell::new(None),
            ann_key: Cell::new(None),
            ann_report: Cell::new(None),
            generation: Cell::new(0),
        })
    }

    /// When approximate search is used and how it is tuned.
    pub fn set_ann_settings(&mut self, settings: AnnSettings) {
        self.ann_settings = settings;
    }

    /// How the HNSW graph was last brought up to date (`None` before the
    /// first approximate search).
    pub fn ann_report(&self) -> Option<AnnReport> {
        self.ann_report.get()
    }

    /// The approximate-search settings in force.
    pub fn ann_settings(&self) -> AnnSettings {
        self.ann_settings
    }

    /// Changes whenever anything commits to the store, from this handle
    /// or another process.
    fn change_key(&self) -> Result<(i64, u64)> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok((version, self.generation.get()))
    }

    fn note_write(&self) {
        self.generation.set(self.generation.get() + 1);
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
        if check_binding(self.embedding_model()?, name, dimension)? {
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('embedding_model', ?1), ('dimension', ?2)",
                params![name, dimension.to_string()],
            )?;
        }
        Ok(())
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
        let stored = self.embedding_model()?;
        for c in chunks {
            check_width(stored.as_ref(), c.vector.len())?;
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
        self.note_write();
        Ok(())
    }

    /// Removes document `id` and its chunks; `false` when it was not there.
    pub fn delete(&mut self, id: &str) -> Result<bool> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM chunks WHERE document = ?1", [id])?;
        let n = tx.execute("DELETE FROM documents WHERE id = ?1", [id])?;
        tx.commit()?;
        self.note_write();
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

    /// Reads the chunks selected by SQL `clause` (after the join) with
    /// `args`, keeping those passing `filter`.
    fn rows_where(
        &self,
        clause: &str,
        args: impl rusqlite::Params,
        filter: Option<&Filter>,
    ) -> Result<Vec<Row>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{ROW_SELECT} {clause}"))?;
        let rows = stmt.query_map(args, |r| {
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

    /// Reads every chunk passing `filter`.
    fn rows(&self, filter: Option<&Filter>) -> Result<Vec<Row>> {
        self.rows_where("ORDER BY c.id", [], filter)
    }

    fn check_query_width(&self, query: &[f32]) -> Result<()> {
        check_width(self.embedding_model()?.as_ref(), query.len())
    }

    /// The `k` chunks most similar to `query` (cosine). Exact below
    /// [`AnnSettings::min_chunks`] chunks, through the HNSW graph above;
    /// with a filter the graph's candidates are filtered, and when fewer than
    /// `k` hits remain, the search falls back to exact search.
    pub fn vector_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>> {
        self.check_query_width(query)?;
        if k == 0 || self.chunk_count()? < self.ann_settings.min_chunks {
            return self.exact_vector_search(query, k, filter);
        }
        self.ensure_ann()?;
        let ann = self.ann.borrow();
        let Some(index) = ann.as_ref() else {
            return self.exact_vector_search(query, k, filter);
        };
        let pool = if filter.is_some() {
            (k * 10).max(100)
        } else {
            k
        };
        let found = index.search(query, pool, self.ann_settings.ef_search.max(pool));
        let mut hits = Vec::with_capacity(k);
        for (id, score) in found {
            if let Some(row) = self.rows_where("WHERE c.id = ?1", [id], filter)?.pop() {
                hits.push(Hit { score, ..row.hit });
                if hits.len() == k {
                    return Ok(hits);
                }
            }
        }
        // Too few hits: a filter rejected most candidates, or the graph's
        // reachable part was smaller than k. Exact search is always right.
        self.exact_vector_search(query, k, filter)
    }

    /// Loads, reconciles or builds the HNSW graph so that it holds exactly
    /// the stored chunks.
    fn ensure_ann(&self) -> Result<()> {
        let key = self.change_key()?;
        if let (Some(index), true) = (self.ann.borrow().as_ref(), self.ann_key.get() == Some(key)) {
            self.ann_report.set(Some(AnnReport {
                origin: AnnOrigin::Memory,
                added: 0,
                died: 0,
                live: index.live(),
            }));
            return Ok(());
        }
        let Some((_, dim)) = self.embedding_model()? else {
            return Ok(());
        };
        let store_id = self.meta("store_id")?.unwrap_or_default();
        let fits = |a: &AnnIndex| a.graph.dim() == dim && a.store_id == store_id;
        let cached = self.ann.borrow_mut().take().filter(|a| fits(a));
        let (mut index, mut origin) = match cached {
            Some(a) => (a, AnnOrigin::Memory),
            None => match std::fs::read(self.dir.join("ann.bin"))
                .ok()
                .and_then(|bytes| ann::decode(&bytes))
                .filter(|a| fits(a))
            {
                Some(a) => (a, AnnOrigin::File),
                None => (
                    AnnIndex::new(dim, self.ann_settings.hnsw, &store_id),
                    AnnOrigin::Built,
                ),
            },
        };
        let record: Vec<i64> = {
            let mut stmt = self.conn.prepare("SELECT id FROM chunks ORDER BY id")?;
            let ids = stmt.query_map([], |r| r.get(0))?;
            ids.collect::<std::result::Result<_, _>>()?
        };
        let mut drift = index.reconcile(&record);
        // Mostly dead: walking the corpses costs more than a rebuild.
        if !index.graph.is_empty() && index.live() * 10 < index.graph.len() * 7 {
            index = AnnIndex::new(dim, self.ann_settings.hnsw, &store_id);
            origin = AnnOrigin::Built;
            drift = index.reconcile(&record);
        }
        let rows = self.vectors_of(&drift.missing, record.len())?;
        index.add(&rows);
        self.ann_report.set(Some(AnnReport {
            origin,
            added: rows.len(),
            died: drift.died,
            live: index.live(),
        }));
        *self.ann.borrow_mut() = Some(index);
        self.ann_key.set(Some(key));
        Ok(())
    }

    /// `(id, vector)` of the given chunks (`total`: how many chunks exist,
    /// to choose between lookups and one scan).
    fn vectors_of(&self, ids: &[i64], total: usize) -> Result<Vec<(i64, Vec<f32>)>> {
        let mut out = Vec::with_capacity(ids.len());
        if ids.len() * 4 > total {
            let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
            let mut stmt = self
                .conn
                .prepare("SELECT id, vector FROM chunks ORDER BY id")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
            for row in rows {
                let (id, blob) = row?;
                if wanted.contains(&id) {
                    out.push((id, bytes_vector(&blob)));
                }
            }
        } else {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT vector FROM chunks WHERE id = ?1")?;
            for &id in ids {
                if let Some(blob) = stmt
                    .query_row([id], |r| r.get::<_, Vec<u8>>(0))
                    .optional()?
                {
                    out.push((id, bytes_vector(&blob)));
                }
            }
        }
        Ok(out)
    }

    /// Brings the HNSW graph up to date and writes it to `ann.bin`
    /// (atomically), so that later readers load it instead of building it.
    /// Does nothing below [`AnnSettings::min_chunks`]. Returns the number
    /// of live nodes written.
    pub fn save_ann(&self) -> Result<usize> {
        if self._lock.is_none() || self.chunk_count()? < self.ann_settings.min_chunks {
            return Ok(0);
        }
        self.ensure_ann()?;
        let ann = self.ann.borrow();
        let Some(index) = ann.as_ref() else {
            return Ok(0);
        };
        let path = self.dir.join("ann.bin");
        ann::write_atomic(&path, &ann::encode(index)).map_err(io(&path))?;
        Ok(index.live())
    }

    /// The `k` chunks most similar to `query` (cosine), by comparing it
    /// with every stored vector.
    pub fn exact_vector_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>> {
        self.check_query_width(query)?;
        let qn = ann::distance::dot(query, query).sqrt().max(1e-12);
        let mut hits: Vec<Hit> = self
            .rows(filter)?
            .into_iter()
            .map(|row| {
                let dot = ann::distance::dot(&row.hit.vector, query);
                let n = ann::distance::dot(&row.hit.vector, &row.hit.vector)
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
        Ok(bm25::rank(
            rows.into_iter().map(|r| r.hit).collect(),
            query,
            k,
        ))
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

impl crate::VectorStore for Store {
    fn meta(&self, key: &str) -> Result<Option<String>> {
        Store::meta(self, key)
    }
    fn embedding_model(&self) -> Result<Option<(String, usize)>> {
        Store::embedding_model(self)
    }
    fn content_hash(&self, id: &str) -> Result<Option<String>> {
        Store::content_hash(self, id)
    }
    fn documents(&self) -> Result<Vec<Document>> {
        Store::documents(self)
    }
    fn chunk_count(&self) -> Result<usize> {
        Store::chunk_count(self)
    }
    fn vector_search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>> {
        Store::vector_search(self, query, k, filter)
    }
    fn exact_vector_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>> {
        Store::exact_vector_search(self, query, k, filter)
    }
    fn bm25_search(&self, query: &str, k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>> {
        Store::bm25_search(self, query, k, filter)
    }
    fn check(&self) -> Result<()> {
        Store::check(self)
    }
}

impl crate::VectorStoreWriter for Store {
    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        Store::set_meta(self, key, value)
    }
    fn bind_model(&mut self, name: &str, dimension: usize) -> Result<()> {
        Store::bind_model(self, name, dimension)
    }
    fn upsert(&mut self, doc: &Document, chunks: &[Chunk]) -> Result<()> {
        Store::upsert(self, doc, chunks)
    }
    fn delete(&mut self, id: &str) -> Result<bool> {
        Store::delete(self, id)
    }
    fn finish(&mut self) -> Result<usize> {
        self.save_ann()
    }
}
