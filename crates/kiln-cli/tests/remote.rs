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
use kiln_core::{
    function_tool, ChatMessage, ChatOptions, Embedder, OutputConstraint, TextGenerator, ToolChoice,
};
use support::{data, scripted_server, tools_model_dir, KilnServe};

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

/// Native tool calls through a live `kiln serve` whose model's template
/// renders tools: a forced call (`tool_choice` required or named) always
/// comes back as a well-formed call, the same as the local model makes;
/// `none` offers no tools; a template without tools is refused.
#[test]
fn native_tool_calls_through_a_live_server() {
    let dir = tools_model_dir();
    let server = KilnServe::start(&[
        "--model",
        &format!("tools={}", dir.display()),
        "--model",
        &format!("plain={}", data("models/llama")),
    ]);
    let base = format!("{}/v1", server.base);
    let remote = RemoteClient::new(config(&base, "tools"));
    let model = kiln_models::Model::load_dir(&dir).unwrap();
    let local = kiln_engine::LocalGenerator::new(Arc::new(model), "tools", None);
    let tools = vec![
        function_tool(
            "calculator",
            "evaluates arithmetic",
            serde_json::json!({"type": "object", "properties": {"input": {"type": "string", "maxLength": 20}}, "required": ["input"]}),
        ),
        function_tool(
            "search",
            "looks things up",
            serde_json::json!({"type": "object"}),
        ),
    ];
    let messages = [ChatMessage::new("user", "What is 2 + 2?")];
    let forced = |choice: ToolChoice| ChatOptions {
        max_tokens: Some(60),
        temperature: Some(0.0),
        tool_choice: choice,
        ..ChatOptions::default()
    };
    let named = forced(ToolChoice::Function("calculator".into()));
    let reply = remote.chat_with_tools(&messages, &tools, &named).unwrap();
    assert_eq!(reply.tool_calls.len(), 1, "{reply:?}");
    assert_eq!(reply.tool_calls[0].name, "calculator");
    assert!(
        reply.tool_calls[0].arguments_json()["input"].is_string(),
        "{reply:?}"
    );
    let here = local.chat_with_tools(&messages, &tools, &named).unwrap();
    assert_eq!(here.tool_calls[0].arguments, reply.tool_calls[0].arguments);
    let any = remote
        .chat_with_tools(&messages, &tools, &forced(ToolChoice::Required))
        .unwrap();
    assert!(
        ["calculator", "search"].contains(&any.tool_calls[0].name.as_str()),
        "{any:?}"
    );
    // The answer to a call goes back as a `tool` message and renders.
    let mut assistant = ChatMessage::new("assistant", "");
    assistant.tool_calls = Some(serde_json::json!([reply.tool_calls[0].to_openai()]));
    let mut result = ChatMessage::new("tool", "4");
    result.tool_call_id = Some(reply.tool_calls[0].id.clone());
    let follow_up = [messages[0].clone(), assistant, result];
    let none = forced(ToolChoice::None);
    let answer = remote.chat_with_tools(&follow_up, &tools, &none).unwrap();
    assert!(answer.tool_calls.is_empty());
    assert_eq!(
        answer.content,
        local
            .chat_with_tools(&follow_up, &tools, &none)
            .unwrap()
            .content
    );
    let err = RemoteClient::new(config(&base, "plain"))
        .chat_with_tools(&messages, &tools, &named)
        .unwrap_err();
    assert!(err.to_string().contains("does not support tools"), "{err}");
}

/// `tool_calls` in a server's reply are read back as calls.
#[test]
fn tool_calls_from_any_server_are_read() {
    let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_abc","type":"function","function":{"name":"calculator","arguments":"{\"input\": \"6*7\"}"}}]},"finish_reason":"tool_calls"}]}"#;
    let (base, _) = fake(move |_| {
        Some(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).into_bytes())
    });
    let reply = RemoteClient::new(config(&base, "m"))
        .chat_with_tools(
            &[ChatMessage::new("user", "6*7?")],
            &[],
            &ChatOptions::default(),
        )
        .unwrap();
    assert_eq!(reply.content, "");
    assert_eq!(reply.tool_calls[0].id, "call_abc");
    assert_eq!(reply.tool_calls[0].arguments_json()["input"], "6*7");
}
