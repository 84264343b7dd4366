//! Property tests of the request parser: any bytes and any JSON shape give
//! a request or an OpenAI 4xx error, never a panic.

#![allow(clippy::unwrap_used)]

use kiln_server::openai::params::to_params;
use kiln_server::openai::request::{parse, ChatRequest, CompletionRequest};
use proptest::prelude::*;
use serde_json::{json, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z0-9 ]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "model",
                        "messages",
                        "prompt",
                        "n",
                        "temperature",
                        "top_p",
                        "stop",
                        "max_tokens",
                        "logit_bias",
                        "seed",
                        "stream",
                        "role",
                        "content",
                        "top_k",
                        "presence_penalty",
                        "logprobs",
                        "top_logprobs",
                        "echo",
                    ]),
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #[test]
    fn any_bytes_parse_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Err(e) = parse::<ChatRequest>(&bytes) {
            prop_assert_eq!(e.status.as_u16(), 400);
        }
    }

    #[test]
    fn any_json_parses_or_fails_cleanly(v in json_value()) {
        let bytes = v.to_string().into_bytes();
        match parse::<ChatRequest>(&bytes) {
            Ok(req) => {
                if let Err(e) = to_params(&req.sampling, req.top_logprobs) {
                    prop_assert_eq!(e.status.as_u16(), 400);
                }
                for m in &req.messages {
                    let _ = m.to_chat();
                }
            }
            Err(e) => prop_assert_eq!(e.status.as_u16(), 400),
        }
        if let Ok(req) = parse::<CompletionRequest>(&bytes) {
            if let Err(e) = to_params(&req.sampling, req.logprobs) {
                prop_assert!(e.param.is_some() || e.status.as_u16() == 400);
            }
        }
    }

    #[test]
    fn in_range_sampling_values_are_accepted(t in 0.0f32..=2.0, p in 0.001f32..=1.0, n in 1usize..8, pp in -2.0f32..=2.0) {
        let body = json!({"model": "m", "messages": [], "temperature": t, "top_p": p, "n": n, "presence_penalty": pp});
        let req: ChatRequest = parse(body.to_string().as_bytes()).unwrap();
        let params = to_params(&req.sampling, None).unwrap();
        prop_assert_eq!(params.num_return_sequences, n);
    }
}
