//! OpenAI's tiktoken rank files, found or fetched: a file in
//! `$KILN_TIKTOKEN_DIR` (or kiln's cache, `$XDG_CACHE_HOME/kiln/tiktoken`,
//! default `~/.cache/kiln/tiktoken`) is used as it is; a missing one is
//! downloaded from OpenAI (or `$KILN_TIKTOKEN_URL`, a base address for
//! mirrors), checked against the SHA-256 that the `tiktoken` package pins,
//! and stored atomically.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_core::tiktoken::{known_encoding, KnownEncoding, TiktokenEncoding, KNOWN_ENCODINGS};
use sha2::{Digest, Sha256};

use crate::{ModelError, Result};

/// Where rank files are looked for and fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiktokenSource {
    /// The directory holding `<name>.tiktoken` files.
    pub dir: PathBuf,
    /// A base address to fetch `<name>.tiktoken` from instead of OpenAI's.
    pub base_url: Option<String>,
    /// Never download (`HF_HUB_OFFLINE=1` or `KILN_OFFLINE=1`).
    pub offline: bool,
}

impl TiktokenSource {
    /// The source described by `KILN_TIKTOKEN_DIR`, `XDG_CACHE_HOME`,
    /// `HOME`, `KILN_TIKTOKEN_URL`, `KILN_OFFLINE` and `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let dir = var("KILN_TIKTOKEN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                var("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_else(|| PathBuf::from(".cache"))
                    .join("kiln")
                    .join("tiktoken")
            });
        let on = |k: &str| var(k).is_some_and(|v| v == "1" || v == "true");
        Self {
            dir,
            base_url: var("KILN_TIKTOKEN_URL"),
            offline: on("KILN_OFFLINE") || on("HF_HUB_OFFLINE"),
        }
    }

    /// Loads the encoding named `name` (an encoding or a hosted model name
    /// such as `gpt-4o`), fetching its rank file if it is not here yet.
    pub fn load(&self, name: &str) -> Result<TiktokenEncoding> {
        let known = known_encoding(name).ok_or_else(|| {
            let names: Vec<&str> = KNOWN_ENCODINGS.iter().map(|e| e.name).collect();
            ModelError::InvalidInput(format!(
                "unknown tiktoken encoding or model {name:?} (known: {}, or an OpenAI model name such as gpt-4o)",
                names.join(", ")
            ))
        })?;
        let path = self.rank_file(known)?;
        Ok(TiktokenEncoding::from_file(known, &path)?)
    }

    /// The local rank file of `known`, downloaded first if missing.
    pub fn rank_file(&self, known: &KnownEncoding) -> Result<PathBuf> {
        let path = self.dir.join(format!("{}.tiktoken", known.name));
        if path.is_file() {
            return Ok(path);
        }
        let url = match &self.base_url {
            Some(base) => format!("{}/{}.tiktoken", base.trim_end_matches('/'), known.name),
            None => known.url.to_string(),
        };
        if self.offline {
            return Err(ModelError::Download {
                url,
                message: format!("offline, and {} is not there", path.display()),
            });
        }
        let body = download(&url)?;
        let have = hex(&Sha256::digest(&body));
        if have != known.sha256 {
            return Err(ModelError::Download {
                url,
                message: format!("checksum {have} is not the expected {}", known.sha256),
            });
        }
        write_atomically(&path, &body)?;
        Ok(path)
    }
}

/// The body of a GET, at most 64 MiB.
fn download(url: &str) -> Result<Vec<u8>> {
    let fail = |message: String| ModelError::Download {
        url: url.to_string(),
        message,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    eprintln!("downloading {url}…");
    let response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(64 << 20)
        .read_to_end(&mut body)
        .map_err(|e| fail(e.to_string()))?;
    Ok(body)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let partial = path.with_extension(format!("part{}", std::process::id()));
    std::fs::write(&partial, bytes).map_err(io)?;
    std::fs::rename(&partial, path).map_err(io)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
