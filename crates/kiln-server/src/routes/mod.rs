//! Route handlers: validate, convert, submit to the engine, answer.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod models;
pub mod ops;
pub mod web;

use kiln_engine::{Output, RequestStream, StreamEvent};

use crate::ApiError;

/// Reads a request's events to the final output.
pub async fn collect(mut events: RequestStream) -> Result<Output, ApiError> {
    while let Some(event) = events.next().await {
        match event {
            StreamEvent::Done(output) => return Ok(output),
            StreamEvent::Failed(message) => return Err(ApiError::internal(message)),
            StreamEvent::Generated(_) => {}
        }
    }
    Err(ApiError::internal(
        "the engine stopped before the request finished",
    ))
}

/// Rejects `logit_bias` keys outside the model's vocabulary.
pub fn check_logit_bias(
    params: &kiln_core::GenerationParams,
    vocab: usize,
) -> Result<(), ApiError> {
    match params
        .logit_bias
        .iter()
        .find(|(id, _)| *id as usize >= vocab)
    {
        Some((id, _)) => Err(ApiError::invalid(
            "logit_bias",
            format!("token id {id} is outside the vocabulary of {vocab} tokens"),
        )),
        None => Ok(()),
    }
}

/// The request body, or the OpenAI-style error for one over the limit.
pub fn body_bytes(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::bad_request(format!("could not read the request body: {e}"))
        }
    })
}
