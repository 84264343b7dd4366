//! The OpenAI encodings kiln knows by name: their split patterns, special
//! tokens, download address and pinned checksum (as the `tiktoken` package
//! defines them), and which hosted models use which encoding.

/// One named encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownEncoding {
    /// `cl100k_base`, `o200k_base`.
    pub name: &'static str,
    /// Where OpenAI publishes the rank file.
    pub url: &'static str,
    /// SHA-256 of the rank file, hex.
    pub sha256: &'static str,
    /// The pre-tokenizer regex.
    pub pattern: &'static str,
    /// Special tokens and their ids.
    pub special_tokens: &'static [(&'static str, u32)],
}

const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

const O200K_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"|\s*[\r\n]+",
    r"|\s+(?!\S)",
    r"|\s+",
);

/// The encodings kiln can load by name.
pub const KNOWN_ENCODINGS: &[KnownEncoding] = &[
    KnownEncoding {
        name: "cl100k_base",
        url: "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        sha256: "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pattern: CL100K_PATTERN,
        special_tokens: &[
            ("<|endoftext|>", 100257),
            ("<|fim_prefix|>", 100258),
            ("<|fim_middle|>", 100259),
            ("<|fim_suffix|>", 100260),
            ("<|endofprompt|>", 100276),
        ],
    },
    KnownEncoding {
        name: "o200k_base",
        url: "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        sha256: "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pattern: O200K_PATTERN,
        special_tokens: &[("<|endoftext|>", 199999), ("<|endofprompt|>", 200018)],
    },
];

/// Model-name prefixes and their encodings, most specific first (as
/// `tiktoken.encoding_for_model` maps them).
const MODEL_PREFIXES: &[(&str, &str)] = &[
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-oss", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
];

/// The encoding named `name`, which may be an encoding name (`cl100k_base`)
/// or a hosted model name (`gpt-4o`, `gpt-3.5-turbo`).
pub fn known_encoding(name: &str) -> Option<&'static KnownEncoding> {
    let encoding = KNOWN_ENCODINGS
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.name)
        .or_else(|| {
            MODEL_PREFIXES
                .iter()
                .find(|(prefix, _)| name.starts_with(prefix))
                .map(|(_, encoding)| *encoding)
        })?;
    KNOWN_ENCODINGS.iter().find(|e| e.name == encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_map_like_tiktoken() {
        let name = |n: &str| known_encoding(n).map(|e| e.name);
        assert_eq!(name("gpt-4o-mini"), Some("o200k_base"));
        assert_eq!(name("gpt-4-turbo"), Some("cl100k_base"));
        assert_eq!(name("gpt-3.5-turbo"), Some("cl100k_base"));
        assert_eq!(name("o3-mini"), Some("o200k_base"));
        assert_eq!(name("cl100k_base"), Some("cl100k_base"));
        assert_eq!(name("llama"), None);
    }
}
