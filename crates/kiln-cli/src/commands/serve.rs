//! `kiln serve`: load the models, start one engine per model, serve the
//! OpenAI-compatible API until Ctrl-C/SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use kiln_engine::{Engine, EngineConfig};
use kiln_server::{AppState, ServedModel};
use serde::Deserialize;

use crate::args::{ModelArg, ServeArgs};

/// The TOML file's settings (all optional; flags and `KILN_*` win).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    models: Option<Vec<String>>,
    embedding_models: Option<Vec<String>>,
    quantize: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    api_key: Option<String>,
    max_sequences: Option<usize>,
    max_queue: Option<usize>,
    prefill_chunk: Option<usize>,
    max_body_bytes: Option<usize>,
}

fn read_config(path: Option<&Path>) -> Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing --config {}", path.display()))
}

/// `[NAME=]PATH` → (name, path).
fn name_and_path(spec: &str) -> (String, String) {
    if let Some((name, path)) = spec.split_once('=') {
        if !name.is_empty() && !name.contains('/') {
            return (name.to_string(), path.to_string());
        }
    }
    let base = Path::new(spec.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| spec.to_string());
    let name = base.strip_suffix(".gguf").unwrap_or(&base).to_string();
    (name, spec.to_string())
}

/// The adapters of `--adapter` that belong to the served model `base`:
/// `BASE:NAME=DIR`, or `NAME=DIR` when only one model is served.
fn adapters_of(specs: &[String], base: &str, served: usize) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for spec in specs {
        let Some((target, dir)) = spec.split_once('=') else {
            bail!("--adapter {spec:?}: expected [BASE:]NAME=DIR");
        };
        let (model, name) = match target.rsplit_once(':') {
            Some((model, name)) => (model, name),
            None if served == 1 => (base, target),
            None => bail!("--adapter {spec:?}: several models are served; write BASE:NAME=DIR"),
        };
        if name.is_empty() || dir.is_empty() {
            bail!("--adapter {spec:?}: expected [BASE:]NAME=DIR");
        }
        if model == base {
            out.push((name.to_string(), dir.to_string()));
        }
    }
    Ok(out)
}

/// Runs the server.
pub fn run(args: ServeArgs) -> Result<()> {
    let file = read_config(args.config.as_deref())?;
    let specs = if args.models.is_empty() {
        file.models.clone().unwrap_or_default()
    } else {
        args.models.clone()
    };
    if specs.is_empty() {
        bail!("no model to serve: pass --model [NAME=]PATH (or set KILN_MODEL, or `models` in --config)");
    }
    let engine_config = EngineConfig {
        max_sequences: args.max_sequences.or(file.max_sequences).unwrap_or(32),
        max_queue: args.max_queue.or(file.max_queue).unwrap_or(256),
        prefill_chunk: args.prefill_chunk.or(file.prefill_chunk).unwrap_or(512),
        ..EngineConfig::default()
    };
    let quantize = args.quantize.clone().or(file.quantize.clone());
    let names: Vec<String> = specs.iter().map(|s| name_and_path(s).0).collect();
    for spec in &args.adapters {
        if let Some((base, _)) = spec.split_once('=').and_then(|(t, _)| t.rsplit_once(':')) {
            if !names.iter().any(|n| n == base) {
                bail!(
                    "--adapter {spec:?}: no served model is named {base:?} (served: {})",
                    names.join(", ")
                );
            }
        }
    }
    let mut models = Vec::new();
    for spec in &specs {
        let (name, path) = name_and_path(spec);
        if models.iter().any(|m: &ServedModel| m.name == name) {
            bail!("two models are named {name:?}; give them names with NAME=PATH");
        }
        let model = super::load_model(&ModelArg {
            model: path.clone(),
            quantize: quantize.clone(),
            adapters: Vec::new(),
        })?;
        for (adapter_name, dir) in adapters_of(&args.adapters, &name, specs.len())? {
            let adapter = kiln_models::adapter::Adapter::load(Path::new(&dir))
                .with_context(|| format!("loading adapter {dir}"))?;
            let adapted = model
                .with_adapter(&adapter)
                .with_context(|| format!("applying adapter {dir} to {name}"))?;
            let served = format!("{name}:{adapter_name}");
            let engine = Engine::start(Arc::new(adapted), engine_config.clone())
                .with_context(|| format!("starting the engine for {served}"))?;
            eprintln!("loaded adapter {served} from {dir}");
            models.push(ServedModel {
                name: served,
                engine: Arc::new(engine),
                created: kiln_server::openai::unix_now(),
            });
        }
        let engine = Engine::start(Arc::new(model), engine_config.clone())
            .with_context(|| format!("starting the engine for {path}"))?;
        eprintln!("loaded {name} from {path}");
        // The base first, then its adapters, in /v1/models.
        let first_adapter = models.len()
            - models
                .iter()
                .filter(|m| m.name.starts_with(&format!("{name}:")))
                .count();
        models.insert(
            first_adapter,
            ServedModel {
                name,
                engine: Arc::new(engine),
                created: kiln_server::openai::unix_now(),
            },
        );
    }
    let embedding_specs = if args.embedding_models.is_empty() {
        file.embedding_models.clone().unwrap_or_default()
    } else {
        args.embedding_models.clone()
    };
    let mut embedders = Vec::new();
    for spec in &embedding_specs {
        let (name, path) = name_and_path(spec);
        if models.iter().any(|m: &ServedModel| m.name == name)
            || embedders
                .iter()
                .any(|e: &kiln_server::ServedEmbedder| e.name == name)
        {
            bail!("two models are named {name:?}; give them names with NAME=PATH");
        }
        let model = kiln_models::encoder::SentenceEmbedder::load(Path::new(&path))
            .with_context(|| format!("loading embedding model {path}"))?;
        eprintln!("loaded embedding model {name} from {path}");
        embedders.push(kiln_server::ServedEmbedder {
            name,
            model: Arc::new(model),
            created: kiln_server::openai::unix_now(),
        });
    }
    let host = args
        .host
        .or(file.host)
        .unwrap_or_else(|| "127.0.0.1".to_string());
    let ip: IpAddr = host
        .parse()
        .with_context(|| format!("--host {host:?} is not an IP address"))?;
    let port = args.port.or(file.port).unwrap_or(8080);
    let mut state = AppState::new(models);
    state.embedders = Arc::new(embedders);
    state.api_key = args.api_key.or(file.api_key).map(Into::into);
    state.max_body_bytes = args
        .max_body_bytes
        .or(file.max_body_bytes)
        .unwrap_or(2 << 20);
    kiln_server::serve_blocking(state, SocketAddr::new(ip, port), |addr| {
        // Scripts (and tests) read this line to find a port picked with 0.
        println!("kiln serve: listening on http://{addr}");
    })
    .context("serving")?;
    eprintln!("kiln serve: shut down");
    Ok(())
}
