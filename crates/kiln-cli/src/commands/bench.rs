//! `kiln bench`.

use anyhow::Result;
use kiln_models::bench::{run as run_bench, BenchOptions};

use crate::args::BenchArgs;

pub fn run(args: BenchArgs) -> Result<()> {
    let model = super::load_model(&args.model)?;
    let report = run_bench(
        &model.decoder,
        BenchOptions {
            prompt_tokens: args.prompt_tokens,
            decode_tokens: args.decode_tokens,
            repetitions: args.repetitions,
        },
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let spread = |s: &[f64]| {
        let min = s.iter().copied().fold(f64::INFINITY, f64::min);
        let max = s.iter().copied().fold(0.0, f64::max);
        format!("[{min:.1} .. {max:.1}]")
    };
    println!("model    {} ({} threads)", args.model.model, report.threads);
    println!(
        "prefill  {:>8.1} tok/s  {}  ({} tokens)",
        report.prefill_tokens_per_s,
        spread(&report.prefill_samples),
        report.prompt_tokens
    );
    println!(
        "decode   {:>8.1} tok/s  {}  ({} tokens)",
        report.decode_tokens_per_s,
        spread(&report.decode_samples),
        report.decode_tokens
    );
    println!("ttft     {:>8.1} ms", report.time_to_first_token_ms);
    if let Some(rss) = report.peak_rss_mib {
        println!("peak rss {rss:>8.1} MiB");
    }
    Ok(())
}
