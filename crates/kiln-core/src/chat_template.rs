//! Chat templates: the Jinja templates of `tokenizer_config.json` /
//! `chat_template.jinja`, rendered as transformers renders them
//! (`trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`,
//! `strftime_now`, Python-style `tojson` and string methods), plus built-in
//! templates for models that ship none.

use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{Environment, Error as JinjaError, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// One chat message. Extra fields (tool calls, names) travel as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// Tool calls of an assistant message (OpenAI's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// The tool call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A participant or tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    /// A message with a role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }
}

/// Inputs of a render besides the messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderOptions {
    /// Append the opening of the assistant's turn.
    pub add_generation_prompt: bool,
    /// `bos_token` as the template sees it.
    pub bos_token: Option<String>,
    /// `eos_token` as the template sees it.
    pub eos_token: Option<String>,
    /// Tool definitions (OpenAI's `tools`), if any.
    pub tools: Option<serde_json::Value>,
}

/// Templates for models that ship none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinTemplate {
    /// Alpaca / WizardLM: `### Instruction:` … `### Response:`.
    Alpaca,
    /// Vicuna v1.1: `USER: … ASSISTANT:`.
    Vicuna,
    /// ChatML: `<|im_start|>role … <|im_end|>`.
    ChatMl,
    /// Llama 2: `[INST] <<SYS>> … [/INST]`.
    Llama2,
}

impl BuiltinTemplate {
    /// Every built-in template with its name.
    pub const ALL: [(&'static str, BuiltinTemplate); 4] = [
        ("alpaca", BuiltinTemplate::Alpaca),
        ("vicuna", BuiltinTemplate::Vicuna),
        ("chatml", BuiltinTemplate::ChatMl),
        ("llama2", BuiltinTemplate::Llama2),
    ];

    /// Looks a template up by name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// The Jinja source.
    pub fn source(self) -> &'static str {
        match self {
            BuiltinTemplate::Alpaca => concat!(
                "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n",
                "{% elif m.role == 'user' %}### Instruction:\n{{ m.content }}\n\n",
                "{% else %}### Response:\n{{ m.content }}{{ eos_token }}\n\n{% endif %}{% endfor %}",
                "{% if add_generation_prompt %}### Response:\n{% endif %}"
            ),
            BuiltinTemplate::Vicuna => concat!(
                "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n",
                "{% elif m.role == 'user' %}USER: {{ m.content }}\n",
                "{% else %}ASSISTANT: {{ m.content }}{{ eos_token }}\n{% endif %}{% endfor %}",
                "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
            ),
            BuiltinTemplate::ChatMl => concat!(
                "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
            ),
            BuiltinTemplate::Llama2 => concat!(
                "{% if messages and messages[0].role == 'system' %}{% set sys = messages[0].content %}",
                "{% set msgs = messages[1:] %}{% else %}{% set sys = '' %}{% set msgs = messages %}{% endif %}",
                "{% for m in msgs %}{% if m.role == 'user' %}{% if loop.first and sys %}",
                "{{ bos_token }}[INST] <<SYS>>\n{{ sys }}\n<</SYS>>\n\n{{ m.content }} [/INST]",
                "{% else %}{{ bos_token }}[INST] {{ m.content }} [/INST]{% endif %}",
                "{% else %} {{ m.content }} {{ eos_token }}{% endif %}{% endfor %}"
            ),
        }
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles a template source.
    pub fn new(source: &str) -> Result<Self, CoreError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| CoreError::ChatTemplate(e.to_string()))?;
        env.set_syntax(syntax);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME.to_string(), source.to_string())
            .map_err(|e| CoreError::ChatTemplate(e.to_string()))?;
        Ok(Self { env })
    }

    /// Renders `messages`.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        options: &RenderOptions,
    ) -> Result<String, CoreError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| CoreError::ChatTemplate(e.to_string()))?;
        // Tool-call arguments as objects, as HF templates expect.
        let messages: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                let mut v = serde_json::to_value(m).unwrap_or_default();
                if let Some(calls) = &m.tool_calls {
                    v["tool_calls"] = crate::tool_calls::arguments_as_objects(calls);
                }
                v
            })
            .collect();
        let ctx = minijinja::context! {
            messages => Value::from(Serde(messages)),
            add_generation_prompt => options.add_generation_prompt,
            bos_token => options.bos_token.clone().unwrap_or_default(),
            eos_token => options.eos_token.clone().unwrap_or_default(),
            tools => options.tools.as_ref().map(|t| Value::from(Serde(t))),
        };
        template
            .render(ctx)
            .map_err(|e| CoreError::ChatTemplate(describe(&e)))
    }
}

fn describe(e: &JinjaError) -> String {
    match e.detail() {
        Some(detail) if e.kind() == ErrorKind::InvalidOperation => detail.to_string(),
        _ => e.to_string(),
    }
}

fn raise_exception(message: String) -> Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`: the current UTC time with C `strftime` codes
/// (%Y %m %d %e %H %M %S %B %b %A %a %y %j %%).
fn strftime_now(format: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_time(secs, &format)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

/// Formats seconds since the Unix epoch (UTC).
pub(crate) fn format_time(secs: i64, format: &str) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[(m - 1) as usize] + d + i64::from(leap && m > 2);
    let month = MONTHS[(m - 1) as usize];
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y % 100)),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:>2}")),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('M') => out.push_str(&format!("{mi:02}")),
            Some('S') => out.push_str(&format!("{s:02}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('B') => out.push_str(month),
            Some('b') => out.push_str(&month[..3]),
            Some('A') => out.push_str(weekday),
            Some('a') => out.push_str(&weekday[..3]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=…)`, as
/// transformers' `tojson`: `", "` and `": "` separators without indent.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    python_json(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn python_json(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                python_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&J::String(k.clone()).to_string());
                out.push_str(": ");
                python_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_formatting() {
        // 2024-02-29 13:05:09 UTC was a Thursday.
        assert_eq!(
            format_time(1_709_211_909, "%Y-%m-%d %H:%M:%S %A %b %j"),
            "2024-02-29 13:05:09 Thursday Feb 060"
        );
        assert_eq!(format_time(0, "%d %B %Y"), "01 January 1970");
    }

    #[test]
    fn tojson_matches_python() {
        let t = ChatTemplate::new("{{ tools | tojson }}|{{ tools | tojson(indent=2) }}").unwrap();
        let tools = serde_json::json!([{"name": "calc", "params": {"x": 1, "b": [true, null]}}]);
        let out = t
            .render(
                &[],
                &RenderOptions {
                    tools: Some(tools),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            out,
            "[{\"name\": \"calc\", \"params\": {\"x\": 1, \"b\": [true, null]}}]|[\n  {\n    \"name\": \"calc\",\n    \"params\": {\n      \"x\": 1,\n      \"b\": [\n        true,\n        null\n      ]\n    }\n  }\n]"
        );
    }

    #[test]
    fn raise_exception_becomes_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}").unwrap();
        let err = t
            .render(&[], &RenderOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("roles must alternate"), "{err}");
    }

    #[test]
    fn python_string_methods_and_loop_controls() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content.strip().upper() }}{% endfor %}",
        )
        .unwrap();
        let msgs = [
            ChatMessage::new("user", "  hi "),
            ChatMessage::new("user", "x"),
        ];
        assert_eq!(t.render(&msgs, &RenderOptions::default()).unwrap(), "HI");
    }

    #[test]
    fn builtin_alpaca() {
        let t = ChatTemplate::new(BuiltinTemplate::Alpaca.source()).unwrap();
        let out = t
            .render(
                &[ChatMessage::new("user", "Name a colour.")],
                &RenderOptions {
                    add_generation_prompt: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(out, "### Instruction:\nName a colour.\n\n### Response:\n");
    }
}

#[cfg(test)]
mod builtin_tests {
    use super::*;

    #[test]
    fn every_builtin_renders_a_conversation() {
        let msgs = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "Hello"),
            ChatMessage::new("user", "Bye"),
        ];
        let opts = RenderOptions {
            add_generation_prompt: true,
            bos_token: Some("<s>".into()),
            eos_token: Some("</s>".into()),
            tools: None,
        };
        let render = |t: BuiltinTemplate| {
            ChatTemplate::new(t.source())
                .unwrap()
                .render(&msgs, &opts)
                .unwrap()
        };
        assert_eq!(
            render(BuiltinTemplate::Vicuna),
            "Be brief.\n\nUSER: Hi\nASSISTANT: Hello</s>\nUSER: Bye\nASSISTANT:"
        );
        assert_eq!(
            render(BuiltinTemplate::ChatMl),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            render(BuiltinTemplate::Llama2),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]"
        );
        assert!(
            render(BuiltinTemplate::Alpaca).ends_with("### Instruction:\nBye\n\n### Response:\n")
        );
        assert_eq!(
            BuiltinTemplate::from_name("chatml"),
            Some(BuiltinTemplate::ChatMl)
        );
        assert_eq!(BuiltinTemplate::from_name("x"), None);
    }
}

#[cfg(test)]
mod tool_template_tests {
    use super::*;

    /// A Hermes-style template renders tools, and a call's `arguments`
    /// string as the object the template expects.
    #[test]
    fn tools_and_calls_render() {
        let source = include_str!("../../../tests/data/templates/hermes-tools.jinja");
        let template = ChatTemplate::new(source).unwrap();
        let tools = serde_json::json!([crate::function_tool(
            "calculator",
            "math",
            serde_json::json!({"type": "object"})
        )]);
        let mut assistant = ChatMessage::new("assistant", "");
        assistant.tool_calls = Some(serde_json::json!([crate::ToolCall {
            id: "call_0".into(),
            name: "calculator".into(),
            arguments: "{\"input\": \"2+2\"}".into(),
        }
        .to_openai()]));
        let mut result = ChatMessage::new("tool", "4");
        result.tool_call_id = Some("call_0".into());
        let messages = [ChatMessage::new("user", "2+2?"), assistant, result];
        let text = template
            .render(
                &messages,
                &RenderOptions {
                    add_generation_prompt: true,
                    tools: Some(tools),
                    ..RenderOptions::default()
                },
            )
            .unwrap();
        assert!(
            text.contains(
                "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"calculator\""
            ),
            "{text}"
        );
        assert!(
            text.contains("<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"input\": \"2+2\"}}\n</tool_call>"),
            "{text}"
        );
        assert!(
            text.contains("<tool_response>\n4\n</tool_response>"),
            "{text}"
        );
        assert!(text.ends_with("<|im_start|>assistant\n"), "{text}");
    }
}
