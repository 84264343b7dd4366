//! `POST /v1/embeddings` for the embedding models given at start.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::openai::request::parse;
use crate::{ApiError, AppState};

/// Most inputs per request (OpenAI's limit).
const MAX_INPUTS: usize = 2048;

#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
}

/// One input: text or token ids.
enum Input {
    Text(String),
    Ids(Vec<u32>),
}

fn inputs(v: &Value) -> Result<Vec<Input>, ApiError> {
    let bad = || {
        ApiError::invalid(
            "input",
            "`input` must be a string, a list of strings, token ids, or a list of token-id lists.",
        )
    };
    let ids = |items: &[Value]| -> Option<Vec<u32>> {
        items
            .iter()
            .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect()
    };
    let out = match v {
        Value::String(s) => vec![Input::Text(s.clone())],
        Value::Array(items) if items.is_empty() => return Err(bad()),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .map(|s| Input::Text(s.as_str().unwrap_or_default().to_string()))
            .collect(),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            vec![Input::Ids(ids(items).ok_or_else(bad)?)]
        }
        Value::Array(items) => items
            .iter()
            .map(|x| match x {
                Value::Array(inner) if !inner.is_empty() => ids(inner).map(Input::Ids),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if out.len() > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            format!("At most {MAX_INPUTS} inputs per request."),
        ));
    }
    Ok(out)
}

/// Standard base64 of the little-endian f32 bytes (OpenAI's `base64` format).
fn base64_f32(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Embeds the inputs with the named embedding model.
pub async fn embeddings(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = super::body_bytes(body, state.max_body_bytes)?;
    let req: EmbeddingRequest = parse(&body)?;
    let embedder = state
        .embedders
        .iter()
        .find(|e| e.name == req.model)
        .ok_or_else(|| ApiError::unknown_model(&req.model))?
        .clone();
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("`encoding_format` must be float or base64, not {other:?}."),
            ))
        }
    };
    let dim = embedder.model.dimension();
    if let Some(d) = req.dimensions {
        if d == 0 || d > dim {
            return Err(ApiError::invalid(
                "dimensions",
                format!("`dimensions` must be between 1 and {dim}."),
            ));
        }
    }
    let inputs = inputs(&req.input)?;
    let model = embedder.model.clone();
    // Encoding is CPU work: keep it off the async workers.
    let (vectors, tokens) = tokio::task::spawn_blocking(move || {
        let mut vectors = Vec::with_capacity(inputs.len());
        let mut tokens = 0;
        for input in inputs {
            let ids = match input {
                Input::Text(t) => model.token_ids(&t)?,
                Input::Ids(mut ids) => {
                    ids.truncate(model.max_seq_length());
                    ids
                }
            };
            tokens += ids.len();
            vectors.push(model.embed_ids(&ids)?);
        }
        Ok::<_, kiln_models::ModelError>((vectors, tokens))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::invalid("input", e.to_string()))?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            if let Some(d) = req.dimensions {
                // Shortened as OpenAI does: cut, then re-normalise.
                v.truncate(d);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
            let embedding = if base64 {
                json!(base64_f32(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": embedder.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}

#[cfg(test)]
mod tests {
    use super::base64_f32;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        // 1.0f32 = 00 00 80 3F
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[]), "");
        assert_eq!(base64_f32(&[1.0, -2.0, 0.5]), "AACAPwAAAMAAAAA/");
    }
}
