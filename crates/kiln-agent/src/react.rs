//! The ReAct loop (Thought / Action / Action Input / Observation, as
//! LangChain's zero-shot ReAct agent prompts it): the model writes until
//! `Observation:`, kiln runs the named tool and appends what it returned,
//! until the model writes `Final Answer:` or the step limit is reached.
//! Malformed replies and tool errors are shown to the model as
//! observations, so it can correct itself.

use kiln_core::{ChatMessage, ChatOptions, TextGenerator};

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
}

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

/// The position of `marker` and the text after it.
fn find_after<'t>(text: &'t str, marker: &str) -> Option<(usize, &'t str)> {
    text.find(marker).map(|i| (i, &text[i + marker.len()..]))
}

impl<'a> ReactAgent<'a> {
    /// An agent over `model` and `tools`, 8 steps, greedy, 256 tokens a turn.
    pub fn new(model: &'a dyn TextGenerator, tools: Vec<Box<dyn Tool>>) -> Self {
        Self {
            model,
            tools,
            max_steps: 8,
            options: ChatOptions {
                max_tokens: Some(256),
                temperature: Some(0.0),
                ..ChatOptions::default()
            },
            max_observation_chars: 4000,
        }
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
        for stop in ["\nObservation:", "Observation:"] {
            if !options.stop.iter().any(|s| s == stop) {
                options.stop.push(stop.to_string());
            }
        }
        let mut scratchpad = String::new();
        let mut steps = Vec::new();
        for _ in 0..self.max_steps {
            let messages = [ChatMessage::new("user", self.prompt(question, &scratchpad))];
            let text = self.model.chat(&messages, &options, &mut |_| {})?;
            let (action, observation) = match parse_reply(&text) {
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
                    let observation = match self
                        .tools
                        .iter()
                        .find(|t| t.name().eq_ignore_ascii_case(&tool))
                    {
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
            scratchpad.push_str(&text);
            if !text.ends_with('\n') {
                scratchpad.push('\n');
            }
            scratchpad.push_str(&format!("Observation: {}\nThought:", observation.trim()));
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
