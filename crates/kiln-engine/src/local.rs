//! A loaded model as a [`TextGenerator`]: messages through the model's chat
//! template, then [`generate`].

use std::sync::Arc;

use kiln_core::{ChatMessage, ChatOptions, CoreError, GenerationParams, TextGenerator};
use kiln_models::Model;

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
        let tokenizer = self
            .model
            .tokenizer()
            .map_err(|e| CoreError::Model(e.to_string()))?;
        let text = tokenizer.apply_chat_template(messages, true, None, self.template.as_deref())?;
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
