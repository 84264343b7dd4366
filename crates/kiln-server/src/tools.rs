//! Tool calling: pass OpenAI `tools` to templates that support them and
//! read the calls back from the Hermes/Qwen format the templates teach
//! (`<tool_call>{"name": …, "arguments": {…}}</tool_call>`).

use kiln_core::Tokenizer;
use serde_json::{json, Value};

use crate::ApiError;

/// The tools to render, or `None` when none apply. Errors when tools are
/// requested from a model whose chat template ignores them.
pub fn tools_for_template(
    tokenizer: &Tokenizer,
    tools: Option<&[Value]>,
    choice: Option<&Value>,
) -> Result<Option<Value>, ApiError> {
    let Some(tools) = tools.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if choice.and_then(Value::as_str) == Some("none") {
        return Ok(None);
    }
    let supports = tokenizer
        .special_tokens()
        .chat_template
        .as_deref()
        .is_some_and(|t| t.contains("tools"));
    if !supports {
        return Err(ApiError::invalid(
            "tools",
            "This model's chat template does not support tools.",
        ));
    }
    for t in tools {
        if t.get("type").and_then(Value::as_str) != Some("function")
            || t.pointer("/function/name")
                .and_then(Value::as_str)
                .is_none()
        {
            return Err(ApiError::invalid(
                "tools",
                "Each tool must be {\"type\": \"function\", \"function\": {\"name\": …}}.",
            ));
        }
    }
    Ok(Some(Value::Array(tools.to_vec())))
}

/// Splits a reply into its text and OpenAI `tool_calls`.
pub fn parse_tool_calls(text: &str) -> (String, Vec<Value>) {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut rest = text;
    let mut content = String::new();
    let mut calls = Vec::new();
    while let Some(start) = rest.find(OPEN) {
        content.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let (inner, next) = match after.find(CLOSE) {
            Some(end) => (&after[..end], &after[end + CLOSE.len()..]),
            None => (after, ""),
        };
        match serde_json::from_str::<Value>(inner.trim()) {
            Ok(call) if call.get("name").and_then(Value::as_str).is_some() => {
                let arguments = call.get("arguments").cloned().unwrap_or(json!({}));
                let arguments = match arguments {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                calls.push(json!({
                    "id": crate::openai::new_id("call"),
                    "type": "function",
                    "function": {"name": call["name"], "arguments": arguments},
                }));
            }
            _ => {
                content.push_str(&rest[start..start + OPEN.len()]);
                content.push_str(inner);
            }
        }
        rest = next;
    }
    content.push_str(rest);
    (content, calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hermes_tool_calls() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
        let (content, calls) = parse_tool_calls(text);
        assert_eq!(content.trim(), "Let me check.");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["function"]["name"], "weather");
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Oslo\"}");
    }

    #[test]
    fn keeps_text_that_is_not_a_call() {
        let (content, calls) = parse_tool_calls("a <tool_call>not json</tool_call> b");
        assert!(calls.is_empty());
        assert_eq!(content, "a <tool_call>not json b");
    }
}
