//! Loaders: text and markdown as they are, HTML as readable text (scripts,
//! styles, navigation dropped; headings and link texts kept), JSONL records
//! (a chosen text field, the rest as metadata), PDF as text per page
//! (page starts recorded, so chunks know their page); directories walked with
//! globs, skipping hidden entries, `target/` and `node_modules/`. Binary
//! files are skipped with a reason.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::{RagError, Result};

/// A loaded document.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Stable id (the path, plus `#line` for JSONL records).
    pub id: String,
    /// The file.
    pub source: String,
    /// Its text.
    pub text: String,
    /// Whether the text is markdown (for the markdown-aware splitter).
    pub markdown: bool,
    /// Metadata (file extension, JSONL fields).
    pub metadata: Map<String, Value>,
    /// For paged sources (PDF): the char offset in `text` where each page
    /// starts; page `i + 1` begins at `page_starts[i]`. Empty otherwise.
    pub page_starts: Vec<usize>,
    /// The char offset of `text` in its file (a part of a streamed file);
    /// chunk offsets are stored relative to the file.
    pub offset: usize,
}

impl Loaded {
    /// The 1-based page holding char offset `offset`, for paged sources.
    pub fn page_at(&self, offset: usize) -> Option<u32> {
        if self.page_starts.is_empty() {
            return None;
        }
        let i = self.page_starts.partition_point(|&s| s <= offset);
        Some(i.max(1) as u32)
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Loaded into these documents.
    Loaded(Vec<Loaded>),
    /// Not loaded, and why.
    Skipped(String),
}

/// Loads `path` (the JSONL text field is `text_field`).
pub fn load_file(path: &Path, text_field: &str) -> Result<Outcome> {
    let bytes = std::fs::read(path).map_err(|source| RagError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if ext == "pdf" || bytes.starts_with(b"%PDF-") {
        return Ok(pdf(path, &bytes));
    }
    if bytes.iter().take(8192).any(|&b| b == 0) {
        return Ok(Outcome::Skipped("binary file".into()));
    }
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Outcome::Skipped("not UTF-8 text".into()));
    };
    let source = path.display().to_string();
    let mut metadata = Map::new();
    metadata.insert("ext".into(), Value::String(ext.clone()));
    let one = |text: String, markdown: bool| Loaded {
        id: source.clone(),
        source: source.clone(),
        text,
        markdown,
        metadata: metadata.clone(),
        page_starts: Vec::new(),
        offset: 0,
    };
    Ok(match ext.as_str() {
        "html" | "htm" => Outcome::Loaded(vec![one(html_to_text(&text), false)]),
        "md" | "markdown" => Outcome::Loaded(vec![one(text, true)]),
        "jsonl" => Outcome::Loaded(jsonl(&text, &source, text_field)?),
        _ => Outcome::Loaded(vec![one(text, false)]),
    })
}

/// A PDF as one document: pages joined by blank lines, their starts kept.
fn pdf(path: &Path, bytes: &[u8]) -> Outcome {
    let pages = match crate::pdf::pdf_pages(bytes) {
        Ok(p) => p,
        Err(why) => return Outcome::Skipped(why),
    };
    let mut text = String::new();
    let mut page_starts = Vec::with_capacity(pages.len());
    for page in &pages {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        page_starts.push(text.chars().count());
        text.push_str(page);
    }
    let source = path.display().to_string();
    let mut metadata = Map::new();
    metadata.insert("ext".into(), Value::String("pdf".into()));
    metadata.insert("pages".into(), Value::from(pages.len()));
    Outcome::Loaded(vec![Loaded {
        id: source.clone(),
        source,
        text,
        markdown: false,
        metadata,
        page_starts,
        offset: 0,
    }])
}

fn jsonl(text: &str, source: &str, field: &str) -> Result<Vec<Loaded>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| RagError::Invalid(format!("{source}:{}: {e}", i + 1)))?;
        let Some(obj) = value.as_object() else {
            return Err(RagError::Invalid(format!(
                "{source}:{}: not a JSON object",
                i + 1
            )));
        };
        let Some(body) = obj.get(field).and_then(Value::as_str) else {
            return Err(RagError::Invalid(format!(
                "{source}:{}: no string field {field:?}",
                i + 1
            )));
        };
        let mut metadata: Map<String, Value> = obj
            .iter()
            .filter(|(k, _)| k.as_str() != field)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        metadata.insert("line".into(), Value::from(i + 1));
        // A record's own id (`_id` as in BEIR, or `id`) names it when present.
        let own_id = ["_id", "id"].iter().find_map(|k| match obj.get(*k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        });
        out.push(Loaded {
            id: own_id.unwrap_or_else(|| format!("{source}#{}", i + 1)),
            source: source.to_string(),
            text: body.to_string(),
            markdown: false,
            metadata,
            page_starts: Vec::new(),
            offset: 0,
        });
    }
    Ok(out)
}

/// Readable text of an HTML page: drops `script`, `style`, `nav`, `head`,
/// `header`, `footer`, `noscript`, `svg`; block elements become line breaks;
/// entities are decoded.
pub fn html_to_text(html: &str) -> String {
    const DROP: &[&str] = &[
        "script", "style", "nav", "head", "header", "footer", "noscript", "svg",
    ];
    const BLOCK: &[&str] = &[
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "table",
        "section",
        "article",
        "pre",
        "blockquote",
    ];
    let mut out = String::new();
    let mut rest = html;
    let mut skip: Option<String> = None;
    while let Some(lt) = rest.find('<') {
        if skip.is_none() {
            out.push_str(&decode_entities(&rest[..lt]));
        }
        let Some(gt) = rest[lt..].find('>') else {
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        rest = &rest[lt + gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        match &skip {
            Some(s) if closing && *s == name => skip = None,
            Some(_) => {}
            None if !closing && DROP.contains(&name.as_str()) && !tag.ends_with('/') => {
                skip = Some(name)
            }
            None if BLOCK.contains(&name.as_str()) => out.push('\n'),
            None => {}
        }
    }
    if skip.is_none() {
        out.push_str(&decode_entities(rest));
    }
    // Collapse runs of blank space, keeping paragraph breaks.
    let mut clean = String::new();
    for line in out.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !line.is_empty() {
            clean.push_str(&line);
            clean.push('\n');
        }
    }
    clean.trim_end().to_string()
}

fn decode_entities(s: &str) -> String {
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// `*` and `?` matching on a file name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// Files under `paths` (files as given, directories walked in name order)
/// whose names match one of `globs` (all files when empty).
pub fn walk(paths: &[PathBuf], globs: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk_dir(p, globs, &mut out)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(RagError::Io {
                path: p.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            });
        }
    }
    Ok(out)
}

fn walk_dir(dir: &Path, globs: &[String], out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| RagError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            walk_dir(&path, globs, out)?;
        } else if globs.is_empty() || globs.iter().any(|g| glob_match(g, &name)) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_keeps_text_and_drops_scripts_and_navigation() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body><nav><a href=x>Home</a></nav>\
                    <h1>Title</h1><p>Hello <a href='y'>link text</a> &amp; more.</p><script>var x = 1;</script>\
                    <ul><li>one</li><li>two</li></ul></body></html>";
        assert_eq!(
            html_to_text(html),
            "Title\nHello link text & more.\none\ntwo"
        );
    }

    #[test]
    fn globs_match_names() {
        assert!(glob_match("*.md", "README.md"));
        assert!(!glob_match("*.md", "README.txt"));
        assert!(glob_match("a?c*", "abcdef"));
    }
}
