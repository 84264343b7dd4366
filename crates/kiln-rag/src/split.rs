//! Splitters. [`RecursiveSplitter`] follows LangChain's
//! `RecursiveCharacterTextSplitter` (separators `\n\n`, `\n`, ` `, `""`;
//! lengths in characters; separators kept at the start of the following
//! piece; chunks stripped; overlap by whole pieces). [`split_markdown`] cuts
//! at headings first and records each chunk's heading path.

/// A piece of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The text.
    pub text: String,
    /// Character offset in the document.
    pub start: usize,
    /// End offset (exclusive, characters).
    pub end: usize,
    /// Heading path (`"Set up > Tests"`) for markdown.
    pub heading: Option<String>,
}

/// How a piece's length is measured.
#[derive(Clone)]
pub enum Length {
    /// Characters (LangChain's default `len`).
    Chars,
    /// Tokens of a model's tokenizer (LangChain's `from_huggingface_tokenizer`).
    Tokens(std::sync::Arc<dyn Fn(&str) -> usize + Send + Sync>),
}

impl std::fmt::Debug for Length {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Length::Chars => "Chars",
            Length::Tokens(_) => "Tokens",
        })
    }
}

/// LangChain's recursive character splitter.
#[derive(Debug, Clone)]
pub struct RecursiveSplitter {
    /// Most units (characters or tokens) per chunk.
    pub chunk_size: usize,
    /// Units shared by neighbouring chunks.
    pub chunk_overlap: usize,
    /// Separators, tried in order.
    pub separators: Vec<String>,
    /// The unit of `chunk_size` and `chunk_overlap`.
    pub length: Length,
}

impl RecursiveSplitter {
    /// LangChain's defaults for the separators; lengths in characters.
    pub fn new(chunk_size: usize, chunk_overlap: usize) -> Self {
        Self {
            chunk_size,
            chunk_overlap,
            separators: ["\n\n", "\n", " ", ""].map(String::from).to_vec(),
            length: Length::Chars,
        }
    }

    /// The same, measuring lengths with `count` (e.g. a tokenizer's
    /// token count, so chunks fit an embedding model's window).
    pub fn with_length(mut self, count: impl Fn(&str) -> usize + Send + Sync + 'static) -> Self {
        self.length = Length::Tokens(std::sync::Arc::new(count));
        self
    }

    fn len(&self, s: &str) -> usize {
        match &self.length {
            Length::Chars => s.chars().count(),
            Length::Tokens(count) => count(s),
        }
    }

    /// The chunks of `text`.
    pub fn split_text(&self, text: &str) -> Vec<String> {
        self.split_with(text, &self.separators)
    }

    fn split_with(&self, text: &str, separators: &[String]) -> Vec<String> {
        let mut separator = separators.last().cloned().unwrap_or_default();
        let mut rest: &[String] = &[];
        for (i, s) in separators.iter().enumerate() {
            if s.is_empty() {
                separator = String::new();
                break;
            }
            if text.contains(s.as_str()) {
                separator = s.clone();
                rest = &separators[i + 1..];
                break;
            }
        }
        let splits = split_keep_start(text, &separator);
        let mut out = Vec::new();
        let mut good: Vec<String> = Vec::new();
        for s in splits {
            if self.len(&s) < self.chunk_size {
                good.push(s);
            } else {
                if !good.is_empty() {
                    out.extend(self.merge(&good));
                    good.clear();
                }
                if rest.is_empty() {
                    out.push(s);
                } else {
                    out.extend(self.split_with(&s, rest));
                }
            }
        }
        if !good.is_empty() {
            out.extend(self.merge(&good));
        }
        out
    }

    /// LangChain's `_merge_splits` with an empty join separator (the
    /// separators stay inside the pieces).
    fn merge(&self, splits: &[String]) -> Vec<String> {
        let mut docs = Vec::new();
        let mut current: Vec<&str> = Vec::new();
        let mut total = 0usize;
        for d in splits {
            let len = self.len(d);
            if total + len > self.chunk_size && !current.is_empty() {
                let doc = current.concat();
                let doc = doc.trim();
                if !doc.is_empty() {
                    docs.push(doc.to_string());
                }
                while total > self.chunk_overlap || (total + len > self.chunk_size && total > 0) {
                    let Some(first) = current.first() else { break };
                    total -= self.len(first);
                    current.remove(0);
                }
            }
            current.push(d);
            total += len;
        }
        let doc = current.concat();
        let doc = doc.trim();
        if !doc.is_empty() {
            docs.push(doc.to_string());
        }
        docs
    }

    /// The chunks of `text` with their character offsets.
    pub fn split(&self, text: &str) -> Vec<Piece> {
        locate(text, self.split_text(text), 0, None)
    }
}

/// Splits on `sep`, keeping each separator at the start of the piece after
/// it; empty pieces dropped; an empty separator splits characters.
fn split_keep_start(text: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return text.chars().map(String::from).collect();
    }
    let mut out = Vec::new();
    let mut last = 0;
    for (i, _) in text.match_indices(sep) {
        if i > last {
            out.push(text[last..i].to_string());
        }
        last = i;
    }
    if last < text.len() {
        out.push(text[last..].to_string());
    }
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// Finds each chunk in `text` (in order, from the previous chunk's start)
/// to give it character offsets (plus `base`).
fn locate(text: &str, chunks: Vec<String>, base: usize, heading: Option<&str>) -> Vec<Piece> {
    let mut out = Vec::with_capacity(chunks.len());
    let mut from_byte = 0;
    for c in chunks {
        let at = text[from_byte..]
            .find(&c)
            .map_or(from_byte, |i| from_byte + i);
        let start = base + text[..at].chars().count();
        let end = start + c.chars().count();
        from_byte = at + text[at..].chars().next().map_or(0, char::len_utf8);
        out.push(Piece {
            text: c,
            start,
            end,
            heading: heading.map(String::from),
        });
    }
    out
}

/// Splits markdown at ATX headings (outside code fences), then each
/// section with `splitter`; every piece carries its heading path.
pub fn split_markdown(text: &str, splitter: &RecursiveSplitter) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut section_start = 0usize; // byte offset
    let mut heading: Option<String> = None;
    let mut in_fence = false;
    let mut offset = 0usize;
    let flush = |from: usize, to: usize, heading: &Option<String>, out: &mut Vec<Piece>| {
        let body = &text[from..to];
        if body.trim().is_empty() {
            return;
        }
        let base = text[..from].chars().count();
        out.extend(locate(
            body,
            splitter.split_text(body),
            base,
            heading.as_deref(),
        ));
    };
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        }
        let level = trimmed.chars().take_while(|&c| c == '#').count();
        let is_heading = !in_fence && (1..=6).contains(&level) && trimmed[level..].starts_with(' ');
        if is_heading {
            flush(section_start, offset, &heading, &mut out);
            let title = trimmed[level..].trim().to_string();
            path.retain(|(l, _)| *l < level);
            path.push((level, title));
            heading = Some(
                path.iter()
                    .map(|(_, t)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" > "),
            );
            section_start = offset;
        }
        offset += line.len();
    }
    flush(section_start, text.len(), &heading, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_langchain_on_its_documented_example() {
        // LangChain: RecursiveCharacterTextSplitter(chunk_size=10, chunk_overlap=1)
        // .split_text("Hi.\n\nI'm Harrison.\n\nHow? Are? You?\nOkay then f f f f.\nThis is a weird text to write, but gotta test the splittingggg some how.\n\nBye!\n\n-H.")
        let text = "Hi.\n\nI'm Harrison.\n\nHow? Are? You?\nOkay then f f f f.\nThis is a weird text to write, but gotta test the splittingggg some how.\n\nBye!\n\n-H.";
        let got = RecursiveSplitter::new(10, 1).split_text(text);
        let want = [
            "Hi.",
            "I'm",
            "Harrison.",
            "How? Are?",
            "You?",
            "Okay then",
            "f f f f.",
            "This is a",
            "weird",
            "text to",
            "write,",
            "but gotta",
            "test the",
            "splitting",
            "gggg",
            "some how.",
            "Bye!",
            "-H.",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn offsets_point_at_the_chunks() {
        let text =
            "안녕하세요 세계. Hello world, this is a test of offsets.\n\nSecond paragraph here.";
        for p in RecursiveSplitter::new(20, 5).split(text) {
            let slice: String = text.chars().skip(p.start).take(p.end - p.start).collect();
            assert_eq!(slice, p.text);
        }
    }

    #[test]
    fn markdown_sections_carry_heading_paths() {
        let md = "# Guide\nIntro text.\n\n## Set up\nRun it.\n\n```\n# not a heading\n```\n## Tests\nCheck it.\n";
        let pieces = split_markdown(md, &RecursiveSplitter::new(200, 0));
        let headings: Vec<_> = pieces.iter().map(|p| p.heading.clone().unwrap()).collect();
        assert_eq!(headings, ["Guide", "Guide > Set up", "Guide > Tests"]);
        assert!(pieces[1].text.contains("# not a heading"));
        for p in &pieces {
            let slice: String = md.chars().skip(p.start).take(p.end - p.start).collect();
            assert_eq!(slice, p.text);
        }
    }
}

#[cfg(test)]
mod length_tests {
    use super::*;

    #[test]
    fn token_lengths_bound_the_chunks() {
        let words = |s: &str| s.split_whitespace().count();
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen";
        let splitter = RecursiveSplitter::new(4, 1).with_length(words);
        let chunks = splitter.split_text(text);
        assert!(chunks.iter().all(|c| words(c) <= 4), "{chunks:?}");
        assert_eq!(
            chunks.first().map(String::as_str),
            Some("one two three four")
        );
        // Neighbours share one word.
        assert!(chunks[1].starts_with("four "), "{chunks:?}");
    }
}
