//! Tool calling: pass OpenAI `tools` to templates that support them and
//! read the calls back from the Hermes/Qwen format the templates teach
//! (`<tool_call>{"name": …, "arguments": {…}}</tool_call>`).

use kiln_core::Tokenizer;
use serde_json::Value;

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
        .is_some_and(kiln_core::template_supports_tools);
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

/// Splits a reply into its text and OpenAI `tool_calls` (with fresh ids).
pub fn parse_tool_calls(text: &str) -> (String, Vec<Value>) {
    openai_calls(kiln_core::parse_tool_calls(text))
}

/// A reply's text and its calls in OpenAI's shape, each with a fresh id.
pub fn openai_calls(reply: kiln_core::ChatReply) -> (String, Vec<Value>) {
    let calls = reply
        .tool_calls
        .into_iter()
        .map(|call| {
            kiln_core::ToolCall {
                id: crate::openai::new_id("call"),
                ..call
            }
            .to_openai()
        })
        .collect();
    (reply.content, calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_get_openai_ids() {
        let text =
            "<tool_call>{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}</tool_call>";
        let (content, calls) = parse_tool_calls(text);
        assert!(content.is_empty());
        assert!(calls[0]["id"].as_str().unwrap().starts_with("call"));
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Oslo\"}");
    }
}
