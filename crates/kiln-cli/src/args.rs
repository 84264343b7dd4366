//! Command-line arguments.

use clap::{Args, Parser, Subcommand};

/// kiln: run, serve, retrieve with and fine-tune open-weight LLMs locally.
#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "kiln: run open-weight LLMs locally (Llama, Mistral, Qwen2/3, Phi-3, Gemma 2)"
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a continuation of a prompt (greedy).
    Generate(GenerateArgs),
    /// Show the token ids and pieces of a text.
    Tokenize(TokenizeArgs),
    /// Describe a model: family, size, dtype, context, tensors.
    Inspect(InspectArgs),
    /// Measure prefill and decode speed.
    Bench(BenchArgs),
}

/// Which model to use.
#[derive(Debug, Args)]
pub struct ModelArg {
    /// A model directory or a Hugging Face hub id (org/name[@revision]).
    #[arg(long, short = 'm')]
    pub model: String,
}

/// `kiln generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArg,
    /// The prompt text.
    #[arg(long, short = 'p')]
    pub prompt: String,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Suppress EOS until this many tokens were generated.
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
    /// Do not add BOS/EOS around the prompt.
    #[arg(long)]
    pub no_special: bool,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

/// `kiln tokenize`.
#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// The model (or just its tokenizer directory).
    #[command(flatten)]
    pub model: ModelArg,
    /// The text to tokenize.
    #[arg(long, short = 't')]
    pub text: String,
    /// Do not add BOS/EOS.
    #[arg(long)]
    pub no_special: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `kiln inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `kiln bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArg,
    /// Prompt length for the prefill measurement.
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// Tokens decoded one by one after the prompt.
    #[arg(long, default_value_t = 128)]
    pub decode_tokens: usize,
    /// Repetitions (the report gives medians and every sample).
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
