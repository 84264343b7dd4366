//! [`Model`]: a decoder with its tokenizer and generation defaults, loaded
//! from a directory or a hub id.

use std::path::Path;

use kiln_core::Tokenizer;

use crate::arch;
use crate::config::RawConfig;
use crate::decoder::Decoder;
use crate::generation_config::GenerationConfig;
use crate::gguf::{self, GgufFile, GgufSummary};
use crate::hub::{resolve_model_dir, HubOptions};
use crate::kernels::quant::GgmlType;
use crate::model_files::ModelFiles;
use crate::weights::{GgufWeights, SafetensorsWeights, TensorInfo, WeightSource};
use crate::{ModelError, ModelSpec, Result};

/// A ready-to-run model. Cloning shares the weights.
#[derive(Debug, Clone)]
pub struct Model {
    /// Where its files are.
    pub files: ModelFiles,
    /// The decoder.
    pub decoder: Decoder,
    /// Its tokenizer, when the directory has `tokenizer.json`.
    pub tokenizer: Option<Tokenizer>,
    /// `generation_config.json` (defaults when absent).
    pub generation_config: GenerationConfig,
    /// Name, dtype and shape of every stored tensor.
    pub tensors: Vec<TensorInfo>,
    /// The GGUF file's version and metadata summary, when the model came
    /// from one (for `inspect`).
    pub gguf: Option<GgufSummary>,
}

impl Model {
    /// This model with a PEFT adapter attached (base weights shared).
    pub fn with_adapter(&self, adapter: &crate::adapter::Adapter) -> Result<Self> {
        Ok(Self {
            decoder: self.decoder.with_adapter(adapter)?,
            ..self.clone()
        })
    }

    /// Runs `ids` from an empty cache and writes the logits of every
    /// position (`logits`, f32 `[tokens, vocab]`) and the ids (`input_ids`,
    /// i64) to a safetensors file, for comparison with other implementations.
    pub fn write_logits(&self, ids: &[u32], path: &Path) -> Result<()> {
        let mut cache = self.decoder.new_cache();
        let logits = self.decoder.forward(ids, &mut cache, crate::Logits::All)?;
        let ids = candle_core::Tensor::from_vec(
            ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(),
            ids.len(),
            &candle_core::Device::Cpu,
        )?;
        let tensors = std::collections::HashMap::from([
            ("logits".to_string(), logits),
            ("input_ids".to_string(), ids),
        ]);
        candle_core::safetensors::save(&tensors, path).map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Loads a model named by a local directory or a hub id (`org/name`).
    pub fn load(name: &str, hub: &HubOptions) -> Result<Self> {
        let path = Path::new(name);
        if path.is_file() {
            return Self::load_gguf(path);
        }
        let dir = resolve_model_dir(name, hub)?;
        Self::load_dir(&dir)
    }

    /// Only the tokenizer of a model (a GGUF file's metadata, or a
    /// directory's `tokenizer.json`), without loading weights; works on
    /// llama.cpp's vocabulary-only GGUF files.
    pub fn load_tokenizer(name: &str, hub: &HubOptions) -> Result<Tokenizer> {
        let path = Path::new(name);
        if path.is_file() {
            let file = GgufFile::open(path)?;
            return gguf::tokenizer_from_gguf(&file)?
                .ok_or_else(|| file.invalid("has no tokenizer.ggml.* metadata"));
        }
        let dir = resolve_model_dir(name, hub)?;
        let files = ModelFiles::discover(&dir)?;
        let path = files
            .tokenizer
            .as_ref()
            .ok_or_else(|| ModelError::MissingFile {
                dir: dir.clone(),
                what: "tokenizer.json".into(),
            })?;
        Ok(Tokenizer::from_files(
            path,
            files.tokenizer_config.as_deref(),
        )?)
    }

    /// Loads a GGUF file: spec, tokenizer and chat template from its
    /// metadata, matrices kept in their block formats.
    pub fn load_gguf(path: &Path) -> Result<Self> {
        let mut file = GgufFile::open(path)?;
        let (spec, arch) = gguf::gguf_config(&file)?;
        // Tokenizer first, then the metadata and the tokenizer's build
        // buffers freed and given back to the kernel before the weights are
        // packed, so the two peaks do not add up.
        let tokenizer = gguf::tokenizer_from_gguf(&file)?;
        let summary = file.take_summary();
        crate::allocator::release_free_memory();
        let weights = GgufWeights::new(&file);
        let tensors = weights.summary();
        let decoder = Decoder::load_named(spec, arch, gguf::gguf_tensor_name, &weights)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Self {
            files: ModelFiles {
                dir,
                config: path.to_path_buf(),
                weights: vec![path.to_path_buf()],
                tokenizer: None,
                tokenizer_config: None,
                generation_config: None,
            },
            decoder,
            tokenizer,
            generation_config: GenerationConfig::default(),
            tensors,
            gguf: Some(summary),
        })
    }

    /// Loads the model in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        Self::load_dir_with(dir, None)
    }

    /// [`Model::load`], quantizing a safetensors model's projections to
    /// `quantize` while loading (in-situ quantization; GGUF files keep their
    /// stored types).
    pub fn load_quantized(
        name: &str,
        hub: &HubOptions,
        quantize: Option<GgmlType>,
    ) -> Result<Self> {
        let path = Path::new(name);
        if path.is_file() {
            return Self::load_gguf(path);
        }
        let dir = resolve_model_dir(name, hub)?;
        Self::load_dir_with(&dir, quantize)
    }

    /// [`Model::load_dir`] with in-situ quantization (see [`Model::load_quantized`]).
    pub fn load_dir_with(dir: &Path, quantize: Option<GgmlType>) -> Result<Self> {
        let files = ModelFiles::discover(dir)?;
        let config = RawConfig::from_file(&files.config)?;
        let (spec, arch) = arch::spec_for(&config)?;
        let weights = SafetensorsWeights::open(&files.weights)?;
        let tensors = weights.summary();
        let decoder = Decoder::load_with(spec, arch, arch.tensor_name, &weights, quantize)?;
        let tokenizer = match &files.tokenizer {
            Some(path) => Some(Tokenizer::from_files(
                path,
                files.tokenizer_config.as_deref(),
            )?),
            None => None,
        };
        let generation_config = match &files.generation_config {
            Some(path) => GenerationConfig::from_file(path)?,
            None => GenerationConfig::default(),
        };
        Ok(Self {
            files,
            decoder,
            tokenizer,
            generation_config,
            tensors,
            gguf: None,
        })
    }

    /// The model's spec.
    pub fn spec(&self) -> &ModelSpec {
        self.decoder.spec()
    }

    /// The tokenizer, or an error naming the directory when it has none.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| ModelError::MissingFile {
                dir: self.files.dir.clone(),
                what: "tokenizer.json".into(),
            })
    }

    /// EOS ids: `generation_config.json`'s list, else `config.json`'s, else
    /// the tokenizer's EOS token.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let from_gen = self.generation_config.eos_ids();
        if !from_gen.is_empty() {
            return from_gen;
        }
        if !self.spec().eos_token_ids.is_empty() {
            return self.spec().eos_token_ids.clone();
        }
        self.tokenizer
            .as_ref()
            .and_then(Tokenizer::eos_id)
            .into_iter()
            .collect()
    }
}
