//! Training data: records in the common instruction-tuning shapes turned
//! into token ids with labels (`-100` = no loss), checked line by line.
//!
//! | shape | fields | loss on |
//! |---|---|---|
//! | alpaca | `instruction`, `input`?, `output` | the output (Alpaca prompt) |
//! | dolly | `instruction`, `context`?, `response` | the response (Alpaca prompt) |
//! | chat | `messages: [{role, content}]` | assistant turns (model's chat template) |
//! | sharegpt | `conversations: [{from, value}]` | `gpt` turns (chat template) |
//! | text | `text` | every token |
//!
//! Files are JSON Lines, or one JSON array (`.json`).

use std::path::{Path, PathBuf};

use kiln_core::{ChatMessage, Tokenizer};
use serde_json::Value;

use crate::error::io_error;
use crate::{Result, TrainError};

/// The label of positions that carry no loss (transformers' convention).
pub const IGNORE: i64 = -100;

/// Alpaca's prompt with an input.
const ALPACA_WITH_INPUT: &str = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";
/// Alpaca's prompt without one.
const ALPACA_NO_INPUT: &str = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n";

/// The Alpaca prompt for an instruction and optional input (what a model
/// tuned on alpaca data should be prompted with).
pub fn alpaca_prompt(instruction: &str, input: Option<&str>) -> String {
    match input.filter(|s| !s.trim().is_empty()) {
        Some(input) => ALPACA_WITH_INPUT
            .replace("{instruction}", instruction)
            .replace("{input}", input),
        None => ALPACA_NO_INPUT.replace("{instruction}", instruction),
    }
}

/// One tokenized training example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Token ids.
    pub ids: Vec<u32>,
    /// One label per id: the id itself where the loss counts, else [`IGNORE`].
    pub labels: Vec<i64>,
}

impl Example {
    /// Positions that carry loss.
    pub fn trained_tokens(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE).count()
    }
}

/// How records become examples.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// Put loss on prompt tokens too (default: answers only).
    pub train_on_inputs: bool,
    /// Truncate longer examples to this many tokens (`None`: an example
    /// longer than `context` is an error).
    pub max_seq_len: Option<usize>,
    /// The model's context length.
    pub context: usize,
    /// Chat template override for chat/ShareGPT records.
    pub chat_template: Option<String>,
}

/// Reads and tokenizes every record of `path`.
pub fn load_examples(
    path: &Path,
    tokenizer: &Tokenizer,
    options: &DataOptions,
) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let records = parse_records(path, &text)?;
    if records.is_empty() {
        return Err(TrainError::Invalid(format!(
            "{}: the dataset is empty",
            path.display()
        )));
    }
    let mut out = Vec::with_capacity(records.len());
    for (line, record) in records {
        let bad = |message: String| TrainError::Data {
            path: PathBuf::from(path),
            line,
            message,
        };
        let mut example = encode_record(&record, tokenizer, options).map_err(|e| match e {
            TrainError::Invalid(m) => bad(m),
            other => other,
        })?;
        let limit = options
            .max_seq_len
            .unwrap_or(options.context)
            .min(options.context);
        if example.ids.len() > limit {
            if options.max_seq_len.is_none() {
                return Err(bad(format!(
                    "{} tokens exceed the model's context of {} (set --max-seq-len to truncate)",
                    example.ids.len(),
                    options.context
                )));
            }
            example.ids.truncate(limit);
            example.labels.truncate(limit);
        }
        if example.labels.iter().skip(1).all(|&l| l == IGNORE) {
            return Err(bad(format!(
                "no token carries loss ({} tokens{})",
                example.ids.len(),
                if options.max_seq_len.is_some() {
                    " after truncation"
                } else {
                    ""
                }
            )));
        }
        out.push(example);
    }
    Ok(out)
}

/// `(line number, record)` pairs from JSONL or a JSON array.
fn parse_records(path: &Path, text: &str) -> Result<Vec<(usize, Value)>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(text).map_err(|e| TrainError::Data {
            path: path.to_path_buf(),
            line: e.line(),
            message: format!("not a JSON array of records: {e}"),
        })?;
        return Ok(values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect());
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| TrainError::Data {
            path: path.to_path_buf(),
            line: i + 1,
            message: format!("malformed JSON: {e}"),
        })?;
        out.push((i + 1, value));
    }
    Ok(out)
}

fn field<'a>(record: &'a Value, name: &str) -> Result<Option<&'a str>> {
    match record.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TrainError::Invalid(format!(
            "field {name:?} must be a string"
        ))),
    }
}

fn required<'a>(record: &'a Value, name: &str, shape: &str) -> Result<&'a str> {
    field(record, name)?
        .ok_or_else(|| TrainError::Invalid(format!("{shape} record without {name:?}")))
}

/// Tokenizes one record, detecting its shape from its fields.
pub fn encode_record(
    record: &Value,
    tokenizer: &Tokenizer,
    options: &DataOptions,
) -> Result<Example> {
    if !record.is_object() {
        return Err(TrainError::Invalid("a record must be a JSON object".into()));
    }
    if record.get("messages").is_some() {
        let messages = chat_messages(record, "messages", "role", "content", |r| r.to_string())?;
        return encode_chat(&messages, tokenizer, options);
    }
    if record.get("conversations").is_some() {
        let map_role = |from: &str| match from {
            "human" | "user" => "user".to_string(),
            "gpt" | "assistant" | "chatgpt" | "bing" | "bard" => "assistant".to_string(),
            "system" => "system".to_string(),
            other => other.to_string(),
        };
        let messages = chat_messages(record, "conversations", "from", "value", map_role)?;
        return encode_chat(&messages, tokenizer, options);
    }
    if record.get("instruction").is_some() {
        let instruction = required(record, "instruction", "instruction")?;
        let (input, answer) = if record.get("response").is_some() {
            (
                field(record, "context")?,
                required(record, "response", "dolly")?,
            )
        } else {
            (
                field(record, "input")?,
                required(record, "output", "alpaca")?,
            )
        };
        return encode_prompt_answer(
            &alpaca_prompt(instruction, input),
            answer,
            tokenizer,
            options,
        );
    }
    if let Some(text) = field(record, "text")? {
        let mut ids = tokenizer
            .encode(text, true)
            .map_err(|e| TrainError::Invalid(e.to_string()))?
            .ids;
        if let Some(eos) = tokenizer.eos_id() {
            ids.push(eos);
        }
        let labels = ids.iter().map(|&i| i64::from(i)).collect();
        return Ok(Example { ids, labels });
    }
    Err(TrainError::Invalid(
        "unknown record shape: expected instruction/output (alpaca), instruction/response (dolly), messages, conversations or text".into(),
    ))
}

fn chat_messages(
    record: &Value,
    list: &str,
    role_key: &str,
    content_key: &str,
    map_role: impl Fn(&str) -> String,
) -> Result<Vec<ChatMessage>> {
    let items = record
        .get(list)
        .and_then(Value::as_array)
        .ok_or_else(|| TrainError::Invalid(format!("{list:?} must be a list")))?;
    if items.is_empty() {
        return Err(TrainError::Invalid(format!("{list:?} is empty")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get(role_key).and_then(Value::as_str).ok_or_else(|| {
                TrainError::Invalid(format!("{list}[{i}] has no string {role_key:?}"))
            })?;
            let content = m.get(content_key).and_then(Value::as_str).ok_or_else(|| {
                TrainError::Invalid(format!("{list}[{i}] has no string {content_key:?}"))
            })?;
            Ok(ChatMessage::new(map_role(role), content))
        })
        .collect()
}

/// Prompt (BOS added as the tokenizer does) then answer and EOS; loss on
/// the answer unless `train_on_inputs`.
fn encode_prompt_answer(
    prompt: &str,
    answer: &str,
    tokenizer: &Tokenizer,
    options: &DataOptions,
) -> Result<Example> {
    let tok = |t: &str, special: bool| {
        tokenizer
            .encode(t, special)
            .map(|e| e.ids)
            .map_err(|e| TrainError::Invalid(e.to_string()))
    };
    let prompt_ids = tok(prompt, true)?;
    let mut answer_ids = tok(answer, false)?;
    if let Some(eos) = tokenizer.eos_id() {
        answer_ids.push(eos);
    }
    let mut labels: Vec<i64> = if options.train_on_inputs {
        prompt_ids.iter().map(|&i| i64::from(i)).collect()
    } else {
        vec![IGNORE; prompt_ids.len()]
    };
    labels.extend(answer_ids.iter().map(|&i| i64::from(i)));
    let mut ids = prompt_ids;
    ids.extend(answer_ids);
    Ok(Example { ids, labels })
}

/// A conversation rendered with the chat template; loss on the assistant
/// turns (the template's text of each assistant message, end marker
/// included), found by rendering each prefix of the conversation.
fn encode_chat(
    messages: &[ChatMessage],
    tokenizer: &Tokenizer,
    options: &DataOptions,
) -> Result<Example> {
    if !messages.iter().any(|m| m.role == "assistant") {
        return Err(TrainError::Invalid(
            "the conversation has no assistant turn to learn".into(),
        ));
    }
    let template = options.chat_template.as_deref();
    let render = |msgs: &[ChatMessage], gen: bool| {
        tokenizer
            .apply_chat_template(msgs, gen, None, template)
            .map_err(|e| TrainError::Invalid(e.to_string()))
    };
    let full = render(messages, false)?;
    let mut spans = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role != "assistant" {
            continue;
        }
        let before = render(&messages[..i], true)?;
        let through = render(&messages[..=i], false)?;
        if !full.starts_with(&through) || !through.starts_with(&before) {
            return Err(TrainError::Invalid(
                "the chat template does not render conversations prefix by prefix; cannot locate assistant turns".into(),
            ));
        }
        spans.push(before.len()..through.len());
    }
    let (ids, offsets) = tokenizer
        .encode_with_offsets(full.as_str())
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let labels = ids
        .iter()
        .zip(offsets)
        .map(|(&id, std::ops::Range { start, .. })| {
            if options.train_on_inputs || spans.iter().any(|s| s.contains(&start)) {
                i64::from(id)
            } else {
                IGNORE
            }
        })
        .collect();
    Ok(Example { ids, labels })
}

/// Concatenates examples into sequences of up to `len` tokens (packing;
/// each keeps its own labels).
pub fn pack(examples: &[Example], len: usize) -> Vec<Example> {
    let mut out = Vec::new();
    let mut cur = Example {
        ids: Vec::new(),
        labels: Vec::new(),
    };
    for e in examples {
        for (&id, &label) in e.ids.iter().zip(&e.labels) {
            if cur.ids.len() == len {
                out.push(std::mem::replace(
                    &mut cur,
                    Example {
                        ids: Vec::new(),
                        labels: Vec::new(),
                    },
                ));
            }
            cur.ids.push(id);
            cur.labels.push(label);
        }
    }
    if cur.ids.len() > 1 {
        out.push(cur);
    }
    out
}

/// Splits off a held-out evaluation set: every example whose index hashes
/// (with `seed`) below `fraction` goes to eval. Deterministic.
pub fn split_eval(
    examples: Vec<Example>,
    fraction: f64,
    seed: u64,
) -> (Vec<Example>, Vec<Example>) {
    if fraction <= 0.0 {
        return (examples, Vec::new());
    }
    let mut order: Vec<(u64, Example)> = examples
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            (
                mix(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                e,
            )
        })
        .collect();
    order.sort_by_key(|(k, _)| *k);
    let n_eval = ((order.len() as f64 * fraction).round() as usize)
        .clamp(1, order.len().saturating_sub(1).max(1));
    let mut train = Vec::new();
    let mut eval = Vec::new();
    for (i, (_, e)) in order.into_iter().enumerate() {
        if i < n_eval {
            eval.push(e);
        } else {
            train.push(e);
        }
    }
    (train, eval)
}

/// SplitMix64's finaliser: a well-spread hash of `x`.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
