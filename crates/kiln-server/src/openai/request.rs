//! Request bodies of `/v1/chat/completions` and `/v1/completions`. Unknown
//! fields are ignored (as vLLM does); known ones must have the right type.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::ApiError;

/// Sampling fields shared by chat and text completions, OpenAI's plus
/// kiln's extras (vLLM-style).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Sampling {
    /// Return a stream of server-sent events.
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Choices to return.
    pub n: Option<usize>,
    /// Stop strings (one or a list).
    pub stop: Option<Stop>,
    /// Seed for sampling.
    pub seed: Option<u64>,
    /// Most new tokens (legacy name).
    pub max_tokens: Option<usize>,
    /// Most new tokens.
    pub max_completion_tokens: Option<usize>,
    /// 0–2; 0 is greedy.
    pub temperature: Option<f32>,
    /// Nucleus mass in (0, 1].
    pub top_p: Option<f32>,
    /// −2–2.
    pub presence_penalty: Option<f32>,
    /// −2–2.
    pub frequency_penalty: Option<f32>,
    /// Token id (as a string) → bias in −100–100.
    pub logit_bias: Option<HashMap<String, f32>>,
    /// kiln extra: keep the k most likely tokens.
    pub top_k: Option<usize>,
    /// kiln extra: min-p.
    pub min_p: Option<f32>,
    /// kiln extra: typical-p.
    pub typical_p: Option<f32>,
    /// kiln extra: transformers' repetition penalty.
    pub repetition_penalty: Option<f32>,
    /// kiln extra: forbid repeating n-grams of this size.
    pub no_repeat_ngram_size: Option<usize>,
    /// kiln extra: beam search width.
    pub num_beams: Option<usize>,
    /// kiln extra: beam length penalty.
    pub length_penalty: Option<f32>,
    /// kiln extra: keep going past EOS.
    pub ignore_eos: Option<bool>,
    /// Ignored (OpenAI's end-user id).
    pub user: Option<String>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StreamOptions {
    /// Send a last chunk with the usage.
    pub include_usage: bool,
}

/// `stop`: a string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// Served model name.
    pub model: String,
    /// An adapter served with the model (`--adapter`), by name: the same as
    /// `"model": "MODEL:LORA"`.
    #[serde(default)]
    pub lora: Option<String>,
    /// The conversation.
    pub messages: Vec<InMessage>,
    /// Sampling fields.
    #[serde(flatten)]
    pub sampling: Sampling,
    /// Return log-probabilities of the chosen tokens.
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// Alternatives per position (0–20), with `logprobs`.
    #[serde(default)]
    pub top_logprobs: Option<usize>,
    /// `{"type": "text" | "json_object" | "json_schema"}`.
    #[serde(default)]
    pub response_format: Option<Value>,
    /// Tool definitions.
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    /// `none`, `auto`, `required` or a named function.
    #[serde(default)]
    pub tool_choice: Option<Value>,
}

/// One message of a chat request.
#[derive(Debug, Clone, Deserialize)]
pub struct InMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, a list of content parts, or null (assistant tool calls).
    #[serde(default)]
    pub content: Option<Content>,
    /// Assistant tool calls.
    #[serde(default)]
    pub tool_calls: Option<Value>,
    /// The call a tool message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// Participant name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Message content.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts (`{"type": "text", "text": …}`).
    Parts(Vec<Value>),
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// Served model name.
    pub model: String,
    /// An adapter served with the model (`--adapter`), by name: the same as
    /// `"model": "MODEL:LORA"`.
    #[serde(default)]
    pub lora: Option<String>,
    /// A string, token ids, or a list holding one of those.
    pub prompt: Value,
    /// Sampling fields.
    #[serde(flatten)]
    pub sampling: Sampling,
    /// Put the prompt in front of the completion.
    #[serde(default)]
    pub echo: bool,
    /// Not supported (rejected with a clear error).
    #[serde(default)]
    pub suffix: Option<String>,
    /// Alternatives per position (0–5).
    #[serde(default)]
    pub logprobs: Option<usize>,
    /// Not supported beyond 1.
    #[serde(default)]
    pub best_of: Option<usize>,
}

/// Parses a JSON body into `T`, answering OpenAI-style 400s for malformed
/// JSON and wrong types.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "We could not parse the JSON body of your request ({e}). Send valid JSON."
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("Invalid request: {e}")))
}

impl InMessage {
    /// The message as kiln's chat templates take it.
    pub fn to_chat(&self) -> Result<kiln_core::ChatMessage, ApiError> {
        let role = match self.role.as_str() {
            "developer" => "system",
            r @ ("system" | "user" | "assistant" | "tool") => r,
            other => {
                return Err(ApiError::invalid(
                    "messages",
                    format!("Unknown role `{other}`: use system, user, assistant or tool."),
                ))
            }
        };
        let content = match &self.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for p in parts {
                    match (p.get("type").and_then(Value::as_str), p.get("text")) {
                        (Some("text"), Some(Value::String(t))) => text.push_str(t),
                        _ => {
                            return Err(ApiError::invalid(
                                "messages",
                                "Only text content parts are supported.",
                            ))
                        }
                    }
                }
                text
            }
        };
        let mut m = kiln_core::ChatMessage::new(role, content);
        m.tool_calls = self.tool_calls.clone();
        m.tool_call_id = self.tool_call_id.clone();
        m.name = self.name.clone();
        Ok(m)
    }
}
