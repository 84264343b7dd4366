//! One file per subcommand.

mod bench;
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
        Command::Tokenize(a) => tokenize::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Bench(a) => bench::run(a),
    }
}

/// Loads a model by directory or hub id.
fn load_model(name: &str) -> Result<Model> {
    Model::load(name, &HubOptions::from_env()).with_context(|| format!("loading model {name}"))
}
