//! ANN benchmark: builds kiln's HNSW over N random d-dimensional vectors
//! (or vectors from a file of little-endian f32), then for several `ef`
//! measures recall@10 against exact search and single-thread queries/s.
//!
//! `cargo run --release -p kiln-store --example ann_bench -- [N] [DIM] [QUERIES] [M] [EF_CONSTRUCTION]`
//! Data: uniform in [-0.5, 0.5) per coordinate from a fixed seed, the same
//! generator `scripts/bench-ann.py` uses for hnswlib. With `KILN_ANN_GRAPH=FILE`
//! the built graph is saved there, and loaded instead of rebuilt when the
//! file exists (so query-time changes can be compared on one graph).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kiln_store::ann::distance::{dot, normalized};
use kiln_store::ann::hnsw::{GraphParts, Hnsw, HnswParams};

/// Park–Miller-free, portable: xorshift64*, shared with the Python script.
fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n * dim {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
        out.push((r >> 40) as f32 / (1u64 << 24) as f32 - 0.5);
    }
    out
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let n = args.first().copied().unwrap_or(100_000);
    let dim = args.get(1).copied().unwrap_or(384);
    let nq = args.get(2).copied().unwrap_or(1000);
    let m = args.get(3).copied().unwrap_or(16);
    let efc = args.get(4).copied().unwrap_or(200);
    let base: Vec<f32> = data(n, dim, 42)
        .chunks_exact(dim)
        .flat_map(normalized)
        .collect();
    let queries: Vec<f32> = data(nq, dim, 4242)
        .chunks_exact(dim)
        .flat_map(normalized)
        .collect();
    let params = HnswParams {
        m,
        ef_construction: efc,
        seed: 100,
    };
    let cache = std::env::var_os("KILN_ANN_GRAPH").map(std::path::PathBuf::from);
    let g = match cache.as_ref().filter(|p| p.exists()) {
        Some(path) => {
            let parts = load_parts(&std::fs::read(path).unwrap(), base.clone());
            println!("graph loaded from {}", path.display());
            Hnsw::from_parts(dim, params, parts).expect("graph file fits these settings")
        }
        None => {
            let t = Instant::now();
            let mut g = Hnsw::new(dim, params);
            g.add(&base);
            let build = t.elapsed().as_secs_f64();
            println!(
                "build n={n} dim={dim} M={m} efC={efc}: {build:.1} s ({} threads)",
                rayon::current_num_threads()
            );
            if let Some(path) = &cache {
                std::fs::write(path, save_parts(&g.parts())).unwrap();
            }
            g
        }
    };
    let truth: Vec<Vec<u32>> = queries
        .chunks_exact(dim)
        .map(|q| {
            let mut s: Vec<(f32, u32)> = base
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, v)| (dot(q, v), i as u32))
                .collect();
            s.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
            s.truncate(10);
            s.into_iter().map(|x| x.1).collect()
        })
        .collect();
    for ef in [40, 100, 200, 400, 800, 1200, 1600, 2400] {
        let t = Instant::now();
        let mut found = 0;
        for (q, truth) in queries.chunks_exact(dim).zip(&truth) {
            let got = g.search(q, 10, ef, &|_| true);
            found += got.iter().filter(|h| truth.contains(&h.0)).count();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "ef={ef:4}  recall@10={:.4}  qps={:.0}",
            found as f64 / (10 * nq) as f64,
            nq as f64 / secs
        );
    }
}

/// The graph without its vectors, as little-endian u32 words: node count,
/// each node's top level, entry node (`u32::MAX`: none) and top level,
/// then every node's lists (count, ids) level by level.
fn save_parts(parts: &GraphParts) -> Vec<u8> {
    let (entry, top) = parts.entry.unwrap_or((u32::MAX, 0));
    let mut words = vec![parts.levels.len() as u32];
    words.extend(parts.levels.iter().map(|&l| u32::from(l)));
    words.extend([entry, u32::from(top)]);
    for list in parts.links.iter().flatten() {
        words.push(list.len() as u32);
        words.extend(list);
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Reads what [`save_parts`] wrote.
fn load_parts(bytes: &[u8], vectors: Vec<f32>) -> GraphParts {
    let mut words = bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let mut next = || words.next().expect("graph file is complete");
    let n = next() as usize;
    let levels: Vec<u8> = (0..n).map(|_| next() as u8).collect();
    let (entry, top) = (next(), next() as u8);
    let links = levels
        .iter()
        .map(|&lev| {
            (0..=lev)
                .map(|_| {
                    let count = next();
                    (0..count).map(|_| next()).collect()
                })
                .collect()
        })
        .collect();
    GraphParts {
        vectors,
        levels,
        links,
        entry: (entry != u32::MAX).then_some((entry, top)),
    }
}
