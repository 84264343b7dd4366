//! A loaded model as a [`TextGenerator`]: messages through the model's chat
//! template, then [`generate`].

use std::sync::Arc;

use kiln_core::{
    forced_call_schema, forced_reply, parse_tool_calls, template_supports_tools, ChatMessage,
    ChatOptions, ChatReply, CoreError, GenerationParams, OutputConstraint, TextGenerator,
    ToolChoice, FORCED_CALL_OPENING,
};
use kiln_models::Model;
use serde_json::Value;

use crate::{generate, Event, Request};

/// A local model behind the [`TextGenerator`] trait.
pub struct LocalGenerator {
    model: Arc<Model>,
    name: String,
    template: Option<String>,
    /// Decoding settings under each call's options (e.g. a repetition penalty).
    pub base_params: GenerationParams,
}

impl LocalGenerator {
    /// Wraps `model`, named `name`, rendering prompts with `template` (a
    /// template source) or the model's own chat template.
    pub fn new(model: Arc<Model>, name: impl Into<String>, template: Option<String>) -> Self {
        Self {
            model,
            name: name.into(),
            template,
            base_params: GenerationParams::default(),
        }
    }
}

impl TextGenerator for LocalGenerator {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String, CoreError> {
        self.reply(messages, None, options, "", on_text)
    }

    fn chat_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: &[Value],
        options: &ChatOptions,
    ) -> Result<ChatReply, CoreError> {
        // `none` offers no tools (as `kiln serve` does): a plain reply.
        if options.tool_choice == ToolChoice::None {
            let text = self.reply(messages, None, options, "", &mut |_| {})?;
            return Ok(ChatReply {
                content: text,
                tool_calls: Vec::new(),
            });
        }
        let tokenizer = self.tokenizer()?;
        let template = self
            .template
            .as_deref()
            .or(tokenizer.special_tokens().chat_template.as_deref())
            .unwrap_or_default();
        if !template_supports_tools(template) {
            return Err(CoreError::InvalidParameter {
                field: "tools",
                message: format!(
                    "the chat template of {} does not render tools (use the ReAct agent instead)",
                    self.name
                ),
            });
        }
        let forced = forced_call_schema(tools, &options.tool_choice).map_err(|message| {
            CoreError::InvalidParameter {
                field: "tool_choice",
                message,
            }
        })?;
        let tools = Value::Array(tools.to_vec());
        match forced {
            // A forced call: the reply starts with the call's opening, and its
            // JSON is constrained to the call's schema.
            Some(schema) => {
                let options = ChatOptions {
                    constraint: Some(OutputConstraint::JsonSchema(schema)),
                    ..options.clone()
                };
                let text = self.reply(
                    messages,
                    Some(&tools),
                    &options,
                    FORCED_CALL_OPENING,
                    &mut |_| {},
                )?;
                Ok(forced_reply(&text))
            }
            None => {
                let text = self.reply(messages, Some(&tools), options, "", &mut |_| {})?;
                Ok(parse_tool_calls(&text))
            }
        }
    }
}

impl LocalGenerator {
    fn tokenizer(&self) -> Result<&kiln_core::Tokenizer, CoreError> {
        self.model
            .tokenizer()
            .map_err(|e| CoreError::Model(e.to_string()))
    }

    /// The reply to `messages` rendered (with `tools`, if any) by the chat
    /// template, the assistant's turn opened with `prefix`.
    fn reply(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Value>,
        options: &ChatOptions,
        prefix: &str,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String, CoreError> {
        let tokenizer = self.tokenizer()?;
        let mut text =
            tokenizer.apply_chat_template(messages, true, tools, self.template.as_deref())?;
        text.push_str(prefix);
        let mut params = self.base_params.clone();
        params.max_new_tokens = options.max_tokens.or(params.max_new_tokens);
        params.temperature = options.temperature.or(params.temperature);
        params.seed = options.seed.or(params.seed);
        params.stop.extend(options.stop.iter().cloned());
        params.num_return_sequences = 1;
        if options.constraint.is_some() {
            params.constraint = options.constraint.clone();
        }
        let request = Request {
            prompt_ids: tokenizer.encode(&text, false)?.ids,
            params,
        };
        let output = generate(&self.model, &request, |event| {
            if let Event::Token { text, .. } | Event::Text { text, .. } = &event {
                on_text(text);
            }
        })
        .map_err(|e| CoreError::Model(e.to_string()))?;
        Ok(output
            .sequences
            .into_iter()
            .next()
            .map(|s| s.text)
            .unwrap_or_default())
    }
}
