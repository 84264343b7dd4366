//! `serve`.

use super::*;

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
