//! `kiln classify` and `kiln extract`: constrained output over many inputs,
//! one JSON line per input; and the `--schema/--json-object/--labels` flags
//! of `generate`.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_core::{ChatMessage, GenerationParams, OutputConstraint};
use kiln_engine::{generate, Request};
use kiln_models::Model;
use serde_json::{json, Value};

use crate::args::{ClassifyArgs, ConstraintArgs, ExtractArgs, InputsArgs, ZeroShotArgs};

/// The constraint `generate`'s flags ask for.
pub fn constraint_of(args: &ConstraintArgs) -> Result<Option<OutputConstraint>> {
    if let Some(path) = &args.schema {
        return Ok(Some(OutputConstraint::JsonSchema(read_schema(path)?)));
    }
    if args.json_object {
        return Ok(Some(OutputConstraint::JsonObject));
    }
    if !args.labels.is_empty() {
        return Ok(Some(OutputConstraint::Choice(args.labels.clone())));
    }
    Ok(None)
}

fn read_schema(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the schema {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// One input: where it came from and its text.
struct Input {
    source: String,
    text: String,
}

fn read_inputs(args: &InputsArgs) -> Result<Vec<Input>> {
    let mut inputs: Vec<Input> = args
        .texts
        .iter()
        .enumerate()
        .map(|(i, t)| Input {
            source: format!("text:{i}"),
            text: t.clone(),
        })
        .collect();
    for path in &args.files {
        if path.as_os_str() == "-" {
            for (i, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.context("reading stdin")?;
                if !line.trim().is_empty() {
                    inputs.push(Input {
                        source: format!("stdin:{}", i + 1),
                        text: line,
                    });
                }
            }
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            inputs.push(Input {
                source: path.display().to_string(),
                text,
            });
        }
    }
    if inputs.is_empty() {
        bail!("nothing to process: give --text, files, or - for stdin");
    }
    Ok(inputs)
}

/// Greedy constrained generation of one reply to `user`.
fn constrained_reply(
    model: &Model,
    template: Option<&str>,
    user: &str,
    constraint: OutputConstraint,
    max_new_tokens: usize,
) -> Result<String> {
    let tokenizer = model.tokenizer()?;
    let messages = [ChatMessage::new("user", user)];
    let prompt_ids = match tokenizer.apply_chat_template(&messages, true, None, template) {
        Ok(text) => tokenizer.encode(&text, false)?.ids,
        // No chat template: a plain prompt.
        Err(_) => tokenizer.encode(&format!("{user}\n"), true)?.ids,
    };
    let params = GenerationParams {
        max_new_tokens: Some(max_new_tokens),
        temperature: Some(0.0),
        constraint: Some(constraint),
        ..Default::default()
    };
    let output = generate(model, &Request { prompt_ids, params }, |_| {})?;
    let seq = output
        .sequences
        .into_iter()
        .next()
        .context("no sequence was generated")?;
    if seq.finish_reason != kiln_core::FinishReason::Stop {
        bail!("the output did not finish within --max-new-tokens {max_new_tokens}");
    }
    Ok(seq.text)
}

/// `kiln classify`.
pub fn classify(args: ClassifyArgs) -> Result<()> {
    let model = super::load_model(&args.model)?;
    let template = super::template_source(args.inputs.template.as_deref())?;
    let instruction = args
        .instruction
        .unwrap_or_else(|| "Classify the text.".to_string());
    let labels = args.labels;
    let mut stdout = std::io::stdout();
    for input in read_inputs(&args.inputs)? {
        let prompt = format!(
            "{instruction} Answer with one of: {}.\n\nText: {}",
            labels.join(", "),
            input.text.trim()
        );
        let label = constrained_reply(
            &model,
            template.as_deref(),
            &prompt,
            OutputConstraint::Choice(labels.clone()),
            args.inputs.max_new_tokens,
        )?;
        let line = json!({"source": input.source, "label": label});
        writeln!(stdout, "{line}")?;
    }
    Ok(())
}

/// Extracts JSON following `schema` from `text` with `model`.
pub fn extract_one(
    model: &Model,
    template: Option<&str>,
    schema: &Value,
    text: &str,
    max_new_tokens: usize,
) -> Result<Value> {
    let prompt = format!(
        "Extract the information from the text as JSON following this JSON Schema:\n{schema}\n\nText: {}",
        text.trim()
    );
    let out = constrained_reply(
        model,
        template,
        &prompt,
        OutputConstraint::JsonSchema(schema.clone()),
        max_new_tokens,
    )?;
    serde_json::from_str(&out)
        .with_context(|| format!("internal error: constrained output is not JSON: {out}"))
}

/// Reads and checks a schema file.
pub fn load_schema(path: &Path) -> Result<Value> {
    let schema = read_schema(path)?;
    kiln_sampling::Constraint::grammar_for(&OutputConstraint::JsonSchema(schema.clone()))?;
    Ok(schema)
}

/// `kiln extract`.
pub fn extract(args: ExtractArgs) -> Result<()> {
    let model = super::load_model(&args.model)?;
    let template = super::template_source(args.inputs.template.as_deref())?;
    // Refuse a bad schema before reading any input.
    let schema = load_schema(&args.schema)?;
    let mut stdout = std::io::stdout();
    for input in read_inputs(&args.inputs)? {
        let data = extract_one(
            &model,
            template.as_deref(),
            &schema,
            &input.text,
            args.inputs.max_new_tokens,
        )?;
        writeln!(stdout, "{}", json!({"source": input.source, "data": data}))?;
    }
    Ok(())
}

/// `kiln zero-shot`.
pub fn zero_shot(args: ZeroShotArgs) -> Result<()> {
    let model = kiln_models::encoder::CrossEncoder::load(&args.model)
        .with_context(|| format!("loading NLI model {}", args.model.display()))?;
    let mut stdout = std::io::stdout();
    for input in read_inputs(&args.inputs)? {
        let scores = kiln_models::encoder::zero_shot(
            &model,
            input.text.trim(),
            &args.labels,
            &args.hypothesis,
            args.multi_label,
        )?;
        let labels: Vec<&str> = scores.iter().map(|s| s.label.as_str()).collect();
        let values: Vec<f32> = scores.iter().map(|s| s.score).collect();
        writeln!(
            stdout,
            "{}",
            json!({"source": input.source, "labels": labels, "scores": values})
        )?;
    }
    Ok(())
}
