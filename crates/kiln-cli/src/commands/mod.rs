//! One file per subcommand.

mod bench;
mod chat;
mod generate;
mod inspect;
mod tokenize;

use anyhow::{Context, Result};
use kiln_models::{HubOptions, Model};

use crate::args::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Bench(a) => bench::run(a),
    }
}

/// Loads a model by directory or hub id.
fn load_model(name: &str) -> Result<Model> {
    Model::load(name, &HubOptions::from_env()).with_context(|| format!("loading model {name}"))
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
