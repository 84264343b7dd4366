//! ANN benchmark: builds kiln's HNSW over N random d-dimensional vectors
//! (or vectors from a file of little-endian f32), then for several `ef`
//! measures recall@10 against exact search and single-thread queries/s.
//!
//! `cargo run --release -p kiln-store --example ann_bench -- [N] [DIM] [QUERIES] [M] [EF_CONSTRUCTION]`
//! Data: uniform in [-0.5, 0.5) per coordinate from a fixed seed, the same
//! generator `scripts/bench-ann.py` uses for hnswlib.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kiln_store::ann::distance::{dot, normalized};
use kiln_store::ann::hnsw::{Hnsw, HnswParams};

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
    let t = Instant::now();
    let mut g = Hnsw::new(
        dim,
        HnswParams {
            m,
            ef_construction: efc,
            seed: 100,
        },
    );
    g.add(&base);
    let build = t.elapsed().as_secs_f64();
    println!(
        "build n={n} dim={dim} M={m} efC={efc}: {build:.1} s ({} threads)",
        rayon::current_num_threads()
    );
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
