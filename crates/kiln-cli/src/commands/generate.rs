//! `kiln generate`.

use std::io::Write;

use anyhow::Result;
use kiln_models::generation::{generate_greedy, GreedyOptions, StopReason};
use serde_json::json;

use crate::args::GenerateArgs;

pub fn run(args: GenerateArgs) -> Result<()> {
    let model = super::load_model(&args.model.model)?;
    let tokenizer = model.tokenizer()?;
    let prompt = tokenizer.encode(&args.prompt, !args.no_special)?.ids;
    let options = GreedyOptions {
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: args.min_new_tokens,
        eos_token_ids: model.eos_token_ids(),
    };
    let mut shown = String::new();
    let mut ids = Vec::new();
    let stream = !args.json;
    let mut stdout = std::io::stdout();
    let out = generate_greedy(&model.decoder, &prompt, &options, false, |id| {
        if !stream {
            return;
        }
        ids.push(id);
        // Print only text that is complete (no half UTF-8 character).
        if let Ok(text) = tokenizer.decode(&ids, true) {
            if !text.ends_with('\u{FFFD}') && text.len() > shown.len() && text.starts_with(&shown) {
                let _ = write!(stdout, "{}", &text[shown.len()..]);
                let _ = stdout.flush();
                shown = text;
            }
        }
    })?;
    let text = tokenizer.decode(&out.token_ids, true)?;
    let finish = match out.stop_reason {
        StopReason::Eos => "stop",
        StopReason::Length => "length",
    };
    if args.json {
        let decode_tps = if out.token_ids.len() > 1 {
            (out.token_ids.len() - 1) as f64 / out.decode_time.as_secs_f64()
        } else {
            0.0
        };
        let value = json!({
            "model": args.model.model,
            "prompt_ids": prompt,
            "token_ids": out.token_ids,
            "text": text,
            "finish_reason": finish,
            "usage": {"prompt_tokens": prompt.len(), "completion_tokens": out.token_ids.len()},
            "timings": {
                "time_to_first_token_ms": out.prefill_time.as_secs_f64() * 1e3,
                "decode_tokens_per_s": decode_tps,
            },
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        if text.len() > shown.len() && text.starts_with(&shown) {
            print!("{}", &text[shown.len()..]);
        }
        println!();
    }
    Ok(())
}
