//! Approximate nearest-neighbour search: an HNSW graph ([`hnsw`]) kept
//! beside the SQLite record in `ann.bin` ([`file`]).
//!
//! The record is the truth; the graph is a cache of it. Each graph node
//! remembers its chunk id, so bringing a stale graph up to date is a
//! set difference: chunks deleted since are marked dead (skipped in
//! results, still walked through), chunks added since are inserted. A
//! missing, damaged or foreign `ann.bin` (checksum, store id, width) is
//! rebuilt from the record, and so is a graph that is mostly dead.

pub mod distance;
mod file;
pub mod hnsw;

use std::collections::{HashMap, HashSet};

use hnsw::{Hnsw, HnswParams};

pub(crate) use file::{decode, encode, write_atomic};

/// When the graph is used and how hard it searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnSettings {
    /// Below this many chunks search is exact (it is fast there and
    /// needs no graph).
    pub min_chunks: usize,
    /// Candidate list size of a query (≥ k); larger is slower and finds
    /// more of the true nearest neighbours.
    pub ef_search: usize,
    /// How the graph is built.
    pub hnsw: HnswParams,
}

impl Default for AnnSettings {
    fn default() -> Self {
        Self {
            min_chunks: 10_000,
            ef_search: 128,
            hnsw: HnswParams::default(),
        }
    }
}

/// Where the graph used by the last approximate search came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnOrigin {
    /// Kept in memory from an earlier search through this handle.
    Memory,
    /// Read from `ann.bin`.
    File,
    /// Built from the record (no usable file: missing, damaged, foreign or
    /// mostly dead).
    Built,
}

/// How the graph was brought up to date before the last approximate
/// search ([`crate::Store::ann_report`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnReport {
    /// Where it came from.
    pub origin: AnnOrigin,
    /// Chunks inserted because the graph lacked them.
    pub added: usize,
    /// Nodes marked dead because their chunks were deleted.
    pub died: usize,
    /// Live nodes after the update.
    pub live: usize,
}

/// The graph plus the chunk id of every node.
#[derive(Debug)]
pub(crate) struct AnnIndex {
    pub(crate) graph: Hnsw,
    /// Chunk id of each node.
    pub(crate) ids: Vec<i64>,
    /// Node whose chunk is gone.
    pub(crate) dead: Vec<bool>,
    /// The store this graph belongs to (`meta.store_id`).
    pub(crate) store_id: String,
    by_id: HashMap<i64, u32>,
    /// `dead` entries that are true (kept so `live` is O(1) per query).
    dead_count: usize,
}

/// What [`AnnIndex::reconcile`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Drift {
    /// Chunk ids in the record but not in the graph.
    pub(crate) missing: Vec<i64>,
    /// Nodes newly marked dead.
    pub(crate) died: usize,
}

impl AnnIndex {
    /// An empty index for `dim`-wide vectors of store `store_id`.
    pub(crate) fn new(dim: usize, params: HnswParams, store_id: &str) -> Self {
        Self::from_parts(
            Hnsw::new(dim, params),
            Vec::new(),
            Vec::new(),
            store_id.into(),
        )
    }

    pub(crate) fn from_parts(
        graph: Hnsw,
        ids: Vec<i64>,
        dead: Vec<bool>,
        store_id: String,
    ) -> Self {
        let by_id = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u32))
            .collect();
        let dead_count = dead.iter().filter(|d| **d).count();
        Self {
            graph,
            ids,
            dead,
            store_id,
            by_id,
            dead_count,
        }
    }

    /// Number of live nodes.
    pub(crate) fn live(&self) -> usize {
        self.ids.len() - self.dead_count
    }

    /// Marks nodes of chunks not in `record` dead and returns the chunk
    /// ids the graph lacks.
    pub(crate) fn reconcile(&mut self, record: &[i64]) -> Drift {
        let present: HashSet<i64> = record.iter().copied().collect();
        let mut died = 0;
        for (node, id) in self.ids.iter().enumerate() {
            if !self.dead[node] && !present.contains(id) {
                self.dead[node] = true;
                died += 1;
                self.dead_count += 1;
            }
        }
        let missing = record
            .iter()
            .copied()
            .filter(|id| self.by_id.get(id).is_none_or(|&n| self.dead[n as usize]))
            .collect();
        Drift { missing, died }
    }

    /// Inserts chunks (id, vector); vectors are normalised here. Vectors
    /// of the wrong width are skipped.
    pub(crate) fn add(&mut self, rows: &[(i64, Vec<f32>)]) {
        let dim = self.graph.dim();
        let mut flat = Vec::with_capacity(rows.len() * dim);
        for (id, v) in rows.iter().filter(|(_, v)| v.len() == dim) {
            flat.extend(distance::normalized(v));
            self.by_id.insert(*id, self.ids.len() as u32);
            self.ids.push(*id);
            self.dead.push(false);
        }
        self.graph.add(&flat);
    }

    /// The `k` live chunks nearest to `query` as `(chunk id, cosine)`.
    pub(crate) fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<(i64, f32)> {
        let q = distance::normalized(query);
        let dead = &self.dead;
        self.graph
            .search(&q, k, ef, &|n| !dead[n as usize])
            .into_iter()
            .map(|(n, s)| (self.ids[n as usize], s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_reports_missing_and_marks_dead_and_file_round_trips() {
        let mut a = AnnIndex::new(2, HnswParams::default(), "s1");
        a.add(&[
            (1, vec![1.0, 0.0]),
            (2, vec![0.0, 1.0]),
            (3, vec![1.0, 1.0]),
        ]);
        let drift = a.reconcile(&[1, 3, 4]);
        assert_eq!(
            drift,
            Drift {
                missing: vec![4],
                died: 1
            }
        );
        assert_eq!(a.live(), 2);
        let hits = a.search(&[0.0, 1.0], 3, 10);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![3, 1]);

        let bytes = encode(&a);
        let b = decode(&bytes).unwrap();
        assert_eq!(b.ids, a.ids);
        assert_eq!(b.dead, a.dead);
        assert_eq!(b.store_id, "s1");
        assert_eq!(b.search(&[0.0, 1.0], 3, 10), hits);
        // Any damaged byte or truncation is refused.
        for i in [0, 9, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_none(), "byte {i}");
        }
        assert!(decode(&bytes[..bytes.len() - 3]).is_none());
        assert!(decode(&[]).is_none());
    }
}
