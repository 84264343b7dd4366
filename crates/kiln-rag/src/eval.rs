//! Retrieval metrics computed as `trec_eval` computes them: results ranked
//! by score (ties: document id descending), only queries that have both
//! results and relevance judgements, relevant = judgement > 0.

use std::collections::{BTreeMap, HashMap};

use crate::{RagError, Result};

/// Judgements: query → document → relevance level.
pub type Qrels = BTreeMap<String, HashMap<String, i32>>;
/// A run: query → (document, score) list in any order.
pub type Run = BTreeMap<String, Vec<(String, f64)>>;

/// Parses TREC qrels lines `qid iter docid rel`, or BEIR's
/// `query-id<TAB>corpus-id<TAB>score` (header line skipped).
pub fn parse_qrels(text: &str) -> Result<Qrels> {
    let mut out = Qrels::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() || (i == 0 && f.first() == Some(&"query-id")) {
            continue;
        }
        let (q, d, r) = match f[..] {
            [q, _, d, r] => (q, d, r),
            [q, d, r] => (q, d, r),
            _ => {
                return Err(RagError::Invalid(format!(
                    "qrels line {}: expected `qid iter docid rel` or `qid docid rel`",
                    i + 1
                )))
            }
        };
        let rel = r
            .parse()
            .map_err(|_| RagError::Invalid(format!("qrels line {}: bad relevance {r:?}", i + 1)))?;
        out.entry(q.to_string())
            .or_default()
            .insert(d.to_string(), rel);
    }
    Ok(out)
}

/// Parses TREC run lines `qid Q0 docid rank score tag`.
pub fn parse_run(text: &str) -> Result<Run> {
    let mut out = Run::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 5 {
            return Err(RagError::Invalid(format!(
                "run line {}: expected 6 fields",
                i + 1
            )));
        }
        let score = f[4]
            .parse()
            .map_err(|_| RagError::Invalid(format!("run line {}: bad score {:?}", i + 1, f[4])))?;
        out.entry(f[0].to_string())
            .or_default()
            .push((f[2].to_string(), score));
    }
    Ok(out)
}

/// Per-query measures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measures {
    /// Retrieved documents.
    pub num_ret: usize,
    /// Relevant documents judged.
    pub num_rel: usize,
    /// Relevant documents retrieved.
    pub num_rel_ret: usize,
    /// Average precision.
    pub map: f64,
    /// Precision after R documents (R = num_rel).
    pub r_prec: f64,
    /// 1 / rank of the first relevant document.
    pub recip_rank: f64,
    /// Precision at 5, 10, 20, 30, 100.
    pub p: BTreeMap<usize, f64>,
    /// Recall at 5, 10, 100, 1000.
    pub recall: BTreeMap<usize, f64>,
    /// nDCG over the whole ranking.
    pub ndcg: f64,
    /// nDCG at 10.
    pub ndcg_cut_10: f64,
}

const CUTS_P: [usize; 5] = [5, 10, 20, 30, 100];
const CUTS_RECALL: [usize; 4] = [5, 10, 100, 1000];

/// trec_eval's order: score descending, then document id descending.
fn ranked(list: &[(String, f64)]) -> Vec<&str> {
    let mut v: Vec<&(String, f64)> = list.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    v.into_iter().map(|(d, _)| d.as_str()).collect()
}

/// DCG with trec_eval's gain (the relevance level) and log2(rank + 1).
fn dcg(gains: impl Iterator<Item = f64>) -> f64 {
    gains
        .enumerate()
        .map(|(i, g)| g / ((i + 2) as f64).log2())
        .sum()
}

/// Measures of one query.
pub fn evaluate_query(judged: &HashMap<String, i32>, results: &[(String, f64)]) -> Measures {
    let ranking = ranked(results);
    let rel = |d: &str| judged.get(d).copied().unwrap_or(0);
    let num_rel = judged.values().filter(|&&r| r > 0).count();
    let mut m = Measures {
        num_ret: ranking.len(),
        num_rel,
        ..Default::default()
    };
    let mut found = 0usize;
    let mut sum_prec = 0.0;
    for (i, d) in ranking.iter().enumerate() {
        if rel(d) > 0 {
            found += 1;
            sum_prec += found as f64 / (i + 1) as f64;
            if m.recip_rank == 0.0 {
                m.recip_rank = 1.0 / (i + 1) as f64;
            }
        }
        if i + 1 == num_rel {
            m.r_prec = found as f64 / num_rel as f64;
        }
    }
    if num_rel > ranking.len() && num_rel > 0 {
        m.r_prec = found as f64 / num_rel as f64;
    }
    m.num_rel_ret = found;
    m.map = if num_rel > 0 {
        sum_prec / num_rel as f64
    } else {
        0.0
    };
    let rel_in = |k: usize| ranking.iter().take(k).filter(|d| rel(d) > 0).count();
    for k in CUTS_P {
        m.p.insert(k, rel_in(k) as f64 / k as f64);
    }
    for k in CUTS_RECALL {
        let r = if num_rel > 0 {
            rel_in(k) as f64 / num_rel as f64
        } else {
            0.0
        };
        m.recall.insert(k, r);
    }
    let gains: Vec<f64> = ranking.iter().map(|d| f64::from(rel(d).max(0))).collect();
    let mut ideal: Vec<f64> = judged
        .values()
        .filter(|&&r| r > 0)
        .map(|&r| f64::from(r))
        .collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg = dcg(ideal.iter().copied());
    let idcg10 = dcg(ideal.iter().take(10).copied());
    m.ndcg = if idcg > 0.0 {
        dcg(gains.iter().copied()) / idcg
    } else {
        0.0
    };
    m.ndcg_cut_10 = if idcg10 > 0.0 {
        dcg(gains.iter().take(10).copied()) / idcg10
    } else {
        0.0
    };
    m
}

/// Per-query measures for every query with results and judgements, and
/// their arithmetic means (trec_eval's `all` line).
pub fn evaluate(qrels: &Qrels, run: &Run) -> (BTreeMap<String, Measures>, Measures) {
    let mut per = BTreeMap::new();
    for (q, results) in run {
        if let Some(judged) = qrels.get(q) {
            per.insert(q.clone(), evaluate_query(judged, results));
        }
    }
    let n = per.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Measures) -> f64| per.values().map(f).sum::<f64>() / n;
    let mut all = Measures {
        num_ret: per.values().map(|m| m.num_ret).sum(),
        num_rel: per.values().map(|m| m.num_rel).sum(),
        num_rel_ret: per.values().map(|m| m.num_rel_ret).sum(),
        map: mean(&|m| m.map),
        r_prec: mean(&|m| m.r_prec),
        recip_rank: mean(&|m| m.recip_rank),
        ndcg: mean(&|m| m.ndcg),
        ndcg_cut_10: mean(&|m| m.ndcg_cut_10),
        ..Default::default()
    };
    for k in CUTS_P {
        all.p.insert(k, mean(&|m| m.p[&k]));
    }
    for k in CUTS_RECALL {
        all.recall.insert(k, mean(&|m| m.recall[&k]));
    }
    (per, all)
}

/// Queries from JSONL (`{"_id"|"id": …, "text": …}`) or TSV (`qid<TAB>text`).
pub fn parse_queries(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| RagError::Invalid(format!("queries line {}: {e}", i + 1)))?;
            let id = ["_id", "id"].iter().find_map(|k| match v.get(*k) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            });
            let body = v.get("text").and_then(|t| t.as_str());
            match (id, body) {
                (Some(id), Some(body)) => out.push((id, body.to_string())),
                _ => {
                    return Err(RagError::Invalid(format!(
                        "queries line {}: needs an id and a text",
                        i + 1
                    )))
                }
            }
        } else if let Some((id, body)) = line.split_once('\t') {
            out.push((id.to_string(), body.to_string()));
        } else {
            return Err(RagError::Invalid(format!(
                "queries line {}: expected JSON or `id<TAB>text`",
                i + 1
            )));
        }
    }
    Ok(out)
}
