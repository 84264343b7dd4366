//! Composing: `prompt`, `tokens`, `crawl`, `agent`, `classify`, `zero-shot`, `extract`.

use super::*;

/// `kiln prompt …`.
#[derive(Debug, clap::Subcommand)]
pub enum PromptCommand {
    /// List the templates (built-in and from --templates files).
    List(PromptListArgs),
    /// Print a rendered template.
    Show(PromptRenderArgs),
    /// Render a template and send it to a model.
    Run(PromptRunArgs),
}

/// Where templates come from.
#[derive(Debug, Clone, Args)]
pub struct PromptListArgs {
    /// TOML files with more templates (same shape as the built-ins; later ones win).
    #[arg(long = "templates")]
    pub files: Vec<std::path::PathBuf>,
}

/// A template and its variables.
#[derive(Debug, Clone, Args)]
pub struct PromptRenderArgs {
    /// The template's name.
    pub name: String,
    /// A variable, `name=value` (a JSON list or object value is passed as JSON).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// More templates.
    #[command(flatten)]
    pub library: PromptListArgs,
}

/// `kiln prompt run`.
#[derive(Debug, Args)]
pub struct PromptRunArgs {
    /// The template and its variables.
    #[command(flatten)]
    pub render: PromptRenderArgs,
    /// The model.
    #[command(flatten)]
    pub generator: GeneratorArgs,
    /// Constrained output.
    #[command(flatten)]
    pub constraint: ConstraintArgs,
    /// Most new tokens.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Sampling temperature (default greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sampler seed.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `kiln tokens`.
#[derive(Debug, Args)]
pub struct TokensArgs {
    /// The model whose tokenizer counts (directory, `.gguf`, or hub id).
    #[arg(long, short = 'm', required_unless_present = "encoding")]
    pub model: Option<String>,
    /// Count with an OpenAI tiktoken encoding instead (`cl100k_base`,
    /// `o200k_base`, or a model name such as `gpt-4o`); its rank file is
    /// downloaded once into `$KILN_TIKTOKEN_DIR` (default ~/.cache/kiln/tiktoken).
    #[arg(long, conflicts_with = "model")]
    pub encoding: Option<String>,
    /// Files to count ("-" or none: stdin).
    pub files: Vec<std::path::PathBuf>,
    /// One JSON object per file plus a total.
    #[arg(long)]
    pub json: bool,
}

/// `kiln crawl`.
#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// Start URLs.
    #[arg(required = true)]
    pub urls: Vec<String>,
    /// Hosts that may be fetched (default: the start URLs' hosts).
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
    /// Most pages.
    #[arg(long, default_value_t = 20)]
    pub max_pages: usize,
    /// Link depth to follow (same host only).
    #[arg(long, default_value_t = 1)]
    pub depth: usize,
    /// Milliseconds between requests to one host (robots.txt's Crawl-delay wins if longer).
    #[arg(long, default_value_t = 1000)]
    pub delay_ms: u64,
    /// Most bytes read per page.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_bytes: usize,
    /// Extract JSON following this schema from each page (needs --model).
    #[arg(long, requires = "model")]
    pub schema: Option<std::path::PathBuf>,
    /// The model for --schema.
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// Write JSONL here instead of stdout.
    #[arg(long, short = 'o')]
    pub out: Option<std::path::PathBuf>,
}

/// `kiln agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The task or question.
    pub task: String,
    /// The model.
    #[command(flatten)]
    pub generator: GeneratorArgs,
    /// Tools to offer, comma-separated: calculator, search (needs --index),
    /// fetch (needs --allow-host), shell (off unless named).
    #[arg(long, value_delimiter = ',', default_value = "calculator")]
    pub tools: Vec<String>,
    /// A kiln index for the `search` tool.
    #[arg(long)]
    pub index: Option<std::path::PathBuf>,
    /// Hosts the `fetch` tool may read (repeatable; subdomains included).
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
    /// Programs the `shell` tool may run (repeatable; default: any).
    #[arg(long = "allow-program")]
    pub allow_programs: Vec<String>,
    /// Seconds a shell command may run before it is killed.
    #[arg(long, default_value_t = 10.0)]
    pub shell_timeout: f64,
    /// Most model turns.
    #[arg(long, default_value_t = 8)]
    pub max_steps: usize,
    /// Most new tokens per turn.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Print each turn (thought, action, observation) to stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Use the classic free-text ReAct format (Thought/Action/Action Input)
    /// instead of constrained JSON steps (which small models follow reliably).
    #[arg(long)]
    pub text_format: bool,
    /// Offer the tools natively, through the model's chat template (which
    /// must render `tools`; calls in the Hermes `<tool_call>` format), or as
    /// OpenAI `tools` to a --backend.
    #[arg(long, conflicts_with = "text_format")]
    pub native_tools: bool,
}

/// `kiln classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// The model (and adapters).
    #[command(flatten)]
    pub model: ModelArg,
    /// The allowed labels, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub labels: Vec<String>,
    /// What to classify by, said to the model (default: "Classify the text.").
    #[arg(long)]
    pub instruction: Option<String>,
    /// The inputs.
    #[command(flatten)]
    pub inputs: InputsArgs,
}

/// `kiln zero-shot`.
#[derive(Debug, Args)]
pub struct ZeroShotArgs {
    /// An NLI model directory (`*ForSequenceClassification` with an entailment label).
    #[arg(long, short = 'm')]
    pub model: std::path::PathBuf,
    /// Candidate labels, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub labels: Vec<String>,
    /// The hypothesis, with {} where the label goes.
    #[arg(long, default_value = "This example is {}.")]
    pub hypothesis: String,
    /// Score each label on its own (several may be true).
    #[arg(long)]
    pub multi_label: bool,
    /// The inputs.
    #[command(flatten)]
    pub inputs: InputsArgs,
}

/// `kiln extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The model (and adapters).
    #[command(flatten)]
    pub model: ModelArg,
    /// The JSON Schema the output must follow.
    #[arg(long, value_name = "SCHEMA.json")]
    pub schema: std::path::PathBuf,
    /// The inputs.
    #[command(flatten)]
    pub inputs: InputsArgs,
}
