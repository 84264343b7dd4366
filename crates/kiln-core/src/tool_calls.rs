//! Native tool calling: OpenAI-shaped tool definitions and calls, and
//! reading calls back from the Hermes/Qwen format that chat templates with
//! tools teach (`<tool_call>{"name": …, "arguments": {…}}</tool_call>`).

use serde_json::{json, Value};

/// One call of a tool by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The call's id (answered by a `tool` message with this `tool_call_id`).
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON text (OpenAI sends them as a string).
    pub arguments: String,
}

impl ToolCall {
    /// OpenAI's shape: `{"id", "type": "function", "function": {"name", "arguments"}}`.
    pub fn to_openai(&self) -> Value {
        json!({
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        })
    }

    /// Reads OpenAI's shape; `None` without a function name.
    pub fn from_openai(value: &Value) -> Option<Self> {
        let name = value.pointer("/function/name")?.as_str()?.to_string();
        let arguments = match value.pointer("/function/arguments") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "{}".to_string(),
            Some(other) => other.to_string(),
        };
        let id = value["id"].as_str().unwrap_or_default().to_string();
        Some(Self {
            id,
            name,
            arguments,
        })
    }

    /// The arguments parsed as JSON (an empty object if they are not JSON).
    pub fn arguments_json(&self) -> Value {
        serde_json::from_str(&self.arguments).unwrap_or_else(|_| json!({}))
    }
}

/// A model's reply when tools were offered: text, calls, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatReply {
    /// The text outside the calls.
    pub content: String,
    /// The calls, in order; empty when the model answered directly.
    pub tool_calls: Vec<ToolCall>,
}

/// An OpenAI function tool definition.
pub fn function_tool(name: &str, description: &str, parameters: Value) -> Value {
    json!({
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    })
}

/// Whether a chat template renders tool definitions (it reads `tools`).
pub fn template_supports_tools(template: &str) -> bool {
    template.contains("tools")
}

/// Splits a reply into its text and the Hermes-format calls in it; calls get
/// ids `call_0`, `call_1`, … A `<tool_call>` block that is not a JSON object
/// with a `name` stays in the text.
pub fn parse_tool_calls(text: &str) -> ChatReply {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut rest = text;
    let mut reply = ChatReply::default();
    while let Some(start) = rest.find(OPEN) {
        reply.content.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let (inner, next) = match after.find(CLOSE) {
            Some(end) => (&after[..end], &after[end + CLOSE.len()..]),
            None => (after, ""),
        };
        match serde_json::from_str::<Value>(inner.trim()) {
            Ok(call) if call.get("name").and_then(Value::as_str).is_some() => {
                let arguments = match call.get("arguments") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => "{}".to_string(),
                };
                reply.tool_calls.push(ToolCall {
                    id: format!("call_{}", reply.tool_calls.len()),
                    name: call["name"].as_str().unwrap_or_default().to_string(),
                    arguments,
                });
            }
            _ => {
                reply.content.push_str(OPEN);
                reply.content.push_str(inner);
            }
        }
        rest = next;
    }
    reply.content.push_str(rest);
    reply
}

/// Which calls the model may make (OpenAI's `tool_choice`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides (the default).
    #[default]
    Auto,
    /// No calls: the tools are not offered.
    None,
    /// At least one call: the reply is forced to be a call.
    Required,
    /// A call of this function, forced.
    Function(String),
}

impl ToolChoice {
    /// Reads `"auto"`, `"none"`, `"required"` or
    /// `{"type": "function", "function": {"name": …}}`; absent is `Auto`.
    pub fn from_openai(value: Option<&Value>) -> Result<Self, String> {
        match value {
            None | Some(Value::Null) => Ok(Self::Auto),
            Some(Value::String(s)) => match s.as_str() {
                "auto" => Ok(Self::Auto),
                "none" => Ok(Self::None),
                "required" => Ok(Self::Required),
                other => Err(format!(
                    "tool_choice {other:?}: expected auto, none, required or a function"
                )),
            },
            Some(v) => v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .map(|n| Self::Function(n.to_string()))
                .ok_or_else(|| {
                    "tool_choice: expected {\"type\": \"function\", \"function\": {\"name\": …}}"
                        .to_string()
                }),
        }
    }

    /// OpenAI's shape.
    pub fn to_openai(&self) -> Value {
        match self {
            Self::Auto => json!("auto"),
            Self::None => json!("none"),
            Self::Required => json!("required"),
            Self::Function(name) => json!({"type": "function", "function": {"name": name}}),
        }
    }
}

/// What a forced reply starts with: the model writes the call's JSON after it.
pub const FORCED_CALL_OPENING: &str = "<tool_call>\n";

/// For a forced choice (`Required`, `Function`), the JSON Schema of the one
/// call the model writes after [`FORCED_CALL_OPENING`]: `{"name", "arguments"}`
/// with the function's parameter schema (any object when several tools
/// may be called). `None` for `Auto` and `None`.
pub fn forced_call_schema(tools: &[Value], choice: &ToolChoice) -> Result<Option<Value>, String> {
    let name_of = |t: &Value| {
        t.pointer("/function/name")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let schema = |name: Value, arguments: Value| {
        json!({
            "type": "object",
            "properties": {"name": name, "arguments": arguments},
            "required": ["name", "arguments"],
        })
    };
    let parameters = |t: &Value| {
        t.pointer("/function/parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}))
    };
    match choice {
        ToolChoice::Auto | ToolChoice::None => Ok(None),
        ToolChoice::Function(name) => {
            let tool = tools
                .iter()
                .find(|t| name_of(t).as_deref() == Some(name))
                .ok_or_else(|| format!("tool_choice names {name:?}, which is not in tools"))?;
            Ok(Some(schema(json!({"const": name}), parameters(tool))))
        }
        ToolChoice::Required => match tools {
            [] => Err("tool_choice is required but no tools were given".into()),
            [only] => {
                let name = name_of(only).unwrap_or_default();
                Ok(Some(schema(json!({"const": name}), parameters(only))))
            }
            many => {
                let names: Vec<String> = many.iter().filter_map(name_of).collect();
                Ok(Some(schema(
                    json!({"enum": names}),
                    json!({"type": "object"}),
                )))
            }
        },
    }
}

/// The reply of a forced call: the JSON the model wrote after
/// [`FORCED_CALL_OPENING`], read as a call.
pub fn forced_reply(json_text: &str) -> ChatReply {
    parse_tool_calls(&format!("{FORCED_CALL_OPENING}{json_text}\n</tool_call>"))
}

/// Assistant `tool_calls` with their `arguments` strings parsed into
/// objects, as Hugging Face chat templates expect (vLLM does the same).
pub(crate) fn arguments_as_objects(tool_calls: &Value) -> Value {
    let mut calls = tool_calls.clone();
    if let Some(list) = calls.as_array_mut() {
        for call in list {
            if let Some(args) = call.pointer_mut("/function/arguments") {
                if let Some(parsed) = args
                    .as_str()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                {
                    *args = parsed;
                }
            }
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hermes_tool_calls() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>{\"name\": \"time\"}</tool_call>";
        let reply = parse_tool_calls(text);
        assert_eq!(reply.content.trim(), "Let me check.");
        assert_eq!(reply.tool_calls.len(), 2);
        assert_eq!(reply.tool_calls[0].name, "weather");
        assert_eq!(reply.tool_calls[0].arguments, "{\"city\":\"Oslo\"}");
        assert_eq!(reply.tool_calls[1].id, "call_1");
        assert_eq!(reply.tool_calls[1].arguments_json(), json!({}));
    }

    #[test]
    fn keeps_text_that_is_not_a_call() {
        let reply = parse_tool_calls("a <tool_call>not json</tool_call> b");
        assert!(reply.tool_calls.is_empty());
        assert_eq!(reply.content, "a <tool_call>not json b");
    }

    #[test]
    fn forced_choices_give_call_schemas() {
        let tools = vec![
            function_tool(
                "calculator",
                "math",
                json!({"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}),
            ),
            function_tool("search", "look up", json!({"type": "object"})),
        ];
        assert_eq!(forced_call_schema(&tools, &ToolChoice::Auto).unwrap(), None);
        let named = forced_call_schema(&tools, &ToolChoice::Function("calculator".into()))
            .unwrap()
            .unwrap();
        assert_eq!(named["properties"]["name"], json!({"const": "calculator"}));
        assert_eq!(
            named["properties"]["arguments"]["required"],
            json!(["input"])
        );
        let any = forced_call_schema(&tools, &ToolChoice::Required)
            .unwrap()
            .unwrap();
        assert_eq!(
            any["properties"]["name"]["enum"],
            json!(["calculator", "search"])
        );
        assert!(forced_call_schema(&tools, &ToolChoice::Function("nope".into())).is_err());
        assert!(forced_call_schema(&[], &ToolChoice::Required).is_err());
        let reply = forced_reply(r#"{"name": "search", "arguments": {"q": "kilns"}}"#);
        assert_eq!(reply.tool_calls[0].name, "search");
        assert_eq!(
            ToolChoice::from_openai(Some(
                &json!({"type": "function", "function": {"name": "f"}})
            )),
            Ok(ToolChoice::Function("f".into()))
        );
        assert!(ToolChoice::from_openai(Some(&json!("sometimes"))).is_err());
    }

    #[test]
    fn openai_shape_round_trips_and_arguments_become_objects() {
        let call = ToolCall {
            id: "call_9".into(),
            name: "calculator".into(),
            arguments: "{\"input\":\"2+2\"}".into(),
        };
        let v = call.to_openai();
        assert_eq!(ToolCall::from_openai(&v), Some(call));
        let objects = arguments_as_objects(&json!([v]));
        assert_eq!(objects[0]["function"]["arguments"]["input"], "2+2");
    }
}
