//! Running models: `generate`, `chat`, `tokenize`, `inspect`, `bench`, `quantize`, `logits`.

use super::*;

/// `kiln generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArg,
    /// The prompt text.
    #[arg(long, short = 'p')]
    pub prompt: String,
    /// Decoding options.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Constrained output.
    #[command(flatten)]
    pub constraint: ConstraintArgs,
    /// Wrap the prompt as a user message in the chat template.
    #[arg(long)]
    pub chat: bool,
    /// Chat template: a built-in name (alpaca, vicuna, chatml, llama2) or a file.
    #[arg(long)]
    pub template: Option<String>,
    /// Do not add BOS/EOS around the prompt.
    #[arg(long)]
    pub no_special: bool,
    /// Print one JSON object (with --stream: one JSON event per line).
    #[arg(long)]
    pub json: bool,
    /// With --json: print events as they happen (JSON lines).
    #[arg(long)]
    pub stream: bool,
}

/// `kiln chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArg,
    /// A system message to start with.
    #[arg(long)]
    pub system: Option<String>,
    /// Chat template: a built-in name (alpaca, vicuna, chatml, llama2) or a file.
    #[arg(long)]
    pub template: Option<String>,
    /// Keep the conversation in this named session (resumed next time).
    #[arg(long)]
    pub session: Option<String>,
    /// Where sessions are stored [default: ~/.local/share/kiln/sessions].
    #[arg(long, env = "KILN_SESSIONS")]
    pub sessions_dir: Option<std::path::PathBuf>,
    /// What the model sees of the conversation: buffer (all), window:N
    /// (last N exchanges), summary:TOKENS (older turns summarised).
    #[arg(long, default_value = "buffer")]
    pub memory: String,
    /// Decoding options.
    #[command(flatten)]
    pub sampling: SamplingArgs,
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
    /// Do not add BOS/EOS and treat special-token text (`<s>`) as plain text.
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
    /// List every tensor, not just the first 12.
    #[arg(long)]
    pub all_tensors: bool,
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

/// `kiln quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The Hugging Face model directory (or hub id).
    #[arg(long, short = 'm')]
    pub model: String,
    /// F16, Q8_0, Q4_0, Q4_K_M, Q5_K_M or Q6_K.
    #[arg(
        long = "type",
        short = 't',
        value_name = "TYPE",
        default_value = "Q4_K_M"
    )]
    pub ty: String,
    /// Where to write the `.gguf` file.
    #[arg(long, short = 'o')]
    pub output: std::path::PathBuf,
}

/// `kiln logits`.
#[derive(Debug, Args)]
pub struct LogitsArgs {
    /// The model (and adapters).
    #[command(flatten)]
    pub model: ModelArg,
    /// The prompt text (tokenized with BOS/EOS as the model's tokenizer adds them).
    #[arg(long, short = 'p', conflicts_with = "ids")]
    pub prompt: Option<String>,
    /// Token ids instead of text, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub ids: Vec<u32>,
    /// The output file: tensors `logits` [tokens, vocab] (f32) and `input_ids`.
    #[arg(long, short = 'o')]
    pub out: std::path::PathBuf,
}
