//! Adapters: `tune` and `merge`.

use super::*;

/// `kiln tune`.
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The base model (directory, `.gguf`, hub id); `--quantize` holds it
    /// quantized (QLoRA).
    #[command(flatten)]
    pub model: ModelArg,
    /// Training data: JSONL or a JSON array of alpaca, dolly, chat
    /// `messages`, ShareGPT `conversations` or `text` records.
    #[arg(long)]
    pub data: std::path::PathBuf,
    /// Where to write the adapter (PEFT format), metrics.jsonl, loss.png and checkpoints.
    #[arg(long, short = 'o')]
    pub out: std::path::PathBuf,
    /// lora or ia3.
    #[arg(long, default_value = "lora")]
    pub method: String,
    /// LoRA rank.
    #[arg(long, default_value_t = 16)]
    pub rank: usize,
    /// LoRA alpha (scale = alpha / rank).
    #[arg(long, default_value_t = 32.0)]
    pub alpha: f64,
    /// rsLoRA scaling (alpha / √rank).
    #[arg(long)]
    pub rslora: bool,
    /// Modules to adapt: names (comma-separated) or `all-linear`
    /// [default: all-linear for LoRA; k_proj,v_proj,down_proj for IA3].
    #[arg(long, value_delimiter = ',')]
    pub target_modules: Vec<String>,
    /// IA3: modules whose input is scaled [default: down_proj].
    #[arg(long, value_delimiter = ',')]
    pub feedforward_modules: Vec<String>,
    /// Passes over the data.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Examples per micro-batch.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Warm-up steps.
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: u64,
    /// constant, linear or cosine.
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Clip the gradient norm (0: off).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Truncate examples to this many tokens.
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Pack examples into --max-seq-len sequences.
    #[arg(long)]
    pub pack: bool,
    /// Also put loss on prompt tokens.
    #[arg(long)]
    pub train_on_inputs: bool,
    /// Fraction of examples held out for evaluation.
    #[arg(long, default_value_t = 0.0)]
    pub eval_fraction: f64,
    /// Seed of initial weights, data order and split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 0)]
    pub save_every: u64,
    /// Evaluate every N steps (0: at the end only).
    #[arg(long, default_value_t = 0)]
    pub eval_every: u64,
    /// Stop after N steps.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Chat template for messages/ShareGPT data (a built-in name or a file).
    #[arg(long)]
    pub template: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `kiln merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The base model: a directory (safetensors) or a `.gguf` file.
    #[arg(long, short = 'm')]
    pub model: std::path::PathBuf,
    /// The PEFT adapter directory.
    #[arg(long)]
    pub adapter: std::path::PathBuf,
    /// Output: a directory, or a `.gguf` file.
    #[arg(long, short = 'o')]
    pub out: std::path::PathBuf,
    /// With a `.gguf` output: its type (f16, q8_0, q4_k_m, …) [default: f16].
    /// With a `.gguf` base: the type of the merged tensors (default: each
    /// tensor's own; 4-bit re-quantization adds noise, f16/q8_0 keep more).
    #[arg(long = "type", value_name = "TYPE")]
    pub ty: Option<String>,
}
