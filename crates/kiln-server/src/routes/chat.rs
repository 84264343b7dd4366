//! `POST /v1/chat/completions`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_core::OutputConstraint;
use kiln_engine::Request;
use serde_json::{json, Value};

use crate::openai::params::to_params;
use crate::openai::request::{parse, ChatRequest};
use crate::openai::response::{chat_logprobs, usage};
use crate::openai::{new_id, unix_now};
use crate::stream::{sse_response, Format, StreamSpec};
use crate::tools::{openai_calls, parse_tool_calls, tools_for_template};
use crate::{ApiError, AppState};

/// Most alternatives per position OpenAI allows.
const MAX_TOP_LOGPROBS: usize = 20;

/// OpenAI's `response_format` as a constraint: `text` (none),
/// `json_object`, or `json_schema` with its `schema`.
fn output_constraint(format: Option<&Value>) -> Result<Option<OutputConstraint>, ApiError> {
    let Some(format) = format else {
        return Ok(None);
    };
    let bad = |m: &str| ApiError::invalid("response_format", m.to_string());
    match format.get("type").and_then(Value::as_str) {
        None => Err(bad(
            "`response_format` needs a `type`: text, json_object or json_schema.",
        )),
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(OutputConstraint::JsonObject)),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .ok_or_else(|| bad("`json_schema` needs `json_schema.schema`."))?;
            Ok(Some(OutputConstraint::JsonSchema(schema.clone())))
        }
        Some(other) => Err(bad(&format!(
            "unknown response_format type `{other}`: use text, json_object or json_schema."
        ))),
    }
}

/// Handles a chat completion, streamed or whole.
pub async fn chat_completions(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = super::body_bytes(body, state.max_body_bytes)?;
    let req: ChatRequest = parse(&body)?;
    let served = state.model_for(&req.model, req.lora.as_deref())?;
    let model = served.engine.model().clone();
    let tokenizer = model
        .tokenizer()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if req.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must not be empty.",
        ));
    }
    let constraint = output_constraint(req.response_format.as_ref())?;
    let top_logprobs = match (req.logprobs.unwrap_or(false), req.top_logprobs) {
        (_, Some(n)) if n > MAX_TOP_LOGPROBS => {
            return Err(ApiError::invalid(
                "top_logprobs",
                format!("`top_logprobs` must be at most {MAX_TOP_LOGPROBS}."),
            ))
        }
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "`top_logprobs` needs `logprobs: true`.",
            ))
        }
        (true, n) => Some(n.unwrap_or(0)),
        (false, None) => None,
    };
    let mut params = to_params(&req.sampling, top_logprobs)?;
    params.constraint = constraint;
    super::check_logit_bias(&params, model.spec().vocab_size)?;
    let messages = req
        .messages
        .iter()
        .map(|m| m.to_chat())
        .collect::<Result<Vec<_>, _>>()?;
    let tools = tools_for_template(tokenizer, req.tools.as_deref(), req.tool_choice.as_ref())?;
    let choice = kiln_core::ToolChoice::from_openai(req.tool_choice.as_ref())
        .map_err(|m| ApiError::invalid("tool_choice", m))?;
    let forced = match &tools {
        Some(list) => {
            kiln_core::forced_call_schema(list.as_array().map_or(&[], Vec::as_slice), &choice)
                .map_err(|m| ApiError::invalid("tool_choice", m))?
        }
        None => None,
    };
    let mut text = tokenizer
        .apply_chat_template(&messages, true, tools.as_ref(), None)
        .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
    if let Some(schema) = &forced {
        // A forced call: the reply opens the call and its JSON is
        // constrained to the call's schema.
        if params.constraint.is_some() {
            return Err(ApiError::invalid(
                "tool_choice",
                "A forced tool call cannot be combined with `response_format`.",
            ));
        }
        text.push_str(kiln_core::FORCED_CALL_OPENING);
        params.constraint = Some(kiln_core::OutputConstraint::JsonSchema(schema.clone()));
    }
    let prompt_ids = tokenizer
        .encode(&text, false)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ids;
    let n = params.num_return_sequences;
    let logprobs = top_logprobs.is_some();
    let events = served.engine.submit(Request { prompt_ids, params })?;
    let id = new_id("chatcmpl");
    let created = unix_now();
    if req.sampling.stream && tools.is_none() {
        let spec = StreamSpec {
            format: Format::Chat,
            id,
            model: served.name.clone(),
            created,
            n,
            logprobs,
            include_usage: req.sampling.stream_options.is_some_and(|o| o.include_usage),
            echo: None,
            served: model.clone(),
            keep_alive: state.keep_alive,
        };
        return Ok(sse_response(spec, events));
    }
    let output = super::collect(events).await?;
    let choices: Vec<Value> = output
        .sequences
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut finish = s.finish_reason.as_str();
            let mut message = json!({"role": "assistant", "content": s.text});
            if tools.is_some() {
                let (content, calls) = if forced.is_some() {
                    openai_calls(kiln_core::forced_reply(&s.text))
                } else {
                    parse_tool_calls(&s.text)
                };
                if !calls.is_empty() {
                    finish = "tool_calls";
                    message = json!({
                        "role": "assistant",
                        "content": if content.trim().is_empty() { Value::Null } else { json!(content) },
                        "tool_calls": calls,
                    });
                }
            }
            json!({
                "index": i,
                "message": message,
                "logprobs": if logprobs { chat_logprobs(tokenizer, &s.logprobs) } else { Value::Null },
                "finish_reason": finish,
            })
        })
        .collect();
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": served.name,
        "system_fingerprint": Value::Null,
        "choices": choices,
        "usage": usage(&output.usage),
    });
    if req.sampling.stream {
        // Tool calls are only known once the reply is complete: stream the
        // whole answer as one chunk per choice.
        return Ok(crate::stream::whole_as_stream(&body));
    }
    Ok(Json(body).into_response())
}
