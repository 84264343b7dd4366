//! The `.tiktoken` rank file: one `base64(token bytes) rank` per line.

/// Parses a rank file's text into `(token bytes, rank)` pairs.
pub(super) fn parse_ranks(text: &str) -> Result<Vec<(Vec<u8>, u32)>, String> {
    let mut ranks = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what}: {line:?}", index + 1);
        let (token, rank) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected `base64 rank`"))?;
        let rank: u32 = rank.trim().parse().map_err(|_| bad("bad rank"))?;
        let bytes = decode_base64(token).ok_or_else(|| bad("bad base64"))?;
        ranks.push((bytes, rank));
    }
    Ok(ranks)
}

/// Standard base64 (with `=` padding) to bytes; `None` if malformed.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let body = text.trim_end_matches('=').as_bytes();
    if !text.len().is_multiple_of(4) || text.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c)?;
        }
        let bits = chunk.len() * 6;
        acc <<= 24 - bits;
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..1 + bits / 8]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("IQ==").unwrap(), b"!");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aGV5").unwrap(), b"hey");
        assert_eq!(decode_base64("IGhlbGxv").unwrap(), b" hello");
        assert!(decode_base64("aGk").is_none());
        assert!(decode_base64("a*k=").is_none());
    }

    #[test]
    fn rank_lines_parse_and_errors_name_the_line() {
        let ranks = parse_ranks("IQ== 0\naGk= 1\n").unwrap();
        assert_eq!(ranks, vec![(b"!".to_vec(), 0), (b"hi".to_vec(), 1)]);
        let err = parse_ranks("IQ== 0\naGk= x\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
