//! The server over real sockets: OpenAI error bodies and statuses for bad
//! requests, auth, body limits, SSE framing, graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};

use common::{agent, post, post_raw, start};
use kiln_engine::EngineConfig;
use serde_json::{json, Value};

fn assert_error(status: u16, body: &Value, want_status: u16, want_param: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{body}"
    );
    if let Some(p) = want_param {
        assert_eq!(e["param"], p, "{body}");
    }
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "llama",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 5,
        "temperature": 0,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[test]
fn bad_requests_get_openai_errors() {
    let live = start(
        EngineConfig {
            max_sequences: 4,
            ..Default::default()
        },
        None,
        4096,
    );
    let cases: Vec<(Value, u16, Option<&str>)> = vec![
        (
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            404,
            Some("model"),
        ),
        (chat(json!({"temperature": -0.5})), 400, Some("temperature")),
        (chat(json!({"top_p": 1.5})), 400, Some("top_p")),
        (chat(json!({"n": 5, "temperature": 1})), 400, Some("n")),
        (chat(json!({"max_tokens": 100000})), 400, Some("max_tokens")),
        (chat(json!({"max_tokens": 0})), 400, Some("max_tokens")),
        (chat(json!({"messages": 5})), 400, None),
        (chat(json!({"messages": []})), 400, Some("messages")),
        (
            chat(json!({"messages": [{"role": "wizard", "content": "x"}]})),
            400,
            Some("messages"),
        ),
        (chat(json!({"temperature": "hot"})), 400, None),
        (
            chat(json!({"logit_bias": {"abc": 1}})),
            400,
            Some("logit_bias"),
        ),
        (
            chat(json!({"logit_bias": {"99999999": 1}})),
            400,
            Some("logit_bias"),
        ),
        (chat(json!({"top_logprobs": 3})), 400, Some("top_logprobs")),
        (
            chat(json!({"response_format": {"type": "json_schema"}})),
            400,
            Some("response_format"),
        ),
        (
            chat(
                json!({"response_format": {"type": "json_schema", "json_schema": {
                "name": "x", "schema": {"type": "string", "pattern": "a+"}}}}),
            ),
            400,
            Some("response_format"),
        ),
        (
            chat(json!({"response_format": {"type": "yaml"}})),
            400,
            Some("response_format"),
        ),
        (chat(json!({"stop": ["a", ""]})), 400, Some("stop")),
        (
            chat(json!({"tools": [{"type": "function", "function": {"name": "f"}}]})),
            400,
            Some("tools"),
        ),
    ];
    for (body, status, param) in cases {
        let (got, resp) = post(&live, "/v1/chat/completions", body.clone());
        assert_error(got, &resp, status, param);
    }
    let completions: Vec<(Value, u16, Option<&str>)> = vec![
        (
            json!({"model": "llama", "prompt": "x", "suffix": "y"}),
            400,
            Some("suffix"),
        ),
        (
            json!({"model": "llama", "prompt": {"a": 1}}),
            400,
            Some("prompt"),
        ),
        (
            json!({"model": "llama", "prompt": [1, 2, 99999999]}),
            400,
            Some("prompt"),
        ),
        (
            json!({"model": "llama", "prompt": "x", "logprobs": 9}),
            400,
            Some("logprobs"),
        ),
        (json!({"model": "llama"}), 400, None),
    ];
    for (body, status, param) in completions {
        let (got, resp) = post(&live, "/v1/completions", body);
        assert_error(got, &resp, status, param);
    }
    for raw in ["{bad json", "[1, 2]", "", "null", "\"s\""] {
        let (got, resp) = post_raw(&live, "/v1/chat/completions", raw, None);
        assert_error(got, &resp, 400, None);
    }
    // Too large: 413 with an OpenAI body.
    let big = chat(json!({"messages": [{"role": "user", "content": "x".repeat(10_000)}]}));
    let (got, resp) = post(&live, "/v1/chat/completions", big);
    assert_error(got, &resp, 413, None);
    // Unknown route and wrong method.
    let mut r = agent()
        .get(format!("{}/v1/nothing", live.base))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_error(404, &body, 404, None);
    let r = agent()
        .get(format!("{}/v1/chat/completions", live.base))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // The server still answers after all that.
    let (got, resp) = post(&live, "/v1/chat/completions", chat(json!({})));
    assert_eq!(got, 200, "{resp}");
    assert_eq!(resp["usage"]["completion_tokens"], 5);
}

#[test]
fn api_key_guards_every_route_but_health() {
    let live = start(EngineConfig::default(), Some("sekret"), 1 << 20);
    let (s, body) = post(&live, "/v1/chat/completions", chat(json!({})));
    assert_error(s, &body, 401, None);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let (s, _) = post_raw(
        &live,
        "/v1/chat/completions",
        &chat(json!({})).to_string(),
        Some("wrong"),
    );
    assert_eq!(s, 401);
    let (s, body) = post_raw(
        &live,
        "/v1/chat/completions",
        &chat(json!({})).to_string(),
        Some("sekret"),
    );
    assert_eq!(s, 200, "{body}");
    let health = agent().get(format!("{}/health", live.base)).call().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    for path in ["/v1/models", "/metrics"] {
        let r = agent().get(format!("{}{path}", live.base)).call().unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = agent()
            .get(format!("{}{path}", live.base))
            .header("authorization", "Bearer sekret")
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
}

#[test]
fn models_are_listed_and_chosen_by_name() {
    let live = start(EngineConfig::default(), None, 1 << 20);
    let mut r = agent()
        .get(format!("{}/v1/models", live.base))
        .call()
        .unwrap();
    let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["llama", "tiny", "embed"]);
    let (s, a) = post(
        &live,
        "/v1/completions",
        json!({"model": "llama", "prompt": "Hi", "max_tokens": 6, "temperature": 0}),
    );
    assert_eq!(s, 200);
    let (s, b) = post(
        &live,
        "/v1/completions",
        json!({"model": "tiny", "prompt": "Hi", "max_tokens": 6, "temperature": 0}),
    );
    assert_eq!(s, 200);
    assert_eq!(a["model"], "llama");
    assert_eq!(b["model"], "tiny");
    assert_ne!(a["choices"][0]["text"], b["choices"][0]["text"]);
}

/// Reads an SSE response to the end: every `data:` payload, in order.
fn sse_payloads(body: &mut ureq::Body) -> (Vec<String>, String) {
    let mut raw = String::new();
    BufReader::new(body.as_reader()).lines().for_each(|l| {
        raw.push_str(&l.unwrap());
        raw.push('\n');
    });
    let payloads = raw
        .split("\n\n")
        // Keep-alive comments (`:`) carry no data.
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("bad event {e:?}"))
                .to_string()
        })
        .collect();
    (payloads, raw)
}

#[test]
fn sse_framing_matches_openai() {
    let live = start(EngineConfig::default(), None, 1 << 20);
    let body = chat(
        json!({"stream": true, "n": 2, "temperature": 0.9, "seed": 3, "max_tokens": 7, "stream_options": {"include_usage": true}}),
    );
    let mut resp = agent()
        .post(format!("{}/v1/chat/completions", live.base))
        .header("content-type", "application/json")
        .send(body.to_string())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (payloads, raw) = sse_payloads(resp.body_mut());
    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let mut text = [String::new(), String::new()];
    let mut finishes = [0, 0];
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"]);
        if i < 2 {
            assert_eq!(c["choices"][0]["delta"]["role"], "assistant");
            assert_eq!(c["choices"][0]["index"], i);
        }
        if i + 1 == chunks.len() {
            assert_eq!(c["choices"], json!([]));
            assert_eq!(c["usage"]["completion_tokens"], 14);
            continue;
        }
        assert!(c["usage"].is_null());
        let choice = &c["choices"][0];
        let idx = choice["index"].as_u64().unwrap() as usize;
        if let Some(t) = choice["delta"]["content"].as_str() {
            text[idx].push_str(t);
        }
        if choice["finish_reason"].is_string() {
            finishes[idx] += 1;
            assert_eq!(choice["finish_reason"], "length");
        }
    }
    assert_eq!(finishes, [1, 1]);
    // The same request without streaming gives the same texts.
    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let (_, resp) = post(&live, "/v1/chat/completions", whole);
    for i in 0..2 {
        assert_eq!(resp["choices"][i]["message"]["content"], text[i]);
    }
}

#[test]
fn graceful_shutdown_lets_running_streams_finish() {
    let mut live = start(EngineConfig::default(), None, 1 << 20);
    let body = json!({"model": "llama", "prompt": "Hi", "max_tokens": 200, "temperature": 0, "stream": true, "ignore_eos": true, "stream_options": {"include_usage": true}});
    let mut resp = agent()
        .post(format!("{}/v1/completions", live.base))
        .header("content-type", "application/json")
        .send(body.to_string())
        .unwrap();
    let mut reader = BufReader::new(resp.body_mut().as_reader());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.starts_with("data: "));
    let base = live.base.clone();
    let stopper = std::thread::spawn(move || live.shutdown());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    assert!(rest.contains("\"completion_tokens\":200"), "{rest}");
    stopper.join().unwrap();
    assert!(
        agent().get(format!("{base}/health")).call().is_err(),
        "still listening"
    );
}

#[test]
fn a_full_queue_answers_429() {
    let live = start(
        EngineConfig {
            max_sequences: 1,
            max_queue: 1,
            ..Default::default()
        },
        None,
        1 << 20,
    );
    let body = json!({"model": "llama", "prompt": "Hi", "max_tokens": 200, "temperature": 0, "ignore_eos": true});
    let base = live.base.clone();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (base, body) = (base.clone(), body.clone());
            std::thread::spawn(move || {
                let mut r = agent()
                    .post(format!("{base}/v1/completions"))
                    .header("content-type", "application/json")
                    .send(body.to_string())
                    .unwrap();
                let status = r.status().as_u16();
                let text = r.body_mut().read_to_string().unwrap();
                (status, serde_json::from_str::<Value>(&text).unwrap())
            })
        })
        .collect();
    let results: Vec<(u16, Value)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let refused: Vec<&(u16, Value)> = results.iter().filter(|(s, _)| *s == 429).collect();
    assert!(!refused.is_empty(), "no 429 among {results:?}");
    for (s, b) in &refused {
        assert_error(*s, b, 429, None);
        assert_eq!(b["error"]["code"], "queue_full");
    }
    assert!(results.iter().all(|(s, _)| *s == 200 || *s == 429));
}

#[test]
fn embeddings_match_the_library_in_both_encodings() {
    let live = start(EngineConfig::default(), None, 1 << 20);
    let bert = common::fixture("../encoders/bert");
    let model = kiln_models::encoder::SentenceEmbedder::load(&bert).unwrap();
    let texts = ["Hello world", "Retrieval augmented generation"];
    let want = model.embed(&texts).unwrap();
    let (s, body) = post(
        &live,
        "/v1/embeddings",
        json!({"model": "embed", "input": texts}),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["object"], "list");
    for (i, w) in want.iter().enumerate() {
        let got: Vec<f32> = serde_json::from_value(body["data"][i]["embedding"].clone()).unwrap();
        // Batch composition changes the matmul shapes, so the last bits may
        // differ from the library's call.
        assert_eq!(got.len(), w.len());
        assert!(
            got.iter().zip(w).all(|(a, b)| (a - b).abs() <= 1e-6),
            "{got:?} vs {w:?}"
        );
        assert_eq!(body["data"][i]["index"], i);
    }
    let tokens: usize = texts
        .iter()
        .map(|t| model.token_ids(t).unwrap().len())
        .sum();
    assert_eq!(body["usage"]["prompt_tokens"], tokens);
    // base64: little-endian f32 bytes.
    let (_, b64) = post(
        &live,
        "/v1/embeddings",
        json!({"model": "embed", "input": "Hello world", "encoding_format": "base64"}),
    );
    let text = b64["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(text.len(), (48 * 4_usize).div_ceil(3) * 4);
    // Token ids in, and shortened vectors (re-normalised).
    let ids = model.token_ids("Hello world").unwrap();
    let (_, by_ids) = post(
        &live,
        "/v1/embeddings",
        json!({"model": "embed", "input": [ids], "dimensions": 8}),
    );
    let short: Vec<f32> = serde_json::from_value(by_ids["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(short.len(), 8);
    assert!((short.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    for (body, param) in [
        (json!({"model": "nope", "input": "x"}), Some("model")),
        (json!({"model": "llama", "input": "x"}), Some("model")),
        (json!({"model": "embed", "input": []}), Some("input")),
        (json!({"model": "embed", "input": [1, "a"]}), Some("input")),
        (
            json!({"model": "embed", "input": "x", "encoding_format": "hex"}),
            Some("encoding_format"),
        ),
        (
            json!({"model": "embed", "input": "x", "dimensions": 0}),
            Some("dimensions"),
        ),
        (
            json!({"model": "embed", "input": [[999999]]}),
            Some("input"),
        ),
    ] {
        let (s, resp) = post(&live, "/v1/embeddings", body.clone());
        assert!(s == 400 || s == 404, "{body}: {s}");
        assert_error(s, &resp, s, param);
    }
}

#[test]
fn idle_streams_get_keep_alive_comments() {
    let live = start(
        EngineConfig {
            max_sequences: 1,
            ..Default::default()
        },
        None,
        1 << 20,
    );
    // One long request holds the only slot; a streamed chat request waits
    // in the queue with nothing to send but keep-alive comments.
    let base = live.base.clone();
    let blocker = std::thread::spawn(move || {
        agent()
            .post(format!("{base}/v1/completions"))
            .header("content-type", "application/json")
            .send(json!({"model": "llama", "prompt": "Hi", "max_tokens": 250, "ignore_eos": true, "temperature": 0}).to_string())
            .unwrap()
            .status()
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut resp = agent()
        .post(format!("{}/v1/chat/completions", live.base))
        .header("content-type", "application/json")
        .send(chat(json!({"stream": true})).to_string())
        .unwrap();
    let (_, raw) = sse_payloads_raw(resp.body_mut());
    assert!(
        raw.contains("\n:\n") || raw.starts_with(":"),
        "no keep-alive comment in {raw}"
    );
    assert!(raw.ends_with("data: [DONE]\n\n"));
    assert_eq!(blocker.join().unwrap().as_u16(), 200);
}

/// The raw text of an SSE response (comments included).
fn sse_payloads_raw(body: &mut ureq::Body) -> ((), String) {
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut body.as_reader(), &mut raw).unwrap();
    ((), raw)
}
