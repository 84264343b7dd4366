//! Token counting for `kiln tokens` and `kiln summarize`: a model's
//! tokenizer, an OpenAI tiktoken encoding, or (with neither) an estimate.

use anyhow::{Context, Result};

/// What tokens are counted with.
pub enum TokenCounter {
    /// A local model's tokenizer.
    Model(Box<kiln_core::Tokenizer>),
    /// A tiktoken encoding (`cl100k_base`, `o200k_base`).
    Tiktoken(Box<kiln_core::tiktoken::TiktokenEncoding>),
    /// Four bytes a token: only for sizing pieces when nothing better is known.
    Estimate,
}

impl TokenCounter {
    /// The tiktoken `encoding` if given, else `model`'s tokenizer, else the estimate.
    pub fn load(model: Option<&str>, encoding: Option<&str>) -> Result<Self> {
        if let Some(name) = encoding {
            let encoding = kiln_models::tiktoken::TiktokenSource::from_env()
                .load(name)
                .with_context(|| format!("loading the tiktoken encoding {name}"))?;
            return Ok(Self::Tiktoken(Box::new(encoding)));
        }
        let Some(model) = model else {
            return Ok(Self::Estimate);
        };
        let tokenizer =
            kiln_models::Model::load_tokenizer(model, &kiln_models::HubOptions::from_env())
                .with_context(|| format!("loading the tokenizer of {model}"))?;
        Ok(Self::Model(Box::new(tokenizer)))
    }

    /// Tokens of `text`, without BOS/EOS; special-token text counts as text.
    pub fn count(&self, text: &str) -> Result<usize> {
        Ok(match self {
            Self::Model(tokenizer) => tokenizer.encode(text, false)?.ids.len(),
            Self::Tiktoken(encoding) => encoding.count(text)?,
            Self::Estimate => text.len().div_ceil(4),
        })
    }
}
