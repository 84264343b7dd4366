//! Command-line arguments.

use clap::{Args, Parser, Subcommand};

/// kiln: run, serve, retrieve with and fine-tune open-weight LLMs locally.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about = "kiln: run open-weight LLMs locally")]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a continuation of a prompt (greedy, sampling or beam search).
    Generate(GenerateArgs),
    /// Chat interactively with streaming replies.
    Chat(ChatArgs),
    /// Show the token ids and pieces of a text.
    Tokenize(TokenizeArgs),
    /// Describe a model: family, size, dtype, context, tensors.
    Inspect(InspectArgs),
    /// Measure prefill and decode speed.
    Bench(BenchArgs),
    /// Convert a Hugging Face model directory to a (quantized) GGUF file.
    Quantize(QuantizeArgs),
    /// Serve models over an OpenAI-compatible HTTP API with a web chat page.
    Serve(ServeArgs),
    /// Embed texts with a sentence-transformers model.
    Embed(EmbedArgs),
    /// Index files (txt, md, html, pdf, jsonl; directories walked) for retrieval.
    Index(IndexArgs),
    /// Search an index (vector, BM25 or hybrid).
    Search(SearchArgs),
    /// Answer a question from an index with sources (RAG).
    Ask(AskArgs),
    /// Score retrieval on judged queries (MAP, nDCG@10, Recall@100, MRR as trec_eval).
    EvalRetrieval(EvalArgs),
    /// Summarise a long document (map-reduce over pieces that fit the model).
    Summarize(SummarizeArgs),
    /// Train a LoRA or IA3 adapter (QLoRA with --quantize) on instruction data.
    Tune(TuneArgs),
    /// Prompt templates: list them, render one, or run one on a model.
    #[command(subcommand)]
    Prompt(PromptCommand),
    /// Count tokens of files (or stdin) with a model's tokenizer.
    Tokens(TokensArgs),
    /// Crawl pages politely (robots.txt, rate limit) to JSONL text, or extract JSON from each.
    Crawl(CrawlArgs),
    /// Run a ReAct agent with tools (calculator, retrieval, fetch, shell) on a task.
    Agent(AgentArgs),
    /// Classify texts into one of a list of labels (constrained output, JSONL out).
    Classify(ClassifyArgs),
    /// Zero-shot classification with an NLI cross-encoder (JSONL out).
    ZeroShot(ZeroShotArgs),
    /// Extract JSON matching a JSON Schema from texts or files (constrained output, JSONL out).
    Extract(ExtractArgs),
    /// Fold an adapter into its base model and write a new checkpoint (or GGUF).
    Merge(MergeArgs),
    /// Write the logits of every position of a prompt to a safetensors file
    /// (to compare kiln with transformers, PEFT or llama.cpp).
    Logits(LogitsArgs),
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

/// `kiln summarize`.
#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// The document (txt, md, html, pdf, …).
    pub file: std::path::PathBuf,
    /// The model that summarises: local, or an OpenAI-compatible backend.
    #[command(flatten)]
    pub generator: GeneratorArgs,
    /// With --backend: count tokens with this tiktoken encoding or OpenAI
    /// model name (e.g. cl100k_base, gpt-4o) instead of estimating 4 bytes a token.
    #[arg(long)]
    pub encoding: Option<String>,
    /// Most tokens of the document per model call.
    #[arg(long, default_value_t = 1024)]
    pub chunk_tokens: usize,
    /// Tokens shared by neighbouring pieces.
    #[arg(long, default_value_t = 64)]
    pub overlap_tokens: usize,
    /// Most tokens of each summary.
    #[arg(long, default_value_t = 200)]
    pub max_new_tokens: usize,
    /// map-reduce (summaries of pieces merged) or refine (one summary revised piece by piece).
    #[arg(long, default_value = "map-reduce")]
    pub method: String,
}

/// `kiln eval-retrieval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Retrieval settings (`-k` is the ranking depth).
    #[command(flatten)]
    pub retrieval: RetrievalArgs,
    /// Queries: JSONL (`_id`/`id`, `text`) or `id<TAB>text`.
    #[arg(long)]
    pub queries: std::path::PathBuf,
    /// Judgements: TREC qrels or BEIR `qrels/test.tsv`.
    #[arg(long)]
    pub qrels: std::path::PathBuf,
    /// Also write the run in TREC format here.
    #[arg(long)]
    pub run: Option<std::path::PathBuf>,
}

/// Where an index is and which embedding model reads it.
#[derive(Debug, Clone, Args)]
pub struct IndexLocation {
    /// The index directory (with `--store postgres://…`: the index's name
    /// in that database).
    #[arg(long, short = 'i', env = "KILN_INDEX")]
    pub index: std::path::PathBuf,
    /// Keep the index in PostgreSQL + pgvector instead of a local
    /// directory, e.g. `postgres://user@host:5432/db`.
    #[arg(long, env = "KILN_STORE")]
    pub store: Option<String>,
    /// The sentence-transformers model (default: the one the index was built with).
    #[arg(long, env = "KILN_EMBEDDING_MODEL")]
    pub embedding_model: Option<String>,
}

/// `kiln index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Files or directories to index.
    #[arg(required = true)]
    pub paths: Vec<std::path::PathBuf>,
    /// Index and model.
    #[command(flatten)]
    pub location: IndexLocation,
    /// Only files whose names match (repeatable), e.g. `*.md`.
    #[arg(long = "glob")]
    pub globs: Vec<String>,
    /// Most units (see --chunk-unit) per chunk.
    #[arg(long, default_value_t = 1000)]
    pub chunk_size: usize,
    /// Units shared by neighbouring chunks.
    #[arg(long, default_value_t = 200)]
    pub chunk_overlap: usize,
    /// Unit of --chunk-size and --chunk-overlap: chars, or tokens of the
    /// embedding model's tokenizer (chunks then fit its window).
    #[arg(long, default_value = "chars")]
    pub chunk_unit: String,
    /// The JSONL field holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
}

/// Retrieval settings shared by `search` and `ask`.
#[derive(Debug, Clone, Args)]
pub struct RetrievalArgs {
    /// Index and model.
    #[command(flatten)]
    pub location: IndexLocation,
    /// Number of chunks.
    #[arg(long, short = 'k', default_value_t = 4)]
    pub top_k: usize,
    /// vector, bm25, hybrid (reciprocal-rank fusion) or mmr (maximal marginal relevance).
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Metadata filter: `key=value`, `key=a|b`, `key>=n`, `key<=n` (repeatable).
    #[arg(long = "filter")]
    pub filters: Vec<String>,
    /// Drop hits scoring below this.
    #[arg(long, allow_negative_numbers = true)]
    pub min_score: Option<f32>,
    /// Re-rank with a cross-encoder (a `*ForSequenceClassification`
    /// directory, e.g. ms-marco-MiniLM): retrieve 4×k candidates (at least
    /// 20), score each (query, passage) pair, keep the k best.
    #[arg(long, env = "KILN_RERANKER")]
    pub rerank: Option<String>,
}

/// `kiln search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The query.
    pub query: String,
    /// Retrieval settings.
    #[command(flatten)]
    pub retrieval: RetrievalArgs,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// `kiln ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Retrieval settings.
    #[command(flatten)]
    pub retrieval: RetrievalArgs,
    /// The model that answers (directory, .gguf or hub id).
    #[arg(long, short = 'm', conflicts_with = "backend")]
    pub model: Option<String>,
    /// Answer with an OpenAI-compatible server instead (e.g. http://127.0.0.1:8080/v1).
    #[arg(long, env = "KILN_BACKEND")]
    pub backend: Option<String>,
    /// The model name sent to --backend.
    #[arg(long, default_value = "default")]
    pub backend_model: String,
    /// Only list the sources, no answer.
    #[arg(long)]
    pub no_answer: bool,
    /// HyDE: let the model write a hypothetical answer first and retrieve
    /// with its embedding (needs --model).
    #[arg(long)]
    pub hyde: bool,
    /// Most tokens of the answer.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
}

/// `kiln embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// A sentence-transformers (or BERT/MPNet/XLM-R) model directory.
    #[arg(long, short = 'm')]
    pub model: String,
    /// A text to embed; repeat for several.
    #[arg(long = "text", short = 't')]
    pub texts: Vec<String>,
    /// A file with one text per line (in addition to --text).
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
    /// Print JSON (`{"model", "dimension", "embeddings": [[…]]}`) instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// `kiln serve`: flags, `KILN_*` environment variables, then the optional
/// TOML file (`--config`), in that order of precedence.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A model to serve, `[NAME=]PATH` (directory, `.gguf` or hub id);
    /// repeat for several. NAME is what clients put in `model` (default:
    /// the file or directory name).
    #[arg(long = "model", short = 'm', env = "KILN_MODEL", value_delimiter = ',')]
    pub models: Vec<String>,
    /// An embedding model for /v1/embeddings, `[NAME=]DIR` (a
    /// sentence-transformers directory); repeat for several.
    #[arg(
        long = "embedding-model",
        env = "KILN_EMBEDDING_MODEL",
        value_delimiter = ','
    )]
    pub embedding_models: Vec<String>,
    /// Quantize safetensors models while loading (as for `generate`).
    #[arg(long, value_name = "TYPE", env = "KILN_QUANTIZE")]
    pub quantize: Option<String>,
    /// Address to bind [default: 127.0.0.1].
    #[arg(long, env = "KILN_HOST")]
    pub host: Option<String>,
    /// Port (0 picks a free one) [default: 8080].
    #[arg(long, env = "KILN_PORT")]
    pub port: Option<u16>,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, env = "KILN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Most sequences decoding at once per model [default: 32].
    #[arg(long, env = "KILN_MAX_SEQUENCES")]
    pub max_sequences: Option<usize>,
    /// Most requests waiting per model; more get 429 [default: 256].
    #[arg(long, env = "KILN_MAX_QUEUE")]
    pub max_queue: Option<usize>,
    /// Prompt tokens prefilled per step [default: 512].
    #[arg(long, env = "KILN_PREFILL_CHUNK")]
    pub prefill_chunk: Option<usize>,
    /// Largest request body in bytes; larger get 413 [default: 2097152].
    #[arg(long, env = "KILN_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// An adapter served as `BASE:NAME`: `[BASE:]NAME=DIR` (BASE may be
    /// left out when one model is served); repeat for several. Clients pick
    /// it with `"model": "BASE:NAME"` or `"model": "BASE", "lora": "NAME"`.
    #[arg(long = "adapter", env = "KILN_ADAPTER", value_delimiter = ',')]
    pub adapters: Vec<String>,
    /// A TOML file with any of the settings above (`models` as a list).
    #[arg(long, env = "KILN_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

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
