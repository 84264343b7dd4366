//! [`SpmTokenizer`]: SentencePiece-style BPE as llama.cpp runs it for GGUF
//! files whose `tokenizer.ggml.model` is `llama` (Llama 1/2, Mistral,
//! Gemma, Phi-3…): spaces become `▁`, a `▁` is put in front of each run of
//! text that starts the input or follows a special token, adjacent pieces
//! merge highest score first while the merged text is a vocabulary piece,
//! and characters no piece covers fall back to byte pieces (`<0x41>`).
//!
//! It holds the vocabulary compactly ([`table::PieceTable`]) instead of
//! building `tokenizers`' maps and a merge list from the scores: gemma-3's
//! 262k pieces took ~100 MB that way, and about 8 MB here.

mod merge;
mod table;

use std::ops::Range;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::TokenId;
use table::PieceTable;

/// The SentencePiece word-boundary marker.
const SPACE: char = '\u{2581}';

/// What a vocabulary piece is (ggml's token types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    /// Ordinary text.
    Normal,
    /// The unknown token.
    Unknown,
    /// A control token (`<s>`, `<start_of_turn>`): matched in raw text only
    /// when special tokens are parsed, never decoded when they are skipped.
    Control,
    /// A user-defined piece: always matched whole in raw text, decoded as
    /// its text.
    UserDefined,
    /// A placeholder the model never uses: not looked up by text.
    Unused,
    /// A byte piece (`<0x41>`).
    Byte,
}

impl PieceKind {
    /// ggml's `tokenizer.ggml.token_type` code (1 normal … 6 byte); unknown
    /// codes read as normal.
    pub fn from_ggml(code: i64) -> Self {
        match code {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }

    /// Skipped when decoding with `skip_special_tokens`.
    fn is_special(self) -> bool {
        matches!(self, Self::Control | Self::Unknown)
    }
}

/// Pieces matched whole in raw text before the merges run.
#[derive(Debug, Clone)]
struct WholePieces {
    matcher: AhoCorasick,
    ids: Vec<TokenId>,
}

impl WholePieces {
    fn new(
        table: &PieceTable,
        kinds: &[PieceKind],
        keep: impl Fn(PieceKind) -> bool,
    ) -> Option<Self> {
        let (ids, texts): (Vec<TokenId>, Vec<&str>) = (0..table.len() as TokenId)
            .filter(|&id| keep(kinds[id as usize]))
            .filter_map(|id| Some((id, table.piece(id).filter(|p| !p.is_empty())?)))
            .unzip();
        if ids.is_empty() {
            return None;
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(texts)
            .ok()?;
        Some(Self { matcher, ids })
    }
}

/// A SentencePiece-style tokenizer (see the module docs).
#[derive(Debug, Clone)]
pub struct SpmTokenizer {
    table: PieceTable,
    scores: Vec<f32>,
    kinds: Vec<PieceKind>,
    /// The piece of each byte value, where the vocabulary has one.
    byte_ids: Vec<Option<TokenId>>,
    unknown: Option<TokenId>,
    add_space_prefix: bool,
    /// Control, unknown and user-defined pieces.
    specials: Option<WholePieces>,
    /// User-defined pieces only (special-token parsing off).
    user_defined: Option<WholePieces>,
}

impl SpmTokenizer {
    /// A tokenizer over `pieces` (in id order) with their `scores` and
    /// `kinds` (missing entries read as 0 and normal). `add_space_prefix`
    /// puts a `▁` before text that starts the input or follows a special
    /// token (GGUF `tokenizer.ggml.add_space_prefix`, default true).
    pub fn new(
        pieces: &[String],
        scores: &[f32],
        kinds: &[PieceKind],
        add_space_prefix: bool,
    ) -> Result<Self, String> {
        let kinds: Vec<PieceKind> = (0..pieces.len())
            .map(|i| kinds.get(i).copied().unwrap_or(PieceKind::Normal))
            .collect();
        let scores: Vec<f32> = (0..pieces.len())
            .map(|i| scores.get(i).copied().unwrap_or(0.0))
            .collect();
        let table = PieceTable::new(pieces.iter().map(String::as_str), |id| {
            kinds[id as usize] != PieceKind::Unused
        })
        .ok_or("the vocabulary's text is larger than 4 GiB")?;
        let byte_ids = (0..=255u8)
            .map(|b| table.get(&format!("<0x{b:02X}>")))
            .collect();
        let unknown = kinds
            .iter()
            .position(|&k| k == PieceKind::Unknown)
            .map(|i| i as TokenId);
        let specials = WholePieces::new(&table, &kinds, |k| {
            matches!(
                k,
                PieceKind::Control | PieceKind::Unknown | PieceKind::UserDefined
            )
        });
        let user_defined = WholePieces::new(&table, &kinds, |k| k == PieceKind::UserDefined);
        Ok(Self {
            table,
            scores,
            kinds,
            byte_ids,
            unknown,
            add_space_prefix,
            specials,
            user_defined,
        })
    }

    /// Number of pieces.
    pub fn vocab_size(&self) -> usize {
        self.table.len()
    }

    /// The text of `id`.
    pub fn piece(&self, id: TokenId) -> Option<&str> {
        self.table.piece(id)
    }

    /// The id of a piece given by its text (unused pieces are not found).
    pub fn token_to_id(&self, piece: &str) -> Option<TokenId> {
        self.table.get(piece)
    }

    /// Whether `id` is skipped when decoding with `skip_special_tokens`
    /// (control and unknown pieces).
    pub fn is_special(&self, id: TokenId) -> bool {
        self.kinds.get(id as usize).is_some_and(|k| k.is_special())
    }

    /// Encodes `text`: ids with the byte range of `text` each came from.
    /// With `parse_special`, control-token text (`<start_of_turn>`) becomes
    /// that token; user-defined pieces are always matched.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<(TokenId, Range<usize>)> {
        let whole = if parse_special {
            self.specials.as_ref()
        } else {
            self.user_defined.as_ref()
        };
        let mut out = Vec::new();
        let mut after_special = true;
        let mut at = 0;
        let text_run = |out: &mut Vec<_>, range: Range<usize>, after_special: bool| {
            if !range.is_empty() {
                let prefix = self.add_space_prefix && after_special;
                self.encode_run(text, range, prefix, out);
            }
        };
        if let Some(whole) = whole {
            for m in whole.matcher.find_iter(text) {
                if m.start() > at {
                    text_run(&mut out, at..m.start(), after_special);
                }
                out.push((whole.ids[m.pattern().as_usize()], m.range()));
                after_special = true;
                at = m.end();
            }
        }
        if at < text.len() {
            text_run(&mut out, at..text.len(), after_special);
        }
        out
    }

    /// One run of text between special pieces, merged and resolved.
    fn encode_run(
        &self,
        text: &str,
        range: Range<usize>,
        space_prefix: bool,
        out: &mut Vec<(TokenId, Range<usize>)>,
    ) {
        let mut normalized = String::with_capacity(range.len() + 3);
        // Per character of `normalized`: its byte range there (`spans`) and
        // in `text` (`sources`).
        let mut spans: Vec<Range<usize>> = Vec::with_capacity(range.len() + 1);
        let mut sources: Vec<Range<usize>> = Vec::with_capacity(range.len() + 1);
        let mut push = |c: char, source: Range<usize>| {
            let start = normalized.len();
            normalized.push(c);
            spans.push(start..normalized.len());
            sources.push(source);
        };
        if space_prefix {
            push(SPACE, range.start..range.start);
        }
        for (i, c) in text[range.clone()].char_indices() {
            let at = range.start + i;
            push(if c == ' ' { SPACE } else { c }, at..at + c.len_utf8());
        }
        for symbol in merge::merge(&normalized, &spans, |piece| {
            let id = self.table.get(piece)?;
            Some(self.scores[id as usize])
        }) {
            let piece = &normalized[spans[symbol.start].start..spans[symbol.end - 1].end];
            let source = sources[symbol.start].start..sources[symbol.end - 1].end;
            match self.table.get(piece) {
                Some(id) => out.push((id, source)),
                None => self.push_bytes(piece, source, out),
            }
        }
    }

    /// A piece no vocabulary entry covers, as byte pieces (or one unknown
    /// token where a byte piece is missing).
    fn push_bytes(
        &self,
        piece: &str,
        source: Range<usize>,
        out: &mut Vec<(TokenId, Range<usize>)>,
    ) {
        let ids: Option<Vec<TokenId>> = piece.bytes().map(|b| self.byte_ids[b as usize]).collect();
        match ids {
            Some(ids) => out.extend(ids.into_iter().map(|id| (id, source.clone()))),
            None => {
                if let Some(unk) = self.unknown {
                    match out.last_mut() {
                        Some((last, span)) if *last == unk && span.end == source.start => {
                            span.end = source.end;
                        }
                        _ => out.push((unk, source)),
                    }
                }
            }
        }
    }

    /// Decodes `ids`: `▁` back to spaces, runs of byte pieces to UTF-8
    /// (U+FFFD per byte of an invalid run), the leading space the prefix
    /// added dropped; unused pieces are skipped, and control/unknown ones
    /// too when `skip_special_tokens`.
    pub fn decode(&self, ids: &[TokenId], skip_special_tokens: bool) -> String {
        let mut text = String::new();
        let mut bytes = Vec::new();
        let flush = |text: &mut String, bytes: &mut Vec<u8>| {
            match std::str::from_utf8(bytes) {
                Ok(s) => text.push_str(s),
                Err(_) => text.extend(std::iter::repeat_n('\u{FFFD}', bytes.len())),
            }
            bytes.clear();
        };
        for &id in ids {
            let (Some(piece), Some(&kind)) = (self.table.piece(id), self.kinds.get(id as usize))
            else {
                continue;
            };
            if kind == PieceKind::Unused || (skip_special_tokens && kind.is_special()) {
                continue;
            }
            if let Some(b) = byte_piece(piece) {
                bytes.push(b);
                continue;
            }
            flush(&mut text, &mut bytes);
            text.extend(piece.chars().map(|c| if c == SPACE { ' ' } else { c }));
        }
        flush(&mut text, &mut bytes);
        if self.add_space_prefix && text.starts_with(' ') {
            text.remove(0);
        }
        text
    }

    /// The bytes each id stands for in generated text: `None` for control,
    /// unknown and unused pieces.
    pub fn token_bytes(&self) -> Vec<Option<Vec<u8>>> {
        (0..self.table.len() as TokenId)
            .map(|id| {
                let kind = self.kinds[id as usize];
                if kind.is_special() || kind == PieceKind::Unused {
                    return None;
                }
                let piece = self.table.piece(id)?;
                if let Some(b) = byte_piece(piece) {
                    return Some(vec![b]);
                }
                Some(piece.replace(SPACE, " ").into_bytes())
            })
            .collect()
    }
}

/// The byte of a byte-fallback piece (`<0x41>` → 0x41).
pub(crate) fn byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests;
