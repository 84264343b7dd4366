//! Large text files read in parts, so indexing them needs bounded memory:
//! a plain-text or markdown file over [`STREAM_BYTES`] is read about
//! [`PART_BYTES`] at a time, each part cut at the end of a line, and each
//! part becomes its own document (`path#partN`, its char offset in the file
//! kept so chunk offsets stay file-relative). Re-indexing a grown file
//! re-embeds only the parts that changed. Chunks do not overlap across a
//! part boundary, and a markdown part does not know the headings of earlier
//! parts.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value};

use crate::load::Loaded;
use crate::{RagError, Result};

/// Files larger than this are streamed.
pub const STREAM_BYTES: u64 = 8 << 20;
/// About how much of a streamed file one part holds.
pub const PART_BYTES: usize = 1 << 20;

/// The id of part `n` of the file whose document id is `id`.
pub fn part_id(id: &str, n: usize) -> String {
    format!("{id}#part{n}")
}

/// Whether `path` is a text file large enough to stream (not PDF, HTML or
/// JSONL, which need the whole file).
pub fn should_stream(path: &Path) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    !matches!(ext.as_str(), "pdf" | "html" | "htm" | "jsonl")
        && std::fs::metadata(path).is_ok_and(|m| m.len() > STREAM_BYTES)
}

/// Reads `path` in parts of about `part_bytes` (whole lines), calling
/// `each` with every part in order; returns the number of parts, or
/// `Err(reason)`-style `Ok(None)` when the file is not UTF-8 text (checked
/// in a first pass, so nothing is handed out for a file that is skipped).
pub fn for_each_part(
    path: &Path,
    part_bytes: usize,
    each: &mut dyn FnMut(Loaded) -> Result<()>,
) -> Result<std::result::Result<usize, String>> {
    if let Some(why) = scan(path, part_bytes)? {
        return Ok(Err(why));
    }
    let source = path.display().to_string();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let markdown = matches!(ext.as_str(), "md" | "markdown");
    let mut reader = open(path)?;
    let (mut n, mut offset) = (0, 0);
    while let Some(bytes) = next_part(&mut reader, part_bytes, path)? {
        let text = String::from_utf8(bytes)
            .map_err(|_| RagError::Invalid(format!("{source}: changed while being read")))?;
        let chars = text.chars().count();
        let mut metadata = Map::new();
        metadata.insert("ext".into(), Value::String(ext.clone()));
        metadata.insert("part".into(), Value::from(n));
        each(Loaded {
            id: part_id(&source, n),
            source: source.clone(),
            text,
            markdown,
            metadata,
            page_starts: Vec::new(),
            offset,
        })?;
        offset += chars;
        n += 1;
    }
    Ok(Ok(n))
}

/// A first pass: `Some(reason)` when the file is binary or not UTF-8.
fn scan(path: &Path, part_bytes: usize) -> Result<Option<String>> {
    let mut reader = open(path)?;
    let mut first = true;
    while let Some(bytes) = next_part(&mut reader, part_bytes, path)? {
        if first && bytes.iter().take(8192).any(|&b| b == 0) {
            return Ok(Some("binary file".into()));
        }
        first = false;
        if std::str::from_utf8(&bytes).is_err() {
            return Ok(Some("not UTF-8 text".into()));
        }
    }
    Ok(None)
}

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path)
        .map(|f| BufReader::with_capacity(64 << 10, f))
        .map_err(|source| RagError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// About `part_bytes` bytes ending at a line end (or the file's end);
/// `None` at the end.
fn next_part(
    reader: &mut BufReader<File>,
    part_bytes: usize,
    path: &Path,
) -> Result<Option<Vec<u8>>> {
    let io = |source| RagError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::with_capacity(part_bytes + 4096);
    reader
        .by_ref()
        .take(part_bytes as u64)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.last() != Some(&b'\n') {
        reader.read_until(b'\n', &mut bytes).map_err(io)?;
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_file_at_line_ends_with_char_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.txt");
        let text: String = (0..500)
            .map(|i| format!("line {i}: ünïcödé text {}\n", "x".repeat(i % 37)))
            .collect();
        std::fs::write(&path, &text).unwrap();
        let mut parts = Vec::new();
        let n = for_each_part(&path, 1000, &mut |p| {
            parts.push(p);
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(n, parts.len());
        assert!(n > 10);
        let joined: String = parts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(joined, text);
        let mut offset = 0;
        for (i, p) in parts.iter().enumerate() {
            assert!(p.text.ends_with('\n'));
            assert_eq!(p.offset, offset);
            assert_eq!(p.id, part_id(&path.display().to_string(), i));
            offset += p.text.chars().count();
        }
    }

    #[test]
    fn binary_and_non_utf8_files_are_skipped_before_any_part() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("a.txt");
        std::fs::write(&bin, [b'a', 0, b'b']).unwrap();
        let mut calls = 0;
        let out = for_each_part(&bin, 10, &mut |_| {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(out, Err("binary file".to_string()));
        let latin1 = dir.path().join("b.txt");
        let mut bytes = b"fine line\n".repeat(50);
        bytes.extend_from_slice(&[0xE9, b'\n']);
        std::fs::write(&latin1, bytes).unwrap();
        let out = for_each_part(&latin1, 10, &mut |_| {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(out, Err("not UTF-8 text".to_string()));
        assert_eq!(calls, 0);
    }
}
