//! `kiln chat`: an interactive chat with streaming replies.

use std::io::{BufRead, Write};

use std::sync::Arc;

use anyhow::Result;
use kiln_agent::{ChatSession, Memory, SessionStore};
use kiln_core::{ChatMessage, GenerationParams};
use kiln_engine::LocalGenerator;
use kiln_models::Model;

use crate::args::ChatArgs;

const HELP: &str = "commands: /system TEXT (set the system message), /reset (clear history), \
/params (show decoding parameters), /set NAME VALUE (temperature, top_k, top_p, min_p, \
max_new_tokens, seed, repetition_penalty), /help, /quit";

pub fn run(args: ChatArgs) -> Result<()> {
    let model = Arc::new(super::load_model(&args.model)?);
    let template = super::template_source(args.template.as_deref())?;
    let mut params = args.sampling.to_params();
    let memory: Memory = args.memory.parse()?;
    let store = match &args.session {
        Some(_) => Some(SessionStore::open(&sessions_dir(
            args.sessions_dir.as_deref(),
        )?)?),
        None => None,
    };
    let mut session = match (&store, &args.session) {
        (Some(store), Some(name)) => store.load(name)?,
        _ => ChatSession::default(),
    };
    if args.system.is_some() {
        session.system = args.system.clone();
    }
    eprintln!("kiln chat with {} — {HELP}", args.model.model);
    if !session.messages.is_empty() {
        eprintln!(
            "(session {}: {} earlier messages)",
            session.name,
            session.messages.len()
        );
    }
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
                    session.messages.clear();
                    session.summary = None;
                    println!("(history cleared)");
                }
                "system" => {
                    session.system = (!rest.trim().is_empty()).then(|| rest.trim().to_string());
                    session.messages.clear();
                    session.summary = None;
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
        session.messages.push(ChatMessage::new("user", line));
        let messages = session.context(memory);
        match reply(&model, &messages, &params, template.as_deref(), &mut stdout) {
            Ok(text) => session.messages.push(ChatMessage::new("assistant", text)),
            Err(e) => {
                session.messages.pop();
                println!("error: {e:#}");
                continue;
            }
        }
        if let Memory::Summary(budget) = memory {
            let tokenizer = model.tokenizer()?;
            let count = |t: &str| tokenizer.encode(t, false).map_or(0, |e| e.ids.len());
            let summarizer = LocalGenerator::new(model.clone(), "summarizer", template.clone());
            session.compact(budget, &count, &summarizer)?;
        }
        if let Some(store) = &store {
            store.save(&session)?;
        }
    }
    Ok(())
}

/// The sessions directory: the flag, else `$XDG_DATA_HOME/kiln/sessions`,
/// else `~/.local/share/kiln/sessions`.
fn sessions_dir(flag: Option<&std::path::Path>) -> Result<std::path::PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/share"))
        })
        .ok_or_else(|| anyhow::anyhow!("no HOME: pass --sessions-dir"))?;
    Ok(data.join("kiln/sessions"))
}

/// Generates and streams one assistant reply.
fn reply(
    model: &Model,
    messages: &[ChatMessage],
    params: &GenerationParams,
    template: Option<&str>,
    out: &mut impl Write,
) -> Result<String> {
    let text = super::chat_reply(model, messages, params, template, Some(out))?;
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
