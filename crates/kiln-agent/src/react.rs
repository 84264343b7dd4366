//! The ReAct loop (Thought / Action / Action Input / Observation, as
//! LangChain's zero-shot ReAct agent prompts it): the model writes until
//! `Observation:`, kiln runs the named tool and appends what it returned,
//! until the model writes `Final Answer:` or the step limit is reached.
//! Malformed replies and tool errors are shown to the model as
//! observations, so it can correct itself.

use kiln_core::{ChatMessage, ChatOptions, OutputConstraint, TextGenerator};
use serde_json::{json, Value};

use crate::tools::Tool;
use crate::AgentError;

/// One turn of the loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What the model wrote this turn (up to the stop).
    pub text: String,
    /// The tool and input it asked for, when it asked for one.
    pub action: Option<(String, String)>,
    /// What it was shown afterwards.
    pub observation: Option<String>,
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The model gave a final answer.
    Answered,
    /// The step limit was reached first.
    StepLimit,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The final answer (`None` at the step limit).
    pub answer: Option<String>,
    /// Every turn, in order.
    pub steps: Vec<Step>,
    /// Why it ended.
    pub ending: Ending,
}

/// A ReAct agent over a model and tools.
pub struct ReactAgent<'a> {
    model: &'a dyn TextGenerator,
    tools: Vec<Box<dyn Tool>>,
    /// Most model turns.
    pub max_steps: usize,
    /// Options of each model call (`stop` gets `Observation:` added).
    pub options: ChatOptions,
    /// Longest observation shown to the model, in characters.
    pub max_observation_chars: usize,
    /// Each turn is a JSON object `{"thought", "action", "action_input"}`
    /// produced under constrained decoding (the action one of the tools or
    /// `final_answer`), so even small models always write a usable step.
    pub structured: bool,
}

/// The action name that ends a structured run.
pub const FINAL_ANSWER: &str = "final_answer";

/// What a reply asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// `Final Answer: …`.
    Answer(String),
    /// `Action: tool` + `Action Input: …`.
    Action(String, String),
    /// Neither: the message to show the model.
    Malformed(String),
}

/// Reads a model turn the way LangChain's ReAct output parser does.
pub fn parse_reply(text: &str) -> Parsed {
    let action = find_after(text, "Action:");
    if let Some(i) = text.find("Final Answer:") {
        // An action before the final answer wins only if it comes first.
        if action.is_none_or(|(a, _)| a > i) {
            let answer = text[i + "Final Answer:".len()..].trim();
            return Parsed::Answer(answer.to_string());
        }
    }
    let Some((_, rest)) = action else {
        return Parsed::Malformed(
            "Invalid Format: Missing 'Action:' after 'Thought:' (or give 'Final Answer:')".into(),
        );
    };
    let (tool_line, after) = rest.split_once('\n').unwrap_or((rest, ""));
    let Some((_, input)) = find_after(after, "Action Input:") else {
        return Parsed::Malformed("Invalid Format: Missing 'Action Input:' after 'Action:'".into());
    };
    let tool = tool_line
        .trim()
        .trim_matches(['[', ']', '`', '"'])
        .trim()
        .to_string();
    let input = input
        .lines()
        .take_while(|l| !l.starts_with("Observation") && !l.starts_with("Final Answer"))
        .collect::<Vec<_>>()
        .join("\n");
    Parsed::Action(tool, input.trim().trim_matches('"').trim().to_string())
}

/// Reads a structured turn (`{"thought", "action", "action_input"}`).
pub fn parse_structured(text: &str) -> Parsed {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Parsed::Malformed("Invalid Format: reply with one JSON object {\"thought\", \"action\", \"action_input\"}".into());
    };
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let action = field("action");
    if action.is_empty() {
        return Parsed::Malformed("Invalid Format: missing \"action\"".into());
    }
    if action == FINAL_ANSWER {
        return Parsed::Answer(field("action_input"));
    }
    Parsed::Action(action, field("action_input"))
}

/// The position of `marker` and the text after it.
fn find_after<'t>(text: &'t str, marker: &str) -> Option<(usize, &'t str)> {
    text.find(marker).map(|i| (i, &text[i + marker.len()..]))
}

/// Most model turns of an agent unless set.
pub const DEFAULT_MAX_STEPS: usize = 8;
/// Longest tool result shown to the model unless set, in characters.
pub const DEFAULT_MAX_OBSERVATION_CHARS: usize = 4000;

/// The default options of an agent's model turn: greedy, 256 tokens.
pub fn turn_options() -> ChatOptions {
    ChatOptions {
        max_tokens: Some(256),
        temperature: Some(0.0),
        ..ChatOptions::default()
    }
}

impl<'a> ReactAgent<'a> {
    /// An agent over `model` and `tools`, 8 steps, greedy, 256 tokens a turn.
    pub fn new(model: &'a dyn TextGenerator, tools: Vec<Box<dyn Tool>>) -> Self {
        Self {
            model,
            tools,
            max_steps: DEFAULT_MAX_STEPS,
            options: turn_options(),
            max_observation_chars: DEFAULT_MAX_OBSERVATION_CHARS,
            structured: false,
        }
    }

    /// The JSON Schema of one structured turn.
    pub fn step_schema(&self) -> Value {
        let mut actions: Vec<&str> = self.tools.iter().map(|t| t.name()).collect();
        actions.push(FINAL_ANSWER);
        json!({
            "type": "object",
            "properties": {
                "thought": {"type": "string", "maxLength": 300},
                "action": {"enum": actions},
                "action_input": {"type": "string", "maxLength": 500},
            },
            "required": ["thought", "action", "action_input"],
        })
    }

    /// The structured-mode prompt for `question` with the turns so far.
    pub fn structured_prompt(&self, question: &str, scratchpad: &str) -> String {
        let tools: Vec<String> = self
            .tools
            .iter()
            .map(|t| format!("- {}: {}", t.name(), t.description()))
            .collect();
        // A worked example with the first tool: small models imitate it.
        let example = self.tools.first().map_or(String::new(), |t| {
            let step = json!({"thought": "I should use a tool", "action": t.name(), "action_input": "…"});
            let last = json!({"thought": "I now know the answer", "action": FINAL_ANSWER, "action_input": "the answer"});
            format!("Example:\nQuestion: …\n{step}\nObservation: …\n{last}\n\n")
        });
        format!(
            "Answer the question. You can use these tools:\n{}\n\n\
             Work in steps. Reply with one JSON object per step: \
             {{\"thought\": what you think, \"action\": a tool name or \"{FINAL_ANSWER}\", \
             \"action_input\": the tool's input, or the final answer}}. \
             After each tool call you are shown its Observation; when you know the answer, \
             use the action \"{FINAL_ANSWER}\".\n\n{example}\
             Question: {question}\n{scratchpad}",
            tools.join("\n")
        )
    }

    /// The prompt for `question` with the turns so far.
    pub fn prompt(&self, question: &str, scratchpad: &str) -> String {
        let tools: Vec<String> = self
            .tools
            .iter()
            .map(|t| format!("{}: {}", t.name(), t.description()))
            .collect();
        let names: Vec<&str> = self.tools.iter().map(|t| t.name()).collect();
        format!(
            "Answer the following question as best you can. You have access to the following tools:\n\n\
             {}\n\n\
             Use the following format:\n\n\
             Question: the input question you must answer\n\
             Thought: you should always think about what to do\n\
             Action: the action to take, should be one of [{}]\n\
             Action Input: the input to the action\n\
             Observation: the result of the action\n\
             ... (this Thought/Action/Action Input/Observation can repeat N times)\n\
             Thought: I now know the final answer\n\
             Final Answer: the final answer to the original input question\n\n\
             Begin!\n\n\
             Question: {question}\n\
             Thought:{scratchpad}",
            tools.join("\n"),
            names.join(", ")
        )
    }

    /// Runs the loop for `question`; `on_step` sees each finished turn.
    pub fn run(
        &self,
        question: &str,
        mut on_step: impl FnMut(&Step),
    ) -> Result<Outcome, AgentError> {
        let mut options = self.options.clone();
        if self.structured {
            options.constraint = Some(OutputConstraint::JsonSchema(self.step_schema()));
        } else {
            for stop in ["\nObservation:", "Observation:"] {
                if !options.stop.iter().any(|s| s == stop) {
                    options.stop.push(stop.to_string());
                }
            }
        }
        let mut scratchpad = String::new();
        let mut steps = Vec::new();
        for _ in 0..self.max_steps {
            let prompt = if self.structured {
                self.structured_prompt(question, &scratchpad)
            } else {
                self.prompt(question, &scratchpad)
            };
            let messages = [ChatMessage::new("user", prompt)];
            let text = self.model.chat(&messages, &options, &mut |_| {})?;
            let parsed = if self.structured {
                parse_structured(&text)
            } else {
                parse_reply(&text)
            };
            let (action, observation) = match parsed {
                Parsed::Answer(answer) => {
                    let step = Step {
                        text,
                        action: None,
                        observation: None,
                    };
                    on_step(&step);
                    steps.push(step);
                    return Ok(Outcome {
                        answer: Some(answer),
                        steps,
                        ending: Ending::Answered,
                    });
                }
                Parsed::Action(tool, input) => {
                    let earlier = steps.iter().find_map(|s: &Step| {
                        (s.action.as_ref() == Some(&(tool.clone(), input.clone())))
                            .then(|| s.observation.clone())
                            .flatten()
                    });
                    let observation = match self
                        .tools
                        .iter()
                        .find(|t| t.name().eq_ignore_ascii_case(&tool))
                    {
                        // A repeated call: remind the model instead of looping.
                        Some(_) if earlier.is_some() => format!(
                            "{} (you already called {tool} with this input; if you know the answer, give it with the action {FINAL_ANSWER})",
                            earlier.unwrap_or_default().trim()
                        ),
                        Some(t) => t.call(&input).unwrap_or_else(|e| format!("Error: {e}")),
                        None => {
                            let names: Vec<&str> = self.tools.iter().map(|t| t.name()).collect();
                            format!(
                                "{tool} is not a valid tool, try one of [{}].",
                                names.join(", ")
                            )
                        }
                    };
                    (Some((tool, input)), observation)
                }
                Parsed::Malformed(message) => (None, message),
            };
            let observation: String = observation
                .chars()
                .take(self.max_observation_chars)
                .collect();
            scratchpad.push_str(text.trim_end());
            scratchpad.push('\n');
            if self.structured {
                scratchpad.push_str(&format!("Observation: {}\n", observation.trim()));
            } else {
                scratchpad.push_str(&format!("Observation: {}\nThought:", observation.trim()));
            }
            let step = Step {
                text,
                action,
                observation: Some(observation),
            };
            on_step(&step);
            steps.push(step);
        }
        Ok(Outcome {
            answer: None,
            steps,
            ending: Ending::StepLimit,
        })
    }
}
