use super::*;

/// A small vocabulary: unknown, two control tokens, a user-defined piece,
/// an unused one, byte pieces for 0xC3/0xA9 (é) and 'x', and merges.
fn tokenizer(add_space_prefix: bool) -> SpmTokenizer {
    let entries: &[(&str, f32, PieceKind)] = &[
        ("<unk>", 0.0, PieceKind::Unknown),
        ("<s>", 0.0, PieceKind::Control),
        ("<turn>", 0.0, PieceKind::Control),
        ("<tag>", 0.0, PieceKind::UserDefined),
        ("▁he", -5.0, PieceKind::Unused),
        ("<0xC3>", 0.0, PieceKind::Byte),
        ("<0xA9>", 0.0, PieceKind::Byte),
        ("<0x78>", 0.0, PieceKind::Byte),
        ("▁", -1.0, PieceKind::Normal),
        ("h", -2.0, PieceKind::Normal),
        ("e", -2.0, PieceKind::Normal),
        ("l", -2.0, PieceKind::Normal),
        ("o", -2.0, PieceKind::Normal),
        ("he", -3.0, PieceKind::Normal),
        ("ll", -3.5, PieceKind::Normal),
        ("hell", -4.0, PieceKind::Normal),
        ("hello", -4.5, PieceKind::Normal),
        ("▁hello", -6.0, PieceKind::Normal),
    ];
    let pieces: Vec<String> = entries.iter().map(|e| e.0.to_string()).collect();
    let scores: Vec<f32> = entries.iter().map(|e| e.1).collect();
    let kinds: Vec<PieceKind> = entries.iter().map(|e| e.2).collect();
    SpmTokenizer::new(&pieces, &scores, &kinds, add_space_prefix).unwrap()
}

fn ids(t: &SpmTokenizer, text: &str, parse_special: bool) -> Vec<TokenId> {
    t.encode(text, parse_special)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn merges_with_a_space_prefix_and_spaces_as_markers() {
    let t = tokenizer(true);
    assert_eq!(ids(&t, "hello", true), [17]);
    assert_eq!(ids(&t, "hello hello", true), [17, 17]);
    let t = tokenizer(false);
    assert_eq!(ids(&t, "hello", true), [16]);
    assert_eq!(ids(&t, " hello", true), [17]);
}

#[test]
fn unused_pieces_are_not_formed() {
    // "▁he" is unused: "▁he" + "llo" cannot go through it.
    let t = tokenizer(true);
    assert_eq!(ids(&t, "he", true), [8, 13]);
}

#[test]
fn characters_without_pieces_fall_back_to_bytes_or_unknown() {
    let t = tokenizer(false);
    assert_eq!(ids(&t, "é", true), [5, 6]);
    assert_eq!(ids(&t, "x", true), [7]);
    // No byte piece for 'q' or 'z': one fused unknown token.
    assert_eq!(ids(&t, "qz", true), [0]);
    assert_eq!(t.encode("qz", true)[0].1, 0..2);
}

#[test]
fn special_text_is_parsed_only_when_asked_but_user_pieces_always() {
    let t = tokenizer(true);
    // After a special token the next text gets the space prefix again.
    assert_eq!(ids(&t, "<turn>hello", true), [2, 17]);
    assert_eq!(ids(&t, "hello<tag>hello", true), [17, 3, 17]);
    let plain = ids(&t, "<turn>", false);
    assert!(!plain.contains(&2), "{plain:?}");
    assert_eq!(ids(&t, "<tag>", false), [3]);
}

#[test]
fn offsets_point_into_the_input() {
    let t = tokenizer(true);
    let enc = t.encode("hello<s> hello", true);
    let ranges: Vec<_> = enc.iter().map(|(_, r)| r.clone()).collect();
    // After `<s>` the prefix adds a second `▁` (llama.cpp does the same):
    // it came from no input byte.
    assert_eq!(ranges, [0..5, 5..8, 8..8, 8..14]);
}

#[test]
fn decodes_markers_bytes_and_specials() {
    let t = tokenizer(true);
    assert_eq!(t.decode(&[17, 17], false), "hello hello");
    assert_eq!(t.decode(&[1, 17], true), "hello");
    assert_eq!(t.decode(&[1, 17], false), "<s> hello");
    assert_eq!(t.decode(&[5, 6, 7], false), "éx");
    assert_eq!(t.decode(&[5, 16], false), "\u{FFFD}hello");
    assert_eq!(
        t.decode(&[4, 3, 99], false),
        "<tag>",
        "unused and unknown ids skipped"
    );
    let bytes = t.token_bytes();
    assert_eq!(bytes[17].as_deref(), Some(&b" hello"[..]));
    assert_eq!(bytes[5].as_deref(), Some(&[0xC3][..]));
    assert_eq!(bytes[1], None);
    assert_eq!(bytes[3].as_deref(), Some(&b"<tag>"[..]));
    assert_eq!(bytes[4], None);
}

#[test]
fn byte_pieces_need_two_hex_digits() {
    assert_eq!(byte_piece("<0x0A>"), Some(10));
    assert_eq!(byte_piece("<0x+1>"), None);
    assert_eq!(byte_piece("<0x1>"), None);
}
