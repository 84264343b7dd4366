//! Native tool calling on a scripted model (a test double that replays
//! Hermes-format replies and records the conversation and tools it got):
//! calls run and answered by id, tool errors and unknown tools shown to the
//! model, the step limit, the final answer.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Mutex;

use kiln_agent::{AgentError, Calculator, Ending, FnTool, Tool, ToolCallingAgent};
use kiln_core::{parse_tool_calls, ChatMessage, ChatOptions, ChatReply, CoreError, TextGenerator};
use serde_json::Value;

/// Replays `replies` (parsed as the local generator parses model text);
/// records every conversation and the tool names offered.
struct Scripted {
    replies: Mutex<Vec<String>>,
    conversations: Mutex<Vec<Vec<ChatMessage>>>,
    offered: Mutex<Vec<Vec<String>>>,
}

impl Scripted {
    fn new(replies: &[&str]) -> Self {
        Self {
            replies: Mutex::new(replies.iter().rev().map(|s| s.to_string()).collect()),
            conversations: Mutex::new(Vec::new()),
            offered: Mutex::new(Vec::new()),
        }
    }
}

impl TextGenerator for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn chat(
        &self,
        _: &[ChatMessage],
        _: &ChatOptions,
        _: &mut dyn FnMut(&str),
    ) -> Result<String, CoreError> {
        panic!("the tool-calling agent must use chat_with_tools")
    }
    fn chat_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: &[Value],
        _: &ChatOptions,
    ) -> Result<ChatReply, CoreError> {
        self.conversations.lock().unwrap().push(messages.to_vec());
        self.offered.lock().unwrap().push(
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_string())
                .collect(),
        );
        let reply = self
            .replies
            .lock()
            .unwrap()
            .pop()
            .ok_or_else(|| CoreError::Model("script ran out".into()))?;
        Ok(parse_tool_calls(&reply))
    }
}

fn tools() -> Vec<Box<dyn Tool>> {
    vec![
        Box::new(Calculator),
        Box::new(FnTool::new("search", "looks things up", |q| {
            if q.contains("kiln") {
                Ok("A kiln fires clay at 1200 C.".into())
            } else {
                Err(AgentError::Tool(format!("nothing found for {q:?}")))
            }
        })),
    ]
}

fn call(name: &str, input: &str) -> String {
    format!(
        "<tool_call>\n{}\n</tool_call>",
        serde_json::json!({"name": name, "arguments": {"input": input}})
    )
}

#[test]
fn calls_are_run_and_answered_by_id_until_the_answer() {
    let model = Scripted::new(&[
        &format!(
            "Let me compute.\n{}\n{}",
            call("calculator", "6 * 7"),
            call("search", "kiln")
        ),
        &call("search", "glaze"),
        &call("teleport", "mars"),
        "The answer is 42.",
    ]);
    let agent = ToolCallingAgent::new(&model, tools());
    let mut seen = Vec::new();
    let outcome = agent
        .run("What is 6 * 7?", |s| seen.push(s.clone()))
        .unwrap();
    assert_eq!(outcome.ending, Ending::Answered);
    assert_eq!(outcome.answer.as_deref(), Some("The answer is 42."));
    assert_eq!(seen.len(), 5, "four calls and the answer");
    assert_eq!(
        *model.offered.lock().unwrap(),
        vec![vec!["calculator".to_string(), "search".to_string()]; 4]
    );
    let last = model.conversations.lock().unwrap().pop().unwrap();
    let roles: Vec<&str> = last.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "tool",
            "tool",
            "assistant",
            "tool",
            "assistant",
            "tool"
        ]
    );
    // Both calls of the first turn are on one assistant message, answered in order by id.
    let calls = last[1].tool_calls.as_ref().unwrap().as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(last[1].content.trim(), "Let me compute.");
    assert_eq!(last[2].tool_call_id.as_deref(), calls[0]["id"].as_str());
    assert_eq!(last[2].content, "42");
    assert_eq!(last[3].tool_call_id.as_deref(), calls[1]["id"].as_str());
    assert_eq!(last[3].content, "A kiln fires clay at 1200 C.");
    // Ids stay unique over the run, though each turn's parse numbers from 0.
    let mut ids: Vec<&str> = last
        .iter()
        .filter_map(|m| m.tool_call_id.as_deref())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    // A tool error and an unknown tool are shown to the model.
    assert!(
        last[5].content.starts_with("Error: nothing found"),
        "{}",
        last[5].content
    );
    assert!(last[7]
        .content
        .contains("teleport is not a tool; the tools are calculator, search"));
}

#[test]
fn the_step_limit_ends_a_model_that_never_answers() {
    let script: Vec<String> = (0..5)
        .map(|i| call("calculator", &format!("{i} + 1")))
        .collect();
    let script: Vec<&str> = script.iter().map(String::as_str).collect();
    let model = Scripted::new(&script);
    let mut agent = ToolCallingAgent::new(&model, tools());
    agent.max_steps = 3;
    agent.system = Some("Be brief.".into());
    let outcome = agent.run("count", |_| {}).unwrap();
    assert_eq!(outcome.ending, Ending::StepLimit);
    assert_eq!(outcome.answer, None);
    assert_eq!(outcome.steps.len(), 3);
    assert_eq!(outcome.steps[2].observation.as_deref(), Some("3"));
    let first = &model.conversations.lock().unwrap()[0];
    assert_eq!(first[0].role, "system");
}

#[test]
fn a_model_that_cannot_call_tools_is_a_clear_error() {
    struct Plain;
    impl TextGenerator for Plain {
        fn name(&self) -> &str {
            "plain"
        }
        fn chat(
            &self,
            _: &[ChatMessage],
            _: &ChatOptions,
            _: &mut dyn FnMut(&str),
        ) -> Result<String, CoreError> {
            Ok(String::new())
        }
    }
    let err = ToolCallingAgent::new(&Plain, tools())
        .run("q", |_| {})
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot call tools natively"),
        "{err}"
    );
}
