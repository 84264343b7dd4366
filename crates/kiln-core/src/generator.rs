//! The [`TextGenerator`] trait: what agents, prompts and RAG need from a
//! chat model, so they run the same on a local model or a remote
//! OpenAI-compatible server.

use crate::{ChatMessage, ChatReply, CoreError, OutputConstraint, ToolChoice};

/// Per-call options of a [`TextGenerator`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatOptions {
    /// Most new tokens.
    pub max_tokens: Option<usize>,
    /// Sampling temperature (`Some(0.0)`: greedy).
    pub temperature: Option<f32>,
    /// Generation stops before any of these strings.
    pub stop: Vec<String>,
    /// Sampler seed.
    pub seed: Option<u64>,
    /// Constrained output (a JSON Schema, any object, or a label list).
    pub constraint: Option<OutputConstraint>,
    /// Which tool calls [`TextGenerator::chat_with_tools`] may make.
    pub tool_choice: ToolChoice,
}

/// A chat model: messages in, the assistant's reply out.
pub trait TextGenerator: Send + Sync {
    /// The model's name (for logs and sources).
    fn name(&self) -> &str;
    /// Generates the assistant's reply to `messages`, calling `on_text` with
    /// each piece as it arrives; returns the whole reply.
    fn chat(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String, CoreError>;

    /// Generates the reply to `messages` with `tools` (OpenAI function
    /// definitions) offered natively: the model's chat template renders them
    /// and its calls come back parsed. Generators that cannot do this say so.
    fn chat_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: &[serde_json::Value],
        options: &ChatOptions,
    ) -> Result<ChatReply, CoreError> {
        let _ = (messages, tools, options);
        Err(CoreError::InvalidParameter {
            field: "tools",
            message: format!("{} cannot call tools natively", self.name()),
        })
    }
}
