//! `GET /health` and `GET /metrics` (Prometheus text format).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::AppState;

/// Liveness: always 200 while the server runs.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Prometheus metrics per served model.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&state),
    )
}

/// The metrics text.
pub fn render(state: &AppState) -> String {
    let mut out = String::new();
    let snaps: Vec<_> = state
        .models
        .iter()
        .map(|m| (m.name.clone(), m.engine.metrics()))
        .collect();
    type Read = fn(&kiln_engine::MetricsSnapshot) -> f64;
    let families: [(&str, &str, &str, Read); 10] = [
        (
            "kiln_requests_total",
            "counter",
            "Requests accepted.",
            |s| s.requests_submitted as f64,
        ),
        (
            "kiln_requests_finished_total",
            "counter",
            "Requests that completed.",
            |s| s.requests_finished as f64,
        ),
        (
            "kiln_requests_cancelled_total",
            "counter",
            "Requests whose client went away.",
            |s| s.requests_cancelled as f64,
        ),
        (
            "kiln_requests_failed_total",
            "counter",
            "Requests that failed.",
            |s| s.requests_failed as f64,
        ),
        (
            "kiln_queue_depth",
            "gauge",
            "Requests waiting to start.",
            |s| s.queue_depth as f64,
        ),
        ("kiln_running_requests", "gauge", "Requests running.", |s| {
            s.running_requests as f64
        }),
        (
            "kiln_running_sequences",
            "gauge",
            "Sequences in the decode batch.",
            |s| s.running_sequences as f64,
        ),
        (
            "kiln_prompt_tokens_total",
            "counter",
            "Prompt tokens prefilled.",
            |s| s.prompt_tokens as f64,
        ),
        (
            "kiln_generation_tokens_total",
            "counter",
            "Tokens generated.",
            |s| s.completion_tokens as f64,
        ),
        (
            "kiln_generation_tokens_per_second",
            "gauge",
            "Tokens generated per second over the last 10 s.",
            |s| s.tokens_per_second,
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (model, s) in &snaps {
            let _ = writeln!(out, "{name}{{model=\"{}\"}} {}", escape(model), value(s));
        }
    }
    let _ = writeln!(
        out,
        "# HELP kiln_time_to_first_token_seconds Time from request to first token."
    );
    let _ = writeln!(out, "# TYPE kiln_time_to_first_token_seconds histogram");
    for (model, s) in &snaps {
        let m = escape(model);
        for (bound, count) in &s.ttft_buckets {
            let _ = writeln!(
                out,
                "kiln_time_to_first_token_seconds_bucket{{model=\"{m}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "kiln_time_to_first_token_seconds_bucket{{model=\"{m}\",le=\"+Inf\"}} {}",
            s.ttft_count
        );
        let _ = writeln!(
            out,
            "kiln_time_to_first_token_seconds_sum{{model=\"{m}\"}} {}",
            s.ttft_sum
        );
        let _ = writeln!(
            out,
            "kiln_time_to_first_token_seconds_count{{model=\"{m}\"}} {}",
            s.ttft_count
        );
    }
    out
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
