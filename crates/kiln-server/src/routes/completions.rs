//! `POST /v1/completions` (legacy text completions).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_engine::Request;
use serde_json::{json, Value};

use crate::openai::params::to_params;
use crate::openai::request::{parse, CompletionRequest};
use crate::openai::response::{completion_logprobs, usage};
use crate::openai::{new_id, unix_now};
use crate::stream::{sse_response, Format, StreamSpec};
use crate::{ApiError, AppState};

/// Most alternatives per position for legacy completions.
const MAX_LOGPROBS: usize = 5;

/// Handles a text completion, streamed or whole.
pub async fn completions(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = super::body_bytes(body, state.max_body_bytes)?;
    let req: CompletionRequest = parse(&body)?;
    let served = state.model_for(&req.model, req.lora.as_deref())?;
    let model = served.engine.model().clone();
    let tokenizer = model
        .tokenizer()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid(
            "suffix",
            "`suffix` (fill-in-the-middle) is not supported.",
        ));
    }
    if req.best_of.is_some_and(|b| b > 1) {
        return Err(ApiError::invalid(
            "best_of",
            "`best_of` above 1 is not supported; use `n` or kiln's `num_beams`.",
        ));
    }
    if req.logprobs.is_some_and(|n| n > MAX_LOGPROBS) {
        return Err(ApiError::invalid(
            "logprobs",
            format!("`logprobs` must be at most {MAX_LOGPROBS}."),
        ));
    }
    let (prompt_ids, prompt_text) = prompt_of(&req.prompt, tokenizer)?;
    if prompt_ids
        .iter()
        .any(|&id| id as usize >= model.spec().vocab_size)
    {
        return Err(ApiError::invalid(
            "prompt",
            "A prompt token id is outside the vocabulary.",
        ));
    }
    let params = to_params(&req.sampling, req.logprobs)?;
    super::check_logit_bias(&params, model.spec().vocab_size)?;
    let n = params.num_return_sequences;
    let echo = req.echo.then(|| prompt_text.clone());
    let events = served.engine.submit(Request { prompt_ids, params })?;
    let id = new_id("cmpl");
    let created = unix_now();
    if req.sampling.stream {
        let spec = StreamSpec {
            format: Format::Completion,
            id,
            model: served.name.clone(),
            created,
            n,
            logprobs: req.logprobs.is_some(),
            include_usage: req.sampling.stream_options.is_some_and(|o| o.include_usage),
            echo,
            served: model.clone(),
            keep_alive: state.keep_alive,
        };
        return Ok(sse_response(spec, events));
    }
    let output = super::collect(events).await?;
    let head = echo.unwrap_or_default();
    let choices: Vec<Value> = output
        .sequences
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "index": i,
                "text": format!("{head}{}", s.text),
                "logprobs": match req.logprobs {
                    Some(_) => completion_logprobs(tokenizer, &s.logprobs, head.len()),
                    None => Value::Null,
                },
                "finish_reason": s.finish_reason.as_str(),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": served.name,
        "system_fingerprint": Value::Null,
        "choices": choices,
        "usage": usage(&output.usage),
    }))
    .into_response())
}

/// The prompt's ids and text: a string (tokenized with the model's special
/// tokens, e.g. BOS), token ids, or a one-element list of either.
fn prompt_of(
    prompt: &Value,
    tokenizer: &kiln_core::Tokenizer,
) -> Result<(Vec<u32>, String), ApiError> {
    let bad = || {
        ApiError::invalid(
            "prompt",
            "`prompt` must be a string or a list of token ids (one prompt per request).",
        )
    };
    match prompt {
        Value::String(text) => {
            let ids = tokenizer
                .encode(text, true)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .ids;
            Ok((ids, text.clone()))
        }
        Value::Array(items) if items.len() == 1 && !items[0].is_number() => {
            prompt_of(&items[0], tokenizer)
        }
        Value::Array(items) => {
            let ids = items
                .iter()
                .map(|v| v.as_u64().and_then(|x| u32::try_from(x).ok()))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(bad)?;
            let text = tokenizer.decode(&ids, false).unwrap_or_default();
            Ok((ids, text))
        }
        _ => Err(bad()),
    }
}
