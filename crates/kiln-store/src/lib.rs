//! # kiln-store
//!
//! One directory per index: `store.sqlite` (the system of record: documents,
//! chunks with their vectors and metadata, in WAL mode with full
//! synchronisation, so an acknowledged write survives a crash) and
//! `write.lock` (an OS file lock: one writer at a time across processes;
//! a second writer gets [`StoreError::Locked`], readers never block).
//!
//! Search: cosine similarity over the stored vectors — exact for small
//! indexes, through an HNSW graph ([`ann`], cached in `ann.bin` and
//! repaired from the record when it is behind or damaged) for large ones —
//! and BM25 over the chunk texts ([`bm25`]), both with metadata filters. No ML here:
//! vectors come from the caller.
#![warn(missing_docs)]

pub mod ann;
mod backend;
pub mod bm25;
mod error;
mod filter;
pub mod porter;
#[cfg(feature = "postgres")]
pub mod postgres;
mod store;
mod types;

pub use ann::{AnnOrigin, AnnReport, AnnSettings};
pub use backend::{VectorStore, VectorStoreWriter};
pub use error::{Result, StoreError};
pub use filter::Filter;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use store::{OpenMode, Store};
pub use types::{Chunk, Document, Hit};
