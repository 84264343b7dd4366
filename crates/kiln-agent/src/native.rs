//! Native tool calling: the tools are offered as OpenAI function definitions
//! that the model's chat template renders (Qwen2.5, Llama 3.1, Hermes,
//! Mistral… templates read `tools`), the calls the model writes are run, and
//! each result goes back as a `tool` message answering the call's id — until
//! the model replies without calling a tool (its answer) or the step limit is
//! reached. Works the same through a remote OpenAI-compatible server, whose
//! `tools`/`tool_calls` carry the same shapes.

use kiln_core::{function_tool, ChatMessage, ChatOptions, TextGenerator, ToolCall};
use serde_json::{json, Value};

use crate::react::{
    turn_options, Ending, Outcome, Step, DEFAULT_MAX_OBSERVATION_CHARS, DEFAULT_MAX_STEPS,
};
use crate::tools::Tool;
use crate::AgentError;

/// An agent that calls tools through the model's native tool-call format.
pub struct ToolCallingAgent<'a> {
    model: &'a dyn TextGenerator,
    tools: Vec<Box<dyn Tool>>,
    /// Most model turns.
    pub max_steps: usize,
    /// Options of each model call.
    pub options: ChatOptions,
    /// Longest tool result shown to the model, in characters.
    pub max_observation_chars: usize,
    /// An optional system message.
    pub system: Option<String>,
}

impl<'a> ToolCallingAgent<'a> {
    /// An agent over `model` offering `tools`, greedy, at most 8 turns.
    pub fn new(model: &'a dyn TextGenerator, tools: Vec<Box<dyn Tool>>) -> Self {
        Self {
            model,
            tools,
            max_steps: DEFAULT_MAX_STEPS,
            options: turn_options(),
            max_observation_chars: DEFAULT_MAX_OBSERVATION_CHARS,
            system: None,
        }
    }

    /// The tools as OpenAI function definitions: each takes one string, `input`.
    pub fn definitions(&self) -> Vec<Value> {
        self.tools
            .iter()
            .map(|t| {
                function_tool(
                    t.name(),
                    t.description(),
                    json!({
                        "type": "object",
                        "properties": {"input": {"type": "string", "description": t.description()}},
                        "required": ["input"],
                    }),
                )
            })
            .collect()
    }

    /// Runs the loop for `question`; `on_step` sees each tool call with its
    /// result, and the final answer.
    pub fn run(
        &self,
        question: &str,
        mut on_step: impl FnMut(&Step),
    ) -> Result<Outcome, AgentError> {
        let definitions = self.definitions();
        let mut messages = Vec::new();
        if let Some(system) = &self.system {
            messages.push(ChatMessage::new("system", system.clone()));
        }
        messages.push(ChatMessage::new("user", question));
        let mut steps = Vec::new();
        let mut used_ids: Vec<String> = Vec::new();
        for _ in 0..self.max_steps {
            let reply = self
                .model
                .chat_with_tools(&messages, &definitions, &self.options)?;
            if reply.tool_calls.is_empty() {
                let step = Step {
                    text: reply.content.clone(),
                    action: None,
                    observation: None,
                };
                on_step(&step);
                steps.push(step);
                return Ok(Outcome {
                    answer: Some(reply.content.trim().to_string()),
                    steps,
                    ending: Ending::Answered,
                });
            }
            // Ids must be unique over the conversation; local parses number
            // each turn's calls from 0.
            let mut calls = reply.tool_calls.clone();
            for call in &mut calls {
                if call.id.is_empty() || used_ids.contains(&call.id) {
                    call.id = format!("call_{}", used_ids.len());
                }
                used_ids.push(call.id.clone());
            }
            let mut assistant = ChatMessage::new("assistant", reply.content.clone());
            assistant.tool_calls = Some(Value::Array(
                calls.iter().map(ToolCall::to_openai).collect(),
            ));
            messages.push(assistant);
            for (i, call) in calls.iter().enumerate() {
                let input = tool_input(call);
                let observation: String = self
                    .run_tool(&call.name, &input)
                    .chars()
                    .take(self.max_observation_chars)
                    .collect();
                let mut answer = ChatMessage::new("tool", observation.clone());
                answer.tool_call_id = Some(call.id.clone());
                answer.name = Some(call.name.clone());
                messages.push(answer);
                let step = Step {
                    text: if i == 0 {
                        reply.content.clone()
                    } else {
                        String::new()
                    },
                    action: Some((call.name.clone(), input)),
                    observation: Some(observation),
                };
                on_step(&step);
                steps.push(step);
            }
        }
        Ok(Outcome {
            answer: None,
            steps,
            ending: Ending::StepLimit,
        })
    }

    /// The tool's result, or the error the model is shown instead.
    fn run_tool(&self, name: &str, input: &str) -> String {
        match self.tools.iter().find(|t| t.name() == name) {
            Some(tool) => tool.call(input).unwrap_or_else(|e| format!("Error: {e}")),
            None => {
                let names: Vec<&str> = self.tools.iter().map(|t| t.name()).collect();
                format!(
                    "Error: {name} is not a tool; the tools are {}",
                    names.join(", ")
                )
            }
        }
    }
}

/// The one string a tool takes: the `input` argument, else a lone argument's
/// value, else the arguments text as given.
fn tool_input(call: &ToolCall) -> String {
    let args = call.arguments_json();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match args.as_object() {
        Some(map) if map.contains_key("input") => text(&map["input"]),
        Some(map) if map.len() == 1 => map.values().next().map(text).unwrap_or_default(),
        _ => call.arguments.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(arguments: &str) -> ToolCall {
        ToolCall {
            id: "c".into(),
            name: "calculator".into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn tool_input_reads_the_argument() {
        assert_eq!(tool_input(&call(r#"{"input": "2+2"}"#)), "2+2");
        assert_eq!(tool_input(&call(r#"{"expression": "3*3"}"#)), "3*3");
        assert_eq!(
            tool_input(&call(r#"{"a": 1, "b": 2}"#)),
            r#"{"a": 1, "b": 2}"#
        );
        assert_eq!(tool_input(&call("not json")), "not json");
    }
}
