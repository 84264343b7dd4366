//! The metrics against trec_eval's own test data and expected output
//! (`tests/data/ir/trec_eval`: `trec_eval qrels.test results.test` →
//! `out.test`, and `-m all_trec -q` → `out.test.aq`), to its 4 decimals.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;

use kiln_rag::eval::{evaluate, parse_qrels, parse_run, Measures};

fn read(name: &str) -> String {
    let p = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../../tests/data/ir/trec_eval")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

/// `measure -> query -> value` from trec_eval output.
fn expected(name: &str) -> HashMap<String, HashMap<String, f64>> {
    let mut out: HashMap<String, HashMap<String, f64>> = HashMap::new();
    for line in read(name).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [m, q, v] = f[..] {
            if let Ok(v) = v.parse() {
                out.entry(m.to_string())
                    .or_default()
                    .insert(q.to_string(), v);
            }
        }
    }
    out
}

fn ours(m: &Measures) -> Vec<(&'static str, f64)> {
    vec![
        ("num_ret", m.num_ret as f64),
        ("num_rel", m.num_rel as f64),
        ("num_rel_ret", m.num_rel_ret as f64),
        ("map", m.map),
        ("Rprec", m.r_prec),
        ("recip_rank", m.recip_rank),
        ("P_5", m.p[&5]),
        ("P_10", m.p[&10]),
        ("P_20", m.p[&20]),
        ("P_30", m.p[&30]),
        ("P_100", m.p[&100]),
        ("recall_5", m.recall[&5]),
        ("recall_10", m.recall[&10]),
        ("recall_100", m.recall[&100]),
        ("recall_1000", m.recall[&1000]),
        ("ndcg", m.ndcg),
        ("ndcg_cut_10", m.ndcg_cut_10),
    ]
}

#[test]
fn measures_equal_trec_eval_per_query_and_overall() {
    let qrels = parse_qrels(&read("qrels.test")).unwrap();
    let run = parse_run(&read("results.test")).unwrap();
    let (per, all) = evaluate(&qrels, &run);
    assert_eq!(per.len(), 3);
    let want = expected("out.test.aq");
    let mut checked = 0;
    for (q, m) in per
        .iter()
        .map(|(q, m)| (q.as_str(), m))
        .chain([("all", &all)])
    {
        for (name, value) in ours(m) {
            let Some(w) = want.get(name).and_then(|by| by.get(q)) else {
                continue;
            };
            assert!(
                (value - w).abs() < 5.1e-5,
                "{name} for {q}: {value:.4} vs trec_eval {w}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} values compared");
    let summary = expected("out.test");
    assert!((all.map - summary["map"]["all"]).abs() < 5.1e-5);
    assert!((all.recip_rank - summary["recip_rank"]["all"]).abs() < 5.1e-5);
}
