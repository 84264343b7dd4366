//! Model names that are hub ids (`org/name`): resolved through the standard
//! Hugging Face cache, downloading missing files with a progress bar.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::model_files::{ShardIndex, SHARD_INDEX, SINGLE_WEIGHTS};
use crate::{ModelError, Result};

/// Where and how to reach the hub; [`HubOptions::from_env`] reads the same
/// variables as `huggingface_hub`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubOptions {
    /// Base URL (`HF_ENDPOINT`); `None` is huggingface.co.
    pub endpoint: Option<String>,
    /// The hub cache directory (`HF_HUB_CACHE`, else `$HF_HOME/hub`).
    pub cache_dir: Option<PathBuf>,
    /// Access token (`HF_TOKEN`, else the token file in `HF_HOME`).
    pub token: Option<String>,
    /// Never touch the network (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Show download progress bars.
    pub progress: bool,
}

impl HubOptions {
    /// Options from `HF_ENDPOINT`, `HF_HUB_CACHE`, `HF_HOME`, `HF_TOKEN` and
    /// `HF_HUB_OFFLINE`, with progress bars on.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("hub")));
        Self {
            endpoint: var("HF_ENDPOINT"),
            cache_dir,
            token: var("HF_TOKEN"),
            offline: var("HF_HUB_OFFLINE").is_some_and(|v| v == "1" || v == "true"),
            progress: true,
        }
    }

    fn cache(&self) -> Cache {
        match &self.cache_dir {
            Some(dir) => Cache::new(dir.clone()),
            None => Cache::from_env(),
        }
    }
}

/// True if `name` looks like a hub id: `org/name`, optionally `@revision`.
pub fn is_hub_id(name: &str) -> bool {
    let id = name.split('@').next().unwrap_or(name);
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// Resolves a model name to a local directory: an existing path is used as
/// it is; a hub id is fetched into the cache (only missing files are
/// downloaded) and its snapshot directory returned.
pub fn resolve_model_dir(name: &str, options: &HubOptions) -> Result<PathBuf> {
    let path = Path::new(name);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    if !is_hub_id(name) {
        return Err(ModelError::UnknownModelRef(name.to_string()));
    }
    let (id, revision) = match name.split_once('@') {
        Some((id, rev)) => (id, rev.to_string()),
        None => (name, "main".to_string()),
    };
    let fetcher = Fetcher::new(id, revision, options)?;
    let config = fetcher.required("config.json")?;
    for optional in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "chat_template.jinja",
    ] {
        fetcher.optional(optional)?;
    }
    if fetcher.optional(SINGLE_WEIGHTS)?.is_none() {
        let index = fetcher.required(SHARD_INDEX)?;
        for shard in ShardIndex::from_file(&index)?.shards() {
            fetcher.required(&shard)?;
        }
    }
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| ModelError::UnknownModelRef(name.to_string()))
}

/// Gets files of one repo revision from the cache or the network.
struct Fetcher {
    id: String,
    repo: Repo,
    cache: Cache,
    api: Option<ApiRepo>,
}

impl Fetcher {
    fn new(id: &str, revision: String, options: &HubOptions) -> Result<Self> {
        let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision);
        let cache = options.cache();
        let api = if options.offline {
            None
        } else {
            let mut builder = ApiBuilder::from_cache(cache.clone()).with_progress(options.progress);
            if let Some(endpoint) = &options.endpoint {
                builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_string());
            }
            if options.token.is_some() {
                builder = builder.with_token(options.token.clone());
            }
            let api = builder.build().map_err(|e| ModelError::Hub {
                repo: id.to_string(),
                file: String::new(),
                message: e.to_string(),
            })?;
            Some(api.repo(repo.clone()))
        };
        Ok(Self {
            id: id.to_string(),
            repo,
            cache,
            api,
        })
    }

    /// The file, or `None` if the repo does not have it (HTTP 404).
    fn optional(&self, file: &str) -> Result<Option<PathBuf>> {
        if let Some(path) = self.cache.repo(self.repo.clone()).get(file) {
            return Ok(Some(path));
        }
        let Some(api) = &self.api else {
            return Ok(None);
        };
        match api.download(file) {
            Ok(path) => Ok(Some(path)),
            Err(ApiError::RequestError(e)) if matches!(*e, ureq::Error::StatusCode(404)) => {
                Ok(None)
            }
            Err(e) => Err(self.error(file, e.to_string())),
        }
    }

    fn required(&self, file: &str) -> Result<PathBuf> {
        self.optional(file)?.ok_or_else(|| {
            let why = if self.api.is_none() {
                "not in the local cache and HF_HUB_OFFLINE is set"
            } else {
                "the repository has no such file"
            };
            self.error(file, why.to_string())
        })
    }

    fn error(&self, file: &str, message: String) -> ModelError {
        ModelError::Hub {
            repo: self.id.clone(),
            file: file.to_string(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_hub_id;

    #[test]
    fn hub_ids_are_recognised() {
        assert!(is_hub_id("HuggingFaceTB/SmolLM2-135M"));
        assert!(is_hub_id("org/name@v1.0"));
        assert!(!is_hub_id("name"));
        assert!(!is_hub_id("a/b/c"));
        assert!(!is_hub_id("../x"));
        assert!(!is_hub_id("./x"));
    }
}
