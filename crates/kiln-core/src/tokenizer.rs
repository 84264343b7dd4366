//! The tokenizer wrapper: `tokenizer.json` through the `tokenizers` crate,
//! with transformers' special-token rules from `tokenizer_config.json`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokenizers::processors::template::TemplateProcessing;

use crate::{
    ChatMessage, ChatTemplate, CoreError, RenderOptions, SpecialTokens, TokenBytes, TokenId,
};

/// A BPE model's parts for [`Tokenizer::from_json_with_bpe`].
#[derive(Debug, Clone, Default)]
pub struct BpeParts {
    /// Piece → id.
    pub vocab: std::collections::HashMap<String, u32>,
    /// Merges, highest priority first.
    pub merges: Vec<(String, String)>,
    /// The unknown-token piece, if any.
    pub unk_token: Option<String>,
    /// Consecutive unknown pieces become one unknown token.
    pub fuse_unk: bool,
    /// Unknown characters become their UTF-8 byte tokens (`<0x41>`).
    pub byte_fallback: bool,
    /// Whole words found in the vocabulary skip merging (llama 3).
    pub ignore_merges: bool,
    /// Tokens matched in raw text before the model runs (control and
    /// user-defined pieces), added once the model holds the vocabulary so
    /// each keeps its vocabulary id.
    pub added_tokens: Vec<AddedPiece>,
}

/// A vocabulary piece matched whole in raw text (see [`BpeParts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedPiece {
    /// The piece's text.
    pub content: String,
    /// Special pieces are skipped when decoding with `skip_special_tokens`
    /// and are not split by the pre-tokenizer.
    pub special: bool,
}

/// The result of encoding a text: ids and the matching token pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids, special tokens included when they were requested.
    pub ids: Vec<TokenId>,
    /// The vocabulary piece of each id.
    pub pieces: Vec<String>,
}

/// A model's tokenizer: encodes text to ids and decodes ids to text exactly as
/// transformers' fast tokenizer does.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialTokens,
    /// Per-token bytes, built on first use and shared by clones.
    token_bytes: Arc<OnceLock<Arc<TokenBytes>>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.special)
            .finish()
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json` and, when given, `tokenizer_config.json`.
    ///
    /// When the config sets `add_bos_token` or `add_eos_token` explicitly the
    /// post-processor is rebuilt from those flags, as transformers'
    /// `LlamaTokenizerFast.update_post_processor` does; otherwise the
    /// post-processor in `tokenizer.json` decides.
    pub fn from_files(tokenizer_json: &Path, config: Option<&Path>) -> Result<Self, CoreError> {
        let bytes = std::fs::read(tokenizer_json).map_err(|source| CoreError::Io {
            path: tokenizer_json.to_path_buf(),
            source,
        })?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| CoreError::InvalidTokenizer {
                path: tokenizer_json.to_path_buf(),
                message: e.to_string(),
            })?;
        let special = match config {
            Some(path) => SpecialTokens::from_file(path)?,
            None => SpecialTokens::default(),
        };
        Self::new(inner, special).map_err(|message| CoreError::InvalidTokenizer {
            path: tokenizer_json.to_path_buf(),
            message,
        })
    }

    /// Builds a tokenizer from the text of a `tokenizer.json` and special-token rules.
    pub fn from_json(json: &[u8], special: SpecialTokens) -> Result<Self, String> {
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| e.to_string())?;
        Self::new(inner, special)
    }

    /// Builds a tokenizer from `tokenizer.json` text that holds the pipeline
    /// (normalizer, pre-tokenizer, decoder) around a BPE model with an empty
    /// vocabulary and no added tokens, then installs `bpe` (vocabulary and
    /// merges) as the model and adds `bpe.added_tokens`. A 262k vocabulary
    /// with half a million merges costs several times its size as JSON
    /// values; passed directly it does not.
    pub fn from_json_with_bpe(
        json: &[u8],
        bpe: BpeParts,
        special: SpecialTokens,
    ) -> Result<Self, String> {
        use tokenizers::models::bpe::{Vocab, BPE};
        let mut inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| e.to_string())?;
        let vocab: Vocab = bpe.vocab.into_iter().collect();
        let mut builder = BPE::builder()
            .vocab_and_merges(vocab, bpe.merges)
            .fuse_unk(bpe.fuse_unk)
            .byte_fallback(bpe.byte_fallback)
            .ignore_merges(bpe.ignore_merges);
        if let Some(unk) = bpe.unk_token {
            builder = builder.unk_token(unk);
        }
        inner.with_model(builder.build().map_err(|e| e.to_string())?);
        let added = bpe
            .added_tokens
            .into_iter()
            .map(|t| tokenizers::AddedToken::from(t.content, t.special).normalized(false));
        inner.add_tokens(added).map_err(|e| e.to_string())?;
        Self::new(inner, special)
    }

    /// The same tokenizer, but matching special-token text in the input
    /// (`<s>`, `<|im_end|>`) only when `parse` is true; with `false` such text
    /// is tokenized like any other (llama.cpp's `parse_special = false`).
    pub fn with_special_parsing(&self, parse: bool) -> Self {
        let mut copy = self.clone();
        copy.inner.set_encode_special_tokens(!parse);
        copy
    }

    /// Wraps an already built `tokenizers` tokenizer.
    pub fn new(mut inner: tokenizers::Tokenizer, special: SpecialTokens) -> Result<Self, String> {
        // Padding and truncation saved in tokenizer.json (common in
        // sentence-transformers exports) are batch settings of the Python
        // pipeline; kiln encodes one text at a time and truncates itself.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| format!("cannot clear truncation: {e}"))?;
        if special.add_bos_token.is_some() || special.add_eos_token.is_some() {
            let bos = special
                .add_bos_token
                .unwrap_or(false)
                .then_some(special.bos_token.as_deref())
                .flatten();
            let eos = special
                .add_eos_token
                .unwrap_or(false)
                .then_some(special.eos_token.as_deref())
                .flatten();
            let processor = build_post_processor(&inner, bos, eos)?;
            inner.with_post_processor(Some(processor));
        }
        Ok(Self {
            inner,
            special,
            token_bytes: Arc::default(),
        })
    }

    /// The bytes each token stands for (built once, then shared).
    pub fn token_bytes(&self) -> Arc<TokenBytes> {
        self.token_bytes
            .get_or_init(|| Arc::new(TokenBytes::new(self)))
            .clone()
    }

    /// Encodes `text`; `add_special_tokens` adds BOS/EOS as transformers would.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Encoding, CoreError> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| CoreError::Tokenization(e.to_string()))?;
        Ok(Encoding {
            ids: enc.get_ids().to_vec(),
            pieces: enc.get_tokens().to_vec(),
        })
    }

    /// Encodes a text pair as sequence-classification models read it (BERT:
    /// `[CLS] a [SEP] b [SEP]`, RoBERTa: `<s> a </s></s> b </s>`, from the
    /// tokenizer's own post-processor), truncated to `max_len` tokens by
    /// transformers' longest-first rule. Returns ids and token-type ids.
    pub fn encode_pair(
        &self,
        a: &str,
        b: &str,
        max_len: usize,
    ) -> Result<(Vec<TokenId>, Vec<u32>), CoreError> {
        let err = |e: tokenizers::Error| CoreError::Tokenization(e.to_string());
        let mut first = self.inner.encode(a, false).map_err(err)?;
        let mut second = self.inner.encode(b, false).map_err(err)?;
        let specials = self
            .inner
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, true));
        let budget = max_len.saturating_sub(specials);
        let (mut la, mut lb) = (first.len(), second.len());
        while la + lb > budget {
            if la > lb {
                la -= 1;
            } else {
                lb -= 1;
            }
        }
        first.truncate(la, 0, tokenizers::TruncationDirection::Right);
        second.truncate(lb, 0, tokenizers::TruncationDirection::Right);
        let enc = self
            .inner
            .post_process(first, Some(second), true)
            .map_err(err)?;
        Ok((enc.get_ids().to_vec(), enc.get_type_ids().to_vec()))
    }

    /// Decodes ids back to text. `skip_special_tokens` drops special tokens.
    pub fn decode(&self, ids: &[TokenId], skip_special_tokens: bool) -> Result<String, CoreError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| CoreError::Tokenization(e.to_string()))
    }

    /// The id of a token given by its text, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<TokenId> {
        self.inner.token_to_id(token)
    }

    /// True for SentencePiece byte-fallback pieces (`<0x41>`).
    pub fn is_byte_fallback(&self, id: TokenId) -> bool {
        self.inner.id_to_token(id).is_some_and(|piece| {
            piece.len() == 6
                && piece.starts_with("<0x")
                && piece.ends_with('>')
                && piece[3..5].chars().all(|c| c.is_ascii_hexdigit())
        })
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The special tokens from `tokenizer_config.json`.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// The id of the BOS token, if the tokenizer has one.
    pub fn bos_id(&self) -> Option<TokenId> {
        self.special
            .bos_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
    }

    /// The id of the EOS token, if the tokenizer has one.
    pub fn eos_id(&self) -> Option<TokenId> {
        self.special
            .eos_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
    }

    /// Renders `messages` with the model's chat template (or `template` when
    /// given), with the tokenizer's BOS/EOS tokens.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
        template: Option<&str>,
    ) -> Result<String, CoreError> {
        let source = template
            .or(self.special.chat_template.as_deref())
            .ok_or_else(|| {
                CoreError::ChatTemplate(
                    "the model has no chat template; pass one (e.g. --template chatml)".into(),
                )
            })?;
        ChatTemplate::new(source)?.render(
            messages,
            &RenderOptions {
                add_generation_prompt,
                bos_token: self.special.bos_token.clone(),
                eos_token: self.special.eos_token.clone(),
                tools: tools.cloned(),
            },
        )
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// `[bos] $A [eos]` (and the pair form) as a template post-processor.
fn build_post_processor(
    inner: &tokenizers::Tokenizer,
    bos: Option<&str>,
    eos: Option<&str>,
) -> Result<TemplateProcessing, String> {
    let mut specials = Vec::new();
    for token in [bos, eos].into_iter().flatten() {
        let id = inner
            .token_to_id(token)
            .ok_or_else(|| format!("special token {token:?} is not in the vocabulary"))?;
        specials.push((token.to_string(), id));
    }
    let wrap = |seq: &str, type_id: u32| {
        let mut parts = Vec::new();
        if let Some(b) = bos {
            parts.push(format!("{b}:{type_id}"));
        }
        parts.push(format!("{seq}:{type_id}"));
        if let Some(e) = eos {
            parts.push(format!("{e}:{type_id}"));
        }
        parts.join(" ")
    };
    let single = wrap("$A", 0);
    let pair = format!("{} {}", single, wrap("$B", 1));
    TemplateProcessing::builder()
        .try_single(single.as_str())
        .map_err(|e| e.to_string())?
        .try_pair(pair.as_str())
        .map_err(|e| e.to_string())?
        .special_tokens(specials)
        .build()
        .map_err(|e| e.to_string())
}
