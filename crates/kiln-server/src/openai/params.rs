//! OpenAI sampling fields → kiln's [`GenerationParams`], with the range
//! checks OpenAI makes (answered as 400s naming the field).

use kiln_core::GenerationParams;

use super::request::{Sampling, Stop};
use crate::ApiError;

/// Most stop strings per request.
const MAX_STOPS: usize = 16;

/// Converts and validates the shared sampling fields. `top_logprobs` is the
/// number of alternatives wanted per token when log-probabilities are on.
pub fn to_params(s: &Sampling, top_logprobs: Option<usize>) -> Result<GenerationParams, ApiError> {
    let in_range = |name: &str, v: Option<f32>, lo: f32, hi: f32| -> Result<(), ApiError> {
        match v {
            Some(x) if !(lo..=hi).contains(&x) || x.is_nan() => Err(ApiError::invalid(
                name,
                format!("`{name}` must be between {lo} and {hi}; got {x}."),
            )),
            _ => Ok(()),
        }
    };
    in_range("temperature", s.temperature, 0.0, 2.0)?;
    in_range("presence_penalty", s.presence_penalty, -2.0, 2.0)?;
    in_range("frequency_penalty", s.frequency_penalty, -2.0, 2.0)?;
    if let Some(p) = s.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::invalid(
                "top_p",
                format!("`top_p` must be in (0, 1]; got {p}."),
            ));
        }
    }
    let n = s.n.unwrap_or(1);
    if n == 0 {
        return Err(ApiError::invalid("n", "`n` must be at least 1."));
    }
    let max_tokens = s.max_completion_tokens.or(s.max_tokens);
    if max_tokens == Some(0) {
        return Err(ApiError::invalid(
            "max_tokens",
            "`max_tokens` must be at least 1.",
        ));
    }
    let stop = match &s.stop {
        None => Vec::new(),
        Some(Stop::One(x)) => vec![x.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stop.len() > MAX_STOPS || stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "stop",
            format!("`stop` takes at most {MAX_STOPS} non-empty strings."),
        ));
    }
    let mut logit_bias = Vec::new();
    for (k, &v) in s.logit_bias.iter().flatten() {
        let id: u32 = k.parse().map_err(|_| {
            ApiError::invalid(
                "logit_bias",
                format!("`logit_bias` key `{k}` is not a token id."),
            )
        })?;
        if !(-100.0..=100.0).contains(&v) {
            return Err(ApiError::invalid(
                "logit_bias",
                format!("`logit_bias` values must be between -100 and 100; got {v}."),
            ));
        }
        logit_bias.push((id, v));
    }
    logit_bias.sort_by_key(|&(id, _)| id);
    // OpenAI samples at temperature 1 unless told otherwise; 0 is greedy.
    let temperature = s.temperature.unwrap_or(1.0);
    let num_beams = s.num_beams.unwrap_or(1).max(1);
    let params = GenerationParams {
        max_new_tokens: max_tokens,
        do_sample: Some(temperature > 0.0 && num_beams == 1),
        temperature: (temperature > 0.0).then_some(temperature),
        top_k: s.top_k,
        top_p: s.top_p,
        min_p: s.min_p,
        typical_p: s.typical_p,
        repetition_penalty: s.repetition_penalty,
        presence_penalty: s.presence_penalty.unwrap_or(0.0),
        frequency_penalty: s.frequency_penalty.unwrap_or(0.0),
        no_repeat_ngram_size: s.no_repeat_ngram_size.unwrap_or(0),
        logit_bias,
        seed: s.seed,
        num_return_sequences: n,
        num_beams,
        length_penalty: s.length_penalty.unwrap_or(1.0),
        stop,
        logprobs: top_logprobs,
        ignore_eos: s.ignore_eos.unwrap_or(false),
        ..Default::default()
    };
    params.validate().map_err(|e| match e {
        kiln_core::CoreError::InvalidParameter { field, .. } => {
            ApiError::invalid(field, e.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    })?;
    Ok(params)
}
