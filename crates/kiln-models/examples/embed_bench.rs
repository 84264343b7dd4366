//! Embedding throughput: `cargo run --release -p kiln-models --example
//! embed_bench -- MODEL_DIR TEXTS.jsonl [N] [REPEATS]` embeds the first N
//! `text` fields of a JSONL file (CACM abstracts in the benchmark), in
//! calls of 32 texts, and prints embeddings/s per repeat and the median.
//! `scripts/bench-embed.py` runs sentence-transformers on the same texts.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use kiln_models::encoder::SentenceEmbedder;

fn main() {
    // As the `kiln` binary does (`kiln embed`, `kiln index`).
    kiln_models::allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = SentenceEmbedder::load(Path::new(&args[0])).unwrap();
    let n: usize = args.get(2).map_or(1000, |a| a.parse().unwrap());
    let repeats: usize = args.get(3).map_or(3, |a| a.parse().unwrap());
    let texts: Vec<String> = std::fs::read_to_string(&args[1])
        .unwrap()
        .lines()
        .take(n)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let tokens: usize = texts
        .iter()
        .map(|t| model.token_ids(t).unwrap().len())
        .sum();
    println!(
        "{} texts, {tokens} tokens after truncation to {} ({:.0} per text)",
        texts.len(),
        model.max_seq_length(),
        tokens as f64 / texts.len() as f64
    );
    let mut rates = Vec::new();
    for r in 0..repeats {
        let t = Instant::now();
        for batch in texts.chunks(32) {
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            model.embed(&refs).unwrap();
        }
        let rate = texts.len() as f64 / t.elapsed().as_secs_f64();
        println!("repeat {r}: {rate:.1} embeddings/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("kiln median {:.1} embeddings/s", rates[rates.len() / 2]);
}
