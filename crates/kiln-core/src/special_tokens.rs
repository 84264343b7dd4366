//! `tokenizer_config.json`: special tokens and the flags that decide which are
//! added around an encoded text.

use std::path::Path;

use serde::Deserialize;

use crate::CoreError;

/// A token as `tokenizer_config.json` writes it: a plain string or an
/// `AddedToken` object with a `content` field.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TokenField {
    Plain(String),
    Added { content: String },
}

impl TokenField {
    fn into_string(self) -> String {
        match self {
            TokenField::Plain(s) | TokenField::Added { content: s } => s,
        }
    }
}

/// Serde mirror of the parts of `tokenizer_config.json` kiln reads.
#[derive(Debug, Default, Deserialize)]
struct RawTokenizerConfig {
    bos_token: Option<TokenField>,
    eos_token: Option<TokenField>,
    unk_token: Option<TokenField>,
    pad_token: Option<TokenField>,
    add_bos_token: Option<bool>,
    add_eos_token: Option<bool>,
    chat_template: Option<serde_json::Value>,
}

/// The special tokens and special-token rules of a tokenizer, as
/// transformers reads them from `tokenizer_config.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecialTokens {
    /// Beginning-of-sequence token text.
    pub bos_token: Option<String>,
    /// End-of-sequence token text.
    pub eos_token: Option<String>,
    /// Unknown token text.
    pub unk_token: Option<String>,
    /// Padding token text.
    pub pad_token: Option<String>,
    /// Explicit `add_bos_token`; `None` keeps `tokenizer.json`'s post-processor.
    pub add_bos_token: Option<bool>,
    /// Explicit `add_eos_token`; `None` keeps `tokenizer.json`'s post-processor.
    pub add_eos_token: Option<bool>,
    /// The default chat template (from `tokenizer_config.json` or
    /// `chat_template.jinja`), if any.
    pub chat_template: Option<String>,
}

impl SpecialTokens {
    /// Reads `tokenizer_config.json`. A `chat_template.jinja` next to it wins
    /// over the template inside it, as in transformers.
    pub fn from_file(path: &Path) -> Result<Self, CoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawTokenizerConfig =
            serde_json::from_str(&text).map_err(|e| CoreError::InvalidJson {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let mut tokens = SpecialTokens {
            bos_token: raw.bos_token.map(TokenField::into_string),
            eos_token: raw.eos_token.map(TokenField::into_string),
            unk_token: raw.unk_token.map(TokenField::into_string),
            pad_token: raw.pad_token.map(TokenField::into_string),
            add_bos_token: raw.add_bos_token,
            add_eos_token: raw.add_eos_token,
            chat_template: raw.chat_template.and_then(default_template),
        };
        if let Some(dir) = path.parent() {
            let jinja = dir.join("chat_template.jinja");
            if jinja.is_file() {
                tokens.chat_template =
                    Some(
                        std::fs::read_to_string(&jinja).map_err(|source| CoreError::Io {
                            path: jinja.clone(),
                            source,
                        })?,
                    );
            }
        }
        Ok(tokens)
    }
}

/// `chat_template` is a string, or a list of `{name, template}` of which
/// `default` is the one used without a name.
fn default_template(value: serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Array(items) => items.into_iter().find_map(|item| {
            let name = item.get("name")?.as_str()?;
            (name == "default").then(|| item.get("template")?.as_str().map(str::to_owned))?
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_list_picks_default() {
        let v = serde_json::json!([{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]);
        assert_eq!(default_template(v).as_deref(), Some("D"));
    }

    #[test]
    fn added_token_objects_are_read() {
        let raw: RawTokenizerConfig = serde_json::from_str(
            r#"{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "add_bos_token": true}"#,
        )
        .unwrap();
        assert_eq!(raw.bos_token.unwrap().into_string(), "<s>");
        assert_eq!(raw.eos_token.unwrap().into_string(), "</s>");
        assert_eq!(raw.add_bos_token, Some(true));
    }
}
