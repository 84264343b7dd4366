//! Engine events → OpenAI's server-sent events: `data: {chunk}\n\n` per
//! chunk, the role in each choice's first delta, `finish_reason` in its
//! last, an optional usage chunk, `data: [DONE]`, keep-alive comments.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use kiln_engine::{Event, RequestStream, StreamEvent};
use serde_json::{json, Value};

use crate::openai::response::{chat_logprob, completion_logprobs, usage};
use crate::ApiError;

/// Which endpoint's chunk shape to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `chat.completion.chunk` with `delta`s.
    Chat,
    /// `text_completion` with `text`.
    Completion,
}

/// Everything a stream needs besides the engine's events.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Chunk shape.
    pub format: Format,
    /// Response id shared by all chunks.
    pub id: String,
    /// Model name echoed back.
    pub model: String,
    /// Creation time.
    pub created: u64,
    /// Number of choices.
    pub n: usize,
    /// Include log-probabilities in chunks.
    pub logprobs: bool,
    /// Send a usage chunk before `[DONE]`.
    pub include_usage: bool,
    /// Text sent first in every choice (completions' `echo`).
    pub echo: Option<String>,
    /// The model (its tokenizer decodes token texts for log-probabilities).
    pub served: Arc<kiln_models::Model>,
    /// Interval of keep-alive comments while no event is due.
    pub keep_alive: Duration,
}

impl StreamSpec {
    fn lp_chat(&self, lp: &kiln_sampling::TokenLogprob) -> Value {
        match self.served.tokenizer() {
            Ok(t) => json!({"content": [chat_logprob(t, lp)]}),
            Err(_) => Value::Null,
        }
    }

    fn lp_completion(&self, lp: &kiln_sampling::TokenLogprob) -> Value {
        match self.served.tokenizer() {
            Ok(t) => completion_logprobs(t, std::slice::from_ref(lp), 0),
            Err(_) => Value::Null,
        }
    }

    fn envelope(&self, choices: Vec<Value>) -> Value {
        let object = match self.format {
            Format::Chat => "chat.completion.chunk",
            Format::Completion => "text_completion",
        };
        let mut v = json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": Value::Null,
            "choices": choices,
        });
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    fn choice(
        &self,
        index: usize,
        text: Option<&str>,
        logprobs: Value,
        finish: Option<&str>,
    ) -> Value {
        match self.format {
            Format::Chat => {
                let delta = match text {
                    Some(t) => json!({"content": t}),
                    None => json!({}),
                };
                json!({"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish})
            }
            Format::Completion => json!({
                "index": index,
                "text": text.unwrap_or(""),
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
        }
    }

    /// The chunks that open the stream (chat: the role of every choice).
    fn opening(&self) -> Vec<Value> {
        match (self.format, &self.echo) {
            (Format::Chat, _) => (0..self.n)
                .map(|i| {
                    self.envelope(vec![json!({
                        "index": i,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": Value::Null,
                        "finish_reason": Value::Null,
                    })])
                })
                .collect(),
            (Format::Completion, Some(echo)) => (0..self.n)
                .map(|i| self.envelope(vec![self.choice(i, Some(echo), Value::Null, None)]))
                .collect(),
            (Format::Completion, None) => Vec::new(),
        }
    }

    /// The chunks for one engine event, and whether it was the last.
    fn chunks(&self, event: StreamEvent) -> (Vec<Value>, bool) {
        let out = match event {
            StreamEvent::Generated(Event::Token {
                sequence,
                text,
                logprob,
                ..
            }) => {
                let lp = match (&logprob, self.logprobs, self.format) {
                    (Some(lp), true, Format::Chat) => self.lp_chat(lp),
                    (Some(lp), true, Format::Completion) => self.lp_completion(lp),
                    _ => Value::Null,
                };
                // Chat skips empty deltas; legacy completions send one chunk
                // per token (as llama-server does), so clients can count them.
                if text.is_empty() && lp.is_null() && self.format == Format::Chat {
                    return (Vec::new(), false);
                }
                vec![self.envelope(vec![self.choice(sequence, Some(&text), lp, None)])]
            }
            StreamEvent::Generated(Event::Text { sequence, text }) => {
                vec![self.envelope(vec![self.choice(sequence, Some(&text), Value::Null, None)])]
            }
            StreamEvent::Generated(Event::Finished { sequence, reason }) => {
                vec![self.envelope(vec![self.choice(
                    sequence,
                    None,
                    Value::Null,
                    Some(reason.as_str()),
                )])]
            }
            StreamEvent::Done(output) => {
                if !self.include_usage {
                    return (Vec::new(), true);
                }
                let mut last = self.envelope(Vec::new());
                last["usage"] = usage(&output.usage);
                return (vec![last], true);
            }
            StreamEvent::Failed(message) => {
                return (vec![ApiError::internal(message).body()], true)
            }
        };
        (out, false)
    }
}

/// The SSE response for `events`.
pub fn sse_response(spec: StreamSpec, events: RequestStream) -> Response {
    let interval = spec.keep_alive;
    Sse::new(sse_events(spec, events))
        .keep_alive(KeepAlive::new().interval(interval))
        .into_response()
}

fn sse_events(
    spec: StreamSpec,
    events: RequestStream,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let opening: VecDeque<String> = spec.opening().iter().map(Value::to_string).collect();
    let state = (spec, events, opening, false);
    stream::unfold(
        state,
        |(spec, mut events, mut queue, mut ended)| async move {
            loop {
                if let Some(data) = queue.pop_front() {
                    let event = SseEvent::default().data(data);
                    return Some((Ok(event), (spec, events, queue, ended)));
                }
                if ended {
                    return None;
                }
                // A closed channel without a final event: end like a finished stream.
                let (chunks, last) = match events.next().await {
                    Some(event) => spec.chunks(event),
                    None => (Vec::new(), true),
                };
                queue.extend(chunks.iter().map(Value::to_string));
                if last {
                    queue.push_back("[DONE]".to_string());
                    ended = true;
                }
            }
        },
    )
}

/// A finished `chat.completion` body sent as a stream: per choice one
/// chunk with the whole message (tool calls indexed as OpenAI streams
/// them), then `[DONE]`.
pub fn whole_as_stream(body: &Value) -> Response {
    let mut datas = Vec::new();
    for choice in body["choices"].as_array().into_iter().flatten() {
        let mut delta = choice["message"].clone();
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (i, call) in calls.iter_mut().enumerate() {
                call["index"] = json!(i);
            }
        }
        let chunk = json!({
            "id": body["id"],
            "object": "chat.completion.chunk",
            "created": body["created"],
            "model": body["model"],
            "choices": [{
                "index": choice["index"],
                "delta": delta,
                "logprobs": choice["logprobs"],
                "finish_reason": choice["finish_reason"],
            }],
        });
        datas.push(chunk.to_string());
    }
    datas.push("[DONE]".into());
    let events = stream::iter(
        datas
            .into_iter()
            .map(|d| Ok::<_, Infallible>(SseEvent::default().data(d))),
    );
    Sse::new(events).into_response()
}
