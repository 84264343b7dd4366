//! `kiln generate`.

use std::io::Write;

use anyhow::Result;
use kiln_core::ChatMessage;
use kiln_engine::{generate, Event, Output, Request};
use serde_json::{json, Value};

use crate::args::GenerateArgs;

pub fn run(args: GenerateArgs) -> Result<()> {
    let model = super::load_model(&args.model)?;
    let tokenizer = model.tokenizer()?;
    let template = super::template_source(args.template.as_deref())?;
    let prompt_ids = if args.chat || template.is_some() {
        let text = tokenizer.apply_chat_template(
            &[ChatMessage::new("user", &args.prompt)],
            true,
            None,
            template.as_deref(),
        )?;
        tokenizer.encode(&text, false)?.ids
    } else {
        tokenizer.encode(&args.prompt, !args.no_special)?.ids
    };
    let mut params = args.sampling.to_params();
    params.constraint = super::structured::constraint_of(&args.constraint)?;
    let request = Request {
        prompt_ids: prompt_ids.clone(),
        params: params.clone(),
    };
    // Plain text streams when there is one sequence; beams print at the end.
    let stream_text = !args.json && params.num_return_sequences == 1 && params.num_beams == 1;
    let mut stdout = std::io::stdout();
    let output = generate(&model, &request, |event| {
        if args.json && args.stream {
            let _ = writeln!(stdout, "{}", event_json(&event));
        } else if stream_text {
            if let Event::Token { text, .. } | Event::Text { text, .. } = &event {
                let _ = write!(stdout, "{text}");
                let _ = stdout.flush();
            }
        }
    })?;
    if args.json {
        let value = output_json(&args.model.model, &prompt_ids, &output);
        if args.stream {
            writeln!(stdout, "{}", serde_json::to_string(&value)?)?;
        } else {
            writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
        }
    } else if stream_text {
        writeln!(stdout)?;
    } else {
        for (i, s) in output.sequences.iter().enumerate() {
            let score = s
                .score
                .map(|v| format!(" (score {v:.4})"))
                .unwrap_or_default();
            writeln!(stdout, "--- sequence {i}{score}\n{}", s.text)?;
        }
    }
    Ok(())
}

fn logprobs_json(lp: &kiln_sampling::TokenLogprob) -> Value {
    json!({
        "token": lp.token,
        "logprob": lp.logprob,
        "top_logprobs": lp.top.iter().map(|(t, l)| json!({"token": t, "logprob": l})).collect::<Vec<_>>(),
    })
}

fn event_json(event: &Event) -> Value {
    match event {
        Event::Token {
            sequence,
            token,
            text,
            logprob,
        } => json!({
            "event": "token", "sequence": sequence, "token": token, "text": text,
            "logprob": logprob.as_ref().map(logprobs_json),
        }),
        Event::Text { sequence, text } => {
            json!({"event": "text", "sequence": sequence, "text": text})
        }
        Event::Finished { sequence, reason } => {
            json!({"event": "finished", "sequence": sequence, "finish_reason": reason.as_str()})
        }
    }
}

fn output_json(model: &str, prompt_ids: &[u32], out: &Output) -> Value {
    let sequences: Vec<Value> = out
        .sequences
        .iter()
        .map(|s| {
            json!({
                "token_ids": s.token_ids,
                "text": s.text,
                "finish_reason": s.finish_reason.as_str(),
                "score": s.score,
                "logprobs": if s.logprobs.is_empty() { Value::Null } else { s.logprobs.iter().map(logprobs_json).collect() },
            })
        })
        .collect();
    let first = out.sequences.first();
    json!({
        "model": model,
        "prompt_ids": prompt_ids,
        "token_ids": first.map(|s| s.token_ids.clone()),
        "text": first.map(|s| s.text.clone()),
        "finish_reason": first.map(|s| s.finish_reason.as_str()),
        "sequences": sequences,
        "usage": out.usage,
    })
}
