//! The remote backend (kiln-agent's OpenAI-compatible client) against a
//! live `kiln serve` on loopback: generation equals the local model's,
//! streaming pieces add up, constrained output, embeddings equal the local
//! embedder's; and against hand-made servers: a timeout, a server that dies
//! mid-stream, a 503 retried, a 400 not retried.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_agent::{RemoteClient, RemoteConfig, RemoteEmbedder};
use kiln_core::{ChatMessage, ChatOptions, Embedder, OutputConstraint, TextGenerator};
use support::{data, scripted_server, KilnServe};

/// `kiln serve` with a tiny decoder (`tiny`) and embedder (`embed`), and its API base.
fn serve() -> (KilnServe, String) {
    let server = KilnServe::start(&[
        "--model",
        &format!("tiny={}", data("models/llama")),
        "--embedding-model",
        &format!("embed={}", data("encoders/bert")),
    ]);
    let base = format!("{}/v1", server.base);
    (server, base)
}

fn config(base: &str, model: &str) -> RemoteConfig {
    RemoteConfig {
        api_key: None,
        ..RemoteConfig::new(base, model)
    }
}

#[test]
fn a_live_kiln_serve_as_generator_and_embedder() {
    let (_server, base) = serve();
    let remote = RemoteClient::new(config(&base, "tiny"));
    let messages = [ChatMessage::new("user", "Hello there")];
    let options = ChatOptions {
        max_tokens: Some(16),
        temperature: Some(0.0),
        ..ChatOptions::default()
    };
    let mut pieces = Vec::new();
    let text = remote
        .chat(&messages, &options, &mut |p| pieces.push(p.to_string()))
        .unwrap();
    assert!(!text.is_empty());
    assert!(pieces.len() > 1, "streamed in pieces: {pieces:?}");
    assert_eq!(pieces.concat(), text);
    // The same as the local model through the same trait.
    let model = kiln_models::Model::load_dir(std::path::Path::new(&data("models/llama"))).unwrap();
    let local = kiln_engine::LocalGenerator::new(Arc::new(model), "tiny", None);
    assert_eq!(local.chat(&messages, &options, &mut |_| {}).unwrap(), text);

    let schema = serde_json::json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
    let constrained = ChatOptions {
        max_tokens: Some(40),
        temperature: Some(1.0),
        seed: Some(3),
        constraint: Some(OutputConstraint::JsonSchema(schema)),
        ..ChatOptions::default()
    };
    let json: serde_json::Value =
        serde_json::from_str(&remote.chat(&messages, &constrained, &mut |_| {}).unwrap()).unwrap();
    assert!(json["n"].is_i64(), "{json}");
    let labels = ChatOptions {
        constraint: Some(OutputConstraint::Choice(vec!["yes".into(), "no".into()])),
        ..constrained
    };
    let label = remote.chat(&messages, &labels, &mut |_| {}).unwrap();
    assert!(label == "yes" || label == "no", "{label}");

    let embedder = RemoteEmbedder::connect(config(&base, "embed")).unwrap();
    let local =
        kiln_models::encoder::SentenceEmbedder::load(std::path::Path::new(&data("encoders/bert")))
            .unwrap();
    assert_eq!(embedder.dimension(), local.dimension());
    let texts = ["kilns fire clay", "a second text"];
    for (a, b) in embedder
        .embed(&texts)
        .unwrap()
        .iter()
        .zip(local.embed(&texts).unwrap())
    {
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{diff}");
    }
    // Unknown model: a clear error, not retried.
    let err = RemoteClient::new(config(&base, "nope"))
        .chat(&messages, &options, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "{err}");
}

/// A server that answers each connection with `respond(n)` (n counts
/// connections from 0), and its API base.
fn fake(
    respond: impl Fn(usize) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let (base, count) = scripted_server(move |n, _| respond(n));
    (format!("{base}/v1"), count)
}

fn sse_head() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n".to_vec()
}

#[test]
fn timeouts_dead_servers_and_retries() {
    let messages = [ChatMessage::new("user", "hi")];
    let options = ChatOptions::default();
    let quick = |base: &str| RemoteConfig {
        timeout: Duration::from_millis(500),
        backoff: Duration::from_millis(10),
        ..config(base, "m")
    };

    // Never answers: the timeout fires (each attempt), then an error.
    let (base, _) = fake(|_| None);
    let start = Instant::now();
    let err = RemoteClient::new(RemoteConfig {
        retries: 0,
        ..quick(&base)
    })
    .chat(&messages, &options, &mut |_| {})
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "{err}");

    // Dies mid-stream after some text: an error, not a short answer.
    let (base, count) = fake(|_| {
        let mut b = sse_head();
        b.extend_from_slice(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        );
        Some(b)
    });
    let mut got = String::new();
    let err = RemoteClient::new(quick(&base))
        .chat(&messages, &options, &mut |p| got.push_str(p))
        .unwrap_err();
    assert!(err.to_string().contains("before [DONE]"), "{err}");
    assert_eq!(got, "Hel");
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "text was received: no retry"
    );

    // 503 twice, then a stream: retried and answered.
    let (base, count) = fake(|n| {
        if n < 2 {
            Some(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec())
        } else {
            let mut b = sse_head();
            b.extend_from_slice(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\ndata: [DONE]\n\n");
            Some(b)
        }
    });
    assert_eq!(
        RemoteClient::new(quick(&base))
            .chat(&messages, &options, &mut |_| {})
            .unwrap(),
        "ok"
    );
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // 400 is the caller's fault: not retried, the message passed on.
    let body = r#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}"#;
    let (base, count) = fake(move |_| {
        Some(format!("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).into_bytes())
    });
    let err = RemoteClient::new(quick(&base))
        .chat(&messages, &options, &mut |_| {})
        .unwrap_err();
    assert!(
        err.to_string().contains("HTTP 400: bad temperature"),
        "{err}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
}
