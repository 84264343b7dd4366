//! Arguments shared by several subcommands: the model, sampling, constrained output, inputs, and a local-or-remote generator.

use super::*;

/// Which model to use.
#[derive(Debug, Args)]
pub struct ModelArg {
    /// A model directory, a `.gguf` file, or a Hugging Face hub id (org/name[@revision]).
    #[arg(long, short = 'm')]
    pub model: String,
    /// Quantize a safetensors model's projections while loading: q8_0, q4_0,
    /// q4_1, q4_k, q6_k, f16 or bf16 (GGUF files keep their stored types).
    #[arg(long, value_name = "TYPE")]
    pub quantize: Option<String>,
    /// A PEFT adapter directory (LoRA or IA3) to apply; repeat to stack.
    #[arg(long = "adapter", value_name = "DIR")]
    pub adapters: Vec<std::path::PathBuf>,
}

/// Decoding options shared by `generate` and `chat` (transformers' names).
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Maximum number of new tokens.
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Suppress EOS until this many tokens were generated.
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
    /// Sampling temperature (0 = greedy; > 0 samples).
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass in (0, 1].
    #[arg(long, allow_negative_numbers = true)]
    pub top_p: Option<f32>,
    /// Minimum probability relative to the top token.
    #[arg(long, allow_negative_numbers = true)]
    pub min_p: Option<f32>,
    /// Typical-sampling mass in (0, 1].
    #[arg(long, allow_negative_numbers = true)]
    pub typical_p: Option<f32>,
    /// transformers' repetition penalty (1 = off).
    #[arg(long, allow_negative_numbers = true)]
    pub repetition_penalty: Option<f32>,
    /// OpenAI presence penalty in [-2, 2].
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub presence_penalty: f32,
    /// OpenAI frequency penalty in [-2, 2].
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub frequency_penalty: f32,
    /// Never repeat an n-gram of this size.
    #[arg(long, default_value_t = 0)]
    pub no_repeat_ngram_size: usize,
    /// Number of sequences to return.
    #[arg(long, default_value_t = 1)]
    pub num_return_sequences: usize,
    /// Beam width (1 = no beam search).
    #[arg(long, default_value_t = 1)]
    pub num_beams: usize,
    /// Beam length penalty (score = logprob / length^penalty).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub length_penalty: f32,
    /// Stop beam search once num_beams hypotheses are finished.
    #[arg(long)]
    pub early_stopping: bool,
    /// Seed for sampling (same seed, same output).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop before this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Report log-probabilities with this many alternatives per token.
    #[arg(long)]
    pub logprobs: Option<usize>,
}

impl SamplingArgs {
    /// The generation parameters these flags ask for.
    pub fn to_params(&self) -> kiln_core::GenerationParams {
        kiln_core::GenerationParams {
            max_new_tokens: self.max_new_tokens,
            min_new_tokens: self.min_new_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            typical_p: self.typical_p,
            repetition_penalty: self.repetition_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            num_return_sequences: self.num_return_sequences,
            num_beams: self.num_beams,
            length_penalty: self.length_penalty,
            early_stopping: self.early_stopping,
            seed: self.seed,
            stop: self.stop.clone(),
            logprobs: self.logprobs,
            ..Default::default()
        }
    }
}

/// Constrained output for `generate`.
#[derive(Debug, Clone, Args)]
pub struct ConstraintArgs {
    /// Output must be JSON valid against this JSON Schema file.
    #[arg(long, value_name = "SCHEMA.json", conflicts_with_all = ["json_object", "labels"])]
    pub schema: Option<std::path::PathBuf>,
    /// Output must be a JSON object.
    #[arg(long, conflicts_with = "labels")]
    pub json_object: bool,
    /// Output must be exactly one of these labels (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
}

/// Inputs of `classify` / `extract`: texts, files, or lines of stdin.
#[derive(Debug, Clone, Args)]
pub struct InputsArgs {
    /// A text to process (repeatable).
    #[arg(long = "text", short = 't')]
    pub texts: Vec<String>,
    /// Files to process, one input each ("-" reads one input per line of stdin).
    pub files: Vec<std::path::PathBuf>,
    /// Chat template to use instead of the model's (name or file).
    #[arg(long)]
    pub template: Option<String>,
    /// Maximum number of new tokens per input.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
}

/// A chat model: a local one (`--model`) or an OpenAI-compatible server
/// (`--backend URL --backend-model NAME`).
#[derive(Debug, Clone, Args)]
pub struct GeneratorArgs {
    /// A local model: directory, `.gguf` file or hub id.
    #[arg(long, short = 'm', required_unless_present = "backend")]
    pub model: Option<String>,
    /// An OpenAI-compatible API base instead, e.g. http://127.0.0.1:8080/v1 (vLLM, Ollama,
    /// llama-server, OpenAI, kiln serve); the key comes from KILN_API_KEY or OPENAI_API_KEY.
    #[arg(long, env = "KILN_BACKEND", conflicts_with = "model")]
    pub backend: Option<String>,
    /// The model name sent to the backend.
    #[arg(long, default_value = "default")]
    pub backend_model: String,
    /// Seconds before a backend request is abandoned.
    #[arg(long, default_value_t = 120)]
    pub backend_timeout: u64,
    /// Chat template to use instead of the model's (name or file; local models).
    #[arg(long)]
    pub template: Option<String>,
}
