//! [`GenerationParams`]: every decoding knob, in transformers' and OpenAI's
//! vocabulary, validated before any work starts.

use serde::{Deserialize, Serialize};

use crate::{CoreError, TokenId};

/// What a request asks of generation. `None` means "use the model's
/// `generation_config.json`, else kiln's default"; request values win.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationParams {
    /// Maximum number of new tokens (default 256).
    pub max_new_tokens: Option<usize>,
    /// EOS is suppressed until this many tokens were generated.
    pub min_new_tokens: usize,
    /// Sample instead of picking the most likely token. When unset, setting
    /// `temperature > 0`, `top_k`, `top_p`, `min_p` or `typical_p` implies it.
    pub do_sample: Option<bool>,
    /// Softmax temperature (≥ 0; 0 means greedy).
    pub temperature: Option<f32>,
    /// Keep the k most likely tokens (≥ 1).
    pub top_k: Option<usize>,
    /// Nucleus mass in (0, 1].
    pub top_p: Option<f32>,
    /// Minimum probability relative to the top token, in [0, 1].
    pub min_p: Option<f32>,
    /// Typical-sampling mass in (0, 1].
    pub typical_p: Option<f32>,
    /// transformers' repetition penalty (> 0; 1 is off).
    pub repetition_penalty: Option<f32>,
    /// OpenAI presence penalty in [-2, 2].
    pub presence_penalty: f32,
    /// OpenAI frequency penalty in [-2, 2].
    pub frequency_penalty: f32,
    /// Ban repeating any n-gram of this size (0 is off).
    pub no_repeat_ngram_size: usize,
    /// Bias added to the logits of given tokens.
    pub logit_bias: Vec<(TokenId, f32)>,
    /// Tokens that may never be generated.
    pub bad_token_ids: Vec<TokenId>,
    /// If set, only these tokens may be generated.
    pub allowed_token_ids: Option<Vec<TokenId>>,
    /// Seed of the sampler; same seed and request give the same output.
    pub seed: Option<u64>,
    /// Number of sequences returned (`n` in OpenAI's API).
    pub num_return_sequences: usize,
    /// Beam width (1 is no beam search).
    pub num_beams: usize,
    /// Beam score = sum of log-probs / length^length_penalty.
    pub length_penalty: f32,
    /// Beam search stops as soon as `num_beams` hypotheses are finished.
    pub early_stopping: bool,
    /// Generation stops before any of these strings; the text never includes it.
    pub stop: Vec<String>,
    /// Return log-probabilities with this many top alternatives per token.
    pub logprobs: Option<usize>,
    /// Do not stop at EOS.
    pub ignore_eos: bool,
    /// Output that must match a JSON Schema, be a JSON object, or be one of
    /// a list of labels (constrained decoding).
    pub constraint: Option<OutputConstraint>,
}

/// What constrained decoding guarantees about the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputConstraint {
    /// Any JSON object (OpenAI's `json_object`).
    JsonObject,
    /// JSON valid against this schema (OpenAI's `json_schema`).
    JsonSchema(serde_json::Value),
    /// Exactly one of these labels, as plain text.
    Choice(Vec<String>),
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            max_new_tokens: None,
            min_new_tokens: 0,
            do_sample: None,
            temperature: None,
            top_k: None,
            top_p: None,
            min_p: None,
            typical_p: None,
            repetition_penalty: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            no_repeat_ngram_size: 0,
            logit_bias: Vec::new(),
            bad_token_ids: Vec::new(),
            allowed_token_ids: None,
            seed: None,
            num_return_sequences: 1,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: false,
            stop: Vec::new(),
            logprobs: None,
            ignore_eos: false,
            constraint: None,
        }
    }
}

/// Defaults a model brings (`generation_config.json`), applied under a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationDefaults {
    /// Default maximum of new tokens.
    pub max_new_tokens: Option<usize>,
    /// Whether to sample by default.
    pub do_sample: Option<bool>,
    /// Default temperature.
    pub temperature: Option<f32>,
    /// Default top-k.
    pub top_k: Option<usize>,
    /// Default top-p.
    pub top_p: Option<f32>,
    /// Default repetition penalty.
    pub repetition_penalty: Option<f32>,
}

/// Default `max_new_tokens` when neither request nor model sets one.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 256;

impl GenerationParams {
    /// Fills unset fields from the model's defaults, as transformers merges a
    /// request into `generation_config`. Sampling fields from the model apply
    /// only when the result samples.
    pub fn with_defaults(&self, d: &GenerationDefaults) -> Self {
        let mut p = self.clone();
        p.max_new_tokens = p.max_new_tokens.or(d.max_new_tokens);
        if p.do_sample.is_none() && !p.implies_sampling() {
            p.do_sample = d.do_sample;
        }
        if p.do_sample == Some(true) || p.implies_sampling() {
            p.temperature = p.temperature.or(d.temperature);
            p.top_k = p.top_k.or(d.top_k);
            p.top_p = p.top_p.or(d.top_p);
        }
        p.repetition_penalty = p.repetition_penalty.or(d.repetition_penalty);
        p
    }

    fn implies_sampling(&self) -> bool {
        self.temperature.is_some_and(|t| t > 0.0)
            || self.top_k.is_some()
            || self.top_p.is_some()
            || self.min_p.is_some()
            || self.typical_p.is_some()
    }

    /// True when tokens are drawn at random rather than picked greedily.
    pub fn samples(&self) -> bool {
        let wanted = self.do_sample.unwrap_or_else(|| self.implies_sampling());
        wanted && self.temperature != Some(0.0)
    }

    /// The effective maximum of new tokens.
    pub fn max_new_tokens(&self) -> usize {
        self.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS)
    }

    /// Checks every field; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |field: &'static str, message: String| {
            Err(CoreError::InvalidParameter { field, message })
        };
        if let Some(t) = self.temperature {
            if !(t.is_finite() && t >= 0.0) {
                return bad("temperature", format!("must be ≥ 0, got {t}"));
            }
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return bad("top_p", format!("must be in (0, 1], got {p}"));
            }
        }
        if let Some(p) = self.typical_p {
            if !(p > 0.0 && p <= 1.0) {
                return bad("typical_p", format!("must be in (0, 1], got {p}"));
            }
        }
        if let Some(p) = self.min_p {
            if !(0.0..=1.0).contains(&p) {
                return bad("min_p", format!("must be in [0, 1], got {p}"));
            }
        }
        if self.top_k == Some(0) {
            return bad("top_k", "must be ≥ 1 (leave it unset to disable)".into());
        }
        if let Some(r) = self.repetition_penalty {
            if !(r.is_finite() && r > 0.0) {
                return bad("repetition_penalty", format!("must be > 0, got {r}"));
            }
        }
        for (field, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !(-2.0..=2.0).contains(&v) {
                return bad(field, format!("must be in [-2, 2], got {v}"));
            }
        }
        if self.max_new_tokens == Some(0) {
            return bad("max_new_tokens", "must be ≥ 1".into());
        }
        if self.num_return_sequences == 0 {
            return bad("num_return_sequences", "must be ≥ 1".into());
        }
        if self.num_beams == 0 {
            return bad("num_beams", "must be ≥ 1".into());
        }
        if self.num_beams > 1 && self.constraint.is_some() {
            return bad(
                "num_beams",
                "beam search cannot be combined with constrained output".into(),
            );
        }
        if self.num_beams > 1 {
            if self.num_return_sequences > self.num_beams {
                return bad(
                    "num_return_sequences",
                    format!(
                        "{} is more than num_beams ({})",
                        self.num_return_sequences, self.num_beams
                    ),
                );
            }
            if self.samples() {
                return bad(
                    "num_beams",
                    "beam search with sampling is not supported".into(),
                );
            }
        } else if self.num_return_sequences > 1 && !self.samples() {
            return bad(
                "num_return_sequences",
                "several sequences need sampling (set temperature > 0) or num_beams".into(),
            );
        }
        if !self.length_penalty.is_finite() {
            return bad("length_penalty", "must be finite".into());
        }
        if self.stop.iter().any(String::is_empty) {
            return bad("stop", "stop strings must not be empty".into());
        }
        if let Some(n) = self.logprobs {
            if n > 20 {
                return bad("logprobs", format!("at most 20 alternatives, got {n}"));
            }
        }
        if self.logit_bias.iter().any(|(_, b)| !b.is_finite()) {
            return bad("logit_bias", "biases must be finite".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: GenerationParams) -> String {
        p.validate().unwrap_err().to_string()
    }

    #[test]
    fn bad_values_are_named() {
        let d = GenerationParams::default;
        assert!(err(GenerationParams {
            temperature: Some(-1.0),
            ..d()
        })
        .contains("temperature"));
        assert!(err(GenerationParams {
            top_p: Some(0.0),
            ..d()
        })
        .contains("top_p"));
        assert!(err(GenerationParams {
            top_p: Some(1.5),
            ..d()
        })
        .contains("(0, 1]"));
        assert!(err(GenerationParams {
            top_k: Some(0),
            ..d()
        })
        .contains("top_k"));
        assert!(err(GenerationParams {
            num_beams: 2,
            num_return_sequences: 3,
            ..d()
        })
        .contains("more than num_beams"));
        assert!(err(GenerationParams {
            presence_penalty: 3.0,
            ..d()
        })
        .contains("presence_penalty"));
        assert!(err(GenerationParams {
            stop: vec![String::new()],
            ..d()
        })
        .contains("stop"));
        assert!(d().validate().is_ok());
    }

    #[test]
    fn sampling_is_implied_by_warpers_and_defaults_fill_gaps() {
        let p = GenerationParams {
            temperature: Some(0.7),
            ..Default::default()
        };
        assert!(p.samples());
        assert!(!GenerationParams::default().samples());
        let zero = GenerationParams {
            temperature: Some(0.0),
            do_sample: Some(true),
            ..Default::default()
        };
        assert!(!zero.samples());
        let defaults = GenerationDefaults {
            do_sample: Some(true),
            temperature: Some(0.6),
            top_p: Some(0.9),
            max_new_tokens: Some(50),
            ..Default::default()
        };
        let merged = GenerationParams::default().with_defaults(&defaults);
        assert!(merged.samples());
        assert_eq!(merged.temperature, Some(0.6));
        assert_eq!(merged.max_new_tokens(), 50);
        let request = GenerationParams {
            do_sample: Some(false),
            ..Default::default()
        };
        assert!(!request.with_defaults(&defaults).samples());
    }
}
