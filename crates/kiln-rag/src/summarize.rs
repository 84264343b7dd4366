//! Map-reduce summarisation of long documents: split the text into pieces
//! that fit the model's context (measured in its tokens), summarise each
//! piece (map), then merge the summaries — first collapsing groups of them
//! while together they are still too long, then one final summary (reduce).
//! Also the refine method: summarise the first piece, then revise the
//! summary with each next piece in turn (LangChain's refine chain: one call
//! per piece, order kept, no merge step).
//! The model is any chat function, so this works with a local model, a
//! server, or a test double.

use std::sync::Arc;

use kiln_core::ChatMessage;

use crate::split::RecursiveSplitter;
use crate::{RagError, Result};

/// How to summarise.
#[derive(Clone)]
pub struct SummarizeOptions {
    /// Most tokens of text per model call (pieces of the document, and
    /// groups of summaries in the reduce step).
    pub chunk_tokens: usize,
    /// Tokens shared by neighbouring pieces.
    pub overlap_tokens: usize,
    /// Most collapse rounds before the final reduce (each round shrinks the
    /// summaries by the model's compression).
    pub max_rounds: usize,
    /// Counts tokens of a text (the model's tokenizer).
    pub count_tokens: Arc<dyn Fn(&str) -> usize + Send + Sync>,
}

impl std::fmt::Debug for SummarizeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummarizeOptions")
            .field("chunk_tokens", &self.chunk_tokens)
            .field("overlap_tokens", &self.overlap_tokens)
            .field("max_rounds", &self.max_rounds)
            .finish()
    }
}

/// The result and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The final summary.
    pub text: String,
    /// Pieces the document was split into.
    pub pieces: usize,
    /// Model calls made.
    pub calls: usize,
    /// Collapse rounds run before the final reduce.
    pub rounds: usize,
}

/// The prompt summarising one piece of the document.
pub fn map_prompt(piece: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::new(
        "user",
        format!(
            "Summarise the following text in a few sentences, keeping names, numbers and \
             conclusions.\n\n{piece}\n\nSummary:"
        ),
    )]
}

/// The prompt merging several summaries into one.
pub fn reduce_prompt(summaries: &[String]) -> Vec<ChatMessage> {
    let joined = summaries
        .iter()
        .enumerate()
        .map(|(i, s)| format!("({}) {}", i + 1, s.trim()))
        .collect::<Vec<_>>()
        .join("\n\n");
    vec![ChatMessage::new(
        "user",
        format!(
            "Below are summaries of consecutive parts of one document. Merge them into one \
             concise summary of the whole document.\n\n{joined}\n\nSummary:"
        ),
    )]
}

/// The prompt revising `summary` with the next piece of the document.
pub fn refine_prompt(summary: &str, piece: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::new(
        "user",
        format!(
            "Here is a summary of the first part of a document:\n{}\n\nRefine it with the next \
             part below: keep what still holds, add what is new, stay concise.\n\n{piece}\n\nSummary:",
            summary.trim()
        ),
    )]
}

/// Summarises `text` by refinement: the first piece's summary, revised
/// with every next piece in order.
pub fn refine(
    text: &str,
    options: &SummarizeOptions,
    chat: &mut dyn FnMut(&[ChatMessage]) -> Result<String>,
) -> Result<Summary> {
    let pieces = split_pieces(text, options)?;
    let mut summary = chat(&map_prompt(&pieces[0]))?.trim().to_string();
    for piece in &pieces[1..] {
        summary = chat(&refine_prompt(&summary, piece))?.trim().to_string();
    }
    Ok(Summary {
        text: summary,
        pieces: pieces.len(),
        calls: pieces.len(),
        rounds: 0,
    })
}

/// The document in pieces of at most `chunk_tokens` tokens.
fn split_pieces(text: &str, options: &SummarizeOptions) -> Result<Vec<String>> {
    if options.chunk_tokens == 0 || options.overlap_tokens >= options.chunk_tokens {
        return Err(RagError::Invalid(
            "summarize: chunk tokens must be positive and larger than the overlap".into(),
        ));
    }
    let count = options.count_tokens.clone();
    let splitter = RecursiveSplitter::new(options.chunk_tokens, options.overlap_tokens)
        .with_length(move |s| count(s));
    let pieces = splitter.split_text(text);
    if pieces.is_empty() {
        return Err(RagError::Invalid(
            "summarize: the document has no text".into(),
        ));
    }
    Ok(pieces)
}

/// Summarises `text` with `chat` (messages → reply).
pub fn map_reduce(
    text: &str,
    options: &SummarizeOptions,
    chat: &mut dyn FnMut(&[ChatMessage]) -> Result<String>,
) -> Result<Summary> {
    let pieces = split_pieces(text, options)?;
    let mut calls = 0;
    let mut call = |messages: Vec<ChatMessage>| -> Result<String> {
        calls += 1;
        Ok(chat(&messages)?.trim().to_string())
    };
    let mut summaries = pieces
        .iter()
        .map(|p| call(map_prompt(p)))
        .collect::<Result<Vec<_>>>()?;
    let mut rounds = 0;
    // Collapse: while the summaries do not fit one call, merge groups that do.
    while summaries.len() > 1
        && (options.count_tokens)(&summaries.join("\n\n")) > options.chunk_tokens
        && rounds < options.max_rounds
    {
        let mut merged = Vec::new();
        for group in groups(&summaries, options) {
            merged.push(if group.len() == 1 {
                group[0].clone()
            } else {
                call(reduce_prompt(&group))?
            });
        }
        rounds += 1;
        if merged.len() == summaries.len() {
            break;
        }
        summaries = merged;
    }
    let text = if summaries.len() == 1 {
        summaries.remove(0)
    } else {
        call(reduce_prompt(&summaries))?
    };
    Ok(Summary {
        text,
        pieces: pieces.len(),
        calls,
        rounds,
    })
}

/// Consecutive summaries grouped so each group fits `chunk_tokens`.
fn groups(summaries: &[String], options: &SummarizeOptions) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut used = 0;
    for s in summaries {
        let n = (options.count_tokens)(s);
        match out.last_mut() {
            Some(g) if used + n <= options.chunk_tokens => {
                g.push(s.clone());
                used += n;
            }
            _ => {
                out.push(vec![s.clone()]);
                used = n;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn options(chunk: usize) -> SummarizeOptions {
        SummarizeOptions {
            chunk_tokens: chunk,
            overlap_tokens: 0,
            max_rounds: 5,
            count_tokens: Arc::new(words),
        }
    }

    /// A "model" that summarises by keeping the first word of each
    /// paragraph it is given, so every step can be checked.
    fn first_words(messages: &[ChatMessage]) -> Result<String> {
        let body = &messages[0].content;
        let body = body.split_once("\n\n").map_or("", |x| x.1);
        let body = body.rsplit_once("\n\nSummary:").map_or(body, |x| x.0);
        Ok(body
            .split("\n\n")
            .filter_map(|p| {
                p.trim()
                    .trim_start_matches(|c: char| c == '(' || c.is_ascii_digit() || c == ')')
                    .split_whitespace()
                    .next()
            })
            .collect::<Vec<_>>()
            .join(" "))
    }

    #[test]
    fn maps_each_piece_then_reduces_in_order() {
        let text = (0..12)
            .map(|i| format!("topic{i} {}", "filler ".repeat(30)))
            .collect::<Vec<_>>()
            .join("\n\n");
        let mut seen = Vec::new();
        let s = map_reduce(&text, &options(40), &mut |m| {
            seen.push(m[0].content.clone());
            first_words(m)
        })
        .unwrap();
        assert_eq!(s.pieces, 12);
        assert_eq!(s.rounds, 0, "12 one-word summaries fit one call");
        assert_eq!(s.calls, 13);
        assert_eq!(
            s.text,
            (0..12)
                .map(|i| format!("topic{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(seen[12].starts_with("Below are summaries"));
    }

    #[test]
    fn collapses_when_the_summaries_do_not_fit() {
        // Each "summary" repeats its piece's first 10 words: 30 pieces ×
        // 10 words exceed a 40-word call, so groups of 4 are merged first.
        let text = (0..30)
            .map(|i| format!("{} end", format!("w{i} ").repeat(30)))
            .collect::<Vec<_>>()
            .join("\n\n");
        let mut echo = |m: &[ChatMessage]| -> Result<String> {
            let body = &m[0].content;
            Ok(body
                .split_whitespace()
                .filter(|w| {
                    w.len() > 1 && w.starts_with('w') && w[1..].chars().all(|c| c.is_ascii_digit())
                })
                .take(10)
                .collect::<Vec<_>>()
                .join(" "))
        };
        let s = map_reduce(&text, &options(40), &mut echo).unwrap();
        assert_eq!(s.pieces, 30);
        assert!(s.rounds >= 1, "{s:?}");
        assert!(s.calls > 31, "{s:?}");
        assert!(s.text.starts_with("w0"), "{s:?}");
    }

    #[test]
    fn refine_revises_the_summary_piece_by_piece() {
        let text = (0..4)
            .map(|i| format!("topic{i} {}", "filler ".repeat(30)))
            .collect::<Vec<_>>()
            .join("\n\n");
        let mut seen = Vec::new();
        let s = refine(&text, &options(40), &mut |m| {
            seen.push(m[0].content.clone());
            // Keep the old summary's words and the new piece's first word.
            let body = &m[0].content;
            let old = body
                .split_once(":\n")
                .map_or("", |x| x.1)
                .split("\n\n")
                .next()
                .unwrap_or("");
            let piece = body
                .split("\n\n")
                .nth(2)
                .map_or("", |p| p.split_whitespace().next().unwrap_or(""));
            Ok(if seen.len() == 1 {
                first_words(m)?
            } else {
                format!("{old} {piece}")
            })
        })
        .unwrap();
        assert_eq!((s.pieces, s.calls), (4, 4));
        assert!(seen[0].starts_with("Summarise the following text"));
        assert!(seen[1].starts_with("Here is a summary of the first part of a document:\ntopic0\n"));
        assert_eq!(s.text, "topic0 topic1 topic2 topic3");
        assert!(refine("", &options(40), &mut first_words).is_err());
    }

    #[test]
    fn one_piece_is_one_call_and_bad_settings_are_errors() {
        let s = map_reduce("short text here", &options(40), &mut first_words).unwrap();
        assert_eq!((s.pieces, s.calls, s.text.as_str()), (1, 1, "short"));
        assert!(map_reduce("", &options(40), &mut first_words).is_err());
        assert!(map_reduce("x", &options(0), &mut first_words).is_err());
        let failing = map_reduce("x", &options(10), &mut |_| {
            Err(RagError::Invalid("down".into()))
        });
        assert!(failing.is_err());
    }
}
