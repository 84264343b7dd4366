//! `kiln prompt list|show|run` and `kiln tokens`.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use kiln_agent::{PromptLibrary, RenderedPrompt};
use kiln_core::{ChatMessage, ChatOptions};
use serde_json::json;

use super::count::TokenCounter;
use crate::args::{PromptCommand, PromptListArgs, PromptRenderArgs, PromptRunArgs, TokensArgs};

/// `kiln prompt …`.
pub fn run(command: PromptCommand) -> Result<()> {
    match command {
        PromptCommand::List(args) => {
            for (name, t) in library(&args)?.templates() {
                let vars = if t.variables.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", t.variables.join(", "))
                };
                println!("{name:<18} {}{vars}", t.description);
            }
            Ok(())
        }
        PromptCommand::Show(args) => {
            let p = render(&args)?;
            if let Some(system) = &p.system {
                println!("[system]\n{system}\n[user]");
            }
            print!("{}", p.prompt);
            if !p.prompt.ends_with('\n') {
                println!();
            }
            Ok(())
        }
        PromptCommand::Run(args) => run_prompt(args),
    }
}

fn library(args: &PromptListArgs) -> Result<PromptLibrary> {
    let mut lib = PromptLibrary::builtin()?;
    for f in &args.files {
        lib.add_file(f)?;
    }
    Ok(lib)
}

fn render(args: &PromptRenderArgs) -> Result<RenderedPrompt> {
    let mut vars = BTreeMap::new();
    for v in &args.vars {
        let Some((k, value)) = v.split_once('=') else {
            bail!("--var {v:?}: expected NAME=VALUE");
        };
        vars.insert(k.trim().to_string(), value.to_string());
    }
    Ok(library(&args.library)?.render(&args.name, &vars)?)
}

fn run_prompt(args: PromptRunArgs) -> Result<()> {
    let p = render(&args.render)?;
    let constraint = super::structured::constraint_of(&args.constraint)?;
    let mut stdout = std::io::stdout();
    // A raw template on a local model is the whole prompt: no chat template.
    if let (true, Some(path)) = (p.raw, &args.generator.model) {
        let model = super::load_model(&crate::args::ModelArg {
            model: path.clone(),
            quantize: None,
            adapters: Vec::new(),
        })?;
        let tokenizer = model.tokenizer()?;
        let params = kiln_core::GenerationParams {
            max_new_tokens: Some(args.max_new_tokens),
            temperature: Some(args.temperature),
            seed: args.seed,
            constraint,
            ..Default::default()
        };
        let request = kiln_engine::Request {
            prompt_ids: tokenizer.encode(&p.prompt, true)?.ids,
            params,
        };
        kiln_engine::generate(&model, &request, |e| {
            if let kiln_engine::Event::Token { text, .. } | kiln_engine::Event::Text { text, .. } =
                &e
            {
                let _ = write!(stdout, "{text}");
                let _ = stdout.flush();
            }
        })?;
        writeln!(stdout)?;
        return Ok(());
    }
    let generator = super::agent::generator(&args.generator)?;
    let mut messages = Vec::new();
    if let Some(system) = p.system {
        messages.push(ChatMessage::new("system", system));
    }
    messages.push(ChatMessage::new("user", p.prompt));
    let options = ChatOptions {
        max_tokens: Some(args.max_new_tokens),
        temperature: Some(args.temperature),
        seed: args.seed,
        constraint,
        ..ChatOptions::default()
    };
    generator.chat(&messages, &options, &mut |piece| {
        let _ = write!(stdout, "{piece}");
        let _ = stdout.flush();
    })?;
    writeln!(stdout)?;
    Ok(())
}

/// `kiln tokens`.
pub fn tokens(args: TokensArgs) -> Result<()> {
    let counter = TokenCounter::load(args.model.as_deref(), args.encoding.as_deref())?;
    let mut inputs: Vec<(String, String)> = Vec::new();
    if args.files.is_empty() || args.files.iter().any(|f| f.as_os_str() == "-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        inputs.push(("-".into(), text));
    }
    for f in args.files.iter().filter(|f| f.as_os_str() != "-") {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        inputs.push((f.display().to_string(), text));
    }
    let mut total = 0;
    for (name, text) in &inputs {
        let n = counter.count(text)?;
        total += n;
        if args.json {
            println!(
                "{}",
                json!({"file": name, "tokens": n, "chars": text.chars().count()})
            );
        } else {
            println!("{n:>10}  {name}");
        }
    }
    if args.json {
        println!("{}", json!({"total": total}));
    } else if inputs.len() > 1 {
        println!("{total:>10}  total");
    }
    Ok(())
}
