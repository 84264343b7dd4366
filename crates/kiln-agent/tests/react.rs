//! The ReAct loop on a scripted model (a test double that replays a
//! transcript and records the prompts it got): parsing, tool calls, tool
//! errors, unknown tools, malformed replies, the step limit, the answer.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Mutex;

use kiln_agent::react::{parse_reply, Parsed};
use kiln_agent::{AgentError, Calculator, Ending, FnTool, ReactAgent, Tool};
use kiln_core::{ChatMessage, ChatOptions, CoreError, TextGenerator};

/// Replays `replies` in order; records each prompt and the stops asked for.
struct Scripted {
    replies: Mutex<Vec<String>>,
    prompts: Mutex<Vec<String>>,
    stops: Mutex<Vec<Vec<String>>>,
}

impl Scripted {
    fn new(replies: &[&str]) -> Self {
        Self {
            replies: Mutex::new(replies.iter().rev().map(|s| s.to_string()).collect()),
            prompts: Mutex::new(Vec::new()),
            stops: Mutex::new(Vec::new()),
        }
    }
}

impl TextGenerator for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn chat(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String, CoreError> {
        self.prompts
            .lock()
            .unwrap()
            .push(messages[0].content.clone());
        self.stops.lock().unwrap().push(options.stop.clone());
        let reply = self
            .replies
            .lock()
            .unwrap()
            .pop()
            .ok_or_else(|| CoreError::Tokenization("script ran out".into()))?;
        on_text(&reply);
        Ok(reply)
    }
}

fn tools() -> Vec<Box<dyn Tool>> {
    vec![
        Box::new(Calculator),
        Box::new(FnTool::new(
            "search",
            "looks things up; input: a query",
            |q: &str| {
                if q.contains("Eiffel") {
                    Ok("The Eiffel Tower is 330 metres tall.".to_string())
                } else {
                    Err(AgentError::Tool("no results".into()))
                }
            },
        )),
    ]
}

#[test]
fn a_full_run_uses_tools_and_answers() {
    let model = Scripted::new(&[
        " I should look up the height.\nAction: search\nAction Input: Eiffel Tower height\n",
        " Now double it.\nAction: calculator\nAction Input: 330 * 2\n",
        " I now know the final answer\nFinal Answer: 660 metres",
    ]);
    let agent = ReactAgent::new(&model, tools());
    let mut seen = 0;
    let out = agent
        .run("How tall are two Eiffel Towers stacked?", |_| seen += 1)
        .unwrap();
    assert_eq!(out.ending, Ending::Answered);
    assert_eq!(out.answer.as_deref(), Some("660 metres"));
    assert_eq!(seen, 3);
    assert_eq!(
        out.steps[0].action,
        Some(("search".into(), "Eiffel Tower height".into()))
    );
    assert_eq!(
        out.steps[0].observation.as_deref(),
        Some("The Eiffel Tower is 330 metres tall.")
    );
    assert_eq!(out.steps[1].observation.as_deref(), Some("660"));
    // The prompt lists the tools, and the scratchpad carries the observations.
    let prompts = model.prompts.lock().unwrap();
    assert!(
        prompts[0].contains("calculator: evaluates") && prompts[0].contains("[calculator, search]")
    );
    assert!(prompts[0].ends_with("Question: How tall are two Eiffel Towers stacked?\nThought:"));
    assert!(prompts[2]
        .contains("Observation: The Eiffel Tower is 330 metres tall.\nThought: Now double it."));
    assert!(prompts[2].ends_with("Observation: 660\nThought:"));
    assert!(model.stops.lock().unwrap()[0].contains(&"\nObservation:".to_string()));
}

#[test]
fn tool_errors_unknown_tools_and_bad_format_are_observations() {
    let model = Scripted::new(&[
        " Let me search.\nAction: search\nAction Input: unknown thing\n",
        " Compute.\nAction: calculator\nAction Input: 1 / 0\n",
        " Try another tool.\nAction: weather\nAction Input: Paris\n",
        " I am confused and write no action.",
        " Action: calculator\n",
        "Final Answer: I could not find it.",
    ]);
    let agent = ReactAgent::new(&model, tools());
    let out = agent.run("q", |_| {}).unwrap();
    let obs: Vec<String> = out
        .steps
        .iter()
        .filter_map(|s| s.observation.clone())
        .collect();
    assert_eq!(obs[0], "Error: no results");
    assert_eq!(obs[1], "Error: division by zero");
    assert_eq!(
        obs[2],
        "weather is not a valid tool, try one of [calculator, search]."
    );
    assert!(
        obs[3].starts_with("Invalid Format: Missing 'Action:'"),
        "{}",
        obs[3]
    );
    assert!(
        obs[4].starts_with("Invalid Format: Missing 'Action Input:'"),
        "{}",
        obs[4]
    );
    assert_eq!(out.answer.as_deref(), Some("I could not find it."));
}

#[test]
fn the_step_limit_ends_a_run_without_an_answer() {
    let looping = " again\nAction: calculator\nAction Input: 1 + 1\n";
    let model = Scripted::new(&[looping; 10]);
    let mut agent = ReactAgent::new(&model, tools());
    agent.max_steps = 3;
    let out = agent.run("q", |_| {}).unwrap();
    assert_eq!(out.ending, Ending::StepLimit);
    assert_eq!(out.answer, None);
    assert_eq!(out.steps.len(), 3);
    assert_eq!(model.prompts.lock().unwrap().len(), 3);
}

#[test]
fn a_failing_model_is_an_error() {
    let model = Scripted::new(&[]);
    let agent = ReactAgent::new(&model, tools());
    assert!(matches!(agent.run("q", |_| {}), Err(AgentError::Model(_))));
}

#[test]
fn replies_parse_like_langchain() {
    assert_eq!(
        parse_reply(" done\nFinal Answer: 42"),
        Parsed::Answer("42".into())
    );
    assert_eq!(
        parse_reply("Thought\nAction: [calculator]\nAction Input: \"2+2\"\nObservation: 4"),
        Parsed::Action("calculator".into(), "2+2".into())
    );
    // An action written before a final answer is taken first.
    assert_eq!(
        parse_reply("Action: search\nAction Input: x\nFinal Answer: y"),
        Parsed::Action("search".into(), "x".into())
    );
    assert!(matches!(parse_reply("nothing"), Parsed::Malformed(_)));
}

#[test]
fn structured_turns_are_json_under_a_schema_and_repeats_are_flagged() {
    let model = Scripted::new(&[
        r#"{"thought":"compute","action":"calculator","action_input":"17*23+5"}"#,
        r#"{"thought":"again","action":"calculator","action_input":"17*23+5"}"#,
        r#"{"thought":"done","action":"final_answer","action_input":"396"}"#,
    ]);
    let mut agent = ReactAgent::new(&model, tools());
    agent.structured = true;
    let schema = agent.step_schema();
    assert_eq!(
        schema["properties"]["action"]["enum"],
        serde_json::json!(["calculator", "search", "final_answer"])
    );
    let out = agent.run("What is 17 * 23 + 5?", |_| {}).unwrap();
    assert_eq!(out.answer.as_deref(), Some("396"));
    assert_eq!(out.steps[0].observation.as_deref(), Some("396"));
    assert!(out.steps[1]
        .observation
        .as_deref()
        .unwrap()
        .contains("you already called calculator"));
    let prompts = model.prompts.lock().unwrap();
    assert!(prompts[1].ends_with("Observation: 396\n"), "{}", prompts[1]);
    assert!(
        model.stops.lock().unwrap()[0].is_empty(),
        "no stop strings in structured mode"
    );
    assert_eq!(
        kiln_agent::react::parse_structured("not json"),
        Parsed::Malformed("Invalid Format: reply with one JSON object {\"thought\", \"action\", \"action_input\"}".into())
    );
}
