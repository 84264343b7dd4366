//! Times `QMatrix::matmul` for one weight shape at several token counts:
//! `cargo run --release -p kiln-models --example qbench [TYPE] [ROWS] [COLS]`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kiln_models::kernels::quant::{quantize_row, GgmlType, QMatrix};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ty = GgmlType::from_name(args.get(1).map_or("q8_0", String::as_str)).unwrap();
    let rows: usize = args.get(2).map_or(1536, |s| s.parse().unwrap());
    let cols: usize = args.get(3).map_or(576, |s| s.parse().unwrap());
    let mut state = 1u64;
    let mut rnd = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let w: Vec<f32> = (0..rows * cols).map(|_| rnd()).collect();
    let mut data = Vec::new();
    for r in w.chunks(cols) {
        data.extend(quantize_row(ty, r).unwrap());
    }
    let m = QMatrix::from_vec(ty, rows, cols, data).unwrap();
    // A fourth argument `packed` times the packed-row kernels.
    let m = if args.get(4).map(String::as_str) == Some("packed") {
        m.with_packed_rows()
    } else {
        m
    };
    println!("{m:?}");
    for tokens in [1, 4, 8, 16, 32, 128, 512] {
        let x: Vec<f32> = (0..tokens * cols).map(|_| rnd()).collect();
        let reps = (2000 / tokens).max(3);
        m.matmul(&x, tokens).unwrap();
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(m.matmul(&x, tokens).unwrap());
        }
        let secs = t.elapsed().as_secs_f64() / reps as f64;
        let macs = (rows * cols * tokens) as f64;
        println!(
            "{ty} [{rows}x{cols}] x {tokens:2} tokens: {:8.1} µs  {:6.2} GMAC/s",
            secs * 1e6,
            macs / secs / 1e9
        );
    }
}
