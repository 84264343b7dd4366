//! The tokenizer wrapper: `tokenizer.json` through the `tokenizers` crate,
//! with transformers' special-token rules from `tokenizer_config.json`, or a
//! GGUF file's SentencePiece-style vocabulary through kiln's own
//! [`SpmTokenizer`].

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokenizers::processors::template::TemplateProcessing;

use crate::{
    ChatMessage, ChatTemplate, CoreError, RenderOptions, SpecialTokens, SpmTokenizer, TokenBytes,
    TokenId,
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
    backend: Backend,
    special: SpecialTokens,
    /// Per-token bytes, built on first use and shared by clones.
    token_bytes: Arc<OnceLock<Arc<TokenBytes>>>,
}

/// What does the tokenizing.
#[derive(Clone)]
enum Backend {
    /// A `tokenizers` pipeline (`tokenizer.json`, or built from GGUF BPE and
    /// WordPiece vocabularies).
    HuggingFace(Box<tokenizers::Tokenizer>),
    /// A GGUF SentencePiece-style vocabulary.
    Spm {
        model: Arc<SpmTokenizer>,
        /// Whether control-token text in the input becomes those tokens.
        parse_special: bool,
    },
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
        match &mut copy.backend {
            Backend::HuggingFace(inner) => {
                inner.set_encode_special_tokens(!parse);
            }
            Backend::Spm { parse_special, .. } => *parse_special = parse,
        }
        copy
    }

    /// Wraps a SentencePiece-style GGUF tokenizer; BOS/EOS are added as
    /// `special`'s flags say (both must then be pieces of the vocabulary).
    pub fn from_spm(model: SpmTokenizer, special: SpecialTokens) -> Result<Self, String> {
        for (add, token) in [
            (special.add_bos_token, &special.bos_token),
            (special.add_eos_token, &special.eos_token),
        ] {
            if let (Some(true), Some(token)) = (add, token) {
                if model.token_to_id(token).is_none() {
                    return Err(format!("special token {token:?} is not in the vocabulary"));
                }
            }
        }
        Ok(Self {
            backend: Backend::Spm {
                model: Arc::new(model),
                parse_special: true,
            },
            special,
            token_bytes: Arc::default(),
        })
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
            backend: Backend::HuggingFace(Box::new(inner)),
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
        let ids = match &self.backend {
            Backend::HuggingFace(inner) => {
                let enc = inner
                    .encode(text, add_special_tokens)
                    .map_err(|e| CoreError::Tokenization(e.to_string()))?;
                return Ok(Encoding {
                    ids: enc.get_ids().to_vec(),
                    pieces: enc.get_tokens().to_vec(),
                });
            }
            Backend::Spm {
                model,
                parse_special,
            } => {
                let ids = model
                    .encode(text, *parse_special)
                    .into_iter()
                    .map(|(id, _)| id);
                self.with_bos_eos(ids.collect(), add_special_tokens)
            }
        };
        let pieces = ids
            .iter()
            .map(|&id| self.id_to_token(id).unwrap_or_default())
            .collect();
        Ok(Encoding { ids, pieces })
    }

    /// Encodes `text` without BOS/EOS, with the byte range of `text` each
    /// token came from.
    pub fn encode_with_offsets(
        &self,
        text: &str,
    ) -> Result<(Vec<TokenId>, Vec<std::ops::Range<usize>>), CoreError> {
        Ok(match &self.backend {
            Backend::HuggingFace(inner) => {
                let enc = inner
                    .encode(text, false)
                    .map_err(|e| CoreError::Tokenization(e.to_string()))?;
                let offsets = enc.get_offsets().iter().map(|&(s, e)| s..e).collect();
                (enc.get_ids().to_vec(), offsets)
            }
            Backend::Spm {
                model,
                parse_special,
            } => model.encode(text, *parse_special).into_iter().unzip(),
        })
    }

    /// `ids` with BOS in front and EOS behind where `special` asks for them.
    fn with_bos_eos(&self, ids: Vec<TokenId>, add_special_tokens: bool) -> Vec<TokenId> {
        if !add_special_tokens {
            return ids;
        }
        let bos = (self.special.add_bos_token == Some(true))
            .then(|| self.bos_id())
            .flatten();
        let eos = (self.special.add_eos_token == Some(true))
            .then(|| self.eos_id())
            .flatten();
        bos.into_iter().chain(ids).chain(eos).collect()
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
        let inner = match &self.backend {
            Backend::HuggingFace(inner) => inner,
            Backend::Spm { .. } => {
                return Err(CoreError::Tokenization(
                    "text pairs need a tokenizer.json with a pair template".into(),
                ))
            }
        };
        let err = |e: tokenizers::Error| CoreError::Tokenization(e.to_string());
        let mut first = inner.encode(a, false).map_err(err)?;
        let mut second = inner.encode(b, false).map_err(err)?;
        let specials = inner
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
        let enc = inner.post_process(first, Some(second), true).map_err(err)?;
        Ok((enc.get_ids().to_vec(), enc.get_type_ids().to_vec()))
    }

    /// Decodes ids back to text. `skip_special_tokens` drops special tokens.
    pub fn decode(&self, ids: &[TokenId], skip_special_tokens: bool) -> Result<String, CoreError> {
        match &self.backend {
            Backend::HuggingFace(inner) => inner
                .decode(ids, skip_special_tokens)
                .map_err(|e| CoreError::Tokenization(e.to_string())),
            Backend::Spm { model, .. } => Ok(model.decode(ids, skip_special_tokens)),
        }
    }

    /// The id of a token given by its text, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<TokenId> {
        match &self.backend {
            Backend::HuggingFace(inner) => inner.token_to_id(token),
            Backend::Spm { model, .. } => model.token_to_id(token),
        }
    }

    /// The vocabulary piece of `id`, if there is one.
    pub fn id_to_token(&self, id: TokenId) -> Option<String> {
        match &self.backend {
            Backend::HuggingFace(inner) => inner.id_to_token(id),
            Backend::Spm { model, .. } => model.piece(id).map(str::to_string),
        }
    }

    /// True for SentencePiece byte-fallback pieces (`<0x41>`).
    pub fn is_byte_fallback(&self, id: TokenId) -> bool {
        self.id_to_token(id)
            .is_some_and(|piece| crate::spm::byte_piece(&piece).is_some())
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        match &self.backend {
            Backend::HuggingFace(inner) => inner.get_vocab_size(true),
            Backend::Spm { model, .. } => model.vocab_size(),
        }
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

    /// The underlying `tokenizers` tokenizer (`None` for a GGUF
    /// SentencePiece-style vocabulary, which kiln tokenizes itself).
    pub fn huggingface(&self) -> Option<&tokenizers::Tokenizer> {
        match &self.backend {
            Backend::HuggingFace(inner) => Some(inner.as_ref()),
            Backend::Spm { .. } => None,
        }
    }

    /// The SentencePiece-style tokenizer, when that is what this is.
    pub fn spm(&self) -> Option<&SpmTokenizer> {
        match &self.backend {
            Backend::HuggingFace(_) => None,
            Backend::Spm { model, .. } => Some(model),
        }
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
