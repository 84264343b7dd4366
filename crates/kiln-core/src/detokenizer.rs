//! Streaming detokenization: text deltas that never split a UTF-8 character
//! and concatenate to exactly the decode of all tokens.

use crate::{CoreError, TokenId, Tokenizer};

/// Turns a growing list of token ids into text deltas.
#[derive(Debug, Clone, Default)]
pub struct DetokenizerStream {
    ids: Vec<TokenId>,
    emitted: String,
    skip_special_tokens: bool,
}

impl DetokenizerStream {
    /// A stream that drops special tokens from the text when `skip_special_tokens`.
    pub fn new(skip_special_tokens: bool) -> Self {
        Self {
            ids: Vec::new(),
            emitted: String::new(),
            skip_special_tokens,
        }
    }

    /// Adds a token; returns the new complete text, possibly empty (when the
    /// token ends inside a multi-byte character).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: TokenId) -> Result<String, CoreError> {
        self.ids.push(id);
        // A run of byte-fallback tokens is decoded as one unit: a later byte
        // can turn earlier ones into U+FFFD, so wait until the run ends.
        if tokenizer.is_byte_fallback(id) {
            return Ok(String::new());
        }
        let text = tokenizer.decode(&self.ids, self.skip_special_tokens)?;
        if text.ends_with('\u{FFFD}') || !text.starts_with(&self.emitted) {
            return Ok(String::new());
        }
        let delta = text[self.emitted.len()..].to_string();
        self.emitted = text;
        Ok(delta)
    }

    /// Whatever is left at the end of generation (e.g. a trailing incomplete
    /// character, shown as U+FFFD as transformers shows it).
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<String, CoreError> {
        let text = tokenizer.decode(&self.ids, self.skip_special_tokens)?;
        let delta = match text.strip_prefix(self.emitted.as_str()) {
            Some(rest) => rest.to_string(),
            None => String::new(),
        };
        self.emitted.push_str(&delta);
        Ok(delta)
    }

    /// All text emitted so far.
    pub fn text(&self) -> &str {
        &self.emitted
    }
}
