//! `kiln chat`: an interactive chat with streaming replies.

use std::io::{BufRead, Write};

use anyhow::Result;
use kiln_core::{ChatMessage, GenerationParams};
use kiln_models::Model;

use crate::args::ChatArgs;

const HELP: &str = "commands: /system TEXT (set the system message), /reset (clear history), \
/params (show decoding parameters), /set NAME VALUE (temperature, top_k, top_p, min_p, \
max_new_tokens, seed, repetition_penalty), /help, /quit";

pub fn run(args: ChatArgs) -> Result<()> {
    let model = super::load_model(&args.model)?;
    let template = super::template_source(args.template.as_deref())?;
    let mut params = args.sampling.to_params();
    let mut system = args.system.clone();
    let mut history: Vec<ChatMessage> = Vec::new();
    eprintln!("kiln chat with {} — {HELP}", args.model.model);
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    loop {
        write!(stdout, "> ")?;
        stdout.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(command) = line.strip_prefix('/') {
            let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
            match name {
                "quit" | "exit" => break,
                "reset" => {
                    history.clear();
                    println!("(history cleared)");
                }
                "system" => {
                    system = (!rest.trim().is_empty()).then(|| rest.trim().to_string());
                    history.clear();
                    println!("(system message set; history cleared)");
                }
                "params" => println!("{}", serde_json::to_string_pretty(&params)?),
                "set" => match set_param(&mut params, rest) {
                    Ok(()) => println!("(ok)"),
                    Err(e) => println!("error: {e}"),
                },
                _ => println!("{HELP}"),
            }
            continue;
        }
        history.push(ChatMessage::new("user", line));
        match reply(
            &model,
            system.as_deref(),
            &history,
            &params,
            template.as_deref(),
            &mut stdout,
        ) {
            Ok(text) => history.push(ChatMessage::new("assistant", text)),
            Err(e) => {
                history.pop();
                println!("error: {e:#}");
            }
        }
    }
    Ok(())
}

/// Generates and streams one assistant reply.
fn reply(
    model: &Model,
    system: Option<&str>,
    history: &[ChatMessage],
    params: &GenerationParams,
    template: Option<&str>,
    out: &mut impl Write,
) -> Result<String> {
    let mut messages = Vec::with_capacity(history.len() + 1);
    if let Some(s) = system {
        messages.push(ChatMessage::new("system", s));
    }
    messages.extend_from_slice(history);
    let text = super::chat_reply(model, &messages, params, template, Some(out))?;
    writeln!(out)?;
    Ok(text)
}

fn set_param(params: &mut GenerationParams, rest: &str) -> Result<()> {
    let (name, value) = rest
        .trim()
        .split_once(' ')
        .ok_or_else(|| anyhow::anyhow!("usage: /set NAME VALUE"))?;
    let value = value.trim();
    let mut next = params.clone();
    match name {
        "temperature" => next.temperature = Some(value.parse()?),
        "top_k" => next.top_k = Some(value.parse()?),
        "top_p" => next.top_p = Some(value.parse()?),
        "min_p" => next.min_p = Some(value.parse()?),
        "max_new_tokens" => next.max_new_tokens = Some(value.parse()?),
        "seed" => next.seed = Some(value.parse()?),
        "repetition_penalty" => next.repetition_penalty = Some(value.parse()?),
        other => anyhow::bail!("unknown parameter {other:?}"),
    }
    next.validate()?;
    *params = next;
    Ok(())
}
