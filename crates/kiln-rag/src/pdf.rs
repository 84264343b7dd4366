//! PDF text, page by page (lopdf's content-stream text extraction: font
//! encodings and ToUnicode maps applied). Scanned pages without a text layer
//! come out empty; encrypted or damaged files are skipped with the reason.

/// The text of each page, in page order (page `i` is number `i + 1`), or
/// why the file could not be read.
pub fn pdf_pages(bytes: &[u8]) -> Result<Vec<String>, String> {
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| format!("unreadable PDF: {e}"))?;
    if doc.is_encrypted() {
        return Err("encrypted PDF".into());
    }
    let pages = doc.get_pages();
    let mut out = Vec::with_capacity(pages.len());
    for &number in pages.keys() {
        let text = doc
            .extract_text(&[number])
            .map_err(|e| format!("page {number}: {e}"))?;
        out.push(tidy(&text));
    }
    Ok(out)
}

/// Collapses the extractor's line breaks inside paragraphs and runs of
/// spaces, keeping blank lines.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            if !out.ends_with("\n\n") && !out.is_empty() {
                out.push_str("\n\n");
            }
            continue;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&line);
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
            .join("../../tests/data/pdf")
            .join(name);
        std::fs::read(p).unwrap_or_default()
    }

    /// A real PDF (Chromium's printer: subset CID fonts with ToUnicode
    /// maps) of three pages, from `tests/data/pdf/three-pages.html`.
    #[test]
    fn three_pages_of_a_real_pdf() {
        let pages = pdf_pages(&fixture("three-pages.pdf")).unwrap_or_default();
        println!("{pages:#?}");
        assert_eq!(pages.len(), 3);
        assert!(pages[0].contains("Firing schedules"), "{:?}", pages[0]);
        assert!(pages[0].contains("water leaves the clay before it turns to steam"));
        assert!(pages[1].contains("Silica forms the glass; alumina stiffens the melt"));
        assert!(pages[2].contains("about 1100 °C"), "{:?}", pages[2]);
        assert!(
            pages[2].contains("“slow cooling” matters"),
            "{:?}",
            pages[2]
        );
        assert!(!pages[1].contains("Firing"));
    }

    #[test]
    fn damaged_pdfs_are_refused_not_panicked_on() {
        let good = fixture("three-pages.pdf");
        assert!(pdf_pages(b"%PDF-1.4\nnot really").is_err());
        for cut in [10, good.len() / 3, good.len() - 20] {
            let _ = pdf_pages(&good[..cut]);
        }
    }
}
