//! Retrieval: `index`, `search`, `ask`, `eval-retrieval`, `summarize`, `embed`.

use super::*;

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
