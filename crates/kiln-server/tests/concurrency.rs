//! 32 concurrent streaming clients: all get the right text; 16 that hang up
//! mid-stream free their slots (visible in /metrics) and the rest finish.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::{agent, post, start};
use kiln_engine::EngineConfig;
use serde_json::{json, Value};

fn request(i: usize, stream: bool) -> Value {
    json!({
        "model": "llama",
        "prompt": format!("client {i} says"),
        "max_tokens": if i % 2 == 1 { 200 } else { 40 },
        "temperature": 0.7,
        "seed": i,
        "ignore_eos": true,
        "stream": stream,
    })
}

fn metric(live: &common::Live, name: &str) -> f64 {
    let mut r = agent()
        .get(format!("{}/metrics", live.base))
        .call()
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{model=\"llama\"}}")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn thirty_two_streams_and_sixteen_hang_ups() {
    let live = start(
        EngineConfig {
            max_sequences: 32,
            ..Default::default()
        },
        None,
        1 << 20,
    );
    // What each full-length client should read (same seed, not streamed).
    let expected: Vec<String> = (0..32)
        .step_by(2)
        .map(|i| {
            let (s, body) = post(&live, "/v1/completions", request(i, false));
            assert_eq!(s, 200);
            body["choices"][0]["text"].as_str().unwrap().to_string()
        })
        .collect();
    let base = live.base.clone();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(33));
    let clients: Vec<_> = (0..32)
        .map(|i| {
            let base = base.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut resp = agent()
                    .post(format!("{base}/v1/completions"))
                    .header("content-type", "application/json")
                    .send(request(i, true).to_string())
                    .unwrap();
                let mut reader = BufReader::new(resp.body_mut().as_reader());
                let mut text = String::new();
                let mut chunks = 0;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap() == 0 {
                        break;
                    }
                    let Some(data) = line.trim_end().strip_prefix("data: ") else {
                        continue;
                    };
                    if data == "[DONE]" {
                        break;
                    }
                    let chunk: Value = serde_json::from_str(data).unwrap();
                    text.push_str(chunk["choices"][0]["text"].as_str().unwrap_or(""));
                    chunks += 1;
                    if chunks == 5 {
                        barrier.wait();
                        if i % 2 == 1 {
                            // Odd clients hang up mid-stream.
                            return None;
                        }
                    }
                }
                Some(text)
            })
        })
        .collect();
    barrier.wait();
    // Every client is streaming; the hang-ups free their slots.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&live, "kiln_requests_cancelled_total") < 16.0 {
        assert!(Instant::now() < deadline, "hang-ups not noticed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let results: Vec<Option<String>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    for (i, r) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(r.as_deref(), Some(expected[i / 2].as_str()), "client {i}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&live, "kiln_running_requests") > 0.0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(&live, "kiln_requests_cancelled_total"), 16.0);
    assert_eq!(metric(&live, "kiln_requests_finished_total"), 32.0);
    assert_eq!(metric(&live, "kiln_running_sequences"), 0.0);
}
