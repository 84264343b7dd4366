//! A hierarchical navigable small-world graph (Malkov & Yashunin, 2016)
//! over unit vectors, scored by inner product (= cosine similarity).
//!
//! Construction inserts nodes in parallel (rayon): every node's neighbour
//! list per level sits behind its own lock, so concurrent inserts only
//! contend when they touch the same node, as in hnswlib. Level 0, where a
//! search spends nearly all its steps, is one flat array with a fixed slot
//! per node (count, then up to 2M ids) so that a query reads a node's
//! neighbours with one memory access and no lock, and prefetches the
//! vectors it is about to score. Neighbours are
//! chosen with the paper's heuristic (keep a candidate only if it is closer
//! to the new node than to every neighbour kept so far), which keeps the
//! graph navigable on clustered data.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, Ordering as MemOrder};
use std::sync::{Mutex, MutexGuard};

use rayon::prelude::*;

use super::distance::{dot, dot_f16, prefetch};

/// Graph construction settings (hnswlib's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Neighbours per node on the upper levels (twice as many on level 0).
    pub m: usize,
    /// Candidate list size while inserting: larger is slower to build and
    /// gives a better graph.
    pub ef_construction: usize,
    /// Seed of the level draws.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            seed: 100,
        }
    }
}

/// A distance (1 − cosine) that sorts as a total order.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Dist(f32);

impl Eq for Dist {}
impl PartialOrd for Dist {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Dist {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

type Scored = (Dist, u32);

/// A graph taken apart for storage ([`Hnsw::parts`], [`Hnsw::from_parts`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphParts {
    /// Unit vectors, node after node.
    pub vectors: Vec<f32>,
    /// Top level of each node.
    pub levels: Vec<u8>,
    /// `links[node][level]`: neighbour ids.
    pub links: Vec<Vec<Vec<u32>>>,
    /// Entry node and top level (`None` when empty).
    pub entry: Option<(u32, u8)>,
}

/// The graph. Nodes are numbered `0..len()` in insertion order.
#[derive(Debug)]
pub struct Hnsw {
    dim: usize,
    params: HnswParams,
    /// Unit vectors, `len() × dim`.
    vectors: Vec<f32>,
    /// The same vectors rounded to f16: a query walks the graph scoring
    /// these (half the bytes fetched from random addresses, where search
    /// time goes) and re-scores its best candidates on `vectors`.
    halves: Vec<half::f16>,
    /// Top level of each node.
    levels: Vec<u8>,
    /// Level-0 neighbour lists, [`Self::stride0`] words per node: the
    /// count, then the ids. Written only under the node's `locks0` entry;
    /// atomics so that a query (which can run only while no insert does:
    /// [`Self::add`] takes `&mut self`) reads them without the lock.
    links0: Vec<AtomicU32>,
    /// Guards each node's level-0 list while the graph is being built.
    locks0: Vec<Mutex<()>>,
    /// `upper[node][level - 1]`: neighbour ids on levels 1 and up.
    upper: Vec<Box<[Mutex<Vec<u32>>]>>,
    /// Entry node and the graph's top level; `None` while empty.
    entry: Mutex<Option<(u32, u8)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a neighbour list cannot leave it invalid (every
    // write replaces or pushes whole ids), so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// Per-thread visited marks: `marks[node] == epoch` means visited.
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

/// Runs `f` with a fresh visited-set for `n` nodes.
fn with_visited<R>(n: usize, f: impl FnOnce(&mut dyn FnMut(u32) -> bool) -> R) -> R {
    VISITED.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (marks, epoch) = &mut *guard;
        if marks.len() < n {
            marks.resize(n, 0);
        }
        *epoch = epoch.wrapping_add(1);
        if *epoch == 0 {
            marks.iter_mut().for_each(|m| *m = 0);
            *epoch = 1;
        }
        let e = *epoch;
        let mut first_visit = |node: u32| {
            let slot = &mut marks[node as usize];
            if *slot == e {
                false
            } else {
                *slot = e;
                true
            }
        };
        f(&mut first_visit)
    })
}

/// `v` rounded to f16.
fn to_halves(v: &[f32]) -> Vec<half::f16> {
    v.iter().map(|&x| half::f16::from_f32(x)).collect()
}

/// splitmix64: the level draws.
fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Hnsw {
    /// An empty graph of `dim`-dimensional vectors.
    pub fn new(dim: usize, params: HnswParams) -> Self {
        Self {
            dim,
            params: HnswParams {
                m: params.m.max(2),
                ef_construction: params.ef_construction.max(1),
                ..params
            },
            vectors: Vec::new(),
            halves: Vec::new(),
            levels: Vec::new(),
            links0: Vec::new(),
            locks0: Vec::new(),
            upper: Vec::new(),
            entry: Mutex::new(None),
        }
    }

    /// Words per node in `links0`: the count and room for `2M` ids.
    fn stride0(&self) -> usize {
        1 + 2 * self.params.m
    }

    /// Appends the empty neighbour lists of a node whose top level is
    /// `level`.
    fn push_node_links(&mut self, level: u8) {
        let stride = self.stride0();
        self.links0.extend((0..stride).map(|_| AtomicU32::new(0)));
        self.locks0.push(Mutex::new(()));
        self.upper
            .push((0..level).map(|_| Mutex::new(Vec::new())).collect());
    }

    /// Copies `node`'s neighbours at `level` into `out` (cleared first).
    /// `locked`: take the node's lock (needed while inserts run).
    fn read_links(&self, node: u32, level: usize, locked: bool, out: &mut Vec<u32>) {
        out.clear();
        if level > 0 {
            out.extend_from_slice(&lock(&self.upper[node as usize][level - 1]));
            return;
        }
        let _guard = locked.then(|| lock(&self.locks0[node as usize]));
        let slot = self.slot0(node);
        let count = (slot[0].load(MemOrder::Relaxed) as usize).min(slot.len() - 1);
        out.extend(slot[1..=count].iter().map(|a| a.load(MemOrder::Relaxed)));
    }

    /// `node`'s level-0 slot: the count word, then room for `2M` ids.
    fn slot0(&self, node: u32) -> &[AtomicU32] {
        &self.links0[node as usize * self.stride0()..][..self.stride0()]
    }

    /// Runs `f` on `node`'s neighbour list at `level` under the node's
    /// lock, storing what it leaves (at most the level's capacity).
    fn update_links<R>(&self, node: u32, level: usize, f: impl FnOnce(&mut Vec<u32>) -> R) -> R {
        if level > 0 {
            return f(&mut lock(&self.upper[node as usize][level - 1]));
        }
        let _guard = lock(&self.locks0[node as usize]);
        let mut list = Vec::new();
        // Unlocked read: this thread already holds the node's lock.
        self.read_links(node, 0, false, &mut list);
        let result = f(&mut list);
        let slot = self.slot0(node);
        list.truncate(slot.len() - 1);
        for (a, &id) in slot[1..].iter().zip(&list) {
            a.store(id, MemOrder::Relaxed);
        }
        slot[0].store(list.len() as u32, MemOrder::Relaxed);
        result
    }

    /// Rebuilds a graph from its parts (see [`Self::parts`]); `None` when
    /// they do not fit together.
    pub fn from_parts(dim: usize, params: HnswParams, parts: GraphParts) -> Option<Self> {
        let GraphParts {
            vectors,
            levels,
            links,
            entry,
        } = parts;
        let n = levels.len();
        let fits = dim > 0
            && vectors.len() == n * dim
            && links.len() == n
            && links
                .iter()
                .zip(&levels)
                .all(|(l, &lev)| l.len() == lev as usize + 1 && l[0].len() <= 2 * params.m)
            && links
                .iter()
                .flatten()
                .flatten()
                .all(|&id| (id as usize) < n)
            && match entry {
                None => n == 0,
                Some((e, top)) => (e as usize) < n && levels[e as usize] == top,
            };
        if !fits {
            return None;
        }
        let halves = to_halves(&vectors);
        let mut graph = Self {
            dim,
            params,
            vectors,
            halves,
            levels: Vec::with_capacity(n),
            links0: Vec::new(),
            locks0: Vec::new(),
            upper: Vec::new(),
            entry: Mutex::new(entry),
        };
        for (node, (per_level, level)) in links.into_iter().zip(levels).enumerate() {
            graph.levels.push(level);
            graph.push_node_links(level);
            for (lev, list) in per_level.into_iter().enumerate() {
                graph.update_links(node as u32, lev, |l| *l = list);
            }
        }
        Some(graph)
    }

    /// Everything needed to rebuild the graph: vectors, levels, links and
    /// the entry point.
    pub fn parts(&self) -> GraphParts {
        GraphParts {
            vectors: self.vectors.clone(),
            levels: self.levels.clone(),
            links: (0..self.len() as u32)
                .map(|node| {
                    (0..=self.levels[node as usize] as usize)
                        .map(|lev| {
                            let mut list = Vec::new();
                            self.read_links(node, lev, true, &mut list);
                            list
                        })
                        .collect()
                })
                .collect(),
            entry: *lock(&self.entry),
        }
    }

    /// Vector width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Construction settings.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// No nodes yet.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    fn vector(&self, node: u32) -> &[f32] {
        let i = node as usize * self.dim;
        &self.vectors[i..i + self.dim]
    }

    fn dist(&self, q: &[f32], node: u32) -> Dist {
        Dist(1.0 - dot(q, self.vector(node)))
    }

    fn half_vector(&self, node: u32) -> &[half::f16] {
        let i = node as usize * self.dim;
        &self.halves[i..i + self.dim]
    }

    /// [`Self::dist`] on the f16 copy when `halves`.
    fn dist_by(&self, q: &[f32], node: u32, halves: bool) -> Dist {
        if halves {
            Dist(1.0 - dot_f16(q, self.half_vector(node)))
        } else {
            self.dist(q, node)
        }
    }

    /// Starts loading the vector [`Self::dist_by`] will read for `node`.
    fn prefetch_node(&self, node: u32, halves: bool) {
        if halves {
            prefetch(self.half_vector(node));
        } else {
            prefetch(self.vector(node));
        }
    }

    fn cap(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.params.m
        } else {
            self.params.m
        }
    }

    /// Adds unit vectors (`vectors.len()` a multiple of the width), in
    /// parallel; returns the id of the first new node.
    pub fn add(&mut self, vectors: &[f32]) -> u32 {
        let first = self.len();
        let count = vectors.len() / self.dim.max(1);
        self.vectors.extend_from_slice(&vectors[..count * self.dim]);
        self.halves.extend(to_halves(&vectors[..count * self.dim]));
        let ml = 1.0 / (self.params.m as f64).ln();
        for i in first..first + count {
            let u = (splitmix(self.params.seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D))
                >> 11) as f64
                / (1u64 << 53) as f64;
            let level = (-(1.0 - u).ln() * ml).floor().min(30.0) as u8;
            self.levels.push(level);
            self.push_node_links(level);
        }
        let this = &*self;
        let mut rest = first..first + count;
        if this.is_entry_missing() {
            if let Some(i) = rest.next() {
                this.insert(i as u32);
            }
        }
        rest.into_par_iter().for_each(|i| this.insert(i as u32));
        first as u32
    }

    fn is_entry_missing(&self) -> bool {
        lock(&self.entry).is_none()
    }

    /// Links node `q` (already in `vectors`/`levels`) into the graph.
    fn insert(&self, q: u32) {
        let level = self.levels[q as usize];
        let mut entry_guard = lock(&self.entry);
        let Some((entry, top)) = *entry_guard else {
            *entry_guard = Some((q, level));
            return;
        };
        // A node that raises the top level holds the entry lock until it is
        // linked (hnswlib does the same); all others release it at once.
        let holding = if level > top {
            Some(entry_guard)
        } else {
            drop(entry_guard);
            None
        };
        let qv = self.vector(q);
        let mut ep = vec![(self.dist(qv, entry), entry)];
        for lev in (level as usize + 1..=top as usize).rev() {
            ep = vec![self.greedy(qv, ep[0], lev)];
        }
        for lev in (0..=level.min(top) as usize).rev() {
            let found = self.search_layer(
                qv,
                &ep,
                self.params.ef_construction,
                lev,
                true,
                false,
                &|_| true,
            );
            let chosen = self.select(&found, self.params.m);
            self.update_links(q, lev, |l| *l = chosen.iter().map(|&(_, id)| id).collect());
            for &(d, n) in &chosen {
                self.connect(n, q, d, lev);
            }
            ep = found;
        }
        if let Some(mut guard) = holding {
            *guard = Some((q, level));
        }
    }

    /// Adds `q` to `n`'s neighbours at `level`, pruning with the heuristic
    /// when the list is full.
    fn connect(&self, n: u32, q: u32, d: Dist, level: usize) {
        let cap = self.cap(level);
        self.update_links(n, level, |list| {
            if list.contains(&q) {
                return;
            }
            if list.len() < cap {
                list.push(q);
                return;
            }
            let nv = self.vector(n);
            let mut candidates: Vec<Scored> =
                list.iter().map(|&id| (self.dist(nv, id), id)).collect();
            candidates.push((d, q));
            candidates.sort_unstable();
            *list = self
                .select(&candidates, cap)
                .into_iter()
                .map(|(_, id)| id)
                .collect();
        });
    }

    /// The neighbour-selection heuristic over candidates sorted nearest
    /// first.
    fn select(&self, sorted: &[Scored], m: usize) -> Vec<Scored> {
        let mut kept: Vec<Scored> = Vec::with_capacity(m);
        for &(d, c) in sorted {
            if kept.len() >= m {
                break;
            }
            let cv = self.vector(c);
            if kept.iter().all(|&(_, s)| self.dist(cv, s) > d) {
                kept.push((d, c));
            }
        }
        kept
    }

    /// Greedy descent on one upper level.
    fn greedy(&self, q: &[f32], start: Scored, level: usize) -> Scored {
        let mut best = start;
        let mut neighbours = Vec::new();
        loop {
            let mut improved = false;
            self.read_links(best.1, level, true, &mut neighbours);
            for &n in &neighbours {
                let d = self.dist(q, n);
                if d < best.0 {
                    best = (d, n);
                    improved = true;
                }
            }
            if !improved {
                return best;
            }
        }
    }

    /// Best-first search of one level from `entry`; returns up to `ef`
    /// accepted nodes, nearest first. Rejected nodes are still walked
    /// through (so filters and deletions do not cut the graph). `locked`:
    /// read neighbour lists under their locks (while inserts run);
    /// `halves`: score the f16 copy of the vectors.
    #[allow(clippy::too_many_arguments)]
    fn search_layer(
        &self,
        q: &[f32],
        entry: &[Scored],
        ef: usize,
        level: usize,
        locked: bool,
        halves: bool,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Scored> {
        with_visited(self.len(), |first_visit| {
            let mut candidates: BinaryHeap<Reverse<Scored>> = BinaryHeap::new();
            let mut results: BinaryHeap<Scored> = BinaryHeap::new();
            for &e in entry {
                first_visit(e.1);
                candidates.push(Reverse(e));
                if accept(e.1) {
                    results.push(e);
                }
            }
            let mut neighbours: Vec<u32> = Vec::with_capacity(2 * self.params.m);
            let mut fresh: Vec<u32> = Vec::with_capacity(2 * self.params.m);
            while let Some(Reverse((d, c))) = candidates.pop() {
                if results.len() >= ef && results.peek().is_some_and(|w| d > w.0) {
                    break;
                }
                self.read_links(c, level, locked, &mut neighbours);
                fresh.clear();
                fresh.extend(neighbours.iter().copied().filter(|&n| first_visit(n)));
                if let Some(&first) = fresh.first() {
                    self.prefetch_node(first, halves);
                }
                for (j, &n) in fresh.iter().enumerate() {
                    // The next vector streams in while this one is scored.
                    if let Some(&next) = fresh.get(j + 1) {
                        self.prefetch_node(next, halves);
                    }
                    let dn = self.dist_by(q, n, halves);
                    let worst = results.peek().map(|w| w.0);
                    if results.len() < ef || worst.is_some_and(|w| dn < w) {
                        candidates.push(Reverse((dn, n)));
                        if accept(n) {
                            results.push((dn, n));
                            if results.len() > ef {
                                results.pop();
                            }
                        }
                    }
                }
            }
            results.into_sorted_vec()
        })
    }

    /// The `k` accepted nodes nearest to unit vector `q` as
    /// `(node, cosine)`, best first; `ef` (≥ k) trades speed for recall.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let Some((entry, top)) = *lock(&self.entry) else {
            return Vec::new();
        };
        let mut ep = (self.dist(q, entry), entry);
        for lev in (1..=top as usize).rev() {
            ep = self.greedy(q, ep, lev);
        }
        let found = self.search_layer(q, &[ep], ef.max(k), 0, false, true, accept);
        // Exact scores for the best candidates of the f16 walk (its
        // rounding moves a unit-vector score by ~1e-4, far less than the
        // gap between the k-th and the (3k)-th candidate).
        let rescored = (3 * k).max(k + 16).min(found.len());
        let mut best: Vec<Scored> = found[..rescored]
            .iter()
            .map(|&(_, n)| (self.dist(q, n), n))
            .collect();
        best.sort_unstable();
        best.truncate(k);
        best.into_iter().map(|(d, n)| (n, 1.0 - d.0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ann::distance::normalized;

    fn random_unit(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let v: Vec<f32> = (0..dim)
                .map(|j| {
                    (splitmix(seed ^ ((i * dim + j) as u64)) >> 40) as f32 / (1u64 << 24) as f32
                        - 0.5
                })
                .collect();
            out.extend(normalized(&v));
        }
        out
    }

    fn exact(vectors: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<u32> {
        let mut scored: Vec<(f32, u32)> = vectors
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| (dot(q, v), i as u32))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(k).map(|(_, i)| i).collect()
    }

    #[test]
    fn recall_on_random_vectors_and_filters() {
        let (n, dim) = (3000, 32);
        let data = random_unit(n, dim, 7);
        let mut g = Hnsw::new(dim, HnswParams::default());
        g.add(&data[..1000 * dim]);
        g.add(&data[1000 * dim..]);
        assert_eq!(g.len(), n);
        let queries = random_unit(50, dim, 99);
        let mut hits = 0;
        for q in queries.chunks_exact(dim) {
            let truth = exact(&data, dim, q, 10);
            let got: Vec<u32> = g.search(q, 10, 64, &|_| true).iter().map(|h| h.0).collect();
            hits += got.iter().filter(|id| truth.contains(id)).count();
        }
        assert!(
            hits as f32 / 500.0 >= 0.95,
            "recall {}",
            hits as f32 / 500.0
        );
        // Only even nodes accepted: every hit even, and still accurate.
        let q = &queries[..dim];
        let got = g.search(q, 10, 64, &|n| n % 2 == 0);
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|h| h.0 % 2 == 0));
        let evens: Vec<f32> = data
            .chunks_exact(dim)
            .step_by(2)
            .flatten()
            .copied()
            .collect();
        let truth: Vec<u32> = exact(&evens, dim, q, 10).iter().map(|i| i * 2).collect();
        assert!(got.iter().filter(|h| truth.contains(&h.0)).count() >= 9);
        // Scores are cosines, best first.
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!((got[0].1 - dot(q, g.vector(got[0].0))).abs() < 1e-6);
    }

    #[test]
    fn parts_round_trip_and_reject_mismatches() {
        let dim = 8;
        let data = random_unit(200, dim, 3);
        let mut g = Hnsw::new(dim, HnswParams::default());
        g.add(&data);
        let parts = g.parts();
        let h = Hnsw::from_parts(dim, g.params(), parts.clone()).unwrap();
        let q = &data[..dim];
        assert_eq!(g.search(q, 5, 32, &|_| true), h.search(q, 5, 32, &|_| true));
        let mut bad = parts.clone();
        bad.links[0][0].push(10_000);
        assert!(Hnsw::from_parts(dim, g.params(), bad).is_none());
        let mut short = parts.clone();
        short.vectors.pop();
        assert!(Hnsw::from_parts(dim, g.params(), short).is_none());
        // A level-0 list longer than its slot (2M ids) does not fit.
        let mut long = parts.clone();
        long.links[0][0] = (0..=2 * g.params().m as u32).collect();
        assert!(Hnsw::from_parts(dim, g.params(), long).is_none());
        // Every list reads back as it was stored.
        assert_eq!(h.parts(), parts);
    }

    #[test]
    fn empty_graph_finds_nothing() {
        let g = Hnsw::new(4, HnswParams::default());
        assert!(g.search(&[1.0, 0.0, 0.0, 0.0], 3, 10, &|_| true).is_empty());
    }
}
