//! Zero-shot classification with an NLI cross-encoder, as transformers'
//! `zero-shot-classification` pipeline does it: each label becomes a
//! hypothesis ("This example is {label}."), the text is the premise; one
//! label wins by a softmax of the entailment logits over the labels, or
//! (multi-label, or a single label) each label scores on its own by a
//! softmax over its contradiction and entailment logits.

use super::cross::CrossEncoder;
use crate::{ModelError, Result};

/// One label and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScore {
    /// The candidate label.
    pub label: String,
    /// Its probability.
    pub score: f32,
}

/// Scores `labels` for `text`; the result is sorted best first.
pub fn zero_shot(
    model: &CrossEncoder,
    text: &str,
    labels: &[String],
    hypothesis_template: &str,
    multi_label: bool,
) -> Result<Vec<LabelScore>> {
    if labels.is_empty() {
        return Err(ModelError::InvalidInput(
            "give at least one candidate label".into(),
        ));
    }
    if !hypothesis_template.contains("{}") {
        return Err(ModelError::InvalidInput(format!(
            "the hypothesis template {hypothesis_template:?} has no {{}} for the label"
        )));
    }
    let names = model.labels();
    let find = |prefix: &str| {
        names
            .iter()
            .position(|n| n.to_lowercase().starts_with(prefix))
    };
    let entail = find("entail").ok_or_else(|| {
        ModelError::InvalidInput(format!(
            "not an NLI model: no entailment label among {names:?}"
        ))
    })?;
    let contradiction = if entail == 0 {
        names.len().saturating_sub(1)
    } else {
        0
    };
    let hypotheses: Vec<String> = labels
        .iter()
        .map(|l| hypothesis_template.replace("{}", l))
        .collect();
    let pairs: Vec<(&str, &str)> = hypotheses.iter().map(|h| (text, h.as_str())).collect();
    let logits = model.logits(&pairs)?;
    let get = |row: &[f32], i: usize| -> Result<f32> {
        row.get(i)
            .copied()
            .ok_or_else(|| ModelError::InvalidInput("the classifier has too few outputs".into()))
    };
    let scores: Vec<f32> = if multi_label || labels.len() == 1 {
        logits
            .iter()
            .map(|row| {
                let (c, e) = (get(row, contradiction)?, get(row, entail)?);
                let m = c.max(e);
                let (ec, ee) = ((c - m).exp(), (e - m).exp());
                Ok(ee / (ec + ee))
            })
            .collect::<Result<_>>()?
    } else {
        let e: Vec<f32> = logits
            .iter()
            .map(|row| get(row, entail))
            .collect::<Result<_>>()?;
        let m = e.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = e.iter().map(|x| (x - m).exp()).collect();
        let sum: f32 = exp.iter().sum();
        exp.iter().map(|x| x / sum).collect()
    };
    let mut out: Vec<LabelScore> = labels
        .iter()
        .zip(scores)
        .map(|(l, score)| LabelScore {
            label: l.clone(),
            score,
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(out)
}
