//! PostgreSQL + pgvector backend: the same [`VectorStore`] for indexes
//! that outgrow one machine.
//!
//! One schema per index (`kiln_<name>`) with `meta`, `documents` and
//! `chunks` tables. Chunks carry their document's source and metadata
//! merged with their own (chunk keys win), so filters are plain SQL on one
//! `jsonb` column and the HNSW index (`vector_cosine_ops`, built when the
//! width is known) serves filtered queries with pgvector's iterative
//! scans (0.8+; older versions fall back to an exact scan when the
//! filter leaves fewer than k of the index's candidates). BM25 ranks the (SQL-filtered) chunk texts with kiln's own
//! scorer, so scores equal the embedded store's. One writer at a time: the
//! writer holds a session advisory lock, which PostgreSQL releases if the
//! process dies.

use std::cell::RefCell;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};
use serde_json::{Map, Value};

use crate::backend::{check_binding, check_width};
use crate::bm25;
use crate::types::top_k;
use crate::{
    Chunk, Document, Filter, Hit, OpenMode, Result, StoreError, VectorStore, VectorStoreWriter,
};

/// An index in a PostgreSQL database.
pub struct PgStore {
    client: RefCell<Client>,
    schema: String,
    writer: bool,
    /// HNSW candidate list size per query (pgvector's `hnsw.ef_search`).
    ef_search: usize,
    /// pgvector ≥ 0.8: filtered HNSW scans continue until k rows pass.
    iterative_scans: bool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .field("writer", &self.writer)
            .finish()
    }
}

fn pg(e: postgres::Error) -> StoreError {
    StoreError::Backend(match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}", db.message()),
        None => format!("PostgreSQL: {e}"),
    })
}

/// `[1,2,3]`: pgvector's text form (f32 `Display` round-trips exactly).
fn vector_text(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

fn parse_vector(text: &str) -> Vec<f32> {
    text.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect()
}

/// The schema of index `name` (letters, digits, `_` and `-`).
fn schema_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(StoreError::Backend(format!(
            "index name {name:?}: use 1-48 letters, digits, '_' or '-'"
        )));
    }
    Ok(format!(
        "kiln_{}",
        name.to_ascii_lowercase().replace('-', "_")
    ))
}

/// A SQL condition with its parameters (numbered from `first`).
struct Sql {
    text: String,
    params: Vec<Box<dyn ToSql + Sync>>,
}

impl Sql {
    fn param(&mut self, p: impl ToSql + Sync + 'static) -> String {
        self.params.push(Box::new(p));
        format!("${}", self.params.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref()).collect()
    }
}

/// `filter` as a condition on `c.metadata`.
fn filter_sql(filter: &Filter, sql: &mut Sql) -> String {
    match filter {
        Filter::Eq(k, v) => {
            let (k, v) = (sql.param(k.clone()), sql.param(v.to_string()));
            format!("(c.metadata -> {k}::text) = {v}::text::jsonb")
        }
        Filter::In(k, vs) if vs.is_empty() => {
            let _ = k;
            "FALSE".into()
        }
        Filter::In(k, vs) => {
            let parts: Vec<String> = vs
                .iter()
                .map(|v| {
                    let (k, v) = (sql.param(k.clone()), sql.param(v.to_string()));
                    format!("(c.metadata -> {k}::text) = {v}::text::jsonb")
                })
                .collect();
            format!("({})", parts.join(" OR "))
        }
        Filter::Range(k, lo, hi) => {
            let key = sql.param(k.clone());
            let num = format!(
                "(CASE WHEN jsonb_typeof(c.metadata -> {key}::text) = 'number' \
                 THEN (c.metadata ->> {key}::text)::float8 END)"
            );
            let mut parts = vec![format!("{num} IS NOT NULL")];
            if let Some(lo) = lo {
                parts.push(format!("{num} >= {}::float8", sql.param(*lo)));
            }
            if let Some(hi) = hi {
                parts.push(format!("{num} <= {}::float8", sql.param(*hi)));
            }
            format!("({})", parts.join(" AND "))
        }
        Filter::And(all) if all.is_empty() => "TRUE".into(),
        Filter::And(all) => {
            let parts: Vec<String> = all.iter().map(|f| filter_sql(f, sql)).collect();
            format!("({})", parts.join(" AND "))
        }
    }
}

const HIT_COLUMNS: &str =
    "c.id, c.document, c.source, c.text, c.page, c.heading, c.start_, c.end_, c.embedding::text";

fn hit(row: &Row, score: f32) -> Hit {
    Hit {
        chunk_id: row.get(0),
        document: row.get(1),
        source: row.get(2),
        text: row.get(3),
        page: row.get::<_, Option<i32>>(4).map(|p| p as u32),
        heading: row.get(5),
        start: row.get::<_, i64>(6) as usize,
        end: row.get::<_, i64>(7) as usize,
        score,
        vector: row
            .get::<_, Option<String>>(8)
            .map(|t| parse_vector(&t))
            .unwrap_or_default(),
    }
}

impl PgStore {
    /// Opens index `name` in the database at `url`
    /// (`postgres://user@host:port/db`). `Write` creates it if missing and
    /// takes the writer lock.
    pub fn open(url: &str, name: &str, mode: OpenMode) -> Result<Self> {
        let schema = schema_name(name)?;
        let mut client = Client::connect(url, NoTls).map_err(pg)?;
        let exists = client
            .query_opt(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
                &[&schema],
            )
            .map_err(pg)?
            .is_some();
        if mode == OpenMode::Read && !exists {
            return Err(StoreError::Missing(
                format!("PostgreSQL index {name:?}").into(),
            ));
        }
        if mode == OpenMode::Write {
            let locked: bool = client
                .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&schema])
                .map_err(pg)?
                .get(0);
            if !locked {
                return Err(StoreError::Locked(
                    format!("PostgreSQL index {name:?}").into(),
                ));
            }
            Self::create(&mut client, &schema)?;
        }
        let version: Option<String> = client
            .query_opt(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
                &[],
            )
            .map_err(pg)?
            .map(|r| r.get(0));
        let iterative_scans = version.is_some_and(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (0, 8)
        });
        Ok(Self {
            client: RefCell::new(client),
            schema,
            writer: mode == OpenMode::Write,
            ef_search: 128,
            iterative_scans,
        })
    }

    /// Sets pgvector's HNSW candidate list size for queries (≤ 1000).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.ef_search = ef.clamp(1, 1000);
    }

    fn create(client: &mut Client, s: &str) -> Result<()> {
        let has_vector = |c: &mut Client| -> Result<bool> {
            Ok(
                c.query_opt("SELECT 1 FROM pg_extension WHERE extname = 'vector'", &[])
                    .map_err(pg)?
                    .is_some(),
            )
        };
        if !has_vector(client)? {
            // Two first writers may race here; the loser finds it made.
            if let Err(e) = client.batch_execute("CREATE EXTENSION IF NOT EXISTS vector") {
                if !has_vector(client)? {
                    return Err(pg(e));
                }
            }
        }
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s};
                 CREATE TABLE IF NOT EXISTS {s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS {s}.documents (
                     id TEXT PRIMARY KEY, source TEXT NOT NULL, content_hash TEXT NOT NULL,
                     metadata JSONB NOT NULL);
                 CREATE TABLE IF NOT EXISTS {s}.chunks (
                     id BIGSERIAL PRIMARY KEY,
                     document TEXT NOT NULL REFERENCES {s}.documents(id) ON DELETE CASCADE,
                     ord INTEGER NOT NULL, source TEXT NOT NULL, text TEXT NOT NULL, page INTEGER,
                     start_ BIGINT NOT NULL, end_ BIGINT NOT NULL, heading TEXT,
                     metadata JSONB NOT NULL, embedding vector);
                 CREATE INDEX IF NOT EXISTS chunks_document ON {s}.chunks(document);"
            ))
            .map_err(pg)
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        exact: bool,
    ) -> Result<Vec<Hit>> {
        check_width(self.embedding_model()?.as_ref(), query.len())?;
        let mut sql = Sql {
            text: String::new(),
            params: Vec::new(),
        };
        let q = sql.param(vector_text(query));
        let cond = filter.map_or("TRUE".to_string(), |f| filter_sql(f, &mut sql));
        let limit = sql.param(k as i64);
        // `+ 0` hides the distance from the planner: no index, every row.
        let order = if exact {
            format!("(c.embedding <=> {q}::text::vector) + 0, c.id")
        } else {
            format!("c.embedding <=> {q}::text::vector")
        };
        sql.text = format!(
            "SELECT {HIT_COLUMNS}, 1 - (c.embedding <=> {q}::text::vector)
             FROM {s}.chunks c WHERE {cond} ORDER BY {order} LIMIT {limit}",
            s = self.schema
        );
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(pg)?;
        let mut settings = format!(
            "SET LOCAL hnsw.ef_search = {};",
            self.ef_search.max(k.min(1000))
        );
        if self.iterative_scans {
            settings.push_str("SET LOCAL hnsw.iterative_scan = relaxed_order;");
        }
        tx.batch_execute(&settings).map_err(pg)?;
        let rows = tx.query(&sql.text, &sql.refs()).map_err(pg)?;
        tx.commit().map_err(pg)?;
        let mut hits: Vec<Hit> = rows
            .iter()
            .map(|r| hit(r, r.get::<_, f64>(9) as f32))
            .collect();
        // Relaxed order may return a near-miss out of place.
        top_k(&mut hits, k);
        // Without iterative scans (pgvector < 0.8) a filter can leave fewer
        // than k of the index's candidates: fall back to the exact scan.
        if !exact && filter.is_some() && hits.len() < k {
            drop(client);
            return self.search(query, k, filter, true);
        }
        Ok(hits)
    }

    fn count(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<i64> {
        Ok(self
            .client
            .borrow_mut()
            .query_one(sql, params)
            .map_err(pg)?
            .get(0))
    }
}

impl VectorStore for PgStore {
    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .client
            .borrow_mut()
            .query_opt(
                &format!("SELECT value FROM {}.meta WHERE key = $1", self.schema),
                &[&key],
            )
            .map_err(pg)?
            .map(|r| r.get(0)))
    }

    fn embedding_model(&self) -> Result<Option<(String, usize)>> {
        let name = self.meta("embedding_model")?;
        let dim = self.meta("dimension")?.and_then(|d| d.parse().ok());
        Ok(name.zip(dim))
    }

    fn content_hash(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .client
            .borrow_mut()
            .query_opt(
                &format!(
                    "SELECT content_hash FROM {}.documents WHERE id = $1",
                    self.schema
                ),
                &[&id],
            )
            .map_err(pg)?
            .map(|r| r.get(0)))
    }

    fn documents(&self) -> Result<Vec<Document>> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT id, source, content_hash, metadata::text FROM {}.documents ORDER BY id",
                    self.schema
                ),
                &[],
            )
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| Document {
                id: r.get(0),
                source: r.get(1),
                content_hash: r.get(2),
                metadata: serde_json::from_str(r.get::<_, &str>(3)).unwrap_or_default(),
            })
            .collect())
    }

    fn chunk_count(&self) -> Result<usize> {
        Ok(self.count(&format!("SELECT count(*) FROM {}.chunks", self.schema), &[])? as usize)
    }

    fn vector_search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>> {
        self.search(query, k, filter, false)
    }

    fn exact_vector_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>> {
        self.search(query, k, filter, true)
    }

    fn bm25_search(&self, query: &str, k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>> {
        let mut sql = Sql {
            text: String::new(),
            params: Vec::new(),
        };
        let cond = filter.map_or("TRUE".to_string(), |f| filter_sql(f, &mut sql));
        sql.text = format!(
            "SELECT {HIT_COLUMNS} FROM {}.chunks c WHERE {cond} ORDER BY c.id",
            self.schema
        );
        let rows = self
            .client
            .borrow_mut()
            .query(&sql.text, &sql.refs())
            .map_err(pg)?;
        Ok(bm25::rank(
            rows.iter().map(|r| hit(r, 0.0)).collect(),
            query,
            k,
        ))
    }

    fn check(&self) -> Result<()> {
        if let Some((_, dim)) = self.embedding_model()? {
            let bad = self.count(
                &format!(
                    "SELECT count(*) FROM {}.chunks WHERE embedding IS NULL OR vector_dims(embedding) <> $1",
                    self.schema
                ),
                &[&(dim as i32)],
            )?;
            if bad > 0 {
                return Err(StoreError::Corrupt(format!(
                    "{bad} vectors of the wrong width"
                )));
            }
        }
        Ok(())
    }
}

impl VectorStoreWriter for PgStore {
    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.client
            .get_mut()
            .execute(
                &format!(
                    "INSERT INTO {}.meta (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    self.schema
                ),
                &[&key, &value],
            )
            .map_err(pg)?;
        Ok(())
    }

    fn bind_model(&mut self, name: &str, dimension: usize) -> Result<()> {
        if !check_binding(self.embedding_model()?, name, dimension)? {
            return Ok(());
        }
        let s = self.schema.clone();
        let mut tx = self.client.get_mut().transaction().map_err(pg)?;
        tx.batch_execute(&format!(
            "ALTER TABLE {s}.chunks ALTER COLUMN embedding TYPE vector({dimension});
             CREATE INDEX IF NOT EXISTS chunks_hnsw ON {s}.chunks
                 USING hnsw (embedding vector_cosine_ops);
             INSERT INTO {s}.meta (key, value) VALUES
                 ('embedding_model', '{}'), ('dimension', '{dimension}')
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;",
            name.replace('\'', "''")
        ))
        .map_err(pg)?;
        tx.commit().map_err(pg)
    }

    fn upsert(&mut self, doc: &Document, chunks: &[Chunk]) -> Result<()> {
        let stored = self.embedding_model()?;
        for c in chunks {
            check_width(stored.as_ref(), c.vector.len())?;
        }
        let s = self.schema.clone();
        let mut tx = self.client.get_mut().transaction().map_err(pg)?;
        tx.execute(
            &format!("DELETE FROM {s}.chunks WHERE document = $1"),
            &[&doc.id],
        )
        .map_err(pg)?;
        tx.execute(
            &format!(
                "INSERT INTO {s}.documents (id, source, content_hash, metadata)
                 VALUES ($1, $2, $3, $4::text::jsonb)
                 ON CONFLICT (id) DO UPDATE SET source = EXCLUDED.source,
                     content_hash = EXCLUDED.content_hash, metadata = EXCLUDED.metadata"
            ),
            &[
                &doc.id,
                &doc.source,
                &doc.content_hash,
                &Value::Object(doc.metadata.clone()).to_string(),
            ],
        )
        .map_err(pg)?;
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {s}.chunks
                 (document, ord, source, text, page, start_, end_, heading, metadata, embedding)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10::text::vector)"
            ))
            .map_err(pg)?;
        for (i, c) in chunks.iter().enumerate() {
            let mut merged: Map<String, Value> = doc.metadata.clone();
            merged.extend(c.metadata.clone());
            tx.execute(
                &insert,
                &[
                    &doc.id,
                    &(i as i32),
                    &doc.source,
                    &c.text,
                    &c.page.map(|p| p as i32),
                    &(c.start as i64),
                    &(c.end as i64),
                    &c.heading,
                    &Value::Object(merged).to_string(),
                    &vector_text(&c.vector),
                ],
            )
            .map_err(pg)?;
        }
        tx.commit().map_err(pg)
    }

    fn delete(&mut self, id: &str) -> Result<bool> {
        let n = self
            .client
            .get_mut()
            .execute(
                &format!("DELETE FROM {}.documents WHERE id = $1", self.schema),
                &[&id],
            )
            .map_err(pg)?;
        Ok(n > 0)
    }

    fn finish(&mut self) -> Result<usize> {
        // pgvector maintains its HNSW index on every insert.
        self.chunk_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_parameterised_sql() {
        let f = Filter::And(vec![
            Filter::parse("kind=a|b").unwrap(),
            Filter::parse("year>=2000").unwrap(),
        ]);
        let mut sql = Sql {
            text: String::new(),
            params: Vec::new(),
        };
        let text = filter_sql(&f, &mut sql);
        assert_eq!(sql.params.len(), 6);
        assert!(text.starts_with("(((c.metadata -> $1::text) = $2::text::jsonb OR"));
        assert!(text.contains(">= $6::float8"));
        assert!(!text.contains("2000"), "values are parameters: {text}");
    }

    #[test]
    fn names_and_vectors() {
        assert_eq!(schema_name("My-Docs").unwrap(), "kiln_my_docs");
        assert!(schema_name("a;drop").is_err());
        assert!(schema_name("").is_err());
        let v = [0.1f32, -2.5e-8, 3.0];
        assert_eq!(parse_vector(&vector_text(&v)), v);
    }
}
