//! The shared store suite (`suite/`) against PostgreSQL + pgvector.
//!
//! Needs a server: `KILN_TEST_PG=$(scripts/pg.sh start)` (the README's test
//! command does this). Without `KILN_TEST_PG` these tests fail, so that a
//! missing database is never mistaken for a pass; `KILN_TEST_PG=skip` skips
//! them deliberately.
#![cfg(feature = "postgres")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod suite;

use kiln_store::{OpenMode, PgStore, StoreError, VectorStore, VectorStoreWriter};
use suite::Backend;

/// Indexes named `<test>_<name>_<pid>` in the test database; dropped at
/// the end.
struct Pg {
    url: String,
    prefix: String,
}

fn backend(test: &str) -> Option<Pg> {
    let url = std::env::var("KILN_TEST_PG").unwrap_or_default();
    if url == "skip" {
        eprintln!("KILN_TEST_PG=skip: pgvector test {test} skipped");
        return None;
    }
    assert!(
        url.starts_with("postgres"),
        "set KILN_TEST_PG to a PostgreSQL URL (`scripts/pg.sh start` prints one) or to `skip`"
    );
    let pg = Pg {
        url,
        prefix: format!("t{}_{test}", std::process::id()),
    };
    Some(pg)
}

impl Pg {
    fn name(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }
}

impl Backend for Pg {
    fn write(&self, name: &str) -> Result<Box<dyn VectorStoreWriter>, StoreError> {
        Ok(Box::new(PgStore::open(
            &self.url,
            &self.name(name),
            OpenMode::Write,
        )?))
    }
    fn read(&self, name: &str) -> Result<Box<dyn VectorStore>, StoreError> {
        Ok(Box::new(PgStore::open(
            &self.url,
            &self.name(name),
            OpenMode::Read,
        )?))
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let schemas: Vec<String> = c
                .query(
                    "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE $1",
                    &[&format!("kiln_{}%", self.prefix.to_ascii_lowercase())],
                )
                .map(|rows| rows.iter().map(|r| r.get(0)).collect())
                .unwrap_or_default();
            for s in schemas {
                let _ = c.batch_execute(&format!("DROP SCHEMA {s} CASCADE"));
            }
        }
    }
}

#[test]
fn upsert_replaces_and_delete_removes() {
    if let Some(b) = backend("upsert") {
        suite::upsert_replaces_and_delete_removes(&b);
    }
}

#[test]
fn exact_search_equals_brute_force_and_filters_apply() {
    if let Some(b) = backend("search") {
        suite::exact_search_equals_brute_force_and_filters_apply(&b);
    }
}

#[test]
fn bm25_scores_are_the_shared_ones() {
    if let Some(b) = backend("bm25") {
        suite::bm25_scores_are_the_shared_ones(&b);
    }
}

#[test]
fn one_writer_at_a_time_and_readers_beside_it() {
    if let Some(b) = backend("lock") {
        suite::one_writer_at_a_time_and_readers_beside_it(&b);
    }
}

#[test]
fn approximate_search_recall() {
    if let Some(b) = backend("recall") {
        suite::approximate_search_recall(&b, 2000);
    }
}

#[test]
fn read_mode_is_read_only() {
    if let Some(b) = backend("readonly") {
        suite::read_mode_is_read_only(&b);
    }
}
