//! One file per subcommand.

mod agent;
mod bench;
mod chat;
mod count;
mod crawl;
mod embed;
mod generate;
mod inspect;
mod prompt;
mod quantize;
mod rag;
mod serve;
mod structured;
mod tokenize;
mod tune;

use anyhow::{Context, Result};
use kiln_models::{HubOptions, Model};

use kiln_models::kernels::quant::{GgmlType, QUANTIZABLE};

use crate::args::{Cli, Command, ModelArg};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Index(a) => rag::index(a),
        Command::Search(a) => rag::search(a),
        Command::Ask(a) => rag::ask(a),
        Command::EvalRetrieval(a) => rag::eval(a),
        Command::Summarize(a) => rag::summarize(a),
        Command::Tune(a) => tune::run(a),
        Command::Agent(a) => agent::run(a),
        Command::Crawl(a) => crawl::run(a),
        Command::Prompt(c) => prompt::run(c),
        Command::Tokens(a) => prompt::tokens(a),
        Command::Classify(a) => structured::classify(a),
        Command::ZeroShot(a) => structured::zero_shot(a),
        Command::Extract(a) => structured::extract(a),
        Command::Merge(a) => tune::merge(a),
        Command::Logits(a) => tune::logits(a),
    }
}

/// Loads a model by directory, GGUF file or hub id, quantizing if asked.
fn load_model(arg: &ModelArg) -> Result<Model> {
    let quantize = match arg.quantize.as_deref() {
        None => None,
        Some(name) => Some(
            GgmlType::from_name(name)
                .filter(|t| QUANTIZABLE.contains(t))
                .ok_or_else(|| {
                    let names: Vec<&str> = QUANTIZABLE.iter().map(|t| t.name()).collect();
                    anyhow::anyhow!("--quantize {name:?}: expected one of {}", names.join(", "))
                })?,
        ),
    };
    let mut model = Model::load_quantized(&arg.model, &HubOptions::from_env(), quantize)
        .with_context(|| format!("loading model {}", arg.model))?;
    for dir in &arg.adapters {
        let adapter = kiln_models::adapter::Adapter::load(dir)
            .with_context(|| format!("loading adapter {}", dir.display()))?;
        model = model
            .with_adapter(&adapter)
            .with_context(|| format!("applying adapter {}", dir.display()))?;
    }
    Ok(model)
}

/// The source of `--template`: a built-in name or a file; `None` keeps the model's.
fn template_source(arg: Option<&str>) -> Result<Option<String>> {
    let Some(arg) = arg else { return Ok(None) };
    if let Some(builtin) = kiln_core::BuiltinTemplate::from_name(arg) {
        return Ok(Some(builtin.source().to_string()));
    }
    let text = std::fs::read_to_string(arg).with_context(|| {
        format!("--template {arg:?} is neither a built-in (alpaca, vicuna, chatml, llama2) nor a readable file")
    })?;
    Ok(Some(text))
}

/// One assistant reply to `messages` (rendered with `template` or the
/// model's own), one sequence of `params`, streamed to `out` when given.
fn chat_reply(
    model: &Model,
    messages: &[kiln_core::ChatMessage],
    params: &kiln_core::GenerationParams,
    template: Option<&str>,
    mut out: Option<&mut dyn std::io::Write>,
) -> Result<String> {
    use kiln_engine::{generate, Event, Request};
    let tokenizer = model.tokenizer()?;
    let text = tokenizer.apply_chat_template(messages, true, None, template)?;
    let request = Request {
        prompt_ids: tokenizer.encode(&text, false)?.ids,
        params: kiln_core::GenerationParams {
            num_return_sequences: 1,
            num_beams: 1,
            ..params.clone()
        },
    };
    let output = generate(model, &request, |event| {
        if let (Some(w), Event::Token { text, .. } | Event::Text { text, .. }) =
            (out.as_deref_mut(), &event)
        {
            let _ = write!(w, "{text}");
            let _ = w.flush();
        }
    })?;
    Ok(output
        .sequences
        .into_iter()
        .next()
        .map(|s| s.text)
        .unwrap_or_default())
}
